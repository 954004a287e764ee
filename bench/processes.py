"""Memory of running processes, read from /proc.

``wait4``'s ``ru_maxrss`` is no use for a command started from a large process: Linux counts
the forking parent's pages, still mapped in the child until it runs ``exec``, towards the
child's peak. ``VmHWM`` in ``/proc/PID/status`` is the peak of the program itself.
"""

from __future__ import annotations

from pathlib import Path


def children(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(child) for child in found]


def status_mib(pid: int, field: str) -> float | None:
    """A ``/proc/PID/status`` memory field (``VmRSS``, ``VmHWM``) in MiB; None once it exited."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None

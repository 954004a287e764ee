"""The environment the tests run in: the same on every machine, whatever the shell has set.

The service reads every setting from ``ERAS_*`` variables (and the metrics from
``PROMETHEUS_MULTIPROC_DIR``), so one left in a developer's shell or a CI image would change
what a test sees. The suite removes them all, except the ``ERAS_TEST_*`` knobs of the suite
itself, and gives each process it starts an environment built from nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

# The only variables of the suite's own: where PostgreSQL is, how many examples to generate.
TEST_PREFIX = "ERAS_TEST_"
SEARCH_PATH = "/usr/bin:/bin"


def is_setting(name: str) -> bool:
    """Whether ``name`` is read by the service (and so must not leak into a test)."""
    if name == "PROMETHEUS_MULTIPROC_DIR":
        return True
    return name.startswith("ERAS_") and not name.startswith(TEST_PREFIX)


def settings_in(names: Iterable[str]) -> list[str]:
    return sorted(name for name in names if is_setting(name))


def remove_settings() -> None:
    """Remove the service's settings from this process's environment."""
    for name in settings_in(os.environ):
        del os.environ[name]


def child_environment(**variables: str) -> dict[str, str]:
    """The whole environment of a process a test starts: a search path and ``variables``.

    Nothing is inherited, so the process sees exactly the settings the test gives it.
    """
    return {"PATH": SEARCH_PATH, **variables}

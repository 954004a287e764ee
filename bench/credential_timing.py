"""How long the ingest credential check takes for different wrong passwords.

A constant-time check takes the same time whether the first byte, the last byte or the length
is wrong. This prints the median time of each case and its ratio to a password wrong in its
first byte, measured in the same run (the numbers are noisy; the ratios are what to read). A
naive comparison would make "last byte wrong" slower than "first byte wrong". The correct
password is faster only because a refusal raises an exception; much longer inputs cost more to
decode, which depends on what the client sent, not on the secret.

    .venv/bin/python bench/credential_timing.py [--rounds 200000]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import statistics
import time

from eras.api.kinesis import check_ingest_credentials
from eras.config import Settings
from eras.errors import Forbidden

PASSWORD = "correct horse battery staple " * 2


def header_with(password: str) -> str:
    return "Basic " + base64.b64encode(f"stream:{password}".encode()).decode()


def median_ns(settings: Settings, password: str, rounds: int) -> float:
    header = header_with(password)
    samples = []
    for _ in range(rounds // 100):
        started = time.perf_counter_ns()
        for _ in range(100):
            with contextlib.suppress(Forbidden):
                check_ingest_credentials(header, settings)
        samples.append((time.perf_counter_ns() - started) / 100)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200_000)
    rounds = parser.parse_args().rounds
    settings = Settings(kinesis_username="stream", kinesis_password=PASSWORD)  # type: ignore[arg-type]
    cases = {
        "correct": PASSWORD,
        "first byte wrong": "X" + PASSWORD[1:],
        "last byte wrong": PASSWORD[:-1] + "X",
        "one byte short": PASSWORD[:-1],
        "empty": "",
        "ten times longer": PASSWORD * 10,
    }
    # Interleave the cases over several passes so drift in machine load hits them all alike.
    results: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(5):
        for name, password in cases.items():
            results[name].append(median_ns(settings, password, rounds // 5))
    baseline = statistics.median(results["first byte wrong"])
    print(f"{'case':<20} {'median ns':>10} {'ratio':>7}")
    for name, values in results.items():
        value = statistics.median(values)
        print(f"{name:<20} {value:>10.0f} {value / baseline:>7.3f}")


if __name__ == "__main__":
    main()

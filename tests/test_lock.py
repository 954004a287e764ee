"""The locked tools: the uv that scripts/bootstrap.sh installs is the one uv.lock pins, so an
exact sync never replaces the uv it runs on."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def locked_versions() -> dict[str, str]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    return {package["name"]: package["version"] for package in lock["package"]}


def test_bootstrap_installs_the_locked_uv() -> None:
    script = (ROOT / "scripts" / "bootstrap.sh").read_text()
    pins = re.findall(r"^UV_VERSION=(\S+)$", script, flags=re.MULTILINE)
    assert pins == [locked_versions()["uv"]]


def test_the_test_extra_pins_the_same_uv() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    test_extra = project["project"]["optional-dependencies"]["test"]
    assert [item for item in test_extra if item.startswith("uv")] == [
        f"uv=={locked_versions()['uv']}"
    ]


def test_the_lock_has_the_project_and_its_test_tools() -> None:
    versions = locked_versions()
    for name in ("eras", "pytest", "anyio", "hypothesis", "schemathesis", "mypy", "ruff", "uv"):
        assert name in versions, name

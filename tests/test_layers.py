"""The layering holds: imports point down (cli → app → api → services → store → domain), the
domain stays pure, and only the backends know which database they are on."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
BACKENDS = ROOT / "eras" / "store" / "backend"


def lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(project / "pyproject.toml")],
        cwd=project,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(project)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_contract_is_kept() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        # The store reaching up into the routes: a cycle once routes import the store.
        ("eras/store/write.py", "import eras.api.kinesis", "Layers point down"),
        ("eras/domain/rules.py", "import eras.store.schema", "Layers point down"),
        ("eras/domain/events.py", "import sqlalchemy", "The domain is pure"),
        ("eras/services/ingest.py", "import psycopg", "Only each backend speaks to its driver"),
    ],
)
def test_a_wrong_import_breaks_a_contract(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    project = tmp_path / "project"
    shutil.copytree(ROOT / "eras", project / "eras", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", project / "pyproject.toml")
    target = project / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    result = lint_imports(project)
    assert result.returncode == 1, result.stdout
    assert f"{contract}" in result.stdout and "BROKEN" in result.stdout


# Ways of asking which database this is: only a backend may.
_ASKING = re.compile(
    r"dialect\.name|backend\.name\s*[!=]=|sqlalchemy\.dialects|isinstance\([^)]*Backend"
)


def test_only_the_backends_ask_which_database_they_are_on() -> None:
    asking = [
        f"{path.relative_to(ROOT)}:{number}: {text.strip()}"
        for path in sorted((ROOT / "eras").rglob("*.py"))
        if BACKENDS not in path.parents and "migrations" not in path.parts
        for number, text in enumerate(path.read_text().splitlines(), start=1)
        if _ASKING.search(text)
    ]
    assert asking == []

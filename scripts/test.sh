#!/usr/bin/env bash
# The whole test suite, on SQLite and PostgreSQL, plus the type and lint checks.
# Installs everything into .venv first. PostgreSQL must be reachable at 127.0.0.1:5432
# (or at ERAS_TEST_POSTGRES_URL); if it is not, the suite fails rather than skipping it.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet ".[test]"
.venv/bin/ruff check eras tests bench
.venv/bin/ruff format --check eras tests bench
.venv/bin/mypy
.venv/bin/python -m pytest "$@"

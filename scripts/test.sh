#!/usr/bin/env bash
# The whole test suite, on SQLite and PostgreSQL, plus the type and lint checks.
# Brings .venv exactly to uv.lock first: every run uses the locked version of every package,
# and anything else found in .venv is removed. PostgreSQL must be reachable at 127.0.0.1:5432
# (or at ERAS_TEST_POSTGRES_URL); if it is not, the suite fails rather than skipping it.
# The dashboard's browser tests drive Debian's Chromium: installed here when it is missing
# (as root, as CI runs; otherwise with sudo), never downloaded by Playwright.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
if [[ ! -x /usr/bin/chromium ]]; then
    sudo=()
    [[ "$(id -u)" -eq 0 ]] || sudo=(sudo)
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
.venv/bin/uv sync --locked --extra test
.venv/bin/ruff check eras tests bench
.venv/bin/ruff format --check eras tests bench
.venv/bin/mypy
.venv/bin/lint-imports
.venv/bin/python -m pytest "$@"

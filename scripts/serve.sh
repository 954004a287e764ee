#!/usr/bin/env bash
# Run the service on the embedded default (a SQLite file, eras.db), installing it first if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/eras ]; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --upgrade pip
    .venv/bin/pip install --quiet .
fi
# A local demo needs no ingest credentials; production servers set ERAS_KINESIS_USERNAME/PASSWORD.
export ERAS_ENV="${ERAS_ENV:-development}"
exec .venv/bin/eras serve "$@"

#!/usr/bin/env bash
# Run the service on the embedded default (a SQLite file, eras.db), with the versions in
# uv.lock installed into .venv first. The test tools, if .venv has them, are left in place.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
.venv/bin/uv sync --locked --inexact
# A local demo needs no ingest credentials; production servers set ERAS_KINESIS_USERNAME/PASSWORD.
export ERAS_ENV="${ERAS_ENV:-development}"
exec .venv/bin/eras serve "$@"

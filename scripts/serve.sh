#!/usr/bin/env bash
# Run the service on the embedded default (a SQLite file, eras.db), with the versions in
# uv.lock installed into .venv first. The test tools, if .venv has them, are left in place.
#
#   bash scripts/serve.sh          serve
#   bash scripts/serve.sh --demo   fill an empty eras.db with a generated sample first, then serve
#
# Other arguments go to `eras serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
.venv/bin/uv sync --locked --inexact
# A local demo needs no ingest credentials; production servers set ERAS_KINESIS_USERNAME/PASSWORD.
export ERAS_ENV="${ERAS_ENV:-development}"
arguments=()
for argument in "$@"; do
    if [[ "$argument" == "--demo" ]]; then
        .venv/bin/eras demo
    else
        arguments+=("$argument")
    fi
done
exec .venv/bin/eras serve "${arguments[@]}"

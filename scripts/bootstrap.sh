# Sourced by scripts/test.sh, scripts/serve.sh and .ci/run, from the repository's root:
# makes .venv a working virtual environment with the pinned uv in it. uv then brings .venv
# exactly to uv.lock (see docs/development.md).

# The same version as the uv entry of uv.lock (tests/test_lock.py checks it).
UV_VERSION=0.13.9

export UV_PYTHON_DOWNLOADS=never          # the machine's python3, never one uv downloads
export UV_LINK_MODE=copy                  # uv's cache may be on another file system
export UV_PROJECT_ENVIRONMENT="$PWD/.venv" # whatever the caller's shell says

if ! .venv/bin/python -c "" 2>/dev/null; then
    rm -rf .venv
    python3 -m venv .venv
fi
if [ "$(.venv/bin/uv --version 2>/dev/null | cut -d ' ' -f 2)" != "$UV_VERSION" ]; then
    # uv sync keeps pip; a venv made by an older uv may have none.
    .venv/bin/python -m pip --version >/dev/null 2>&1 || .venv/bin/python -m ensurepip --default-pip >/dev/null
    .venv/bin/python -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi

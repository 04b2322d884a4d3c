#!/usr/bin/env bash
# Runs the Python test suite the way CI does: installs the package into
# <repo>/.venv as a user would (`pip install ./python`: maturin builds one
# abi3 wheel in release), builds the emulator if needed, runs pytest.
#   python/run-tests.sh [pytest args...]
# Env: SHARDLINE_EMULATOR (emulator binary; default target/debug/shardline-emulator).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup-test-deps.sh
.venv/bin/python -m pip install --disable-pip-version-check --quiet ./python
if [[ -z "${SHARDLINE_EMULATOR:-}" ]]; then
    cargo build -p shardline-emulator
fi
# From the repo root, so `import shardline` finds the installed package, not
# the source directory python/shardline (which has no native module).
exec .venv/bin/python -m pytest python/tests "$@"

#!/usr/bin/env bash
# Installs the third-party test dependencies of Shardline:
#   - <repo>/.venv (python3 -m venv) with scripts/requirements-test.txt
#     (boto3, moto[server], aws-kinesis-agg, six, pytest, maturin);
#   - tests/servers/node_modules via `npm ci` (kinesalite, kinesis-local).
# Idempotent: each part is skipped when a stamp file holds the hash of the
# files it was installed from. Uses only pip and npm against their registries.
# Env: PYTHON (interpreter for the venv, default python3), FORCE=1 (reinstall).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
REQS="$ROOT/scripts/requirements-test.txt"
SERVERS="$ROOT/tests/servers"
PY="${PYTHON:-python3}"
FORCE="${FORCE:-0}"

log() { printf '[setup-test-deps] %s\n' "$*"; }

hash_files() { cat "$@" | sha256sum | cut -d' ' -f1; }

# --- Python venv -------------------------------------------------------------
py_hash="$(hash_files "$REQS" "$ROOT/scripts/setup-test-deps.sh")-$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
py_stamp="$VENV/.shardline-stamp"
if [[ "$FORCE" != 1 && -x "$VENV/bin/python" && -f "$py_stamp" && "$(cat "$py_stamp")" == "$py_hash" ]]; then
    log "python: $VENV up to date (stamp matches), skipping"
else
    if [[ ! -x "$VENV/bin/python" ]]; then
        log "python: creating venv $VENV with $("$PY" --version 2>&1)"
        "$PY" -m venv "$VENV"
    else
        log "python: venv exists, requirements changed: reinstalling"
    fi
    rm -f "$py_stamp"
    log "python: pip install -r scripts/requirements-test.txt"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet -r "$REQS"
    # Smoke check: the things the tests use must import / run.
    "$VENV/bin/python" -c 'import boto3, moto, aws_kinesis_agg, six, pytest' \
        || { log "python: import check failed"; exit 1; }
    [[ -x "$VENV/bin/moto_server" ]] || { log "python: moto_server missing"; exit 1; }
    printf '%s\n' "$py_hash" > "$py_stamp"
    log "python: done"
fi

# --- Node servers --------------------------------------------------------------
command -v npm >/dev/null || { log "npm not found"; exit 1; }
node_hash="$(hash_files "$SERVERS/package.json" "$SERVERS/package-lock.json" "$ROOT/scripts/setup-test-deps.sh")-$(node --version)"
node_stamp="$SERVERS/node_modules/.shardline-stamp"
if [[ "$FORCE" != 1 && -f "$node_stamp" && "$(cat "$node_stamp")" == "$node_hash" ]]; then
    log "node: tests/servers/node_modules up to date (stamp matches), skipping"
else
    # leveldown (an optional dependency of kinesalite) is only needed for
    # on-disk storage; the launcher is in-memory, so skip it and its build script.
    log "node: npm ci in tests/servers (omit optional deps, no install scripts)"
    (cd "$SERVERS" && npm ci --omit=optional --ignore-scripts --no-audit --no-fund --loglevel=error)
    (cd "$SERVERS" && node -e 'require("kinesalite"); require.resolve("kinesis-local/main.js")') \
        || { log "node: require check failed"; exit 1; }
    printf '%s\n' "$node_hash" > "$node_stamp"
    log "node: done"
fi

log "all test dependencies installed"

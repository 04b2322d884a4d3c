#!/usr/bin/env bash
# Runs the whole Shardline test suite on a fresh machine: installs the test
# dependencies (Python venv, npm servers), then the Rust, C and Python
# suites. Each suite starts and stops the local servers it needs on
# 127.0.0.1. Ends with one line counting every test that ran.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LOG_DIR="$(mktemp -d)"
trap 'rm -rf "$LOG_DIR"' EXIT

step() { printf '\n=== %s\n' "$*"; }

step "test dependencies"
scripts/setup-test-deps.sh
export SHARDLINE_PYTHON="$ROOT/.venv/bin/python"

step "Rust: unit, property, interop and integration tests"
cargo build --workspace --all-targets --quiet
cargo build -p shardline-emulator --bin shardline-emulator --quiet
export SHARDLINE_EMULATOR="$ROOT/target/debug/shardline-emulator"
cargo test --workspace --no-fail-fast 2>&1 | tee "$LOG_DIR/cargo.log"

step "Benchmark harnesses: smoke run on tiny inputs (the debug builds above)"
# Keeps benches/run.py, the load harness and the plots from rotting; the
# real runs (release builds) are in BENCHMARKS.md. Its failure is counted,
# not fatal here, so the other suites still run.
if ! env -u SHARDLINE_PYTHON SHARDLINE_BIN_DIR="$ROOT/target/debug" benches/smoke.sh 2>&1 |
    tee "$LOG_DIR/smoke.log"; then
    grep -qE '^[0-9]+ passed, [0-9]+ failed' "$LOG_DIR/smoke.log" ||
        echo "0 passed, 1 failed" >>"$LOG_DIR/smoke.log"
fi

step "C ABI: header check, C tests against both libraries, valgrind"
ffi/generate-header.sh --check
ffi/run-c-tests.sh 2>&1 | tee "$LOG_DIR/c.log"

step "Python: pip install ./python (as a user would), then pytest"
python/run-tests.sh -q 2>&1 | tee "$LOG_DIR/pytest.log"

step "Reliability: fuzz smoke runs and the dependency policy"
scripts/reliability.sh 2>&1 | tee "$LOG_DIR/reliability.log"

# One closing line over every suite.
passed=0
failed=0
while read -r p f; do
    passed=$((passed + p))
    failed=$((failed + f))
done < <(
    grep -hoE 'test result: (ok|FAILED)\. [0-9]+ passed; [0-9]+ failed' "$LOG_DIR/cargo.log" |
        awk '{print $4, $6}'
    if [[ -f "$LOG_DIR/c.log" ]]; then
        grep -hoE '^[0-9]+ passed, [0-9]+ failed' "$LOG_DIR/c.log" | awk '{print $1, $3}'
    fi
    if [[ -f "$LOG_DIR/smoke.log" ]]; then
        grep -hoE '^[0-9]+ passed, [0-9]+ failed' "$LOG_DIR/smoke.log" | awk '{print $1, $3}'
    fi
    if [[ -f "$LOG_DIR/reliability.log" ]]; then
        grep -hoE '^[0-9]+ passed, [0-9]+ failed' "$LOG_DIR/reliability.log" | awk '{print $1, $3}'
    fi
    if [[ -f "$LOG_DIR/pytest.log" ]]; then
        tail -n 3 "$LOG_DIR/pytest.log" | grep -oE '[0-9]+ passed' | awk '{print $1, 0}'
        tail -n 3 "$LOG_DIR/pytest.log" | grep -oE '[0-9]+ failed' | awk '{print 0, $1}'
    fi
)
printf '\n%s passed, %s failed\n' "$passed" "$failed"
[[ "$failed" == 0 ]]

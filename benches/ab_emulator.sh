#!/usr/bin/env bash
# Alternates emulator builds under the same load and prints, for each run,
# the producer's records/s and CPU per record and the emulator's CPU per
# user record (its process's CPU ticks from /proc before and after).
#
#   benches/ab_emulator.sh RECORDS RECORD_SIZE REPS EMULATOR_BIN...
#   e.g. benches/ab_emulator.sh 3000000 100 2 /tmp/emulator-before target/release/shardline-emulator
#
# Used for the emulator-decoding round in BENCHMARKS.md ("The emulator's
# decoding"). Needs the release `shardline-load` (cargo build --release -p
# shardline-benches --bins) unless SHARDLINE_LOAD names another build.
set -euo pipefail
records=$1 size=$2 reps=$3
shift 3
root=$(cd "$(dirname "$0")/.." && pwd)
load=${SHARDLINE_LOAD:-${CARGO_TARGET_DIR:-$root/target}/release/shardline-load}
tick=$(getconf CLK_TCK)
out=$(mktemp)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

pid=
# The emulator of the current run, stopped on any exit; nothing else is
# left running (a leftover child holding the caller's stdout would keep a
# `smoke.sh | tee` pipeline open).
trap 'rm -f "$out"; [[ -z "$pid" ]] || kill "$pid" 2>/dev/null || true' EXIT

for ((rep = 0; rep < reps; rep++)); do
  for emulator in "$@"; do
    "$emulator" --port 0 --tls-port 0 --retain 0 --stream s:4 --no-limits \
      </dev/null >"$out" 2>&1 &
    pid=$!
    for _ in $(seq 50); do grep -q '^listening http:' "$out" && break; sleep 0.1; done
    url=$(awk '/^listening http:/ {print $2; exit}' "$out")
    before=$(cpu_ticks "$pid")
    result=$("$load" --endpoint "$url" --records "$records" --record-size "$size" \
      --no-rate-limit 2>/dev/null | tail -1)
    after=$(cpu_ticks "$pid")
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=
    python3 - "$result" "$emulator" "$before" "$after" "$tick" "$records" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
emulator, before, after, tick, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
if r["delivered"] != n or r["failed"]:
    sys.exit(f"{emulator}: {r['delivered']} of {n} records delivered, {r['failed']} failed")
print(f"{emulator}: {r['records_per_s']:,.0f} records/s, producer "
      f"{r['cpu_s_per_million']:.2f} CPU us/record, emulator "
      f"{(after - before) / tick / n * 1e6:.3f} CPU us/record")
PY
  done
done

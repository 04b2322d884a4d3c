#!/usr/bin/env bash
# Smoke test of the benchmark harnesses on tiny inputs (CI runs this; the
# real runs are in BENCHMARKS.md). Builds and uses the release binaries:
#   cargo build --release -p shardline-emulator -p shardline-benches --bins
#   cargo build --release -p shardline-ffi --lib
# unless SHARDLINE_BIN_DIR names a directory holding shardline-emulator and
# shardline-load already (CI: target/debug, built by scripts/test.sh), which
# also skips the build. Ends with an "N passed, M failed" line.
# Runs: the end-to-end suite, the utilisation suite (4 s) and its per-second
# probe (3 s), the dead-endpoint
# memory suite (3 s), Shardline against the Java KPL (5,000 records each;
# needs java and mvn, which fetches the KPL from Maven Central), the C
# harness against libshardline.a (5,000 records; needs cc), the emulator
# suite (5,000 records), and the
# Python script if an interpreter with shardline is given in
# $SHARDLINE_PYTHON. Exits non-zero on any failure.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
start=$SECONDS
if [[ -n "${SHARDLINE_BIN_DIR:-}" ]]; then
    export SHARDLINE_BIN_DIR
    SMOKE_BUILD=0
fi
if [[ "${SMOKE_BUILD:-1}" == 1 ]]; then
    cargo build --release -q -p shardline-emulator -p shardline-benches --bins
    cargo build --release -q -p shardline-ffi --lib   # libshardline.a for the C harness
fi
built=$SECONDS
py=python3
python3 benches/run.py e2e --smoke --reps 1
python3 benches/run.py utilisation --smoke --who shardline
python3 benches/probe_utilisation.py --seconds 3 --producers 2
python3 benches/run.py memory --smoke --who shardline
mvn -q -f benches/kpl/pom.xml package -DskipTests
python3 benches/run.py kpl --smoke --reps 1
python3 benches/run.py c --smoke --reps 1
python3 benches/run.py emulator --smoke --reps 1
if [[ -n "${SHARDLINE_PYTHON:-}" ]]; then
    python3 benches/run.py python --smoke --reps 1 --python "$SHARDLINE_PYTHON"
fi
# Every smoke result must show delivered records and a passing read-back.
if python3 - <<'PY'
import json, sys
ok = True
e2e = json.load(open("benches/results/e2e-smoke.json"))["runs"]
for r in e2e:
    if not (r["delivered"] > 0 and r["failed"] == 0 and r.get("readback_ok")):
        print("e2e smoke run failed:", {k: r.get(k) for k in ("label", "record_size", "delivered", "failed", "readback_ok")})
        ok = False
util = json.load(open("benches/results/utilisation-smoke.json"))["runs"]
if not all(r["window"]["accepted_bytes"] > 0 for r in util):
    print("utilisation smoke: nothing delivered"); ok = False
kpl = json.load(open("benches/results/kpl-smoke.json"))["runs"]
if sorted(r["harness"] for r in kpl) != ["kpl", "shardline"]:
    print("kpl smoke: expected one Shardline and one KPL run"); ok = False
for r in kpl:
    if not (r["delivered"] > 0 and r["failed"] == 0 and r.get("readback_ok")):
        print("kpl smoke run failed:", {k: r.get(k) for k in ("harness", "delivered", "failed", "readback_ok")})
        ok = False
c = json.load(open("benches/results/c-smoke.json"))["runs"]
if sorted(r["harness"] for r in c) != ["c", "shardline"]:
    print("c smoke: expected one C and one Rust run"); ok = False
for r in c:
    if not (r["delivered"] == r["sent"] and r["failed"] == 0 and r.get("readback_ok")):
        print("c smoke run failed:", {k: r.get(k) for k in ("harness", "sent", "delivered", "failed", "readback_ok")})
        ok = False
emulator = json.load(open("benches/results/emulator-smoke.json"))["runs"]
for r in emulator:
    if not (r["delivered"] == r["sent"] and r["failed"] == 0 and r.get("readback_ok")):
        print("emulator smoke run failed:", {k: r.get(k) for k in ("sent", "delivered", "failed", "readback_ok")})
        ok = False
mem = json.load(open("benches/results/memory-smoke.json"))["runs"]
if not all(r["tree_peak_rss_bytes"] > 0 and r["rss_timeline"] for r in mem):
    print("memory smoke: no RSS samples"); ok = False
print("smoke checks:", "passed" if ok else "FAILED")
sys.exit(0 if ok else 1)
PY
then
    checks=passed
else
    checks=failed
fi
python3 benches/plot.py --smoke
echo "smoke: $((SECONDS - built)) s after builds ($((built - start)) s building)"
# One line for the test script's count: the harness runs (e2e, utilisation,
# memory, kpl) got this far under `set -e`; the checks above decide the verdict.
if [[ "$checks" == passed ]]; then
    echo "1 passed, 0 failed"
else
    echo "0 passed, 1 failed"
    exit 1
fi

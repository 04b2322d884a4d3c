#!/usr/bin/env bash
# Reliability checks that `cargo test` does not run (see RELIABILITY.md):
#
#   1. fuzz smoke runs: each cargo-fuzz target for FUZZ_SECONDS (15 s by
#      default) starting from its seed corpus in fuzz/corpus/<target>/;
#      new inputs go to a scratch directory, so the repository's corpus
#      stays small;
#   2. the dependency policy: `cargo deny check licenses bans sources`
#      (offline), and `advisories` against the RustSec database: fetched
#      from GitHub when GitHub answers, else cloned from a local git mirror
#      of rustsec/advisory-db (ADVISORY_DB_MIRROR), else SKIPPED.
#
# Needs the nightly toolchain (`cargo +nightly`); installs cargo-fuzz and
# cargo-deny with `cargo install` when they are missing (about 3 and 11
# minutes on a 2-core machine). Ends with "N passed, M failed".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
FUZZ_SECONDS="${FUZZ_SECONDS:-15}"
TARGETS=(deaggregate config emulator_request agent_config)
# A git mirror of https://github.com/rustsec/advisory-db, for machines that
# cannot reach GitHub.
ADVISORY_DB_MIRROR="${ADVISORY_DB_MIRROR:-/work/.mirror/rustsec+advisory-db/repo}"
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT

passed=0
failed=0
check() {
    local name="$1"
    shift
    printf '\n=== %s\n' "$name"
    if "$@"; then
        passed=$((passed + 1))
        printf -- '--- %s: ok\n' "$name"
    else
        failed=$((failed + 1))
        printf -- '--- %s: FAILED\n' "$name"
    fi
}

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "the nightly toolchain is missing: rustup toolchain install nightly" >&2
    exit 1
fi
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
command -v cargo-deny >/dev/null || cargo install --locked cargo-deny

fuzz_target() {
    local target="$1" status=0
    mkdir -p "$SCRATCH/$target"
    # The first directory receives new inputs; the seed corpus is read-only.
    (cd fuzz && cargo +nightly fuzz run "$target" "$SCRATCH/$target" "corpus/$target" \
        -- -max_total_time="$FUZZ_SECONDS") >"$SCRATCH/$target.log" 2>&1 || status=$?
    # libFuzzer's progress lines are noise; show the summary and any crash.
    grep -E '^(#[0-9]+[[:space:]]+DONE|Done [0-9]+ runs|==[0-9]+== ERROR|SUMMARY|thread .* panicked|Test unit written)' \
        "$SCRATCH/$target.log" || true
    if [[ "$status" != 0 ]]; then
        tail -n 40 "$SCRATCH/$target.log"
    fi
    return "$status"
}

(cd fuzz && cargo +nightly fuzz build >/dev/null)
for target in "${TARGETS[@]}"; do
    check "fuzz $target (${FUZZ_SECONDS} s)" fuzz_target "$target"
done

check "cargo deny: licenses, bans, sources" \
    cargo deny --offline check --hide-inclusion-graph licenses bans sources

# cargo-deny keeps its clone of each database under `db-path`, in a
# directory named after the URL: this is the name it gives deny.toml's
# https://github.com/rustsec/advisory-db (cargo-deny 0.20). If a later
# version names it differently, the check fails saying it found no database.
ADVISORY_DB_DIR=advisory-db-3157b0e258782691

advisories_from_mirror() {
    local dbs="$SCRATCH/advisory-dbs"
    mkdir -p "$dbs"
    git clone --quiet "$ADVISORY_DB_MIRROR" "$dbs/$ADVISORY_DB_DIR" || return 1
    printf 'RustSec database from %s, last commit %s\n' "$ADVISORY_DB_MIRROR" \
        "$(git -C "$dbs/$ADVISORY_DB_DIR" log -1 --format=%cs)"
    # deny.toml with the scratch clone as db-path; --offline: no fetch.
    sed "/^\[advisories\]/a db-path = \"$dbs\"" deny.toml >"$SCRATCH/deny.toml"
    cargo deny --offline --config "$SCRATCH/deny.toml" check --hide-inclusion-graph advisories
}

if timeout 20 git ls-remote https://github.com/rustsec/advisory-db HEAD >/dev/null 2>&1; then
    check "cargo deny: advisories" cargo deny check --hide-inclusion-graph advisories
elif git -C "$ADVISORY_DB_MIRROR" rev-parse --git-dir >/dev/null 2>&1; then
    check "cargo deny: advisories (offline, local mirror)" advisories_from_mirror
else
    printf '\n=== cargo deny: advisories\nSKIPPED: github.com is not reachable from here and there is no RustSec advisory-db mirror at %s (set ADVISORY_DB_MIRROR to a git clone of https://github.com/rustsec/advisory-db)\n' \
        "$ADVISORY_DB_MIRROR"
fi

printf '\n%s passed, %s failed\n' "$passed" "$failed"
[[ "$failed" == 0 ]]

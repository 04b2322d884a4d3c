#!/usr/bin/env bash
# Builds libshardline (static and shared) and the emulator, compiles the C
# tests in ffi/tests/*.c and examples/c/producer.c with -Wall -Wextra -Werror
# against both libraries, runs them against a fresh emulator, then the tests
# once more under valgrind.
# Prints "N passed, M failed" last and exits non-zero on any failure.
#
#   ffi/run-c-tests.sh              debug build
#   ffi/run-c-tests.sh --release    release build (slower to build)
#   NO_VALGRIND=1 ffi/run-c-tests.sh
set -uo pipefail
ffi_dir="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$ffi_dir")"
cd "$root"

profile=debug
cargo_flags=()
if [ "${1:-}" = --release ]; then profile=release; cargo_flags=(--release); fi
target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
lib_dir="$target_dir/$profile"
out="$target_dir/c-tests"
mkdir -p "$out"

passed=0
failed=0
failed_names=()
record() { # name status
    if [ "$2" -eq 0 ]; then passed=$((passed + 1)); echo "PASS $1"
    else failed=$((failed + 1)); failed_names+=("$1"); echo "FAIL $1 (exit $2)"; fi
}
summary() {
    [ "$failed" -gt 0 ] && echo "failed: ${failed_names[*]}"
    echo "$passed passed, $failed failed"
}

echo "== building libshardline and the emulator ($profile)"
if ! cargo build "${cargo_flags[@]}" -p shardline-ffi -p shardline-emulator; then
    record cargo-build 1; summary; exit 1
fi

# The system libraries the Rust standard library needs when linking the
# static archive: what `cargo rustc -p shardline-ffi --lib -- --print
# native-static-libs` prints on Linux.
native_libs="-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"
cflags=(-std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -g -I "$ffi_dir/include")

# compile SRC NAME LINK: builds $out/NAME-LINK against the static or the
# shared library and records the outcome; succeeds if it built.
compile() {
    local libs
    if [ "$3" = static ]; then
        libs=("$lib_dir/libshardline.a" -Wl,--gc-sections $native_libs)
    else
        libs=(-L "$lib_dir" -Wl,-rpath,"$lib_dir" -lshardline -lpthread)
    fi
    cc "${cflags[@]}" "$1" -o "$out/$2-$3" "${libs[@]}"
    local status=$?
    record "compile $2 ($3)" $status
    return $status
}

echo "== compiling C tests"
tests=()
for src in "$ffi_dir"/tests/*.c; do
    name="$(basename "$src" .c)"
    for link in static shared; do
        compile "$src" "$name" "$link" && tests+=("$name-$link")
    done
done

echo "== starting the emulator"
coproc EMULATOR {
    exec "$lib_dir/shardline-emulator" --port 0 --stream ffi-test:4 \
        --delivery-stream ffi-test-firehose --no-limits --exit-on-stdin-close 2>"$out/emulator.log"
}
emulator_pid=$EMULATOR_PID
stop_emulator() {
    exec {EMULATOR[1]}>&- 2>/dev/null || true   # closing stdin stops it
    if kill -0 "$emulator_pid" 2>/dev/null; then
        sleep 0.5; kill "$emulator_pid" 2>/dev/null || true
    fi
    wait "$emulator_pid" 2>/dev/null || true
}
trap stop_emulator EXIT
line=""
if ! read -r -t 30 line <&"${EMULATOR[0]}" || [[ "$line" != listening\ http://* ]]; then
    echo "emulator did not start: ${line:-no output}"; cat "$out/emulator.log"
    record emulator-start 1; summary; exit 1
fi
export SHARDLINE_TEST_ENDPOINT="${line#listening }"
echo "emulator at $SHARDLINE_TEST_ENDPOINT"

echo "== running C tests"
for t in "${tests[@]}"; do
    echo "-- $t"
    timeout 600 "$out/$t"
    record "$t" $?
done

echo "== the example program (examples/c/producer.c), static and shared"
for link in static shared; do
    compile "$root/examples/c/producer.c" producer "$link" || continue
    # It sends 10,000 events and exits non-zero if any failed.
    timeout 120 "$out/producer-$link" ffi-test "$SHARDLINE_TEST_ENDPOINT" >"$out/producer-$link.log" 2>&1
    status=$?
    cat "$out/producer-$link.log"
    if [ $status -eq 0 ] && ! grep -q '^10000 delivered, 0 failed' "$out/producer-$link.log"; then
        status=1
    fi
    record "example producer ($link)" $status
    # Every object in libshardline.a must mark its stack non-executable, or
    # the linker gives the whole C program an executable stack.
    if readelf -lW "$out/producer-$link" | grep -q 'GNU_STACK.* RWE '; then
        echo "producer-$link has an executable stack"
        record "no executable stack ($link)" 1
    else
        record "no executable stack ($link)" 0
    fi
done

if [ -z "${NO_VALGRIND:-}" ]; then
    echo "== valgrind (shared and static library, delivery test in --quick mode)"
    vg=(valgrind --quiet --error-exitcode=1 --leak-check=full
        --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect
        --suppressions="$ffi_dir/tests/valgrind.supp" --gen-suppressions=all)
    for t in test_errors-shared test_queue_full-static test_delivery-shared test_threads-static; do
        [ -x "$out/$t" ] || continue
        args=()
        [[ "$t" == test_delivery-* ]] && args=(--quick)
        # Its tight upper time bounds only catch hangs under valgrind.
        [[ "$t" == test_threads-* ]] && args=(--valgrind)
        echo "-- valgrind $t ${args[*]}"
        timeout 900 "${vg[@]}" "$out/$t" "${args[@]}"
        record "valgrind $t" $?
    done
fi

stop_emulator
trap - EXIT
summary
[ "$failed" -eq 0 ]

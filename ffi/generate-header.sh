#!/usr/bin/env bash
# Regenerates ffi/include/shardline.h from the Rust sources with cbindgen.
#
#   ffi/generate-header.sh          rewrite the committed header
#   ffi/generate-header.sh --check  exit 1 if it differs from a fresh one (CI)
set -euo pipefail
ffi_dir="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$ffi_dir")"
header="$ffi_dir/include/shardline.h"
mode="${1:-write}"
case "$mode" in write|--check) ;; *) echo "usage: $0 [--check]" >&2; exit 2;; esac

# The generator is its own small workspace (see header-gen/Cargo.toml); keep
# its build under the main target dir, which git ignores.
export CARGO_TARGET_DIR="$root/target/header-gen"
gen=(cargo run --quiet --locked --manifest-path "$ffi_dir/header-gen/Cargo.toml" --)

if [ "$mode" = --check ]; then
    fresh="$(mktemp)"
    trap 'rm -f "$fresh"' EXIT
    "${gen[@]}" "$ffi_dir" "$fresh"
    if ! diff -u "$header" "$fresh"; then
        echo "ffi/include/shardline.h is stale: run ffi/generate-header.sh and commit it" >&2
        exit 1
    fi
    echo "ffi/include/shardline.h is up to date"
else
    "${gen[@]}" "$ffi_dir" "$header"
    echo "wrote $header"
fi

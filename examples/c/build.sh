#!/usr/bin/env bash
# Builds libshardline (release) and examples/c/producer.c against the static
# library: target/examples-c/producer. Pass --shared to link libshardline.so.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
cargo build --release -p shardline-ffi
mkdir -p target/examples-c
if [ "${1:-}" = --shared ]; then
    cc -std=c11 -Wall -Wextra -Werror -O2 -I ffi/include examples/c/producer.c \
       -o target/examples-c/producer -L target/release -Wl,-rpath,"$root/target/release" -lshardline
else
    cc -std=c11 -Wall -Wextra -Werror -O2 -I ffi/include examples/c/producer.c \
       -o target/examples-c/producer target/release/libshardline.a -Wl,--gc-sections \
       -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
fi
echo "built target/examples-c/producer"

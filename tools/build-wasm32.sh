#!/bin/sh
# build-wasm32.sh OUTDIR - compiles the portable VM core (src/common src/isa src/asm src/vm) for
# wasm32 with clang and Debian's wasi-libc, links it with tools/wasm32_driver.c into
# OUTDIR/nanovm-core.wasm, and, when node is available, runs a program inside it through WASI.
set -eu
OUT=${1:-build-wasm32}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"
CFLAGS="--target=wasm32-wasi --sysroot=/usr -std=c17 -O2 -Wall -Wextra -Wpedantic -Wshadow -Werror -I$ROOT/include -I$ROOT/src"
objs=""
for f in "$ROOT"/src/common/*.c "$ROOT"/src/isa/*.c "$ROOT"/src/asm/*.c "$ROOT"/src/vm/*.c "$ROOT"/tools/wasm32_driver.c; do
  [ -f "$f" ] || continue
  o="$OUT/$(basename "$f" .c).o"
  clang $CFLAGS -c "$f" -o "$o"
  objs="$objs $o"
done
clang --target=wasm32-wasi --sysroot=/usr $objs -o "$OUT/nanovm-core.wasm" -lm
echo "built $OUT/nanovm-core.wasm ($(wc -c <"$OUT/nanovm-core.wasm") bytes)"
if command -v node >/dev/null 2>&1; then
  got=$(node --no-warnings "$ROOT/tools/wasm32_run.mjs" "$OUT/nanovm-core.wasm" <"$ROOT/examples/hello.casm" 2>&1) || {
    echo "wasm32 run failed: $got"; exit 1; }
  echo "$got"
  echo "$got" | grep -q "sum of squares 1..10 = 385" || { echo "wasm32 run printed the wrong output"; exit 1; }
fi

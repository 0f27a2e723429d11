#!/bin/sh
# demo.sh NANOVM - the README's first command (make run): assemble a program, show its bytecode
# as CASM again, run it, then show how bad input is refused.
set -u
NVM=${1:-build/nanovm}
DIR=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

echo "== assemble examples/hello.casm -> hello.nvmb"
"$NVM" asm "$DIR/hello.casm" -o "$T/hello.nvmb" || exit $?
echo "   $(wc -c <"$T/hello.nvmb") bytes, verified"
echo "== disassemble (first lines)"
"$NVM" disasm "$T/hello.nvmb" | head -n 8
echo "== run on the interpreter tier"
"$NVM" run --tier interp "$T/hello.nvmb" || exit $?
echo "== a tampered module is refused (exit 3)"
cp "$T/hello.nvmb" "$T/bad.nvmb"
printf '\377\377\377\377' | dd of="$T/bad.nvmb" bs=1 seek=12 conv=notrunc 2>/dev/null
"$NVM" run "$T/bad.nvmb" 2>&1
echo "   exit status $?"
echo "== an endless loop under a gas limit stops (exit 5)"
printf '.func main\nspin:\n    JMP spin\n' >"$T/spin.casm"
"$NVM" run --gas 100000 "$T/spin.casm" 2>&1
echo "   exit status $?"

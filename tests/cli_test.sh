#!/bin/sh
# cli_test.sh NANOVM - command-line behaviour: usage errors (exit 2), missing files (exit 3),
# asm/disasm/check, program arguments after FILE, limits on the command line.
NVM=$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0
fail=0

# expect NAME EXIT STDERR_SUBSTRING -- command...
expect() {
    name=$1 code=$2 needle=$3
    shift 4
    "$@" >"$T/out" 2>"$T/err" </dev/null
    got=$?
    if [ "$got" != "$code" ]; then
        echo "FAIL $name: exit $got, expected $code"; sed 's/^/  stderr: /' "$T/err"; fail=$((fail + 1)); return
    fi
    if [ -n "$needle" ] && ! grep -qF -- "$needle" "$T/err"; then
        echo "FAIL $name: stderr lacks '$needle'"; sed 's/^/  stderr: /' "$T/err"; fail=$((fail + 1)); return
    fi
    pass=$((pass + 1))
}

printf '.func main\n    PUSH_STR "hi"\n    CAP_CALL "io.print" 1\n    HALT\n' >"$T/hi.casm"
printf '.func main\n    JMP main_loop\nmain_loop:\n    JMP main_loop\n' >"$T/spin.casm"

expect no-command 2 "missing command" -- "$NVM"
expect unknown-command 2 "unknown command" -- "$NVM" frobnicate
expect run-no-file 2 "needs a FILE" -- "$NVM" run
expect run-bad-option 2 "unknown option" -- "$NVM" run --bogus "$T/hi.casm"
expect run-bad-tier 2 "unknown tier" -- "$NVM" run --tier warp "$T/hi.casm"
expect run-tier-aot 0 "" -- env NVM_CACHE_DIR="$T/aot-cache" "$NVM" run --tier aot "$T/hi.casm"
printf 'garbage\000' >"$T/nul.casm"
expect aot-bad-source 3 "NUL byte" -- env NVM_CACHE_DIR="$T/aot-cache" "$NVM" aot "$T/nul.casm"
expect aot-bad-option 2 "unknown option" -- "$NVM" aot --bogus "$T/hi.casm"
expect aot-policy-bare 2 "applies to capsules" -- "$NVM" aot --policy p.json "$T/hi.casm"
expect aot-emit-unwritable 70 "cannot write" -- "$NVM" aot --emit-c "$T/no/such/dir/x.c" "$T/hi.casm"
expect cache-bad-command 2 "cache list|clear" -- "$NVM" cache frob
expect run-bad-gas 2 "--gas" -- "$NVM" run --gas -5 "$T/hi.casm"
expect run-bad-mem 2 "--max-memory" -- "$NVM" run --max-memory 12Q "$T/hi.casm"
expect run-missing-file 3 "cannot open" -- "$NVM" run "$T/nope.casm"
expect run-ok 0 "" -- "$NVM" run --tier interp "$T/hi.casm"
grep -qx hi "$T/out" && pass=$((pass + 1)) || { echo "FAIL run-ok output"; fail=$((fail + 1)); }
expect run-with-args 0 "" -- "$NVM" run "$T/hi.casm" -- --not-an-option x y
expect run-gas 5 "gas" -- "$NVM" run --gas 1000 "$T/spin.casm"
printf '{"levels": {"sandboxed": {"limits": {"wall_ms": 200}}}}\n' >"$T/wall.json"
expect run-wall-time 5 "wall-time limit exceeded" -- "$NVM" run --policy "$T/wall.json" "$T/spin.casm"
expect asm-no-out 2 "usage" -- "$NVM" asm "$T/hi.casm"
expect asm 0 "" -- "$NVM" asm "$T/hi.casm" -o "$T/hi.nvmb"
expect run-nvmb 0 "" -- "$NVM" run "$T/hi.nvmb"
expect disasm 0 "" -- "$NVM" disasm "$T/hi.nvmb"
grep -q 'CAP_CALL "io.print" 1' "$T/out" && pass=$((pass + 1)) || { echo "FAIL disasm output"; fail=$((fail + 1)); }
expect check 0 "" -- "$NVM" check "$T/hi.casm"
expect asm-unwritable 70 "cannot write" -- "$NVM" asm "$T/hi.casm" -o "$T/no/such/dir/x.nvmb"
expect help 0 "" -- "$NVM" --help
expect version 0 "" -- "$NVM" --version

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]

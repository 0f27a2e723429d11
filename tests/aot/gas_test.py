#!/usr/bin/env python3
"""gas_test.py --nanovm PATH - the AOT tier stops at the interpreter's instruction under every
gas limit (python3, standard library only).

Loop programs whose bodies end in a jump back to their test (the AOT tier charges the test's gas
with the body's, one check per round; docs/aot.md), with a frameless callee that loops, a bool
array written in the loop, and a fault caught inside a loop round; and a frameless recursion
whose calls pay for the callee's entry block and branch. Each runs on the interpreter
and on the AOT tier with `--gas N` for every N from 1 to what it needs, and both must print the
same, fail the same way and report the same gas used. Exits 0 when all agree, 1 otherwise, 77
when the build has no AOT tier or no C compiler.
"""
import argparse
import os
import subprocess
import sys
import tempfile

SKIP_EXIT = 77

LOOPS = """
.func main
    PUSH 0
    STORE 0
    PUSH 0
    STORE 1
    NEW_ARRAY 0
    STORE 2
outer:
    LOAD 0
    PUSH 5
    LT
    JZ done
    PUSH 0
    STORE 3
inner:
    LOAD 3
    LOAD 0
    LE
    JZ inner_done
    LOAD 1
    LOAD 3
    ADD
    STORE 1
    LOAD 2
    LOAD 3
    PUSH 2
    MOD
    PUSH 0
    EQ
    ARR_PUSH
    POP
    LOAD 3
    PUSH 1
    ADD
    STORE 3
    JMP inner
inner_done:
    LOAD 1
    LOAD 0
    CALL tri
    ADD
    STORE 1
    LOAD 0
    PUSH 1
    ADD
    STORE 0
    JMP outer
done:
    LOAD 1
    CAP_CALL "io.print" 1
    LOAD 2
    CAP_CALL "io.print" 1
    HALT

.func tri
    STORE 0
    PUSH 0
    STORE 1
t_loop:
    LOAD 0
    PUSH 0
    GT
    JZ t_done
    LOAD 1
    LOAD 0
    ADD
    STORE 1
    LOAD 0
    PUSH 1
    SUB
    STORE 0
    JMP t_loop
t_done:
    LOAD 1
    RET
"""

# rounds 4 to 6 of the loop fault (an int overflow) in the block that was charged for the loop's
# test too; the handler counts them and the loop goes on
FAULT = """
.func main
    PUSH 0
    STORE 0
    PUSH 0
    STORE 1
loop:
    LOAD 0
    PUSH 7
    LT
    JZ done
    ENTER_TRY h
    PUSH 9223372036854775804
    LOAD 0
    ADD
    POP
    EXIT_TRY
    LOAD 0
    PUSH 1
    ADD
    STORE 0
    JMP loop
h:
    POP
    LOAD 1
    PUSH 1
    ADD
    STORE 1
    LOAD 0
    PUSH 1
    ADD
    STORE 0
    JMP loop
done:
    LOAD 0
    LOAD 1
    CAP_CALL "io.print" 2
    HALT
"""


# a frameless recursion whose entry block ends in a branch to a return and to the recursive
# calls: the caller pays for the entry block and the larger branch, the branch refunds the rest
RECURSION = """
.func main
    PUSH 9
    CALL fib
    CAP_CALL "io.print" 1
    HALT

.func fib
    STORE 0
    LOAD 0
    PUSH 2
    LT
    JZ rec
    LOAD 0
    RET
rec:
    LOAD 0
    PUSH 1
    SUB
    CALL fib
    LOAD 0
    PUSH 2
    SUB
    CALL fib
    ADD
    RET
"""


def run(nvm, tier, path, gas, env):
    """(exit status, stdout, stderr); ASan's notice about the AOT run's stack switch (an ASan
    build) is not part of the program's output; a sanitizer report is a failure."""
    cmd = [nvm, "run", "--tier", tier, "--gas-report"]
    if gas is not None:
        cmd += ["--gas", str(gas)]
    r = subprocess.run(cmd + [path], capture_output=True, env=env, timeout=60)
    err = b"".join(l for l in r.stderr.splitlines(keepends=True)
                   if b"ASan doesn't fully support makecontext/swapcontext" not in l)
    if b"Sanitizer" in err or b"runtime error:" in err:
        err = b"SANITIZER REPORT\n" + err
    return (r.returncode, r.stdout, err)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nanovm", required=True)
    a = ap.parse_args()
    nvm = a.nanovm
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        cache = os.path.join(tmp, "cache")
        os.mkdir(cache, 0o700)
        env = dict(os.environ, NVM_CACHE_DIR=cache)
        for name, text in (("loops", LOOPS), ("fault", FAULT), ("recursion", RECURSION)):
            path = os.path.join(tmp, name + ".casm")
            with open(path, "w") as f:
                f.write(text)
            r = subprocess.run([nvm, "aot", path], capture_output=True, env=env, timeout=300)
            if r.returncode != 0:
                msg = r.stderr.decode(errors="replace")
                if "not available" in msg or "compiler" in msg:
                    print("SKIP: no AOT tier or C compiler: " + msg.strip())
                    return SKIP_EXIT
                print("FAIL %s: nanovm aot exited %d: %s" % (name, r.returncode, msg.strip()))
                return 1
            full = run(nvm, "interp", path, None, env)
            if full[0] != 0:
                print("FAIL %s: the interpreter failed: %r" % (name, full))
                return 1
            need = int(full[2].decode().strip().rsplit(" ", 1)[1])
            for gas in list(range(1, need + 2)) + [None]:
                want = run(nvm, "interp", path, gas, env)
                got = run(nvm, "aot", path, gas, env)
                if got != want:
                    failed += 1
                    print("FAIL %s --gas %s:\n  interp %r\n  aot    %r" % (name, gas, want, got))
            print("%s: %d limits (needs %d)" % (name, need + 2, need))
    print("%d failed" % failed)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

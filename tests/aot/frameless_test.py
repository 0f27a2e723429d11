#!/usr/bin/env python3
"""frameless_test.py --nanovm PATH [--seed S] [--count N] - differential test of the AOT tier's
frameless calls (docs/aot.md) against the interpreter (python3, standard library only).

Generates programs made of side-effect-free functions (arithmetic on ints near the overflow
limits, floats, bools, comparisons, branches, bounded loops, recursion, calls between them, reads
of an array and a map passed in) which the AOT tier compiles with a frameless version, and a
main that calls them with ints, floats, strings and null, some inside handlers. Each program runs
with `--tier interp` and `--tier aot` (with `--gas-report`), and again under a gas limit drawn
below what it needs and under a small depth limit; standard output, standard error, exit status
and gas used must be identical. Exits 0 when all agree, 1 otherwise (the program is written to
--out), 77 when the build has no AOT tier or no C compiler. Also: a policy's wall-time limit stops
a long frameless recursion (exit 5).
"""
import argparse
import os
import random
import subprocess
import sys
import tempfile
import time

SKIP_EXIT = 77
INTS = [0, 1, 2, 3, 7, -1, -5, 100, 4611686018427387904, 9223372036854775807,
        -9223372036854775807, 3037000499, 3037000500]
FLOATS = ["0.5", "2.0", "-1.25", "1e308", "0.0"]


class Gen:
    def __init__(self, rnd):
        self.r = rnd
        self.lines = []
        self.label = 0

    def lab(self):
        self.label += 1
        return "L%d" % self.label

    def emit(self, s):
        self.lines.append("    " + s)

    def value(self, nargs):
        """pushes one value: an argument, a constant, or an expression"""
        r = self.r
        k = r.randrange(10)
        if k < 4 and nargs > 0:
            self.emit("LOAD %d" % r.randrange(nargs))
        elif k < 6:
            self.emit("PUSH %d" % r.choice(INTS))
        elif k < 7:
            self.emit("PUSH_F64 %s" % r.choice(FLOATS))
        elif k < 8:
            self.value(nargs)
            self.value(nargs)
            self.emit(r.choice(["ADD", "SUB", "MUL", "DIV", "MOD"]))
        elif k < 9:
            self.value(nargs)
            self.value(nargs)
            self.emit(r.choice(["LT", "LE", "GT", "GE", "EQ", "NE"]))
        else:
            self.value(nargs)
            self.emit(r.choice(["NEG", "NOT", "DUP\n    POP"]))

    def function(self, idx, nargs, callees):
        """f<idx>: slots 0..nargs-1 the arguments, slot nargs a counter; the first argument
        bounds the recursion (an int, decreasing)"""
        r = self.r
        self.lines.append(".func f%d" % idx)
        for a in reversed(range(nargs)):
            self.emit("STORE %d" % a)
        base = self.lab()
        # recursion guard: if a0 is not an int > 0 (or too big), return an expression
        self.emit("LOAD 0")
        self.emit("PUSH 0")
        self.emit("GT")
        self.emit("JNZ %s" % base)
        self.value(nargs)
        self.emit("RET")
        self.lines.append(base + ":")
        self.emit("LOAD 0")
        self.emit("PUSH 12")
        self.emit("GT")
        skip = self.lab()
        self.emit("JZ %s" % skip)
        self.emit("PUSH 12")
        self.emit("STORE 0")
        self.lines.append(skip + ":")
        # a bounded loop accumulating into slot nargs
        self.emit("PUSH 0")
        self.emit("STORE %d" % nargs)
        if r.random() < 0.5:
            top, out = self.lab(), self.lab()
            self.emit("PUSH %d" % r.randrange(1, 6))
            self.emit("STORE %d" % (nargs + 1))
            self.lines.append(top + ":")
            self.emit("LOAD %d" % (nargs + 1))
            self.emit("JZ %s" % out)
            self.emit("LOAD %d" % nargs)
            self.value(nargs)
            self.emit("ADD")
            self.emit("STORE %d" % nargs)
            self.emit("LOAD %d" % (nargs + 1))
            self.emit("PUSH 1")
            self.emit("SUB")
            self.emit("STORE %d" % (nargs + 1))
            self.emit("JMP %s" % top)
            self.lines.append(out + ":")
        # calls: itself with a0 - 1 (or a0 - 2), and lower functions
        for _ in range(r.randrange(1, 3)):
            target, tn = r.choice(callees + [(idx, nargs)])
            self.emit("LOAD 0")
            self.emit("PUSH %d" % r.choice([1, 1, 2]))
            self.emit("SUB")
            for _a in range(tn - 1):
                self.value(nargs)
            self.emit("CALL f%d" % target)
            self.emit("LOAD %d" % nargs)
            self.emit(r.choice(["ADD", "ADD", "SUB", "MUL"]))
            self.emit("STORE %d" % nargs)
        if r.random() < 0.3:
            other = self.lab()
            self.value(nargs)
            self.emit("JZ %s" % other)
            self.emit("LOAD %d" % nargs)
            self.emit("RET")
            self.lines.append(other + ":")
            self.value(nargs)
            self.emit("RET")
        else:
            self.emit("LOAD %d" % nargs)
            self.emit("RET")

    def program(self):
        r = self.r
        nf = r.randrange(1, 4)
        funcs = []
        body = []
        for i in range(nf):
            nargs = r.randrange(1, 4)
            save = self.lines
            self.lines = []
            self.function(i, nargs, funcs[:])
            body += self.lines
            self.lines = save
            funcs.append((i, nargs))
        # readers: an array element and a map field
        body += [".func rd", "    STORE 1", "    STORE 0", "    LOAD 0", "    LOAD 1",
                 "    ARR_GET", "    LOAD 0", "    ARR_LEN", "    ADD", "    RET",
                 ".func fld", "    STORE 0", "    LOAD 0", "    GET_FIELD \"x\"",
                 "    LOAD 0", "    GET_FIELD \"y\"", "    MUL", "    RET"]
        m = [".func main", "    NEW_ARRAY 0", "    STORE 0"]
        for v in [3, 9223372036854775807, 5]:
            m += ["    LOAD 0", "    PUSH %d" % v, "    ARR_PUSH", "    POP"]
        m += ["    NEW_OBJ", "    DUP", "    PUSH 6", "    SET_FIELD \"x\"", "    DUP",
              "    PUSH_F64 %s" % r.choice(FLOATS), "    SET_FIELD \"y\"", "    STORE 1"]
        calls = []
        for _ in range(r.randrange(3, 9)):
            k = r.randrange(10)
            if k < 7:
                f, n = r.choice(funcs)
                args = []
                for a in range(n):
                    c = r.randrange(12)
                    if a == 0 and c < 8:
                        args.append("PUSH %d" % r.randrange(0, 16))
                    elif c < 9:
                        args.append("PUSH %d" % r.choice(INTS))
                    elif c < 10:
                        args.append("PUSH_F64 %s" % r.choice(FLOATS))
                    elif c < 11:
                        args.append("PUSH_STR \"s\"")
                    else:
                        args.append("PUSH_NULL")
                calls.append(args + ["CALL f%d" % f])
            elif k < 9:
                calls.append(["LOAD 0", "PUSH %d" % r.randrange(-4, 5), "CALL rd"])
            else:
                calls.append(["LOAD 1", "CALL fld"])
        for i, c in enumerate(calls):
            # repeat some calls so that their compiled paths run many times
            reps = r.choice([1, 1, 50])
            if reps > 1:
                m += ["    PUSH %d" % reps, "    STORE 2", "C%d:" % i, "    LOAD 2", "    JZ D%d" % i]
            if r.random() < 0.6:
                m += ["    ENTER_TRY H%d" % i] + ["    " + x for x in c] + \
                     ["    EXIT_TRY", "    JMP P%d" % i, "H%d:" % i, "P%d:" % i]
            else:
                m += ["    " + x for x in c]
            m += ["    CAP_CALL \"io.print\" 1"]
            if reps > 1:
                m += ["    LOAD 2", "    PUSH 1", "    SUB", "    STORE 2", "    JMP C%d" % i,
                      "D%d:" % i]
        m += ["    HALT"]
        return "\n".join(m + body) + "\n"


def run(nanovm, tier, path, extra):
    """(exit status, stdout, stderr); ASan's notice about the AOT run's stack switch (an ASan
    build) is not part of the program's output; a sanitizer report is a failure."""
    p = subprocess.run([nanovm, "run", "--tier", tier, "--gas-report"] + extra + [path],
                       capture_output=True, timeout=120)
    err = b"".join(l for l in p.stderr.splitlines(keepends=True)
                   if b"ASan doesn't fully support makecontext/swapcontext" not in l)
    if b"Sanitizer" in err or b"runtime error:" in err:
        err = b"SANITIZER REPORT\n" + err
    return p.returncode, p.stdout, err


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nanovm", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=40)
    ap.add_argument("--out", default=".")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as td:
        env_cache = os.environ.get("NVM_CACHE_DIR")
        if env_cache is None:
            os.environ["NVM_CACHE_DIR"] = os.path.join(td, "cache")
        probe = os.path.join(td, "probe.casm")
        with open(probe, "w") as f:
            f.write(".func main\n    HALT\n")
        p = subprocess.run([a.nanovm, "run", "--tier", "aot", probe], capture_output=True)
        if p.returncode != 0:
            print("SKIP: no AOT tier here (%s)" % p.stderr.decode(errors="replace").strip())
            return SKIP_EXIT
        bad = 0
        frameless = 0
        for i in range(a.count):
            rnd = random.Random(a.seed * 100003 + i)
            src = Gen(rnd).program()
            path = os.path.join(td, "p%d.casm" % i)
            with open(path, "w") as f:
                f.write(src)
            cpath = os.path.join(td, "p%d.c" % i)
            subprocess.run([a.nanovm, "aot", "--emit-c", cpath, path], capture_output=True)
            if os.path.exists(cpath):
                with open(cpath) as f:
                    frameless += f.read().count("/* frameless f")
            ref = run(a.nanovm, "interp", path, [])
            used = 0
            for line in ref[2].decode(errors="replace").splitlines():
                if line.startswith("gas used: "):
                    used = int(line.split()[-1])
            variants = [[]]
            if used > 10:
                variants.append(["--gas", str(rnd.randrange(1, used))])
            variants.append(["--max-depth", str(rnd.randrange(2, 12))])
            for extra in variants:
                x = ref if extra == [] else run(a.nanovm, "interp", path, extra)
                y = run(a.nanovm, "aot", path, extra)
                if x != y:
                    bad += 1
                    keep = os.path.join(a.out, "frameless-%d-%d.casm" % (a.seed, i))
                    with open(keep, "w") as f:
                        f.write(src)
                    print("MISMATCH program %d %s (kept in %s)" % (i, " ".join(extra), keep))
                    print("  interp: exit %d stdout %r stderr %r" % (x[0], x[1][-300:], x[2][-300:]))
                    print("  aot:    exit %d stdout %r stderr %r" % (y[0], y[1][-300:], y[2][-300:]))
                    break
        # the interrupt hook (a wall-time limit) stops a long frameless recursion
        fib = os.path.join(td, "fib.casm")
        with open(fib, "w") as f:
            f.write(".func main\n    PUSH 45\n    CALL fib\n    CAP_CALL \"io.print\" 1\n"
                    "    HALT\n.func fib\n    STORE 0\n    LOAD 0\n    PUSH 2\n    LT\n"
                    "    JZ r\n    LOAD 0\n    RET\nr:\n    LOAD 0\n    PUSH 1\n    SUB\n"
                    "    CALL fib\n    LOAD 0\n    PUSH 2\n    SUB\n    CALL fib\n    ADD\n"
                    "    RET\n")
        pol = os.path.join(td, "wall.json")
        with open(pol, "w") as f:
            f.write('{"levels": {"sandboxed": {"limits": {"wall_ms": 300}}}}')
        t0 = time.time()
        code, _o, err = run(a.nanovm, "aot", fib, ["--policy", pol])
        took = time.time() - t0
        if code != 5 or b"wall" not in err or took > 20:
            bad += 1
            print("MISMATCH wall_ms: exit %d after %.1f s, stderr %r" % (code, took, err[-300:]))
        print("%d programs, %d frameless functions, %d mismatches" % (a.count, frameless, bad))
        if frameless == 0:
            print("FAIL: no function got a frameless version")
            return 1
        return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

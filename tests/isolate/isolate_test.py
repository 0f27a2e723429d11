#!/usr/bin/env python3
"""isolate_test.py - `nanovm run --isolate` end to end (python3, stdlib only).

Capability calls performed by the broker with the same results, denials and audit records as an
in-process run; a CPU spin without a gas limit ended by the policy's wall_ms; a memory bomb ended
by --max-memory; every audit log verifies. Prints the start-up time of an unsigned hello with and
without --isolate and of `lua5.4 -e ''` (when installed). Ends with "N passed, M failed".
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ap = argparse.ArgumentParser()
ap.add_argument("--nanovm", required=True)
ap.add_argument("--runs", type=int, default=20, help="runs per start-up measurement")
A = ap.parse_args()
NVM = os.path.abspath(A.nanovm)
W = os.path.realpath(tempfile.mkdtemp(prefix="nvm-iso-"))
passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL: %s %s" % (name, detail))


def wr(name, text):
    path = os.path.join(W, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def nvm(*args, stdin=b""):
    p = subprocess.run([NVM] + list(args), input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, cwd=W, timeout=60)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def policy(name, caps, limits=None):
    lv = {"capabilities": list(caps)}
    if limits:
        lv["limits"] = limits
    return wr(name, json.dumps({"levels": {"sandboxed": lv}}))


ALL = policy("all.json", ["io.*", "args.*", "time.*", "random.*", "fs.*", "env.*"])
DATA = os.path.join(W, "data")
os.makedirs(DATA)
with open(os.path.join(DATA, "in.txt"), "w") as f:
    f.write("secret-free text\n")

HELLO = wr("hello.casm", '.func main\n    PUSH_STR "hello"\n    CAP_CALL "io.print" 1\n    HALT\n')
FS = wr("fs.casm", """.func main
    PUSH_STR "%s/in.txt"
    CAP_CALL "fs.read" 1
    CAP_CALL "io.print" 1
    PUSH_STR "%s/out.txt"
    PUSH_STR "written by the broker"
    CAP_CALL "fs.write" 2
    PUSH_STR "/etc/passwd"
    CAP_CALL "fs.read" 1
    HALT
""" % (DATA, DATA))


def both(name, *args, stdin=b""):
    """The same run in process and isolated: identical exit, stdout and stderr."""
    a = nvm("run", *args, stdin=stdin)
    b = nvm("run", "--isolate", *args, stdin=stdin)
    check(name + ": identical", a == b, "\nplain:    %r\nisolated: %r" % (a, b))
    return b


# ---- brokered capabilities: grants, scopes, denials, audit ----
log = os.path.join(W, "fs.log")
code, out, err = both("fs", "--policy", ALL, "--audit", log, "--allow", "fs.read:%s/**" % DATA,
                      "--allow", "fs.write:%s/**" % DATA, FS)
check("fs: read through the broker", out == "secret-free text\n\n", repr(out))
check("fs: outside the grant denied (exit 6)", code == 6 and "/etc/passwd" in err, err)
check("fs: written by the broker",
      open(os.path.join(DATA, "out.txt")).read() == "written by the broker")
text = open(log).read()
check("fs: audit has isolate.start", "isolate.start" in text, text[-600:])
check("fs: audit has the denial", "cap.denied" in text)
code, out, err = nvm("audit", "verify", log)
check("fs: audit verify", code == 0, out + err)
code, out, err = both("hello", "--policy", ALL, HELLO)
check("hello", out == "hello\n" and code == 0, out + err)

# ---- a CPU spin without a gas limit: the policy's wall_ms ends it ----
SPIN = wr("spin.casm", ".func main\ntop:\n    JMP top\n")
WALL = policy("wall.json", ["io.*"], limits={"wall_ms": 300})
t0 = time.time()
log = os.path.join(W, "spin.log")
code, out, err = nvm("run", "--isolate", "--policy", WALL, "--audit", log, SPIN)
dt = time.time() - t0
check("spin: exit 5", code == 5, "%d %s" % (code, err))
check("spin: wall_ms in the message", "wall_ms" in err, err)
check("spin: ended within the limit", dt < 3, "%.2f s" % dt)
check("spin: audited", "wall_ms" in open(log).read())

# ---- a memory bomb: the memory limit ends it ----
BOMB = wr("bomb.casm", """.func main
    NEW_ARRAY 0
    STORE 0
top:
    LOAD 0
    PUSH 0
    PUSH 1000
    MAKE_RANGE
    ARR_PUSH
    POP
    JMP top
""")
t0 = time.time()
code, out, err = both("memory bomb", "--max-memory", "16M", BOMB)
check("memory bomb: exit 5", code == 5 and "memory" in err, "%d %s" % (code, err))
check("memory bomb: ended quickly", time.time() - t0 < 20)

# ---- start-up: an unsigned hello ----


def median_ms(cmd):
    ts = []
    for _ in range(A.runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=W)
        ts.append((time.perf_counter() - t0) * 1000)
    return statistics.median(ts)


plain = median_ms([NVM, "run", "--policy", ALL, HELLO])
iso = median_ms([NVM, "run", "--isolate", "--policy", ALL, HELLO])
line = "start-up (median of %d): hello %.2f ms, hello --isolate %.2f ms" % (A.runs, plain, iso)
if shutil.which("lua5.4"):
    line += ", lua5.4 -e '' %.2f ms" % median_ms(["lua5.4", "-e", ""])
print(line)
check("start-up with --isolate under 250 ms", iso < 250, "%.2f ms" % iso)

shutil.rmtree(W, ignore_errors=True)
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)

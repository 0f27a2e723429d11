#!/usr/bin/env python3
"""caps_test.py - the host capabilities end to end through `nanovm run` (python3, stdlib only).

For every capability: an allowed, a denied and a failing call. File system scope escapes (.. chains,
absolute paths, symlinks to outside created after the grant, symlink loops, trailing slashes, //,
case variants, very long paths, NUL inside a path, a granted directory replaced by a symlink
during the run): each denied, audited, without side effect. Capsules asking more than their
level's ceiling, --allow beyond the ceiling, host limits (exit 5). Every run writes an audit log,
and `nanovm audit verify` must accept each. Ends with "N passed, M failed".
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ap = argparse.ArgumentParser()
ap.add_argument("--nanovm", required=True)
ap.add_argument("--keep", action="store_true")
A = ap.parse_args()
NVM = os.path.abspath(A.nanovm)
W = os.path.realpath(tempfile.mkdtemp(prefix="nvm-caps-"))
passed = failed = 0
nrun = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL: %s %s" % (name, detail))


def wr(path, data, mode="w"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as f:
        f.write(data)


def rd(path):
    with open(path, "rb") as f:
        return f.read()


def lit(v):
    if isinstance(v, bool):
        return "PUSH_BOOL %s" % ("true" if v else "false")
    if isinstance(v, int):
        return "PUSH %d" % v
    if isinstance(v, float):
        return "PUSH_F64 %r" % v
    if v is None:
        return "PUSH_NULL"
    b = v.encode("utf-8", "surrogateescape") if isinstance(v, str) else v
    out = []
    for c in b:
        if c == 0x22 or c == 0x5C or c < 0x20 or c > 0x7E:
            out.append("\\x%02x" % c)
        else:
            out.append(chr(c))
    return 'PUSH_STR "%s"' % "".join(out)


RESULTS = {"fs.write": 0, "fs.append": 0, "fs.remove": 0, "fs.mkdir": 0, "time.sleep": 0,
           "io.print": 0, "io.eprint": 0}


def prog(calls, catch=False):
    """calls: [(cap, [args])]; each result is printed. With catch, an error is printed as
    'caught: MESSAGE' and the program ends with exit 0."""
    lines = [".func main"]
    if catch:
        lines.append("    ENTER_TRY h")
    for cap, args in calls:
        for a in args:
            lines.append("    " + lit(a))
        lines.append('    CAP_CALL "%s" %d' % (cap, len(args)))
        if RESULTS.get(cap, 1):
            lines.append('    CAP_CALL "io.print" 1')
    if catch:
        lines += ["    EXIT_TRY", "    HALT", "h:", '    PUSH_STR "caught: "', "    SWAP",
                  "    ADD", '    CAP_CALL "io.print" 1']
    lines.append("    HALT")
    return "\n".join(lines) + "\n"


def policy(name, caps, deny=(), limits=None, extra=None):
    lv = {"capabilities": list(caps)}
    if deny:
        lv["deny"] = list(deny)
    if limits:
        lv["limits"] = limits
    p = {"levels": {"sandboxed": lv}}
    p.update(extra or {})
    path = os.path.join(W, name)
    wr(path, json.dumps(p))
    return path


ALL = policy("all.json", ["io.*", "args.*", "time.*", "random.*", "fs.*", "env.*"])


def nvm(*args, stdin=b"", cwd=None, popen=False):
    cmd = [NVM] + list(args)
    if popen:
        return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=cwd or W)
    p = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       cwd=cwd or W, timeout=60)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def verify_log(name, log):
    code, out, err = nvm("audit", "verify", log)
    check(name + ": audit verify", code == 0, out + err)


def run(name, calls, allow=(), pol=ALL, exit=0, out=None, err=None, catch=False, args=(),
        stdin=b"", cwd=None, audited=None, src=None, during=None):
    """Runs one program; checks exit status, stdout/stderr substrings, the audit log."""
    global nrun
    nrun += 1
    path = os.path.join(W, "p%d.casm" % nrun)
    wr(path, src if src is not None else prog(calls, catch))
    log = os.path.join(W, "audit%d.log" % nrun)
    cmd = ["run", "--audit", log]
    if pol:
        cmd += ["--policy", pol]
    for a in allow:
        cmd += ["--allow", a]
    cmd += [path] + list(args)
    if during is not None:
        p = nvm(*cmd, popen=True, cwd=cwd)
        time.sleep(0.15)
        during()
        o, e = p.communicate(stdin, timeout=60)
        code, o, e = p.returncode, o.decode("utf-8", "replace"), e.decode("utf-8", "replace")
    else:
        code, o, e = nvm(*cmd, stdin=stdin, cwd=cwd)
    detail = "exit %s\nstdout: %s\nstderr: %s" % (code, o[:500], e[:500])
    check(name + ": exit %d" % exit, code == exit, detail)
    if out is not None:
        check(name + ": stdout", out in o, detail)
    if err is not None:
        check(name + ": stderr", err in e, detail)
    check(name + ": no sanitizer report", "Sanitizer" not in e and "runtime error" not in e, e)
    if os.path.exists(log):
        text = open(log).read()
        if audited is None:
            audited = "cap.denied" if exit == 6 else None
        if audited:
            check(name + ": audited " + audited, '"event":"%s"' % audited in text, text[-800:])
        verify_log(name, log)
    return code, o, e


G = os.path.join(W, "grant")
OUT = os.path.join(W, "outside")
wr(os.path.join(G, "a.txt"), "hello")
wr(os.path.join(G, "b.txt"), "world")
wr(os.path.join(OUT, "secret.txt"), "TOPSECRET")
os.makedirs(os.path.join(G, "sub"), exist_ok=True)
GR = ["fs.%s:%s/**" % (a, G) for a in
      ("read", "write", "append", "exists", "list", "remove", "mkdir")]

# ---- fs: allowed, denied, failing ----
run("fs.read allowed", [("fs.read", [G + "/a.txt"])], GR, out="hello", audited="cap.call")
run("fs.read not granted", [("fs.read", [G + "/a.txt"])], [], exit=6, err="not granted")
run("fs.read missing file", [("fs.read", [G + "/nope.txt"])], GR, exit=1,
    err="No such file or directory")
run("fs.read relative path", [("fs.read", ["a.txt"])], GR, out="hello", cwd=G)
run("fs.read a directory", [("fs.read", [G + "/sub"])], GR, exit=1, err="Is a directory")
run("fs.write allowed", [("fs.write", [G + "/w.txt", "data1"])], GR, audited="cap.call")
check("fs.write wrote", rd(G + "/w.txt") == b"data1")
run("fs.write denied", [("fs.write", [OUT + "/w.txt", "x"])], ["fs.write:%s/**" % G], exit=6)
check("fs.write denied: no file", not os.path.exists(OUT + "/w.txt"))
run("fs.write failing", [("fs.write", [G + "/nodir/w.txt", "x"])], GR, exit=1,
    err="No such file")
run("fs.write non-str data", [("fs.write", [G + "/w.txt", 5])], GR, exit=1, err="must be a str")
run("fs.append allowed", [("fs.append", [G + "/w.txt", "+2"]), ("fs.append", [G + "/w.txt", "+3"])],
    GR)
check("fs.append appended", rd(G + "/w.txt") == b"data1+2+3")
run("fs.append denied", [("fs.append", [G + "/a.txt", "x"])], ["fs.append:%s/sub/**" % G], exit=6,
    err="outside the granted scope")
check("fs.append denied: unchanged", rd(G + "/a.txt") == b"hello")
run("fs.append failing", [("fs.append", [G + "/sub", "x"])], GR, exit=1, err="Is a directory")
run("fs.exists yes/no", [("fs.exists", [G + "/a.txt"]), ("fs.exists", [G + "/zz"])], GR,
    out="1\n0\n")
run("fs.exists denied", [("fs.exists", [OUT + "/secret.txt"])], GR, exit=6)
run("fs.exists non-str", [("fs.exists", [1])], GR, exit=1, err="must be a str")
run("fs.list allowed", [("fs.list", [G])], GR, out="[a.txt, b.txt, sub, w.txt]")
run("fs.list denied", [("fs.list", [OUT])], GR, exit=6)
run("fs.list failing", [("fs.list", [G + "/a.txt"])], GR, exit=1, err="Not a directory")
wr(G + "/gone.txt", "x")
run("fs.remove allowed", [("fs.remove", [G + "/gone.txt"])], GR)
check("fs.remove removed", not os.path.exists(G + "/gone.txt"))
run("fs.remove denied", [("fs.remove", [OUT + "/secret.txt"])], GR, exit=6)
check("fs.remove denied: still there", os.path.exists(OUT + "/secret.txt"))
run("fs.remove failing", [("fs.remove", [G + "/gone.txt"])], GR, exit=1, err="No such file")
run("fs.mkdir allowed", [("fs.mkdir", [G + "/newdir"])], GR)
check("fs.mkdir made", os.path.isdir(G + "/newdir"))
run("fs.mkdir denied", [("fs.mkdir", [OUT + "/newdir"])], GR, exit=6)
check("fs.mkdir denied: nothing made", not os.path.exists(OUT + "/newdir"))
run("fs.mkdir failing", [("fs.mkdir", [G + "/newdir"])], GR, exit=1, err="File exists")
run("fs denial is catchable", [("fs.read", [OUT + "/secret.txt"])], GR, catch=True,
    out="caught: fs.read", audited="cap.denied")
run("fs scoped pattern *.txt", [("fs.read", [G + "/b.txt"])], ["fs.read:%s/*.txt" % G],
    out="world")
run("fs * stays in a segment", [("fs.list", [G + "/sub"])], ["fs.list:%s/*.txt" % G], exit=6)

# ---- fs scope escapes: each denied, audited, no side effect ----
ESC = [
    (".. chain", G + "/../outside/secret.txt"),
    (".. chain through sub", G + "/sub/../../outside/secret.txt"),
    (".. chain deep", G + "/sub/../sub/../../../../../../" + OUT[1:] + "/secret.txt"),
    ("absolute path", "/etc/passwd"),
    ("// chain", G + "//..//outside//secret.txt"),
    ("// root", "//etc/passwd"),
    ("case variant", G.replace("/grant", "/GRANT") + "/a.txt"),
    ("very long path", G + "/" + "a/" * 3000 + "x"),
    ("NUL inside", G + "/a.txt\x00/../../outside/secret.txt"),
]
wr(os.path.join(W, "GRANT", "a.txt"), "CASE")
for name, path in ESC:
    run("escape %s: read" % name, [("fs.read", [path])], GR, exit=6)
    run("escape %s: write" % name, [("fs.write", [path, "pwned"])], GR, exit=6)
check("escapes: secret untouched", rd(OUT + "/secret.txt") == b"TOPSECRET")
check("escapes: case dir untouched", rd(W + "/GRANT/a.txt") == b"CASE")
run("escape relative ..", [("fs.read", ["../outside/secret.txt"])], GR, exit=6, cwd=G)
run("long path below the limit is an error, not a crash",
    [("fs.read", [G + "/" + "a" * 200 + "/" + "b" * 3000])], GR, exit=1)
run("trailing slash on a file grant", [("fs.read", [G + "/a.txt/"])],
    ["fs.read:%s/a.txt" % G], exit=6)
run("trailing slash write", [("fs.write", [G + "/t.txt/", "x"])], ["fs.write:%s/*.txt" % G],
    exit=6)
check("trailing slash: nothing made", not os.path.exists(G + "/t.txt"))


def mk_links():
    os.symlink(OUT + "/secret.txt", G + "/flink")
    os.symlink(OUT, G + "/dlink")
    os.symlink(OUT + "/created.txt", G + "/wlink")
    os.symlink("../outside/secret.txt", G + "/rlink")


sleepy = [("time.sleep", [500])]
run("symlink to outside file (made after the grant)", sleepy + [("fs.read", [G + "/flink"])],
    GR, exit=6, during=mk_links)
run("symlink to outside dir", [("fs.read", [G + "/dlink/secret.txt"])], GR, exit=6)
run("relative symlink to outside", [("fs.read", [G + "/rlink"])], GR, exit=6)
run("write through dangling symlink to outside", [("fs.write", [G + "/wlink", "x"])], GR,
    exit=6)
check("symlink write: nothing created outside", not os.path.exists(OUT + "/created.txt"))
run("list through symlinked dir", [("fs.list", [G + "/dlink"])], GR, exit=6)
run("mkdir through symlinked dir", [("fs.mkdir", [G + "/dlink/m"])], GR, exit=6)
check("symlink mkdir: nothing made", not os.path.exists(OUT + "/m"))
os.symlink("a.txt", G + "/inlink")
run("symlink inside the grant is followed", [("fs.read", [G + "/inlink"])], GR, out="hello")
os.symlink("loop2", G + "/loop1")
os.symlink("loop1", G + "/loop2")
run("symlink loop", [("fs.read", [G + "/loop1"])], GR, exit=6, err="symlink")
G2 = os.path.join(W, "g2")
wr(G2 + "/secret.txt", "mine")


def swap_dir():
    os.rename(G2, G2 + ".old")
    os.symlink(OUT, G2)


run("granted dir replaced by a symlink during the run", sleepy + [("fs.read", [G2 + "/secret.txt"])],
    ["fs.read:%s/**" % G2], exit=6, during=swap_dir, err="replaced")
DP = policy("deny.json", ["io.*", "time.*", "fs.*"], deny=["fs.read:%s/sub/**" % G])
wr(G + "/sub/p.txt", "private")
run("policy deny rule overrides the grant", [("fs.read", [G + "/sub/p.txt"])], GR, pol=DP,
    exit=6, err="policy rule")
run("policy deny rule: the rest stays", [("fs.read", [G + "/a.txt"])], GR, pol=DP, out="hello")

# ---- --allow beyond the ceiling ----
run("--allow beyond the default ceiling", [("io.print", ["x"])], ["fs.read:/etc/**"], pol=None,
    exit=4, err="fs.read:/etc/**")
NP = policy("narrow.json", ["io.*", "fs.read:%s/sub/**" % G])
run("--allow wider than a scoped ceiling", [("io.print", ["x"])], ["fs.read:%s/**" % G], pol=NP,
    exit=4, err="fs.read:%s/**" % G)
run("--allow within a scoped ceiling", [("fs.read", [G + "/sub/p.txt"])],
    ["fs.read:%s/sub/*.txt" % G], pol=NP, out="private")
run("--allow malformed", [("io.print", ["x"])], ["fs.read"+":relative/x"], exit=2, err="absolute")

# ---- io ----
run("io.print allowed by default", [("io.print", ["hi"])], pol=None, out="hi")
run("io.eprint allowed", [("io.eprint", ["to stderr"])], pol=None, err="to stderr")
P1 = policy("printonly.json", ["io.print"])
run("io.eprint denied", [("io.eprint", ["x"])], pol=P1, exit=6, err="not granted")
run("io.read allowed", [("io.read", [])], pol=None, stdin=b"line1\nline2\n", out="line1")
run("io.read denied", [("io.read", [])], pol=P1, exit=6)

if os.path.exists("/dev/full"):
    fp = os.path.join(W, "full.casm")
    wr(fp, prog([("io.print", ["x"])]))
    with open("/dev/full", "wb") as full:
        pr = subprocess.run([NVM, "run", fp], stdout=full, stderr=subprocess.PIPE, timeout=60)
    check("io.print failing (stdout full): exit 70",
          pr.returncode == 70 and b"cannot write" in pr.stderr, pr.stderr)

# ---- env ----
os.environ["APP_TOKEN"] = "tok123"
run("env.get allowed", [("env.get", ["APP_TOKEN"]), ("env.get", ["APP_NONE"])],
    ["env.get:APP_*"], out="tok123\nnull\n", audited="cap.call")
run("env.get denied", [("env.get", ["HOME"])], ["env.get:APP_*"], exit=6)
run("env.get failing (not a str)", [("env.get", [3])], ["env.get:APP_*"], exit=1)
run("env.get NUL inside", [("env.get", ["APP_TOKEN\x00X"])], ["env.get:APP_*"], exit=6)

# ---- args ----
run("args.get allowed", [("args.get", [1]), ("args.get", [5])], pol=None, args=("x", "yy"),
    out="yy\nnull\n")
run("args.get denied", [("args.get", [0])], pol=P1, exit=6)
run("args.get failing", [("args.get", ["0"])], pol=None, exit=1, err="must be an int")

# ---- time ----
code, o, _ = run("time.now", [("time.now", []), ("time.monotonic", [])], pol=None)
try:
    now = float(o.split()[0])
    check("time.now is now", abs(now - time.time()) < 60, o)
except (ValueError, IndexError):
    check("time.now output", False, o)
run("time.sleep", [("time.sleep", [20]), ("io.print", ["woke"])], pol=None, out="woke")
run("time.* denied", [("time.now", [])], pol=P1, exit=6)
run("time.sleep failing", [("time.sleep", [-5])], pol=None, exit=1)
WP = policy("wall.json", ["io.*", "time.*"], limits={"wall_ms": 200})
t0 = time.time()
run("wall_ms bounds time.sleep", [("time.sleep", [10000])], pol=WP, exit=5, err="wall_ms",
    audited="limit")
check("wall_ms: stopped early", time.time() - t0 < 5)

# ---- random ----
code, o, _ = run("random.int allowed", [("random.int", [1, 6])] * 20, pol=None)
vals = [int(x) for x in o.split()]
check("random.int in range", len(vals) == 20 and all(1 <= v <= 6 for v in vals), o)
run("random.int full range", [("random.int", [-9223372036854775808, 9223372036854775807])],
    pol=None)
run("random.int failing", [("random.int", [5, 1])], pol=None, exit=1)
run("random denied", [("random.int", [1, 2])], pol=P1, exit=6)
run("random.bytes", [], pol=None, out="16",
    src='.func main\n    PUSH 16\n    CAP_CALL "random.bytes" 1\n    LEN\n'
        '    CAP_CALL "io.print" 1\n    HALT\n')
run("random.bytes failing", [("random.bytes", [1 << 30])], pol=None, exit=1)

# ---- crypto (pure: no grant) ----
run("crypto.sha256", [("crypto.sha256", ["abc"])], pol=P1,
    out="ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
run("crypto.hmac_sha256", [("crypto.hmac_sha256", ["Jefe", "what do ya want for nothing?"])],
    pol=P1, out="5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
run("crypto failing", [("crypto.sha256", [1])], pol=P1, exit=1)
CP = policy("nocrypto.json", ["io.*"], deny=["crypto.*", "json.parse"])
run("crypto denied by rule", [("crypto.sha256", ["abc"])], pol=CP, exit=6)

# ---- json (pure) ----
doc = '{"b":1,"a":[1,2.5,"x\\n\\u00e9",true,null,{"k":-3}],"z":{}}'
run("json round trip", [], pol=P1, out=doc.replace("\\u00e9", "\u00e9"),
    src='.func main\n    %s\n    CAP_CALL "json.parse" 1\n    CAP_CALL "json.stringify" 1\n'
        '    CAP_CALL "io.print" 1\n    HALT\n' % lit(doc))
run("json.parse to values", [("json.parse", ['{"k":[1,"two",3.5]}'])], pol=P1,
    out="{k: [1, two, 3.5]}")
run("json.parse failing", [("json.parse", ["{bad"])], pol=P1, exit=1, err="json.parse")
run("json.parse too deep", [("json.parse", ["[" * 1000 + "]" * 1000])], pol=P1, exit=1,
    err="deeper")
run("json.stringify inf", [], pol=P1, exit=1, err="infinity",
    src='.func main\n    PUSH_F64 1e308\n    PUSH_F64 10.0\n    MUL\n'
        '    CAP_CALL "json.stringify" 1\n    HALT\n')
run("json denied by rule", [("json.parse", ["1"])], pol=CP, exit=6)

# ---- host limits: exit 5 ----
LP = policy("limits.json", ["io.*", "fs.*"], limits={"read_bytes": 3, "write_bytes": 3})
run("read_bytes limit", [("fs.read", [G + "/a.txt"])], GR, pol=LP, exit=5, err="read_bytes",
    audited="limit")
run("write_bytes limit", [("fs.write", [G + "/lim.txt", "hello"])], GR, pol=LP, exit=5,
    err="write_bytes")
check("write_bytes: nothing written", not os.path.exists(G + "/lim.txt"))
run("limits: within", [("fs.write", [G + "/lim2.txt", "abc"])], GR, pol=LP)

# ---- capsules asking more than their level's ceiling ----
cap_prog = os.path.join(W, "capprog.casm")
wr(cap_prog, prog([("io.print", ["capsule ran"]), ("fs.read", [G + "/a.txt"])], catch=True))


def pack(name, caps, ok=True):
    m = os.path.join(W, name + ".json")
    wr(m, json.dumps({"name": name, "version": "1.0.0", "capabilities": caps}))
    out = os.path.join(W, name + ".cap")
    code, o, e = nvm("pack", "--manifest", m, "-o", out, cap_prog)
    if ok:
        check("pack " + name, code == 0, e)
    return out, code, e


capf, _, _ = pack("greedy", ["io.print", "fs.read:/etc/**", "net.connect:*:*"])
log = os.path.join(W, "greedy.log")
code, o, e = nvm("run", "--audit", log, capf)
check("greedy capsule runs", code == 0 and "capsule ran" in o, o + e)
check("greedy: fs excess named", "fs.read:/etc/**" in e and "refused" in e, e)
check("greedy: net excess named", "net.connect:*:*" in e, e)
check("greedy: its fs.read call denied", "caught: fs.read" in o, o)
check("greedy: refusal audited", '"event":"cap.refused"' in open(log).read())
verify_log("greedy", log)
capf, _, _ = pack("fair", ["io.print", "fs.read:%s/**" % G])
log = os.path.join(W, "fair.log")
code, o, e = nvm("run", "--audit", log, "--policy", ALL, capf)
check("fair capsule within the ceiling reads", code == 0 and "hello" in o, o + e)
verify_log("fair", log)
_, code, e = pack("malformed", ["fs.read:relative"], ok=False)
check("malformed capability rejected at pack time", code == 3 and "absolute" in e, e)

print("%d passed, %d failed" % (passed, failed))
if not A.keep:
    shutil.rmtree(W, ignore_errors=True)
sys.exit(1 if failed else 0)

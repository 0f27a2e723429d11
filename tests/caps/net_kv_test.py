#!/usr/bin/env python3
"""net_kv_test.py - net.* and kv.* end to end through `nanovm run --allow` (python3, stdlib only).

Loopback only (127.0.0.1, and [::1] when the machine has it): a python echo server thread on an
ephemeral port. Allowed, denied (host, port, a name resolving outside the grant) and failing
(connection refused) calls; net.listen + net.accept with a python client; a denied call sends no
byte; the handle limit. kv: values persist across runs, a denied namespace, no state_dir, and a
writer killed with SIGKILL mid-loop leaves its committed values and an intact database. Every
run's audit log must pass `nanovm audit verify`. Ends with "N passed, M failed".
"""
import argparse
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

ap = argparse.ArgumentParser()
ap.add_argument("--nanovm", required=True)
ap.add_argument("--keep", action="store_true")
A = ap.parse_args()
NVM = os.path.abspath(A.nanovm)
W = os.path.realpath(tempfile.mkdtemp(prefix="nvm-netkv-"))
passed = failed = 0
nrun = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL: %s %s" % (name, detail))


def wr(path, data):
    with open(path, "w") as f:
        f.write(data)


def policy(name, caps, limits=None, state_dir=None):
    lv = {"capabilities": list(caps)}
    if limits:
        lv["limits"] = limits
    p = {"levels": {"sandboxed": lv}}
    if state_dir:
        p["state_dir"] = state_dir
    path = os.path.join(W, name)
    wr(path, json.dumps(p))
    return path


POL = policy("net.json", ["io.*", "args.*", "net.*"])


class Server:
    """Accepts connections on loopback; echoes (or stays silent); counts connections."""

    def __init__(self, family=socket.AF_INET, echo=True):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1" if family == socket.AF_INET else "::1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.echo = echo
        self.accepted = 0
        self.received = b""
        self.stop = False
        self.th = threading.Thread(target=self.loop, daemon=True)
        self.th.start()

    def loop(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            c.settimeout(5)
            try:
                while True:
                    d = c.recv(4096)
                    if not d:
                        break
                    self.received += d
                    if self.echo:
                        c.sendall(d)
            except OSError:
                pass
            c.close()

    def close(self):
        self.stop = True
        self.th.join()
        self.sock.close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def echo_src(host, port, catch=False):
    lines = [".func main"]
    if catch:
        lines.append("    ENTER_TRY h")
    lines += ['    PUSH_STR "%s"' % host, "    PUSH %d" % port, '    CAP_CALL "net.connect" 2',
              "    STORE 0", "    LOAD 0", '    PUSH_STR "hello"', '    CAP_CALL "net.send" 2',
              '    CAP_CALL "io.print" 1', "    LOAD 0", "    PUSH 100",
              '    CAP_CALL "net.recv" 2', '    CAP_CALL "io.print" 1', "    LOAD 0",
              '    CAP_CALL "net.close" 1', "    HALT"]
    if catch:
        lines += ["h:", '    PUSH_STR "caught: "', "    SWAP", "    ADD",
                  '    CAP_CALL "io.print" 1', "    HALT"]
    return "\n".join(lines) + "\n"


def run(name, src, allow=(), pol=POL, exit=0, out=None, err=None, audited=None, path=None,
        wait=True):
    """Runs one program; checks exit status, stdout/stderr substrings, the audit log."""
    global nrun
    nrun += 1
    path = path or os.path.join(W, "p%d.casm" % nrun)
    wr(path, src)
    log = os.path.join(W, "audit%d.log" % nrun)
    cmd = [NVM, "run", "--audit", log, "--policy", pol]
    for a in allow:
        cmd += ["--allow", a]
    cmd.append(path)
    if not wait:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=W)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=W, timeout=60)
    o, e = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
    check(name + ": exit %d" % exit, p.returncode == exit, "got %d: %s%s" % (p.returncode, o, e))
    if out is not None:
        check(name + ": stdout", out in o, repr(o))
    if err is not None:
        check(name + ": stderr", err in e, repr(e))
    text = open(log).read() if os.path.exists(log) else ""
    for a in audited or ():
        check(name + ": audited %s" % a, a in text, text[-600:])
    v = subprocess.run([NVM, "audit", "verify", "--policy", pol, log], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    check(name + ": audit verify", v.returncode == 0, (v.stdout + v.stderr).decode())
    return o, e


# ---- net ----
s = Server()
P = s.port
run("connect allowed", echo_src("127.0.0.1", P), ["net.connect:127.0.0.1:%d" % P],
    out="5\nhello\n", audited=['"cap.call"', "net.connect"])
run("port wildcard", echo_src("127.0.0.1", P), ["net.connect:127.0.0.1:*"], out="5\nhello\n")
check("two connections made", s.accepted == 2, str(s.accepted))
before = s.accepted
run("denied host", echo_src("127.0.0.1", P), ["net.connect:127.0.0.2:%d" % P], exit=6,
    err="net.connect", audited=['"cap.denied"'])
run("denied port", echo_src("127.0.0.1", P), ["net.connect:127.0.0.1:%d" % (P + 1)], exit=6)
run("denied, caught", echo_src("127.0.0.1", P, catch=True), ["net.connect:127.0.0.2:*"],
    out='caught: net.connect("127.0.0.1:%d")' % P)
v6local = any(a[0] == socket.AF_INET6 for a in socket.getaddrinfo("localhost", None,
                                                                  type=socket.SOCK_STREAM))
grants = ["net.connect:127.0.0.1:%d" % P] + (["net.connect:[::1]:%d" % P] if v6local else [])
run("name allowed by address grant", echo_src("localhost", P), grants, out="5\nhello\n")
run("name resolving outside the grant", echo_src("localhost", P),
    ["net.connect:127.0.0.2:%d" % P], exit=6, err="resolves to 127.0.0.1",
    audited=['"cap.denied"'])
run("name grant", echo_src("localhost", P), ["net.connect:localhost:%d" % P], out="hello")
run("name grant, address asked", echo_src("127.0.0.1", P), ["net.connect:localhost:%d" % P],
    exit=6)
run("wildcard name of another shape", echo_src("localhost", P),
    ["net.connect:*.example.invalid:*"], exit=6)
time.sleep(0.2)
check("denied calls made no connection", s.accepted == before + 2,
      "%d != %d" % (s.accepted, before + 2))
check("denied calls sent no byte", s.received.count(b"hello") == s.accepted,
      repr(s.received))
run("handle limit", "".join([".func main\n"] + ['    PUSH_STR "127.0.0.1"\n    PUSH %d\n'
                                               '    CAP_CALL "net.connect" 2\n' % P] * 3 +
                            ["    HALT\n"]),
    ["net.connect:127.0.0.1:*"], pol=policy("lim.json", ["io.*", "net.*"], {"handles": 2}),
    exit=5, err="handles")
s.close()

try:
    s6 = Server(socket.AF_INET6)
except OSError:
    s6 = None
    print("skip: no IPv6 loopback")
if s6 is not None:
    run("ipv6 allowed", echo_src("::1", s6.port), ["net.connect:[::1]:%d" % s6.port],
        out="5\nhello\n")
    run("ipv6 denied", echo_src("::1", s6.port), ["net.connect:127.0.0.1:%d" % s6.port], exit=6)
    s6.close()

CP = free_port()
run("connection refused", echo_src("127.0.0.1", CP), ["net.connect:127.0.0.1:*"], exit=1,
    err="net.connect: 127.0.0.1:%d: Connection refused" % CP)
run("connection refused, caught", echo_src("127.0.0.1", CP, catch=True),
    ["net.connect:127.0.0.1:*"], out="caught: net.connect: 127.0.0.1:%d: Connection refused" % CP)

LP = free_port()
reply = []


def client():
    for _ in range(250):
        try:
            c = socket.create_connection(("127.0.0.1", LP), timeout=5)
        except OSError:
            time.sleep(0.02)
            continue
        c.sendall(b"ping")
        reply.append(c.recv(16))
        c.close()
        return


listen_src = "\n".join([
    ".func main", '    PUSH_STR "127.0.0.1"', "    PUSH %d" % LP, '    CAP_CALL "net.listen" 2',
    "    STORE 0", "    LOAD 0", '    CAP_CALL "net.accept" 1', "    STORE 1", "    LOAD 1",
    "    PUSH 4", '    CAP_CALL "net.recv" 2', '    CAP_CALL "io.print" 1', "    LOAD 1",
    '    PUSH_STR "pong"', '    CAP_CALL "net.send" 2', "    POP", "    LOAD 1",
    '    CAP_CALL "net.close" 1', "    LOAD 0", '    CAP_CALL "net.close" 1', "    HALT"]) + "\n"
th = threading.Thread(target=client, daemon=True)
th.start()
run("listen + accept", listen_src, ["net.listen:127.0.0.1:%d" % LP], out="ping",
    audited=["net.accept"])
th.join(10)
check("client got the reply", reply == [b"pong"], repr(reply))
run("listen denied", listen_src, ["net.listen:127.0.0.1:%d" % (LP + 1)], exit=6)
t = socket.socket()
check("denied listen bound nothing", t.connect_ex(("127.0.0.1", LP)) != 0)
t.close()

# ---- kv ----
STATE = os.path.join(W, "state")
os.mkdir(STATE, 0o700)
KVPOL = policy("kv.json", ["io.*", "kv.*"], state_dir=STATE)
KVALL = ["kv.get:app/*", "kv.set:app/*", "kv.delete:app/*", "kv.list:app/*"]
kv_src = "\n".join([
    ".func main",
    '    PUSH_STR "app/n"', '    CAP_CALL "kv.get" 1', '    CAP_CALL "io.print" 1',
    '    PUSH_STR "app/m"', '    CAP_CALL "kv.get" 1', '    CAP_CALL "io.print" 1',
    '    PUSH_STR "app/"', '    CAP_CALL "kv.list" 1', '    CAP_CALL "io.print" 1',
    '    PUSH_STR "app/n"', "    PUSH 42", '    CAP_CALL "kv.set" 2',
    '    PUSH_STR "app/m"', "    NEW_OBJ", '    PUSH_STR "x"', "    PUSH_F64 1.5",
    "    NEW_ARRAY 2", '    SET_FIELD "k"', '    CAP_CALL "kv.set" 2',
    '    PUSH_STR "app/tmp"', "    PUSH_NULL", '    CAP_CALL "kv.set" 2',
    '    PUSH_STR "app/tmp"', '    CAP_CALL "kv.delete" 1', "    HALT"]) + "\n"
kvpath = os.path.join(W, "kv.casm")
run("kv first run", kv_src, KVALL, pol=KVPOL, out="null\nnull\n[]\n", path=kvpath,
    audited=["kv.set"])
run("kv second run (persisted)", kv_src, KVALL, pol=KVPOL,
    out="42\n{k: [x, 1.5]}\n[app/m, app/n]\n", path=kvpath)
mode = os.stat(os.path.join(STATE, "kv.sqlite")).st_mode & 0o777
check("kv.sqlite is 0600", mode == 0o600, oct(mode))
run("kv denied namespace", kv_src, ["kv.get:other/*"], pol=KVPOL, exit=6, err="kv.get",
    audited=['"cap.denied"'], path=kvpath)
run("kv without state_dir", kv_src, KVALL, pol=policy("nostate.json", ["io.*", "kv.*"]), exit=1,
    err="kv storage unavailable (no state_dir in policy)")

crash_src = "\n".join([
    ".func main", "    PUSH 1", "    STORE 0", "loop:", '    PUSH_STR "c/last"', "    LOAD 0",
    '    CAP_CALL "kv.set" 2', "    LOAD 0", "    PUSH 1", "    ADD", "    STORE 0",
    "    JMP loop"]) + "\n"
crashpath = os.path.join(W, "crash.casm")
p = run("", crash_src, ["kv.set:c/*", "kv.get:c/*"], pol=KVPOL, path=crashpath, wait=False)
time.sleep(1.0)
p.send_signal(signal.SIGKILL)
p.wait()
check("writer killed", p.returncode == -signal.SIGKILL, str(p.returncode))
db = sqlite3.connect(os.path.join(STATE, "kv.sqlite"))
check("db intact after kill -9", db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")
db.close()
o, _ = run("committed value survives the crash",
           '.func main\n    PUSH_STR "c/last"\n    CAP_CALL "kv.get" 1\n'
           '    CAP_CALL "io.print" 1\n    HALT\n',
           ["kv.get:c/*"], pol=KVPOL, path=crashpath)
check("crash value is a positive count", o.strip().isdigit() and int(o) > 0, repr(o))

if not A.keep:
    shutil.rmtree(W, ignore_errors=True)
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)

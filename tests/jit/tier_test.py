#!/usr/bin/env python3
"""tier_test.py --nanovm PATH - which tier a run uses, end to end (python3 and the openssl command
line): the tier each trust level resolves to (verified capsules on the JIT), what `verify` and
`verify --json` report, the tier recorded in the audit log, `run --tier jit|interp|auto` with and
without `allow_tier_override`, level `tier` keys in a policy, `--jit-stats` and `--gas-report`.

Whether the JIT is expected follows the machine (x86-64: yes); `--expect-jit yes|no` overrides
that. Prints "N passed, M failed"; exits 1 on failure."""
import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile

ap = argparse.ArgumentParser()
ap.add_argument("--nanovm", required=True)
ap.add_argument("--expect-jit", choices=("auto", "yes", "no"), default="auto")
ap.add_argument("--keep", action="store_true", help="keep the work directory")
args = ap.parse_args()
NVM = os.path.abspath(args.nanovm)
W = tempfile.mkdtemp(prefix="nvm-tier-")
passed = 0
failed = 0


def sh(*cmd):
    p = subprocess.run(cmd, cwd=W, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        sys.exit(f"setup failed: {' '.join(cmd)}\n{p.stdout}")
    return p.stdout


def nvm(*a):
    """(exit status, stdout, stderr) of one nanovm command in the work directory."""
    p = subprocess.run([NVM, *a], cwd=W, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {name}: {detail}")


def write(name, text):
    with open(os.path.join(W, name), "w") as f:
        f.write(text)


def audit_tiers(log):
    """The tier field of the "tier" and "run.end" records of an audit log."""
    out = {}
    if not os.path.exists(os.path.join(W, log)):
        return out
    with open(os.path.join(W, log)) as f:
        for line in f:
            r = json.loads(line)
            if r["event"] in ("tier", "run.end"):
                out[r["event"]] = r["tier"]
    return out


if args.expect_jit == "auto":
    # what this build has: an x86-64 build without the JIT is -DNVM_NO_JIT=ON
    HAVE_JIT = "not available" not in subprocess.run(
        [NVM, "run", "--tier", "jit", os.devnull], capture_output=True, text=True).stderr
else:
    HAVE_JIT = args.expect_jit == "yes"
JIT = "jit" if HAVE_JIT else "interp"
# The AOT tier (Linux builds); its cache goes to the work directory.
AOT = "aot" if platform.system() == "Linux" else JIT
os.environ["NVM_CACHE_DIR"] = os.path.join(W, "aot-cache")

# ---- a test PKI (one root, one code-signing leaf), keys and capsules ----
write("openssl.cnf", """[req]
distinguished_name = dn
[dn]
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[v3_leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = codeSigning
""")
have_openssl = shutil.which("openssl") is not None
if have_openssl:
    sh("openssl", "genpkey", "-algorithm", "ed25519", "-out", "root.key")
    sh("openssl", "req", "-x509", "-new", "-key", "root.key", "-subj", "/CN=Tier Root", "-days",
       "30", "-config", "openssl.cnf", "-extensions", "v3_ca", "-out", "root.pem")
    sh("openssl", "genpkey", "-algorithm", "ed25519", "-out", "leaf.key")
    sh("openssl", "req", "-new", "-key", "leaf.key", "-subj", "/CN=Tier Signer", "-config",
       "openssl.cnf", "-out", "leaf.csr")
    sh("openssl", "x509", "-req", "-in", "leaf.csr", "-CA", "root.pem", "-CAkey", "root.key",
       "-set_serial", "0x3001", "-days", "30", "-extfile", "openssl.cnf", "-extensions",
       "v3_leaf", "-out", "leaf.pem")
sh(NVM, "keygen", "-o", "dev.key")

write("hi.casm", '.func main\n    PUSH_STR "hi"\n    CAP_CALL "io.print" 1\n    HALT\n')
# A loop with a call, so that the JIT has more than one function and a back-edge to compile.
write("sum.casm", """.func main
    PUSH 0
    STORE 0
    PUSH 0
    STORE 1
loop:
    LOAD 1
    PUSH 1000
    LT
    JZ done
    LOAD 1
    CALL sq
    LOAD 0
    ADD
    STORE 0
    LOAD 1
    PUSH 1
    ADD
    STORE 1
    JMP loop
done:
    LOAD 0
    CAP_CALL "io.print" 1
    HALT
.func sq 1
    STORE 0
    LOAD 0
    LOAD 0
    MUL
    RET
""")
HAVE_WASM = nvm("run", "--tier", "wasm", "hi.casm")[0] != 2
SBX = "wasm" if HAVE_WASM else "interp"
write("hi.json", json.dumps({"name": "hi", "version": "1.0.0", "capabilities": ["io.print"]}))
sh(NVM, "pack", "--manifest", "hi.json", "-o", "unsigned.cap", "hi.casm")
sh(NVM, "sign", "--key", "dev.key", "unsigned.cap", "-o", "verified.cap")
if have_openssl:
    sh(NVM, "sign", "--key", "leaf.key", "--cert", "leaf.pem", "unsigned.cap", "-o", "trusted.cap")


def policy(name, **kw):
    p = {"trust_roots": ["root.pem"]} if have_openssl else {}
    p.update(kw)
    write(name, json.dumps(p))
    return name


policy("p.json")
policy("locked.json", allow_tier_override=False)
policy("verified_interp.json", levels={"verified": {"tier": "interp"}})
policy("sandboxed_jit.json", levels={"sandboxed": {"tier": "jit"}})
policy("verified_aot.json", levels={"verified": {"tier": "aot"}})
policy("locked_interp.json", allow_tier_override=False, levels={"verified": {"tier": "interp"}})


def verify_tier(name, pol, cap, want):
    code, out, err = nvm("verify", "--json", "--policy", pol, cap)
    try:
        got = json.loads(out).get("tier")
    except ValueError:
        got = None
    check(name + ": verify --json tier", code == 0 and got == want,
          f"exit {code}, tier {got!r}, expected {want!r}; {err.strip()}")
    code, out, err = nvm("verify", "--policy", pol, cap)
    m = re.search(r"^tier:\s+(\S+)", out, re.M)
    check(name + ": verify tier line", code == 0 and m is not None and m.group(1) == want,
          f"exit {code}, {m.group(0) if m else 'no tier line'!r}, expected {want!r}")


def run_tier(name, pol, cap, want, *flags, stderr_has=None, stderr_lacks=None):
    log = name.replace(" ", "_") + ".log"
    code, out, err = nvm("run", "--policy", pol, "--audit", log, *flags, cap)
    check(name + ": runs", code == 0 and out == "hi\n", f"exit {code}, stdout {out!r}, {err!r}")
    tiers = audit_tiers(log)
    check(name + ": audited tier", tiers == {"tier": want, "run.end": want},
          f"audit {tiers}, expected {want!r}")
    if stderr_has:
        check(name + ": diagnostic", stderr_has in err, f"stderr {err!r} lacks {stderr_has!r}")
    if stderr_lacks:
        check(name + ": no diagnostic", stderr_lacks not in err, f"stderr {err!r}")


# ---- the tier each level resolves to, as verify reports it ----
verify_tier("verified (default policy)", "p.json", "verified.cap", JIT)
verify_tier("unsigned (default policy)", "p.json", "unsigned.cap", SBX)
if have_openssl:
    verify_tier("trusted (default policy)", "p.json", "trusted.cap", AOT)
verify_tier("verified, level tier interp", "verified_interp.json", "verified.cap", "interp")
verify_tier("verified, level tier aot", "verified_aot.json", "verified.cap", AOT)
verify_tier("unsigned, level tier jit", "sandboxed_jit.json", "unsigned.cap", JIT)

# ---- the tier a run uses ----
run_tier("verified run", "p.json", "verified.cap", JIT)
run_tier("verified --tier auto", "p.json", "verified.cap", JIT, "--tier", "auto")
run_tier("verified --tier interp", "p.json", "verified.cap", "interp", "--tier", "interp")
if have_openssl:
    run_tier("trusted run", "p.json", "trusted.cap", AOT)
if HAVE_JIT:
    run_tier("unsigned --tier jit", "p.json", "unsigned.cap", "jit", "--tier", "jit")
    run_tier("verified_interp --tier jit", "verified_interp.json", "verified.cap", "jit",
             "--tier", "jit")
    if have_openssl:
        run_tier("trusted --tier jit", "p.json", "trusted.cap", "jit", "--tier", "jit")

# ---- allow_tier_override: false keeps the trust-chosen tier ----
NOPE = "the policy does not allow --tier; running on "
run_tier("locked, verified --tier interp", "locked.json", "verified.cap", JIT, "--tier", "interp",
         stderr_has=None if JIT == "interp" else NOPE + JIT,
         stderr_lacks=NOPE if JIT == "interp" else None)
run_tier("locked, verified --tier auto", "locked.json", "verified.cap", JIT, "--tier", "auto",
         stderr_lacks=NOPE)
run_tier("locked, level interp", "locked_interp.json", "verified.cap", "interp", "--tier", "auto",
         stderr_lacks=NOPE)
if HAVE_JIT:
    run_tier("locked, verified --tier jit", "locked.json", "verified.cap", "jit", "--tier", "jit",
             stderr_lacks=NOPE)
    run_tier("locked, unsigned --tier jit", "locked.json", "unsigned.cap", SBX, "--tier", "jit",
             stderr_has=NOPE + SBX)
    run_tier("locked_interp, verified --tier jit", "locked_interp.json", "verified.cap", "interp",
             "--tier", "jit", stderr_has=NOPE + "interp")

# ---- bare programs: the interpreter unless --tier says otherwise ----
code, out, err = nvm("run", "--tier", "jit", "hi.casm")
if HAVE_JIT:
    check("bare --tier jit", code == 0 and out == "hi\n", f"exit {code} {out!r} {err!r}")
else:
    check("bare --tier jit unavailable", code == 2 and "not available" in err,
          f"exit {code} {err!r}")
code, out, err = nvm("run", "--tier", "aot", "hi.casm")
check("bare --tier aot", code == 0 and out == "hi\n", f"exit {code} {out!r} {err!r}")
code, out, err = nvm("run", "--tier", "warp", "hi.casm")
check("unknown tier", code == 2 and "unknown tier" in err, f"exit {code} {err!r}")

# ---- --gas-report and --jit-stats ----
STATS = re.compile(r"^jit: modules=(\d+) functions=(\d+) insns=(\d+) code_bytes=(\d+) "
                   r"compile_us=(\d+)$", re.M)
GAS = re.compile(r"^gas used: (\d+)$", re.M)
tiers = ["interp"] + (["jit"] if HAVE_JIT else []) + (["wasm"] if HAVE_WASM else [])
gas = {}
for t in tiers:
    code, out, err = nvm("run", "--tier", t, "--gas-report", "--jit-stats", "sum.casm")
    m = GAS.search(err)
    s = STATS.search(err)
    check(f"sum on {t}", code == 0 and out == "332833500\n", f"exit {code} {out!r} {err!r}")
    check(f"--gas-report on {t}", m is not None, repr(err))
    check(f"--jit-stats on {t}", s is not None, repr(err))
    gas[t] = int(m.group(1)) if m else None
    if s and t == "jit":
        mods, funcs, insns, code_bytes, _ = (int(x) for x in s.groups())
        check("jit stats count the compiled module",
              mods == 1 and funcs >= 2 and insns >= 20 and code_bytes > 0, s.group(0))
    elif s:
        check(f"jit stats empty on {t}", s.group(1) == "0" and s.group(4) == "0", s.group(0))
check("gas used is the same on every tier", len(set(gas.values())) == 1 and
      None not in gas.values(), repr(gas))
for t in tiers:
    code, out, err = nvm("run", "--tier", t, "--gas", "777", "--gas-report", "sum.casm")
    m = GAS.search(err)
    check(f"gas limit on {t}", code == 5 and m is not None and m.group(1) == "777",
          f"exit {code} {err!r}")
code, out, err = nvm("run", "--policy", "p.json", "--gas-report", "verified.cap")
m = GAS.search(err)
check("--gas-report on a capsule", code == 0 and m is not None and int(m.group(1)) == 3,
      repr(err))

print(f"{passed} passed, {failed} failed")
if not args.keep:
    shutil.rmtree(W, ignore_errors=True)
else:
    print("work directory: " + W)
sys.exit(1 if failed else 0)

#!/usr/bin/env python3
"""trust_test.py --nanovm PATH - trust decisions end to end, with a test PKI generated now by the
openssl command line (nothing committed that expires): chains, pins, revocation, invalid
signatures, the level floor, rollback, capability ceilings, limits, byte flips and truncations of
a signed capsule, mangled signature blocks and section tables, and tampered audit logs. Each check
is an exact exit status plus a message substring. Prints "N passed, M failed"; exits 1 on
failure."""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

ap = argparse.ArgumentParser()
ap.add_argument("--nanovm", required=True)
ap.add_argument("--keep", action="store_true", help="keep the work directory")
args = ap.parse_args()
NVM = os.path.abspath(args.nanovm)
W = tempfile.mkdtemp(prefix="nvm-trust-")
passed = 0
failed = 0


def sh(*cmd, cwd=None, check=True):
    p = subprocess.run(cmd, cwd=cwd or W, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    if check and p.returncode != 0:
        sys.exit(f"setup failed: {' '.join(cmd)}\n{p.stdout}")
    return p


def nvm(*a):
    p = subprocess.run([NVM, *a], cwd=W, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def expect(name, code, needle, *a):
    global passed, failed
    got, out = nvm(*a)
    if got != code or (needle and needle not in out):
        failed += 1
        print(f"FAIL {name}: exit {got} (expected {code}), wanted {needle!r}")
        for line in out.splitlines()[:12]:
            print("   | " + line)
        return out
    passed += 1
    return out


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


def wbytes(name, data):
    with open(os.path.join(W, name), "wb") as f:
        f.write(data)


def rbytes(name):
    with open(os.path.join(W, name), "rb") as f:
        return f.read()


# ---- test PKI ----
write("openssl.cnf", """[req]
distinguished_name = dn
[dn]
[ca]
default_ca = ca_default
[ca_default]
database = index.txt
new_certs_dir = .
serial = serial
default_md = default
policy = policy_any
unique_subject = no
email_in_dn = no
[policy_any]
commonName = supplied
organizationName = optional
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[v3_ca_server]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
extendedKeyUsage = serverAuth
[v3_leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = codeSigning
[v3_leaf_noeku]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
[v3_leaf_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,digitalSignature,keyCertSign
extendedKeyUsage = codeSigning
""")
write("index.txt", "")
write("serial", "5000\n")


def key(name):
    sh("openssl", "genpkey", "-algorithm", "ed25519", "-out", name + ".key")


def selfsigned(name, subj, ext):
    key(name)
    sh("openssl", "req", "-x509", "-new", "-key", name + ".key", "-subj", subj, "-days", "30",
       "-config", "openssl.cnf", "-extensions", ext, "-out", name + ".pem")


def csr(name, subj, keyname=None):
    if keyname is None:
        key(name)
        keyname = name
    sh("openssl", "req", "-new", "-key", keyname + ".key", "-subj", subj, "-config",
       "openssl.cnf", "-out", name + ".csr")


def issue(name, ca, ext, serial, subj, keyname=None):
    csr(name, subj, keyname)
    sh("openssl", "x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey",
       ca + ".key", "-set_serial", serial, "-days", "30", "-extfile", "openssl.cnf",
       "-extensions", ext, "-out", name + ".pem")


def issue_dated(name, ca, start, end, subj):
    csr(name, subj)
    sh("openssl", "ca", "-config", "openssl.cnf", "-batch", "-notext", "-cert", ca + ".pem",
       "-keyfile", ca + ".key", "-in", name + ".csr", "-out", name + ".pem", "-startdate", start,
       "-enddate", end, "-extensions", "v3_leaf", "-extfile", "openssl.cnf")


selfsigned("root", "/CN=Test Root", "v3_ca")
selfsigned("otherroot", "/CN=Other Root", "v3_ca")
issue("inter", "root", "v3_ca", "0x1001", "/CN=Test Intermediate")
issue("serverinter", "root", "v3_ca_server", "0x1002", "/CN=ServerAuth Intermediate")
issue("otherinter", "otherroot", "v3_ca", "0x1003", "/CN=Other Intermediate")
issue("leaf", "inter", "v3_leaf", "0x2001", "/O=Test/CN=Good Signer")
issue("noeku", "inter", "v3_leaf_noeku", "0x2002", "/CN=No CodeSigning")
issue("caleaf", "inter", "v3_leaf_ca", "0x2003", "/CN=CA Leaf")
issue("srvleaf", "serverinter", "v3_leaf", "0x2004", "/CN=Under ServerAuth CA")
issue("unknownleaf", "otherinter", "v3_leaf", "0x2005", "/CN=Unknown Root Signer")
issue_dated("expired", "inter", "20200101000000Z", "20210101000000Z", "/CN=Expired Signer")
issue_dated("future", "inter", "20400101000000Z", "20410101000000Z", "/CN=Future Signer")
selfsigned("selfleaf", "/CN=Self Signed", "v3_leaf")
key("stranger")
sh("openssl", "pkey", "-in", "leaf.key", "-pubout", "-out", "leaf.pub")
sh("openssl", "pkey", "-in", "stranger.key", "-pubout", "-out", "stranger.pub")
with open(os.path.join(W, "wrongorder.pem"), "w") as f:  # intermediates chain file: root first
    f.write(open(os.path.join(W, "root.pem")).read() + open(os.path.join(W, "inter.pem")).read())

# ---- programs, manifests, capsules ----
write("hi.casm", '.func main\n    PUSH_STR "hi"\n    CAP_CALL "io.print" 1\n    HALT\n')
write("spin.casm", ".func main\nspin:\n    JMP spin\n")


def manifest(name, version="1.0.0", caps=("io.print",), extra=None):
    m = {"name": name, "version": version, "capabilities": list(caps)}
    m.update(extra or {})
    return json.dumps(m)


def pack(out, man_text, prog="hi.casm"):
    write(out + ".json", man_text)
    sh(NVM, "pack", "--manifest", out + ".json", "-o", out, prog)


def sign(cap, out, keyname, cert=None, chain=None):
    cmd = [NVM, "sign", "--key", keyname + ".key"]
    if cert:
        cmd += ["--cert", cert + ".pem"]
    if chain:
        cmd += ["--chain", chain]
    sh(*cmd, cap, "-o", out)


def policy(name, **kw):
    p = {"trust_roots": ["root.pem"]}
    p.update(kw)
    write(name, json.dumps(p))
    return name


pack("app.cap", manifest("app"))
policy("p.json")
policy("strict.json", min_level="verified")
policy("pinned.json", min_level="verified", pinned_keys=["leaf.pub"])
policy("sbx.json", on_invalid_signature="sandbox")

sign("app.cap", "good.cap", "leaf", "leaf", "inter.pem")
sign("app.cap", "expired.cap", "expired", "expired", "inter.pem")
sign("app.cap", "future.cap", "future", "future", "inter.pem")
sign("app.cap", "noeku.cap", "noeku", "noeku", "inter.pem")
sign("app.cap", "caleaf.cap", "caleaf", "caleaf", "inter.pem")
sign("app.cap", "srv.cap", "srvleaf", "srvleaf", "serverinter.pem")
sign("app.cap", "unknown.cap", "unknownleaf", "unknownleaf", "otherinter.pem")
sign("app.cap", "self.cap", "selfleaf", "selfleaf")
sign("app.cap", "order.cap", "leaf", "inter", "leaf.pem")  # intermediate first, leaf second
sign("app.cap", "rootfirst.cap", "leaf", "leaf", "wrongorder.pem")
sign("app.cap", "otherkey.cap", "stranger", "leaf", "inter.pem")
sign("app.cap", "raw.cap", "leaf")
sign("app.cap", "rawstranger.cap", "stranger")

# ---- chain validation ----
expect("valid chain: trusted", 0, "trust level:  trusted", "verify", "--policy", "p.json",
       "good.cap")
expect("valid chain: runs", 0, "hi", "run", "--policy", "p.json", "good.cap")
# CAs with RSA and ECDSA keys (the signer's own key is always Ed25519): an RSA root signs a P-256
# intermediate with RSA-SHA256, which signs the leaf with ECDSA-SHA256
sh("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out",
   "rsaroot.key")
sh("openssl", "req", "-x509", "-new", "-key", "rsaroot.key", "-subj", "/CN=RSA Root", "-days",
   "30", "-config", "openssl.cnf", "-extensions", "v3_ca", "-out", "rsaroot.pem")
sh("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
   "ecinter.key")
issue("ecinter", "rsaroot", "v3_ca", "0x1005", "/CN=ECDSA Intermediate", keyname="ecinter")
issue("ecleaf", "ecinter", "v3_leaf", "0x2006", "/CN=Under ECDSA CA")
sign("app.cap", "rsaec.cap", "ecleaf", "ecleaf", "ecinter.pem")
write("rsa.json", json.dumps({"trust_roots": ["rsaroot.pem"]}))
expect("RSA root, ECDSA intermediate: trusted", 0, "trust level:  trusted", "verify", "--policy",
       "rsa.json", "rsaec.cap")
expect("RSA root, ECDSA intermediate: runs", 0, "hi", "run", "--policy", "rsa.json", "rsaec.cap")
expect("RSA root, other policy's root: not trusted", 0, "chain not accepted", "verify",
       "--policy", "p.json", "rsaec.cap")
expect("valid chain: json", 0, '"trust_level": "trusted"', "verify", "--json", "--policy",
       "p.json", "good.cap")

# ---- verified chains remembered in the cache directory (docs/security.md) ----
saved_cache = os.environ.get("NVM_CACHE_DIR")
os.environ["NVM_CACHE_DIR"] = cdir = os.path.join(W, "chaincache")
os.mkdir(cdir, 0o700)
CACHED = "verified before, from the cache"


def entries():
    return sorted(f for f in os.listdir(cdir) if f.endswith(".chain"))


out = expect("chain cache: first verification", 0, "trust level:  trusted", "verify", "--policy",
             "p.json", "good.cap")
check("chain cache: first verification is done", CACHED not in out and len(entries()) == 1,
      f"{entries()} {out}")
expect("chain cache: second from the cache", 0, CACHED, "verify", "--policy", "p.json", "good.cap")
expect("chain cache: runs", 0, "hi", "run", "--policy", "p.json", "good.cap")
entry = os.path.join(cdir, entries()[0])
good_entry = rbytes(entry)
wbytes(entry, b"nanovm-chain 1 garbage\n")
out = expect("chain cache: malformed entry, verified again", 0, "trust level:  trusted", "verify",
             "--policy", "p.json", "good.cap")
check("chain cache: malformed entry not used", CACHED not in out and rbytes(entry) == good_entry,
      out)
f, u, n = good_entry.split()[2:5]
wbytes(entry, b"nanovm-chain 1 100 200 " + n + b"\n")
out = expect("chain cache: window past, verified again", 0, "trust level:  trusted", "verify",
             "--policy", "p.json", "good.cap")
check("chain cache: window past not used", CACHED not in out, out)
# an entry that is a symbolic link (to an entry whose window covers every time) is not read
forged = os.path.join(W, "forged.chain")
wbytes(forged, b"nanovm-chain 1 0 9999999999 " + n + b"\n")
os.remove(entry)
os.symlink(forged, entry)
out = expect("chain cache: symbolic link, verified again", 0, "trust level:  trusted", "verify",
             "--policy", "p.json", "good.cap")
check("chain cache: symbolic link not used", CACHED not in out, out)
os.remove(entry)
wbytes(entry, good_entry)
# an entry never makes a chain that does not verify pass: the failure is not remembered, and the
# entry of another chain, root set or revocation list is another entry
for k in range(2):
    expect(f"chain cache: expired leaf, run {k}", 0, "certificate has expired", "verify",
           "--policy", "p.json", "expired.cap")
    expect(f"chain cache: other policy's root, run {k}", 0, "chain not accepted", "verify",
           "--policy", "p.json", "rsaec.cap")
policy("revokedother.json", revoked={"serials": ["7777"]})
out = expect("chain cache: revocation list changed, verified again", 0, "trust level:  trusted",
             "verify", "--policy", "revokedother.json", "good.cap")
check("chain cache: revocation list is part of the key", CACHED not in out, out)
# the root's serial (in no capsule's chain: only the verification sees it) revoked after entries
# for that root were made
root_serial = sh("openssl", "x509", "-in", "root.pem", "-noout", "-serial").stdout.split("=")[1]
policy("revokedroot.json", revoked={"serials": [root_serial.strip()]})
expect("chain cache: root revoked after an entry", 4, "is revoked", "run", "--policy",
       "revokedroot.json", "good.cap")
os.chmod(cdir, 0o777)
for k in range(2):
    out = expect(f"chain cache: directory writable by others, run {k}", 0,
                 "trust level:  trusted", "verify", "--policy", "p.json", "good.cap")
    check(f"chain cache: directory writable by others not used, run {k}", CACHED not in out, out)
os.chmod(cdir, 0o700)
expect("chain cache: listed", 0, "verified chains", "cache", "list")
expect("chain cache: cleared", 0, "", "cache", "clear")
check("chain cache: clear removes the entries", entries() == [], f"{entries()}")
if saved_cache is None:
    del os.environ["NVM_CACHE_DIR"]
else:
    os.environ["NVM_CACHE_DIR"] = saved_cache

# ---- nanovm aot: a capsule is compiled only after its trust decision, when its level's tier is
# aot (this build's AOT tier: trusted); the compile is audited ----
policy("aot.json", audit_log="aot.log")
if "aot" in nvm("verify", "--policy", "aot.json", "good.cap")[1]:
    expect("aot: trusted capsule compiled", 0, "ready in", "aot", "--policy", "aot.json",
           "good.cap")
    with open(os.path.join(W, "aot.log"), encoding="utf-8") as f:
        events = [json.loads(line)["event"] for line in f if line.strip()]
    check("aot: compile audited", "aot.compile" in events, str(events))
    expect("aot: verified capsule refused", 4, "tier, not aot", "aot", "--policy",
           "aot.json", "raw.cap")
    expect("aot: rejected capsule refused", 4, "rejected", "aot", "--policy", "strict.json",
           "self.cap")
    expect("aot: --policy on a bare program", 2, "applies to capsules", "aot", "--policy",
           "aot.json", "hi.casm")
    # gas metering turned off for the trusted level
    policy("um.json", audit_log="um.log", levels={"trusted": {"gas_metering": False}})
    expect("unmetered: verify says so", 0, "gas metering: off", "verify", "--policy", "um.json",
           "good.cap")
    expect("unmetered: policy check says so", 0, "gas metering off", "policy", "check",
           "um.json")
    expect("unmetered: verify --json", 0, '"gas_metering": false', "verify", "--json",
           "--policy", "um.json", "good.cap")
    expect("metered by default: verify --json", 0, '"gas_metering": true', "verify", "--json",
           "--policy", "aot.json", "good.cap")
    expect("unmetered: C without gas checks", 0, "wrote", "aot", "--policy", "um.json",
           "--emit-c", "um.c", "good.cap")
    with open(os.path.join(W, "um.c"), encoding="utf-8") as f:
        uc = f.read()
    check("unmetered: the C says so and counts nothing",
          "gas not metered" in uc.splitlines()[0] and "gas -=" not in uc, uc.splitlines()[0])
    expect("unmetered: runs", 0, "hi", "run", "--policy", "um.json", "good.cap")
    with open(os.path.join(W, "um.log"), encoding="utf-8") as f:
        starts = [json.loads(line) for line in f if '"run.start"' in line]
    check("unmetered: run.start audited with gas_metering off",
          len(starts) == 1 and starts[0].get("gas_metering") == "off", str(starts))
    pack("spin.cap", manifest("spin"), prog="spin.casm")
    sign("spin.cap", "spinsigned.cap", "leaf", "leaf", "inter.pem")
    expect("unmetered: a gas limit on the command line meters again", 5, "gas exhausted",
           "run", "--policy", "um.json", "--gas", "1000", "spinsigned.cap")
    expect("unmetered: --gas-report meters again", 0, "gas used: ", "run", "--policy",
           "um.json", "--gas-report", "good.cap")
expect("expired leaf: restricted", 0, "certificate has expired", "verify", "--policy", "p.json",
       "expired.cap")
expect("expired leaf: below verified", 4, "certificate has expired", "run", "--policy",
       "strict.json", "expired.cap")
expect("not-yet-valid leaf", 4, "not yet valid", "run", "--policy", "strict.json", "future.cap")
expect("leaf without codeSigning", 4, "no codeSigning", "run", "--policy", "strict.json",
       "noeku.cap")
expect("leaf with CA:TRUE", 4, "CA certificate", "run", "--policy", "strict.json", "caleaf.cap")
expect("intermediate serverAuth only", 4, "does not allow codeSigning", "run", "--policy",
       "strict.json", "srv.cap")
expect("unknown root", 4, "unable to get local issuer", "run", "--policy", "strict.json",
       "unknown.cap")
expect("self-signed leaf", 4, "certificate chain not accepted", "run", "--policy",
       "strict.json", "self.cap")
expect("chain in the wrong order", 4, "certificate chain belongs to another key", "run",
       "--policy", "p.json", "order.cap")
expect("intermediates in any order", 0, "trust level:  trusted", "verify", "--policy", "p.json",
       "rootfirst.cap")
expect("leaf key is not the signing key", 4, "certificate chain belongs to another key", "run",
       "--policy", "p.json", "otherkey.cap")
policy("revserial.json", revoked={"serials": ["2001"]})
expect("revoked serial", 4, "is revoked", "run", "--policy", "revserial.json", "good.cap")
policy("revinter.json", revoked={"serials": ["1001"]})
expect("revoked intermediate serial", 4, "is revoked", "verify", "--policy", "revinter.json",
       "good.cap")
out = expect("pinned raw key: verified", 0, "trust level:  verified", "verify", "--policy",
             "pinned.json", "raw.cap")
check("pinned raw key: reason", "pinned by the policy" in out, out)
sh("openssl", "pkey", "-in", "expired.key", "-pubout", "-out", "expired.pub")
expect("pinned key rescues a bad chain", 0, "trust level:  verified", "verify", "--policy",
       policy("pinexp.json", min_level="verified", pinned_keys=["expired.pub"]), "expired.cap")
expect("raw key, not pinned: verified", 0, "trust level:  verified", "verify", "--policy",
       "p.json", "rawstranger.cap")
fp = json.loads(nvm("verify", "--json", "--policy", "p.json", "raw.cap")[1])["signer"][
    "key_fingerprint"]
policy("revkey.json", revoked={"keys": [fp]})
expect("revoked key", 4, "is revoked", "run", "--policy", "revkey.json", "raw.cap")
digest = json.loads(nvm("verify", "--json", "--policy", "p.json", "good.cap")[1])[
    "capsule_digest"]
policy("revcap.json", revoked={"capsules": [digest]})
expect("revoked capsule", 4, "capsule " + digest + " is revoked", "run", "--policy",
       "revcap.json", "good.cap")
expect("no trust roots", 0, "the policy has no trust roots", "verify", "--policy",
       policy("noroots.json", trust_roots=[]), "good.cap")

# ---- unsigned, invalid signatures, floor ----
expect("unsigned: sandboxed", 0, "trust level:  sandboxed", "verify", "--policy", "p.json",
       "app.cap")
expect("unsigned: runs", 0, "hi", "run", "--policy", "p.json", "app.cap")
expect("min_level floor", 4, "below the policy's minimum level verified", "run", "--policy",
       "strict.json", "app.cap")
good = rbytes("good.cap")
signed_len = struct.unpack_from("<Q", good, 16)[0]
bad = bytearray(good)
bad[signed_len + 8 + 8 + 32 + 5] ^= 1  # a bit of the signature itself
wbytes("badsig.cap", bytes(bad))
expect("invalid signature: rejected", 4, "invalid signature", "run", "--policy", "p.json",
       "badsig.cap")
expect("invalid signature: sandboxed by policy", 0, "trust level:  sandboxed", "verify",
       "--policy", "sbx.json", "badsig.cap")
bad = bytearray(good)
bad[signed_len + 8] = 2  # algorithm
wbytes("badalg.cap", bytes(bad))
expect("unknown signature algorithm", 4, "algorithm", "verify", "--policy", "p.json",
       "badalg.cap")

# ---- capabilities and limits ----
pack("fs.cap", manifest("fsapp", caps=("io.print", "fs.read:/tmp")))
expect("capability above the sandboxed ceiling", 0, "fs.read:/tmp exceeds the sandboxed ceiling",
       "verify", "--policy", "p.json", "fs.cap")
policy("deny.json", levels={"trusted": {"deny": ["io.*"]}})
expect("deny pattern lowers the level", 0, "trust level:  restricted", "verify", "--policy",
       "deny.json", "good.cap")
pack("nocap.cap", manifest("nocap", caps=()))
expect("capability not requested: denied", 6, "not granted", "run", "--policy", "p.json",
       "nocap.cap")
pack("spin.cap", manifest("spin", caps=()), "spin.casm")
policy("gas.json", audit_log="gas.log", levels={"sandboxed": {"limits": {"gas": 5000}}})
expect("level gas limit", 5, "gas exhausted", "run", "--policy", "gas.json", "spin.cap")
check("limit audited", '"event":"limit"' in open(os.path.join(W, "gas.log")).read())
expect("CLI may lower a limit", 5, "after 100 instructions", "run", "--gas", "100", "--policy",
       "gas.json", "spin.cap")
expect("CLI may not raise a limit", 5, "after 5000 instructions", "run", "--gas", "1000000",
       "--policy", "gas.json", "spin.cap")

# ---- rollback ----
pack("v12.cap", manifest("rb", "1.2.0"))
pack("v10.cap", manifest("rb", "1.0.0"))
sign("v12.cap", "v12s.cap", "leaf", "leaf", "inter.pem")
sign("v10.cap", "v10s.cap", "leaf", "leaf", "inter.pem")
policy("rb.json", state_dir="state-rb")
expect("rollback: v1.2.0 runs", 0, "hi", "run", "--policy", "rb.json", "v12s.cap")
expect("rollback: v1.0.0 refused", 4, "rollback: version 1.0.0 < 1.2.0 already run", "run",
       "--policy", "rb.json", "v10s.cap")
expect("rollback: v1.2.0 again", 0, "hi", "run", "--policy", "rb.json", "v12s.cap")
expect("rollback: other signer unaffected", 0, "hi", "run", "--policy", "rb.json", "v10.cap")

# ---- every byte flipped, every truncation (chain-less signed capsule, pinned: verified) ----
sign("app.cap", "small.cap", "leaf")
small = rbytes("small.cap")
slen = struct.unpack_from("<Q", small, 16)[0]
order = ["rejected", "restricted", "sandboxed", "verified", "trusted"]
flip_bad = []
for i in range(len(small)):
    b = bytearray(small)
    b[i] ^= 0x20
    wbytes("flip.cap", bytes(b))
    code, out = nvm("verify", "--json", "--policy", "pinned.json", "flip.cap")
    level = None
    if code in (0, 4) and out.lstrip().startswith("{"):
        level = json.loads(out)["trust_level"]
    if code not in (0, 3, 4) or (level and order.index(level) > order.index("sandboxed")):
        flip_bad.append((i, code, level))
    elif i < slen and code not in (3, 4):
        flip_bad.append((i, code, level))
check(f"byte flips ({len(small)}): none above sandboxed, signed bytes rejected", not flip_bad,
      str(flip_bad[:5]))
trunc_bad = []
for n in range(len(small)):
    wbytes("trunc.cap", small[:n])
    code, out = nvm("verify", "--policy", "pinned.json", "trunc.cap")
    if n == slen:
        ok = code == 4 and "below the policy's minimum level" in out  # signature stripped
    else:
        ok = code == 3
    if not ok:
        trunc_bad.append((n, code, out.strip()[:80]))
check(f"truncations ({len(small)}): malformed, or unsigned at signed_len", not trunc_bad,
      str(trunc_bad[:5]))

# ---- signature block mangled, sections reordered, lengths past the end ----
wbytes("stripped.cap", small[:slen])
expect("signature stripped: unsigned", 0, "trust level:  sandboxed", "verify", "--policy",
       "p.json", "stripped.cap")
sign("fs.cap", "fss.cap", "leaf")
other = rbytes("fss.cap")
wbytes("replaced.cap", small[:slen] + other[struct.unpack_from("<Q", other, 16)[0]:])
expect("signature replaced by another key's: rejected", 4, "invalid signature", "run",
       "--policy", "p.json", "replaced.cap")
wbytes("dup.cap", small + small[slen:])
expect("signature duplicated: malformed", 3, "", "run", "--policy", "p.json", "dup.cap")
b = bytearray(small)
e0, e1 = bytes(b[40:64]), bytes(b[64:88])
b[40:64], b[64:88] = e1, e0
wbytes("reordered.cap", bytes(b))
code, out = nvm("run", "--policy", "p.json", "reordered.cap")
check("sections reordered: refused (3 or 4)", code in (3, 4), f"exit {code}: {out.strip()}")
b = bytearray(small)
struct.pack_into("<Q", b, 40 + 16, 1 << 40)
wbytes("pastend.cap", bytes(b))
expect("section length past the end", 3, "", "run", "--policy", "p.json", "pastend.cap")

# ---- policy check ----
expect("policy check ok", 0, "valid policy", "policy", "check", "p.json")
write("badkey.json", '{"trust_roots": [], "colour": 1}')
expect("policy unknown key", 3, 'unknown key "colour"', "policy", "check", "badkey.json")
write("badlevel.json", '{"levels": {"trusted": {"limits": {"gas": -1}}}}')
expect("policy bad limit", 3, "levels.trusted.limits.gas", "policy", "check", "badlevel.json")
write("badmin.json", '{"min_level": "rejected"}')
expect("policy bad min_level", 3, "min_level", "policy", "check", "badmin.json")
write("badjson.json", '{"min_level": ')
expect("policy not JSON", 3, "line 1", "policy", "check", "badjson.json")
write("umverified.json", '{"levels": {"verified": {"gas_metering": false}}}')
expect("policy: gas_metering off below trusted", 3, "only for the trusted level", "policy",
       "check", "umverified.json")
write("umgas.json", '{"levels": {"trusted": {"gas_metering": false, "limits": {"gas": 5}}}}')
expect("policy: gas_metering off with a gas limit", 3, "without gas and wall_ms limits",
       "policy", "check", "umgas.json")
write("umwall.json",
      '{"levels": {"trusted": {"limits": {"wall_ms": 50}, "gas_metering": false}}}')
expect("policy: gas_metering off with wall_ms", 3, "without gas and wall_ms limits", "policy",
       "check", "umwall.json")
write("umtype.json", '{"levels": {"trusted": {"gas_metering": "no"}}}')
expect("policy: gas_metering not a bool", 3, "expected true or false", "policy", "check",
       "umtype.json")
expect("policy missing root file", 3, "trust_roots[0]", "policy", "check",
       policy("missing.json", trust_roots=["nope.pem"]))

# ---- audit log ----
policy("audit.json", audit_log="a.log", state_dir="state-a")
for _ in range(3):
    nvm("run", "--policy", "audit.json", "good.cap")
expect("audit log intact", 0, "15 records, hash chain intact", "audit", "verify", "--policy",
       "audit.json")
lines = open(os.path.join(W, "a.log"), "rb").read().split(b"\n")[:-1]


# The head file is keyed by the log's path: verify copies under their own state dir.
os.makedirs(os.path.join(W, "state-t"), exist_ok=True)


def tamper_nohead(name, new_lines, needle, trailing=b"\n"):
    wbytes("t.log", b"\n".join(new_lines) + trailing)
    expect("audit " + name, 4, needle, "audit", "verify", "--state-dir", "state-t", "t.log")


edited = list(lines)
edited[2] = edited[2].replace(b'"event":"tier"', b'"event":"tyer"')
tamper_nohead("edited", edited, "line 4: prev hash does not match record 3")
swapped = list(lines)
swapped[3], swapped[4] = swapped[4], swapped[3]
tamper_nohead("reordered", swapped, "line 4: seq jumps from 3 to 5")
removed = lines[:5] + lines[6:]
tamper_nohead("record removed", removed, "line 6: seq jumps from 5 to 7")
tamper_nohead("not JSON", lines[:2] + [b"{oops"] + lines[3:], "line 3 is not valid JSON")
tamper_nohead("cut mid-record", lines[:-1] + [lines[-1][:40]], "line 15: incomplete record",
              b"")
policy("audit2.json", audit_log="b.log")
nvm("run", "--policy", "audit2.json", "good.cap")
other_log = open(os.path.join(W, "b.log"), "rb").read().split(b"\n")[:-1]
tamper_nohead("spliced", lines[:2] + other_log[2:4] + lines[4:],
              "line 3: prev hash does not match record 2")
# truncation at a record boundary is caught by the head kept in the state dir
data = b"\n".join(lines[:12]) + b"\n"
wbytes("a.log", data)
expect("audit truncated", 4, "log ends at record 12 but the head says 15 (truncated)", "audit",
       "verify", "--policy", "audit.json")
expect("audit truncated: run continues from the head", 0, "hi", "run", "--policy", "audit.json",
       "good.cap")
expect("audit truncated: gap stays visible", 4, "seq jumps from 12 to 16", "audit", "verify",
       "--policy", "audit.json")

print(f"{passed} passed, {failed} failed")
if args.keep or failed:
    print(f"work directory: {W}")
else:
    shutil.rmtree(W, ignore_errors=True)
sys.exit(1 if failed else 0)

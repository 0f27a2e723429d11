#!/bin/sh
# demo.sh NANOVM - the README's first command (make run): build a demo PKI (root, intermediate,
# code-signing leaf) with the openssl command line, pack and sign examples/hello as a capsule,
# show the trust decision, run it under a policy with an audit log, verify the log, then show a
# tampered capsule being rejected, a copy signed without a chain running on the JIT, an unsigned
# copy running on the WASM sandbox tier, and a gas limit stopping an endless loop. The trusted
# capsule runs on the AOT tier (compiled by cc into the cache on its first run).
set -u
NVM=${1:-build/nanovm}
DIR=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

cat >"$T/openssl.cnf" <<'EOF'
[req]
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
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF

echo "== demo PKI (Ed25519): root CA -> intermediate CA -> code-signing leaf"
(
    cd "$T" || exit 1
    for k in root inter leaf; do openssl genpkey -algorithm ed25519 -out $k.key || exit 1; done
    openssl req -x509 -new -key root.key -subj "/CN=NanoVM Demo Root" -days 30 \
        -config openssl.cnf -extensions v3_ca -out root.pem &&
    openssl req -new -key inter.key -subj "/CN=NanoVM Demo Intermediate" -config openssl.cnf \
        -out inter.csr &&
    openssl x509 -req -in inter.csr -CA root.pem -CAkey root.key -set_serial 0x1001 -days 30 \
        -extfile openssl.cnf -extensions v3_ca -out inter.pem 2>/dev/null &&
    openssl req -new -key leaf.key -subj "/O=NanoVM Demo/CN=Demo Signer" -config openssl.cnf \
        -out leaf.csr &&
    openssl x509 -req -in leaf.csr -CA inter.pem -CAkey inter.key -set_serial 0x2001 -days 30 \
        -extfile openssl.cnf -extensions v3_leaf -out leaf.pem 2>/dev/null
) || { echo "demo: openssl failed" >&2; exit 1; }
for c in root inter leaf; do
    printf '   %-6s %s\n' "$c" "$(openssl x509 -in "$T/$c.pem" -noout -subject)"
done

cat >"$T/policy.json" <<'EOF'
{
  "trust_roots": ["root.pem"],
  "audit_log": "audit.log",
  "state_dir": "state",
  "min_level": "sandboxed"
}
EOF
echo "== policy: trust the demo root, audit to audit.log, floor 'sandboxed'"
"$NVM" policy check "$T/policy.json" | head -n 8

echo "== pack examples/hello.casm with examples/hello.json, sign with the leaf + intermediate"
"$NVM" pack --manifest "$DIR/hello.json" -o "$T/hello.cap" "$DIR/hello.casm" || exit $?
"$NVM" sign --key "$T/leaf.key" --cert "$T/leaf.pem" --chain "$T/inter.pem" "$T/hello.cap" ||
    exit $?

echo "== nanovm verify hello.cap"
"$NVM" verify --policy "$T/policy.json" "$T/hello.cap" 2>&1
echo "   exit status $?"

echo "== nanovm run hello.cap"
"$NVM" run --policy "$T/policy.json" "$T/hello.cap" 2>&1
echo "   exit status $?"

echo "== the audit records (JSON lines, each with the hash of the previous one)"
cut -c1-150 "$T/audit.log" | sed 's/$/.../'
echo "== nanovm audit verify"
"$NVM" audit verify --policy "$T/policy.json" 2>&1
echo "   exit status $?"

echo "== a copy with one byte of its bytecode flipped is rejected (exit 4)"
cp "$T/hello.cap" "$T/tampered.cap"
# signed_len (header offset 16, u64 little-endian): the flip lands in the last signed section
POS=$(($(od -An -tu4 -j16 -N4 "$T/hello.cap") - 12))
printf 'X' | dd of="$T/tampered.cap" bs=1 seek="$POS" conv=notrunc 2>/dev/null
"$NVM" run --policy "$T/policy.json" "$T/tampered.cap" 2>&1
echo "   exit status $?"

echo "== signed with a key of its own, no certificate chain: verified level, run on the JIT tier"
"$NVM" keygen -o "$T/own.key" >/dev/null || exit $?
"$NVM" pack --manifest "$DIR/hello.json" -o "$T/own.cap" "$DIR/hello.casm" >/dev/null || exit $?
"$NVM" sign --key "$T/own.key" "$T/own.cap" >/dev/null || exit $?
"$NVM" verify --policy "$T/policy.json" "$T/own.cap" 2>&1 | grep -E '^(trust level|tier):'
"$NVM" run --policy "$T/policy.json" "$T/own.cap" 2>&1
echo "   exit status $?"

echo "== the same program unsigned: sandboxed level, run by auto on the WASM sandbox tier"
"$NVM" pack --manifest "$DIR/hello.json" -o "$T/unsigned.cap" "$DIR/hello.casm" >/dev/null || exit $?
"$NVM" verify --policy "$T/policy.json" "$T/unsigned.cap" 2>&1 | grep -E '^(trust level|tier):'
"$NVM" run --policy "$T/policy.json" --tier auto "$T/unsigned.cap" 2>&1
echo "   exit status $?"

echo "== an endless loop under a gas limit stops (exit 5)"
printf '.func main\nspin:\n    JMP spin\n' >"$T/spin.casm"
"$NVM" run --gas 100000 "$T/spin.casm" 2>&1
echo "   exit status $?"

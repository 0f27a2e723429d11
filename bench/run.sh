#!/bin/sh
# bench/run.sh - NanoVM's benchmark suite: runs each program of bench/*.casm on NanoVM's tiers
# (interpreter, JIT, wasm sandbox; a tier this build lacks is skipped) and its peers (lua5.4,
# luajit, luajit -joff, python3, node, and the C version when there is one), checks that every
# runtime prints exactly lua5.4's line, and reports median wall time, the ratio to Lua 5.4, the
# JIT's ratios to the interpreter, Lua 5.4 and LuaJIT, peak RSS and start-up time (a bare hello
# program, a signed hello capsule at the verified level, which runs on the JIT, and a hello capsule
# signed with a certificate chain to a root the policy trusts, at the trusted level, which runs on
# the AOT tier from the cache; that one needs the openssl command line and a C compiler).
#
# usage: bench/run.sh NANOVM [RUNS]        (RUNS defaults to 5)
#   NVM_PEERS_DIR       directory of the peer programs (default: ../../shared/bench/peers relative
#                       to this script's directory)
#   NVM_BENCH_PROGRAMS  the programs to run (default: all seven), e.g. "fib loop" for a quick check
#   NVM_BENCH_RUNTIMES  the runtimes to run (default: all), e.g. "nanoaot nanoaotu gcc"; lua5.4
#                       always runs (its line is the reference)
#   NVM_BENCH_OUT       where the results go (default: bench/results)
# Writes latest.md, latest.json and ratios.png (bar chart, needs gnuplot).
# Exit status: 0 all outputs matched, 1 a runtime printed something else (or failed), 2 usage or
# setup error. Uses hyperfine when present (else a date +%s%N loop) and /usr/bin/time -f %M for
# peak RSS when present; installs nothing: peers whose tool is missing are skipped and named.
set -u

PROGRAMS=${NVM_BENCH_PROGRAMS:-"fib loop sieve nbody strings qsort mandel"}
RUN_ORDER="lua54 nanovm nanojit nanoaot nanoaotu nanowasm luajit luajitjoff python3 node gcc"   # lua54 first: its line is the reference
TABLE_ORDER="nanovm nanojit nanoaot nanoaotu nanowasm lua54 luajit luajitjoff python3 node gcc"
if [ -n "${NVM_BENCH_RUNTIMES:-}" ]; then
    keep() {
        out=
        for r in $1; do
            case " lua54 $NVM_BENCH_RUNTIMES " in *" $r "*) out="$out $r" ;; esac
        done
        echo $out
    }
    RUN_ORDER=$(keep "$RUN_ORDER")
    TABLE_ORDER=$(keep "$TABLE_ORDER")
fi
PY=/usr/bin/python3
STARTUP_RUNS=20

die() {
    echo "run.sh: $*" >&2
    exit 2
}

usage() {
    echo "usage: $0 NANOVM [RUNS]" >&2
    exit 2
}

have() { command -v "$1" >/dev/null 2>&1; }

# q STRING: STRING single-quoted for sh -c and for hyperfine's command splitting.
q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
NANOVM=$1
RUNS=${2:-5}
case $RUNS in '' | *[!0-9]*) usage ;; esac
[ "$RUNS" -ge 1 ] || usage
case $NANOVM in /*) ;; *) NANOVM=$(pwd)/$NANOVM ;; esac
[ -x "$NANOVM" ] || die "$NANOVM is not an executable file"

BENCH=$(cd "$(dirname "$0")" && pwd) || die "cannot locate the bench directory"
PEERS=${NVM_PEERS_DIR:-$BENCH/../../shared/bench/peers}
[ -d "$PEERS" ] || die "peer programs not found in $PEERS (set NVM_PEERS_DIR)"
PEERS=$(cd "$PEERS" && pwd)
OUT=${NVM_BENCH_OUT:-$BENCH/results}
mkdir -p "$OUT" || die "cannot create $OUT"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/nvm-bench.XXXXXX") || die "cannot create a temporary directory"
# the AOT tier compiles into a cache of this run (warm before timing: `nanovm aot` first)
export NVM_CACHE_DIR="$TMP/aot-cache"
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

have lua5.4 || die "lua5.4 is required: its output is the reference and its time the baseline"

# ---- which tools are here ---------------------------------------------------------------------
missing=""
note_missing() { missing="$missing $1"; }
have luajit || note_missing luajit
[ -x "$PY" ] || note_missing "$PY"
have node || note_missing node
have gcc || note_missing gcc
HF=0
if have hyperfine; then HF=1; else note_missing hyperfine; fi
TIMECMD=""
if [ -x /usr/bin/time ]; then TIMECMD=/usr/bin/time; else note_missing /usr/bin/time; fi
have gnuplot || note_missing gnuplot
have openssl || note_missing openssl
"$NANOVM" run --tier jit "$BENCH/hello.casm" >/dev/null 2>&1 || note_missing "nanovm-jit-tier"
if [ -n "$missing" ]; then
    echo "run.sh: missing:$missing" >&2
    [ $HF = 1 ] || echo "run.sh: no hyperfine: timing with a date +%s%N loop (sh start-up included)" >&2
    [ -n "$TIMECMD" ] || echo "run.sh: no /usr/bin/time: peak RSS not measured" >&2
    have gnuplot || echo "run.sh: no gnuplot: no ratios.png" >&2
fi

label() {
    case $1 in
    nanovm) echo "nanovm" ;;
    nanojit) echo "nanovm jit" ;;
    nanoaot) echo "nanovm aot" ;;
    nanoaotu) echo "nanovm aot unmetered" ;;
    nanowasm) echo "nanovm wasm" ;;
    lua54) echo "lua5.4" ;;
    luajit) echo "luajit" ;;
    luajitjoff) echo "luajit -joff" ;;
    python3) echo "python3" ;;
    node) echo "node" ;;
    gcc) echo "gcc -O2" ;;
    esac
}

# cmdline PROGRAM RUNTIME: the command to run (quoted for sh -c), empty when not available.
cmdline() {
    case $2 in
    nanovm) echo "$(q "$NANOVM") run --tier interp $(q "$BENCH/$1.casm")" ;;
    nanojit) "$NANOVM" run --tier jit "$BENCH/hello.casm" >/dev/null 2>&1 &&
        echo "$(q "$NANOVM") run --tier jit $(q "$BENCH/$1.casm")" ;;
    nanowasm) "$NANOVM" run --tier wasm "$BENCH/hello.casm" >/dev/null 2>&1 &&
        echo "$(q "$NANOVM") run --tier wasm $(q "$BENCH/$1.casm")" ;;
    nanoaot) have cc && "$NANOVM" aot "$BENCH/$1.casm" >/dev/null 2>&1 &&
        echo "$(q "$NANOVM") run --tier aot $(q "$BENCH/$1.casm")" ;;
    nanoaotu) [ -n "$PKI_OK" ] && "$NANOVM" pack --manifest "$TMP/bench.json" -o "$PKI/$1.cap" \
        "$BENCH/$1.casm" >/dev/null 2>&1 &&
        "$NANOVM" sign --key "$PKI/leaf.key" --cert "$PKI/leaf.pem" --chain "$PKI/inter.pem" \
            "$PKI/$1.cap" >/dev/null 2>&1 &&
        "$NANOVM" aot --policy "$PKI/unmetered.json" "$PKI/$1.cap" >/dev/null 2>&1 &&
        echo "$(q "$NANOVM") run --policy $(q "$PKI/unmetered.json") $(q "$PKI/$1.cap")" ;;
    lua54) echo "lua5.4 $(q "$PEERS/$1.lua")" ;;
    luajit) have luajit && echo "luajit $(q "$PEERS/$1.lua")" ;;
    luajitjoff) have luajit && echo "luajit -joff $(q "$PEERS/$1.lua")" ;;
    python3) [ -x "$PY" ] && echo "$(q "$PY") $(q "$PEERS/$1.py")" ;;
    node) have node && echo "node $(q "$PEERS/$1.js")" ;;
    gcc) [ -x "$TMP/c/$1" ] && q "$TMP/c/$1" && echo ;;
    esac
    return 0
}

# ---- the C peers --------------------------------------------------------------------------------
mkdir -p "$TMP/c"
if have gcc; then
    for p in $PROGRAMS; do
        [ -f "$PEERS/c/$p.c" ] || continue
        gcc -O2 -ffp-contract=off -o "$TMP/c/$p" "$PEERS/c/$p.c" -lm ||
            die "cannot compile $PEERS/c/$p.c"
    done
fi

# time_cmd CMD RUNS JSONFILE: sets MEDIAN and TIMES (seconds) for RUNS runs of CMD; 1 on failure.
time_cmd() {
    MEDIAN=""
    TIMES=""
    if [ $HF = 1 ]; then
        hyperfine -N --runs "$2" --style none --export-json "$3" "$1" >"$TMP/hf.log" 2>&1 || {
            cat "$TMP/hf.log" >&2
            return 1
        }
        MEDIAN=$(awk '/"median":/ { v = $2; gsub(/[^0-9.eE+-]/, "", v); print v; exit }' "$3")
        TIMES=$(awk '/"times": \[/ { on = 1; next }
                     on && /\]/ { exit }
                     on { v = $1; gsub(/[^0-9.eE+-]/, "", v); printf "%s%s", sep, v; sep = " " }' "$3")
    else
        i=0
        : >"$TMP/ns"
        while [ $i -lt "$2" ]; do
            t0=$(date +%s%N)
            sh -c "exec $1" >/dev/null 2>&1 || return 1
            t1=$(date +%s%N)
            echo $((t1 - t0)) >>"$TMP/ns"
            i=$((i + 1))
        done
        TIMES=$(awk '{ printf "%s%.9f", sep, $1 / 1e9; sep = " " }' "$TMP/ns")
        MEDIAN=$(sort -n "$TMP/ns" | awk '{ v[NR] = $1 }
            END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.9f", m / 1e9 }')
    fi
    [ -n "$MEDIAN" ]
}

# ---- the programs ---------------------------------------------------------------------------------
status=0
# the trusted capsule: an Ed25519 PKI made by the openssl command line (root -> intermediate ->
# code-signing leaf), a policy trusting the root, the capsule signed with the leaf and the
# intermediate, compiled into this run's cache (`nanovm aot`) before it is timed. The same PKI
# signs each benchmark program for "nanovm aot unmetered": a trusted capsule under a policy that
# turns gas metering off for the trusted level (docs/policy.md), on the AOT tier.
PKI="$TMP/pki"
pki() {
    mkdir -p "$PKI" && cd "$PKI" || return 1
    printf '%s\n' '[req]' 'distinguished_name = dn' '[dn]' '[v3_ca]' \
        'basicConstraints = critical,CA:TRUE' 'keyUsage = critical,keyCertSign,cRLSign' \
        'subjectKeyIdentifier = hash' 'authorityKeyIdentifier = keyid:always' '[v3_leaf]' \
        'basicConstraints = critical,CA:FALSE' 'keyUsage = critical,digitalSignature' \
        'extendedKeyUsage = codeSigning' 'subjectKeyIdentifier = hash' \
        'authorityKeyIdentifier = keyid:always' >openssl.cnf
    for k in root inter leaf; do openssl genpkey -algorithm ed25519 -out $k.key || return 1; done
    openssl req -x509 -new -key root.key -subj "/CN=NanoVM Bench Root" -days 2 -config openssl.cnf \
        -extensions v3_ca -out root.pem &&
        openssl req -new -key inter.key -subj "/CN=NanoVM Bench Intermediate" \
            -config openssl.cnf -out inter.csr &&
        openssl x509 -req -in inter.csr -CA root.pem -CAkey root.key -set_serial 0x1001 -days 2 \
            -extfile openssl.cnf -extensions v3_ca -out inter.pem &&
        openssl req -new -key leaf.key -subj "/CN=NanoVM Bench Signer" -config openssl.cnf \
            -out leaf.csr &&
        openssl x509 -req -in leaf.csr -CA inter.pem -CAkey inter.key -set_serial 0x2001 -days 2 \
            -extfile openssl.cnf -extensions v3_leaf -out leaf.pem || return 1
    printf '{"trust_roots": ["root.pem"]}\n' >policy.json
    printf '{"trust_roots": ["root.pem"], "levels": {"trusted": {"gas_metering": false}}}\n' \
        >unmetered.json
    "$NANOVM" pack --manifest "$TMP/hello.json" -o trusted.cap "$BENCH/hello.casm" &&
        "$NANOVM" sign --key leaf.key --cert leaf.pem --chain inter.pem trusted.cap &&
        "$NANOVM" aot --policy policy.json trusted.cap
}
PKI_OK=""
printf '{"name": "hello", "version": "1.0.0", "capabilities": ["io.print"]}\n' >"$TMP/hello.json"
printf '{"name": "bench", "version": "1.0.0", "capabilities": ["io.print"]}\n' >"$TMP/bench.json"
if have openssl && have cc; then
    if (pki) >"$TMP/pki.log" 2>&1; then
        PKI_OK=1
    else
        echo "!!! cannot build the test PKI and the trusted hello capsule:" >&2
        tail -n 5 "$TMP/pki.log" | sed 's/^/!!!   /' >&2
        status=1
    fi
fi

TAB=$(printf '\t')
: >"$TMP/results.tsv"
for p in $PROGRAMS; do
    ref=""
    for r in $RUN_ORDER; do
        cmd=$(cmdline "$p" "$r")
        if [ -z "$cmd" ]; then
            printf '%s\t%s\t\t\t\tmissing\t\n' "$p" "$r" >>"$TMP/results.tsv"
            continue
        fi
        printf '%-8s %-13s ' "$p" "$(label "$r")" >&2
        # check run: output, exit status, peak RSS (also the warm-up run)
        rss=""
        if [ -n "$TIMECMD" ]; then
            out=$($TIMECMD -f %M -o "$TMP/rss" sh -c "exec $cmd" 2>"$TMP/err")
            rc=$?
            rss=$(tail -n 1 "$TMP/rss" 2>/dev/null | tr -cd '0-9')
        else
            out=$(sh -c "exec $cmd" 2>"$TMP/err")
            rc=$?
        fi
        [ "$r" = lua54 ] && [ $rc = 0 ] && ref=$out
        if [ $rc != 0 ] || [ -z "$ref" ] || [ "$out" != "$ref" ]; then
            echo "MISMATCH" >&2
            echo "!!! MISMATCH in $p: '$(label "$r")' exited with $rc and printed:" >&2
            printf '!!!   %s\n' "$out" >&2
            echo "!!! lua5.4 printed:" >&2
            printf '!!!   %s\n' "$ref" >&2
            [ -s "$TMP/err" ] && sed 's/^/!!! stderr: /' "$TMP/err" | head -n 20 >&2
            status=1
            printf '%s\t%s\t\t%s\t\tmismatch\t\n' "$p" "$r" "$rss" >>"$TMP/results.tsv"
            continue
        fi
        if ! time_cmd "$cmd" "$RUNS" "$TMP/$p-$r.json"; then
            echo "FAILED while timing" >&2
            echo "!!! $p: '$(label "$r")' failed during the timed runs" >&2
            status=1
            printf '%s\t%s\t\t%s\t\tfailed\t\n' "$p" "$r" "$rss" >>"$TMP/results.tsv"
            continue
        fi
        awk -v m="$MEDIAN" 'BEGIN { printf "%.3f s\n", m }' >&2
        printf '%s\t%s\t%s\t%s\t%s\tok\t%s\n' "$p" "$r" "$MEDIAN" "$rss" "$TIMES" "$out" \
            >>"$TMP/results.tsv"
    done
done

# ---- start-up -------------------------------------------------------------------------------------
# A bare hello program; hello as a capsule signed without a certificate chain (the verified level:
# `auto` puts it on the JIT when this build has one), run under an empty policy; hello as a capsule
# signed by a code-signing leaf under an intermediate under a root the policy trusts (the trusted
# level: `auto` puts it on the AOT tier), with its compiled object already in this run's cache.
SU_NVM=""
SU_LUA=""
SU_CAP=""
SU_TRUST=""
CAP_TIER=""
CAP_CMD=""
TRUST_TIER=""
TRUST_CMD=""
# startup_capsule POLICY CAP: sets SU_TIER (the tier `verify` names) and SU_CMD (the command
# that runs CAP under POLICY; empty, with a message and status 1, when it does not print hello)
startup_capsule() {
    SU_TIER=$("$NANOVM" verify --json --policy "$1" "$2" |
        sed -n 's/.*"tier": *"\([a-z]*\)".*/\1/p')
    SU_CMD="$(q "$NANOVM") run --policy $(q "$1") $(q "$2")"
    hello=$(sh -c "exec $SU_CMD" 2>&1)
    if [ "$hello" != "hello" ]; then
        echo "!!! MISMATCH in $(basename "$2"): nanovm printed '$hello'" >&2
        status=1
        SU_CMD=""
    fi
}
printf '{}\n' >"$TMP/policy.json"
if "$NANOVM" keygen -o "$TMP/bench.key" >/dev/null 2>&1 &&
    "$NANOVM" pack --manifest "$TMP/hello.json" -o "$TMP/hello.cap" "$BENCH/hello.casm" >/dev/null 2>&1 &&
    "$NANOVM" sign --key "$TMP/bench.key" "$TMP/hello.cap" >/dev/null 2>&1; then
    startup_capsule "$TMP/policy.json" "$TMP/hello.cap"
    CAP_TIER=$SU_TIER
    CAP_CMD=$SU_CMD
else
    echo "!!! cannot build the signed hello capsule" >&2
    status=1
fi
if [ -n "$PKI_OK" ]; then
    startup_capsule "$PKI/policy.json" "$PKI/trusted.cap"
    TRUST_TIER=$SU_TIER
    TRUST_CMD=$SU_CMD
fi
hello=$("$NANOVM" run "$BENCH/hello.casm" 2>&1)
if [ "$hello" != "hello" ]; then
    echo "!!! MISMATCH in hello: nanovm printed '$hello'" >&2
    status=1
else
    if [ $HF = 1 ]; then
        set --
        [ -n "$CAP_CMD" ] && set -- "$@" "$CAP_CMD"
        [ -n "$TRUST_CMD" ] && set -- "$@" "$TRUST_CMD"
        hyperfine -N --warmup 3 --runs $STARTUP_RUNS --style none --export-json "$TMP/su.json" \
            "$(q "$NANOVM") run $(q "$BENCH/hello.casm")" "lua5.4 -e ''" "$@" >"$TMP/hf.log" 2>&1 ||
            cat "$TMP/hf.log" >&2
        nth_median() {
            awk -v want="$1" '/"median":/ { n++; if (n == want) { v = $2; gsub(/[^0-9.eE+-]/, "", v); print v } }' "$TMP/su.json"
        }
        SU_NVM=$(nth_median 1)
        SU_LUA=$(nth_median 2)
        n=3
        if [ -n "$CAP_CMD" ]; then
            SU_CAP=$(nth_median $n)
            n=4
        fi
        [ -n "$TRUST_CMD" ] && SU_TRUST=$(nth_median $n)
    else
        time_cmd "$(q "$NANOVM") run $(q "$BENCH/hello.casm")" $STARTUP_RUNS "$TMP/su1.json" && SU_NVM=$MEDIAN
        time_cmd "lua5.4 -e ''" $STARTUP_RUNS "$TMP/su2.json" && SU_LUA=$MEDIAN
        [ -n "$CAP_CMD" ] && time_cmd "$CAP_CMD" $STARTUP_RUNS "$TMP/su3.json" && SU_CAP=$MEDIAN
        [ -n "$TRUST_CMD" ] && time_cmd "$TRUST_CMD" $STARTUP_RUNS "$TMP/su4.json" && SU_TRUST=$MEDIAN
    fi
fi

# ---- reports ----------------------------------------------------------------------------------------
LABELS=""
for r in $TABLE_ORDER; do LABELS="$LABELS$(label "$r")$TAB"; done
if [ $HF = 1 ]; then TIMER="hyperfine"; else TIMER="date +%s%N loop"; fi
DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
HOST="$(uname -sm), $(getconf _NPROCESSORS_ONLN 2>/dev/null || echo '?') CPUs"

awk -F '\t' -v order="$TABLE_ORDER" -v labels="$LABELS" -v progs="$PROGRAMS" -v runs="$RUNS" \
    -v su_nvm="$SU_NVM" -v su_lua="$SU_LUA" -v su_cap="$SU_CAP" -v cap_tier="$CAP_TIER" \
    -v su_trust="$SU_TRUST" -v trust_tier="$TRUST_TIER" \
    -v su_runs="$STARTUP_RUNS" -v date="$DATE" \
    -v host="$HOST" -v timer="$TIMER" -v missing="$missing" -v status="$status" \
    -v md="$TMP/latest.md" -v js="$TMP/latest.json" -v dat="$TMP/ratios.dat" '
function jstr(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); return "\"" s "\"" }
{
    k = $1 SUBSEP $2
    med[k] = $3; rss[k] = $4; times[k] = $5; st[k] = $6
    if ($6 == "ok" && $2 == "lua54") line[$1] = $7
}
END {
    nr = split(order, R, " "); np = split(progs, P, " "); split(labels, L, "\t")
    for (i = 1; i <= np; i++) for (j = 1; j <= nr; j++) {
        k = P[i] SUBSEP R[j]; base = P[i] SUBSEP "lua54"
        if (st[k] == "ok" && st[base] == "ok" && med[base] > 0) {
            ratio[k] = med[k] / med[base]; lsum[R[j]] += log(ratio[k]); lcnt[R[j]]++
        }
    }
    head = "| program |"; rule = "|---|"
    for (j = 1; j <= nr; j++) { head = head " " L[j] " |"; rule = rule "---|" }

    print "# NanoVM benchmarks" > md
    print "" > md
    printf "%s, %s. Median wall time of %d runs (%s), start-up included; NanoVM runs " \
        "`nanovm run --tier interp` (nanovm), `--tier jit` (nanovm jit), `--tier aot` " \
        "(nanovm aot, compiled into a private cache before timing), `--tier wasm` " \
        "(nanovm wasm), and the program as a trusted capsule (certificate chain) under a policy " \
        "that turns gas metering off for the trusted level, on the AOT tier (nanovm aot " \
        "unmetered). ", date, host, runs, timer > md
    if (status == 0) print "Every runtime printed exactly the line lua5.4 printed." > md
    else print "**Some runtime printed a different line or failed: see the table.**" > md
    if (missing != "") print "Not available here (skipped):" missing "." > md
    print "" > md
    print "## Median wall time (seconds)" > md
    print "" > md
    print head > md; print rule > md
    for (i = 1; i <= np; i++) {
        row = "| " P[i] " |"
        for (j = 1; j <= nr; j++) {
            k = P[i] SUBSEP R[j]
            if (st[k] == "ok") v = sprintf("%.3f", med[k])
            else if (st[k] == "mismatch") v = "MISMATCH"
            else if (st[k] == "failed") v = "FAILED"
            else v = "—"
            row = row " " v " |"
        }
        print row > md
    }
    print "" > md
    print "## Ratio to Lua 5.4 (lower is faster)" > md
    print "" > md
    print head > md; print rule > md
    for (i = 1; i <= np; i++) {
        row = "| " P[i] " |"
        for (j = 1; j <= nr; j++) {
            k = P[i] SUBSEP R[j]
            row = row " " ((k in ratio) ? sprintf("%.2f", ratio[k]) : "—") " |"
        }
        print row > md
    }
    row = "| geometric mean |"
    for (j = 1; j <= nr; j++) {
        r = R[j]
        if (lcnt[r] > 0) {
            gm[r] = exp(lsum[r] / lcnt[r])
            v = sprintf("%.2f", gm[r]); if (lcnt[r] < np) v = v " (" lcnt[r] " of " np ")"
        } else v = "—"
        row = row " " v " |"
    }
    print row > md
    print "" > md
    # the JIT against the interpreter, Lua 5.4 and LuaJIT, per program
    nj = split("nanovm lua54 luajit", JB, " ")
    split("jit / interpreter\tjit / lua5.4\tjit / luajit", JL, "\t")
    print "## JIT ratios (lower is faster)" > md
    print "" > md
    print "| program | " JL[1] " | " JL[2] " | " JL[3] " |" > md
    print "|---|---|---|---|" > md
    for (i = 1; i <= np; i++) {
        row = "| " P[i] " |"
        kj = P[i] SUBSEP "nanojit"
        for (j = 1; j <= nj; j++) {
            kb = P[i] SUBSEP JB[j]
            v = "—"
            if (st[kj] == "ok" && st[kb] == "ok" && med[kb] > 0) {
                jr[kj, j] = med[kj] / med[kb]; jsum[j] += log(jr[kj, j]); jcnt[j]++
                v = sprintf("%.2f", jr[kj, j])
            }
            row = row " " v " |"
        }
        print row > md
    }
    row = "| geometric mean |"
    for (j = 1; j <= nj; j++) {
        if (jcnt[j] > 0) {
            jgm[j] = exp(jsum[j] / jcnt[j])
            v = sprintf("%.2f", jgm[j]); if (jcnt[j] < np) v = v " (" jcnt[j] " of " np ")"
        } else v = "—"
        row = row " " v " |"
    }
    print row > md
    print "" > md
    # the AOT tier against the C versions (programs that have one) and Lua 5.4
    na = split("nanoaot gcc\tnanoaotu gcc\tnanoaot lua54\tnanoaotu lua54", AP, "\t")
    print "## AOT ratios (lower is faster)" > md
    print "" > md
    print "| program | aot / gcc -O2 | aot unmetered / gcc -O2 | aot / lua5.4 | aot unmetered / lua5.4 |" > md
    print "|---|---|---|---|---|" > md
    for (i = 1; i <= np; i++) {
        if (st[P[i] SUBSEP "gcc"] != "ok") continue
        row = "| " P[i] " |"
        for (j = 1; j <= na; j++) {
            split(AP[j], ab, " ")
            ka = P[i] SUBSEP ab[1]; kb = P[i] SUBSEP ab[2]
            v = "—"
            if (st[ka] == "ok" && st[kb] == "ok" && med[kb] > 0) {
                x = med[ka] / med[kb]; asum[j] += log(x); acnt[j]++
                v = sprintf("%.2f", x)
            }
            row = row " " v " |"
        }
        print row > md
    }
    row = "| geometric mean |"
    for (j = 1; j <= na; j++)
        row = row " " (acnt[j] > 0 ? sprintf("%.2f", exp(asum[j] / acnt[j])) : "—") " |"
    print row > md
    print "" > md
    print "## Start-up (milliseconds, median of " su_runs ")" > md
    print "" > md
    print "| command | milliseconds | ratio to lua5.4 -e '\'''\'' |" > md
    print "|---|---|---|" > md
    printf "| lua5.4 -e '\'''\'' | %s | %s |\n", (su_lua == "" ? "—" : sprintf("%.2f", su_lua * 1000)),
        (su_lua == "" ? "—" : "1.00") > md
    sr = (su_nvm != "" && su_lua != "" && su_lua > 0) ? sprintf("%.2f", su_nvm / su_lua) : "—"
    printf "| nanovm run bench/hello.casm | %s | %s |\n",
        (su_nvm == "" ? "—" : sprintf("%.2f", su_nvm * 1000)), sr > md
    sr = (su_cap != "" && su_lua != "" && su_lua > 0) ? sprintf("%.2f", su_cap / su_lua) : "—"
    printf "| nanovm run hello.cap (signed, verified level, tier %s) | %s | %s |\n",
        (cap_tier == "" ? "?" : cap_tier), (su_cap == "" ? "—" : sprintf("%.2f", su_cap * 1000)),
        sr > md
    sr = (su_trust != "" && su_lua != "" && su_lua > 0) ? sprintf("%.2f", su_trust / su_lua) : "—"
    printf "| nanovm run trusted.cap (certificate chain, trusted level, tier %s, cached) | %s | %s |\n",
        (trust_tier == "" ? "?" : trust_tier),
        (su_trust == "" ? "—" : sprintf("%.2f", su_trust * 1000)), sr > md
    print "" > md
    print "## Peak RSS (MB, from /usr/bin/time)" > md
    print "" > md
    print head > md; print rule > md
    for (i = 1; i <= np; i++) {
        row = "| " P[i] " |"
        for (j = 1; j <= nr; j++) {
            k = P[i] SUBSEP R[j]
            row = row " " ((rss[k] != "") ? sprintf("%.1f", rss[k] / 1024) : "—") " |"
        }
        print row > md
    }

    # JSON
    print "{" > js
    printf "  \"date\": %s,\n  \"host\": %s,\n  \"runs\": %d,\n  \"timer\": %s,\n", jstr(date),
        jstr(host), runs, jstr(timer) > js
    printf "  \"all_outputs_match\": %s,\n", (status == 0 ? "true" : "false") > js
    printf "  \"runtimes\": {" > js
    for (j = 1; j <= nr; j++) printf "%s%s: %s", (j > 1 ? ", " : ""), jstr(R[j]), jstr(L[j]) > js
    print "}," > js
    print "  \"programs\": {" > js
    for (i = 1; i <= np; i++) {
        printf "    %s: {\n      \"line\": %s,\n      \"results\": {\n", jstr(P[i]), jstr(line[P[i]]) > js
        first = 1
        for (j = 1; j <= nr; j++) {
            k = P[i] SUBSEP R[j]
            if (!(k in st) || st[k] == "missing") continue
            printf "%s        %s: {\"status\": %s", (first ? "" : ",\n"), jstr(R[j]), jstr(st[k]) > js
            first = 0
            if (st[k] == "ok") {
                n = split(times[k], T, " "); ts = ""
                for (t = 1; t <= n; t++) ts = ts (t > 1 ? ", " : "") T[t]
                printf ", \"median_s\": %s, \"times_s\": [%s]", med[k], ts > js
                if (k in ratio) printf ", \"ratio_to_lua54\": %.6g", ratio[k] > js
            }
            if (rss[k] != "") printf ", \"peak_rss_kb\": %s", rss[k] > js
            printf "}" > js
        }
        printf "\n      }\n    }%s\n", (i < np ? "," : "") > js
    }
    print "  }," > js
    printf "  \"geomean_ratio_to_lua54\": {" > js
    first = 1
    for (j = 1; j <= nr; j++) if (R[j] in gm) {
        printf "%s%s: {\"value\": %.6g, \"programs\": %d}", (first ? "" : ", "), jstr(R[j]), gm[R[j]],
            lcnt[R[j]] > js
        first = 0
    }
    print "}," > js
    printf "  \"jit_ratios\": {" > js
    first = 1
    for (i = 1; i <= np; i++) {
        kj = P[i] SUBSEP "nanojit"
        if (!((kj, 1) in jr) && !((kj, 2) in jr) && !((kj, 3) in jr)) continue
        printf "%s%s: {", (first ? "" : ", "), jstr(P[i]) > js
        first = 0
        sep = ""
        for (j = 1; j <= nj; j++) if ((kj, j) in jr) {
            printf "%s\"to_%s\": %.6g", sep, JB[j], jr[kj, j] > js
            sep = ", "
        }
        printf "}" > js
    }
    print "}," > js
    printf "  \"jit_geomean\": {" > js
    sep = ""
    for (j = 1; j <= nj; j++) if (j in jgm) {
        printf "%s\"to_%s\": {\"value\": %.6g, \"programs\": %d}", sep, JB[j], jgm[j], jcnt[j] > js
        sep = ", "
    }
    print "}," > js
    printf "  \"startup\": {\"runs\": %d, \"nanovm_hello_s\": %s, \"lua54_empty_s\": %s, " \
        "\"nanovm_verified_capsule_s\": %s, \"verified_capsule_tier\": %s, " \
        "\"nanovm_trusted_capsule_s\": %s, \"trusted_capsule_tier\": %s}\n", su_runs,
        (su_nvm == "" ? "null" : su_nvm), (su_lua == "" ? "null" : su_lua),
        (su_cap == "" ? "null" : su_cap), (cap_tier == "" ? "null" : jstr(cap_tier)),
        (su_trust == "" ? "null" : su_trust), (trust_tier == "" ? "null" : jstr(trust_tier)) > js
    print "}" > js

    # gnuplot data: one row per program, one column per runtime, "-" where missing
    printf "program" > dat
    for (j = 1; j <= nr; j++) printf "\t%s", L[j] > dat
    printf "\n" > dat
    for (i = 1; i <= np; i++) {
        printf "%s", P[i] > dat
        for (j = 1; j <= nr; j++) {
            k = P[i] SUBSEP R[j]
            printf "\t%s", ((k in ratio) ? sprintf("%.6g", ratio[k]) : "-") > dat
        }
        printf "\n" > dat
    }
}' "$TMP/results.tsv"

if ! cp "$TMP/latest.md" "$TMP/latest.json" "$OUT/"; then die "cannot write to $OUT"; fi

if have gnuplot; then
    ncol=$(echo "$TABLE_ORDER" | wc -w)
    gnuplot <<EOF || echo "run.sh: gnuplot failed, no ratios.png" >&2
set terminal pngcairo size 1100,600 font ",10"
set output "$OUT/ratios.png"
set title "Wall time relative to Lua 5.4 (lower is faster), median of $RUNS runs"
set datafile separator "\t"
set datafile missing "-"
set linetype 9 lc rgb "#8c564b"
set linetype 10 lc rgb "#7f7f7f"
set linetype cycle 10
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set yrange [0.01:*]
set ytics ("0.01" 0.01, "0.03" 0.03, "0.1" 0.1, "0.3" 0.3, "1" 1, "3" 3, "10" 10, "30" 30, "100" 100)
set ylabel "ratio to lua5.4 (log scale)"
set grid ytics
set key outside right top
plot for [i=2:$((ncol + 1))] "$TMP/ratios.dat" using i:xtic(1) title columnheader(i)
EOF
fi

cat "$OUT/latest.md"
echo
echo "written: $OUT/latest.md $OUT/latest.json$(have gnuplot && echo " $OUT/ratios.png")" >&2
[ $status = 0 ] || echo "run.sh: FAILED: some output differed from lua5.4's (see !!! above)" >&2
exit $status

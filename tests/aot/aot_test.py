#!/usr/bin/env python3
"""aot_test.py - the AOT tier's cache end to end (python3, standard library only).

Checks: a first run compiles into the cache and later runs reuse it without starting the compiler;
a corrupted (tampered) cache entry is refused, the run falls back with an "aot.fallback" audit
record and still prints the right output, and the entry is rebuilt; a cache directory writable by
others is refused (fallback, output right, nothing written there); `nanovm aot --emit-c` writes C
that the system compiler accepts; `nanovm cache list|clear`; an object (one calling sqrt) links
against no library and leaves no symbol undefined, and loads and runs.
Exits 77 (skip) when the build has no AOT tier or there is no C compiler.
"""
import argparse
import glob
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile

PROG = """.func main
  push 20
  call fib
  cap_call "io.print" 1
  halt
.func fib
  store 0
  load 0
  push 2
  lt
  jz rec
  load 0
  ret
rec:
  load 0
  push 1
  sub
  call fib
  load 0
  push 2
  sub
  call fib
  add
  ret
"""
EXPECT = b'6765\n'
SQRT_PROG = """.func main
  push_f64 -2.0
  store 0
loop:
  load 0
  math_sqrt
  cap_call "io.print" 1
  load 0
  push_f64 1.5
  add
  store 0
  load 0
  push_f64 5.0
  lt
  jnz loop
  halt
"""
SQRT_EXPECT = b'NaN\nNaN\n1.0\n1.5811388300841898\n2.0\n'
failures = []


def check(cond, what):
    print(('ok   ' if cond else 'FAIL ') + what)
    if not cond:
        failures.append(what)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--nanovm', required=True)
    args = ap.parse_args()
    nvm = os.path.abspath(args.nanovm)
    cc = shutil.which(os.environ.get('CC', 'cc') or 'cc')
    if cc is None:
        print('SKIP: no C compiler')
        return 77
    work = tempfile.mkdtemp(prefix='nvm-aot-')
    try:
        prog = os.path.join(work, 'fib.casm')
        with open(prog, 'w') as f:
            f.write(PROG)
        cache = os.path.join(work, 'cache')
        # a compiler wrapper that logs each invocation
        log = os.path.join(work, 'cc.log')
        wrap = os.path.join(work, 'cc-wrap')
        with open(wrap, 'w') as f:
            f.write('#!/bin/sh\necho x >> %s\nexec %s "$@"\n' % (log, cc))
        os.chmod(wrap, 0o755)
        env = dict(os.environ, NVM_CACHE_DIR=cache, CC=wrap, NVM_AOT_OPT='-O1')

        def run(*extra, env_=None):
            return subprocess.run([nvm, 'run', '--tier', 'aot'] + list(extra) + [prog],
                                  env=env_ or env, capture_output=True, timeout=120)

        def ncc():
            return len(open(log).read().split()) if os.path.exists(log) else 0

        r = run()
        check(r.returncode == 0 and r.stdout == EXPECT, 'first run: right output')
        check(ncc() == 1, 'first run compiled once')
        mode = stat.S_IMODE(os.stat(cache).st_mode)
        check(mode == 0o700, 'cache directory is 0700 (got %o)' % mode)
        sos = glob.glob(os.path.join(cache, '*.so'))
        check(len(sos) == 1 and os.path.exists(sos[0][:-3] + '.sha256'), 'entry: KEY.so + KEY.sha256')
        r = run()
        check(r.returncode == 0 and r.stdout == EXPECT and ncc() == 1,
              'cached run: right output, compiler not started')

        # tampered entry: refused, fallback audited, output right, entry rebuilt
        so = sos[0]
        os.chmod(so, 0o600)
        with open(so, 'r+b') as f:
            f.seek(200)
            b = f.read(1)
            f.seek(200)
            f.write(bytes([b[0] ^ 0xFF]))
        os.chmod(so, 0o500)
        audit = os.path.join(work, 'audit.log')
        noc = dict(env, CC=os.path.join(work, 'no-such-cc'))
        r = subprocess.run([nvm, 'run', '--tier', 'aot', '--audit', audit, prog], env=noc,
                           capture_output=True, timeout=120)
        check(r.returncode == 0 and r.stdout == EXPECT, 'no compiler: fallback output right')
        recs = [json.loads(l) for l in open(audit)] if os.path.exists(audit) else []
        fb = [x for x in recs if x.get('event') == 'aot.fallback']
        check(len(fb) == 1 and 'compiler' in json.dumps(fb[0]), 'no compiler: aot.fallback audited')
        audit2 = os.path.join(work, 'audit2.log')
        r = subprocess.run([nvm, 'run', '--tier', 'aot', '--audit', audit2, prog], env=env,
                           capture_output=True, timeout=120)
        check(r.returncode == 0 and r.stdout == EXPECT, 'tampered entry: output right')
        check(ncc() == 2, 'tampered entry: refused and recompiled')
        # a tampered entry when no rebuild is possible: refused, fallback audited
        so = glob.glob(os.path.join(cache, '*.so'))[0]
        os.chmod(so, 0o600)
        with open(so, 'r+b') as f:
            f.seek(300)
            b = f.read(1)
            f.seek(300)
            f.write(bytes([b[0] ^ 0xFF]))
        os.chmod(so, 0o500)
        r = subprocess.run([nvm, 'aot', prog], env=dict(env, CC='/bin/false'), capture_output=True)
        check(r.returncode != 0 and b'hash mismatch' not in r.stdout, 'nanovm aot: tampered, /bin/false compiler: fails')

        # a cache directory writable by others is refused
        bad = os.path.join(work, 'badcache')
        os.mkdir(bad)
        os.chmod(bad, 0o777)
        audit3 = os.path.join(work, 'audit3.log')
        r = subprocess.run([nvm, 'run', '--tier', 'aot', '--audit', audit3, prog],
                           env=dict(env, NVM_CACHE_DIR=bad), capture_output=True, timeout=120)
        check(r.returncode == 0 and r.stdout == EXPECT, 'group/other-writable cache: output right')
        check(os.listdir(bad) == [], 'group/other-writable cache: nothing written')
        recs = [json.loads(l) for l in open(audit3)] if os.path.exists(audit3) else []
        check(any(x.get('event') == 'aot.fallback' and 'writable' in json.dumps(x) for x in recs),
              'group/other-writable cache: aot.fallback audited')
        r = subprocess.run([nvm, 'aot', prog], env=dict(env, NVM_CACHE_DIR=bad), capture_output=True)
        check(r.returncode != 0 and b'writable by group or others' in r.stderr,
              'nanovm aot refuses a writable cache')

        # --emit-c output compiles
        c = os.path.join(work, 'fib.c')
        r = subprocess.run([nvm, 'aot', '--emit-c', c, prog], env=env, capture_output=True)
        check(r.returncode == 0 and os.path.exists(c), 'aot --emit-c writes C')
        r = subprocess.run([cc, '-O1', '-fPIC', '-shared', '-o', os.path.join(work, 'fib.so'), c],
                           capture_output=True)
        check(r.returncode == 0, 'emitted C compiles')

        # cache list / clear
        r = subprocess.run([nvm, 'cache', 'list'], env=env, capture_output=True)
        check(r.returncode == 0 and b'1 entries' in r.stdout, 'cache list')
        r = subprocess.run([nvm, 'cache', 'clear'], env=env, capture_output=True)
        check(r.returncode == 0 and glob.glob(os.path.join(cache, '*')) == [], 'cache clear')

        # objects are self-contained (linked against nothing but libgcc, no symbol undefined),
        # so they load into a statically linked nanovm too; sqrt is the one libm call C would
        # otherwise make (for negative operands, to set errno)
        sq = os.path.join(work, 'sqrt.casm')
        with open(sq, 'w') as f:
            f.write(SQRT_PROG)
        senv = dict(env, NVM_CACHE_DIR=os.path.join(work, 'cache-sqrt'))
        ref = subprocess.run([nvm, 'run', sq], capture_output=True, timeout=120)
        for what in ('first', 'cached'):
            sa = os.path.join(work, 'sqrt-%s.log' % what)
            r = subprocess.run([nvm, 'run', '--tier', 'aot', '--audit', sa, sq], env=senv,
                               capture_output=True, timeout=120)
            recs = [json.loads(l) for l in open(sa)] if os.path.exists(sa) else []
            # an ASan build notes the AOT run's stack switch; nothing else may be said
            said = [l for l in r.stderr.splitlines()
                    if b"ASan doesn't fully support makecontext/swapcontext" not in l]
            check(r.returncode == 0 and r.stdout == SQRT_EXPECT == ref.stdout and said == []
                  and not any(x.get('event') == 'aot.fallback' for x in recs),
                  'sqrt, %s run: loaded and run on aot, output as the interpreter' % what)
        so = glob.glob(os.path.join(senv['NVM_CACHE_DIR'], '*.so'))
        readelf = shutil.which('readelf')
        if readelf is not None and len(so) == 1:
            d = subprocess.run([readelf, '-dW', '--dyn-syms', so[0]], capture_output=True,
                               text=True).stdout
            undef = [l for l in d.splitlines() if ' UND ' in l and ' WEAK ' not in l
                     and l.split()[-1] != 'UND']
            check('(NEEDED)' not in d and undef == [],
                  'object needs no library and no symbol: %s' % (undef or 'ok'))
        else:
            check(len(so) == 1, 'sqrt program cached')
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print('%d failed' % len(failures))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())

#!/usr/bin/env python3
"""gen_hostile.py - generates hostile inputs for NanoVM and runs them (python3, stdlib only).

Usage: gen_hostile.py --nanovm PATH [--jobs N] [--keep DIR] [--work DIR] [--quick] [--tier T]

Groups of inputs (all deterministic: fixed seeds):
  truncate   every prefix of a few valid .nvmb modules (made with `nanovm asm`)
  flip       2000 variants with 1-3 random bytes changed
  random     random bytes, with and without the NVMB magic
  jump       the operand of a JMP patched to every byte offset (mid-instruction included)
  count      every 4-byte window of a module overwritten with 0xFFFFFFFF (count fields)
  source     deep stacks, huge NEW_ARRAY counts, NUL bytes, invalid UTF-8, 1 MB lines, bad JSON

Each input is run with `nanovm run --gas 10000 --max-memory 16777216`. It passes when the exit
status is in the group's allowed set (3, or 0/1/5 where a mutated module legitimately loads
and runs), the process was not killed by a signal, did not exit 70, printed no sanitizer
report, and any exit 3 came with a "nanovm:" message. Ends with "N passed, M failed".
"""
import argparse
import concurrent.futures
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile

TIMEOUT = 60
RUN_FLAGS = ['--gas', '10000', '--max-memory', '16777216']
RUN_BIG = ['--gas', '100000000']  # big generated sources that must run to completion
LOADS_OR_NOT = {0, 1, 3, 5}
MARK = 0x1122334455667788

# Small programs covering every operand kind; the assembler turns them into the seed modules.
BASE_PROGRAMS = {
    'kinds': '''.func main
    PUSH 7
    PUSH_F64 2.5
    ADD
    STORE 0
    PUSH_BOOL true
    JZ skip
    PUSH_STR "value: "
    LOAD 0
    CAP_CALL "io.print" 2
skip:
    ENTER_TRY h
    PUSH 1
    PUSH 2
    NEW_ARRAY 2
    PICK 0
    ROLL 1
    POP
    PUSH -1
    ARR_GET
    CAST "str"
    CALL twice
    CAP_CALL "io.print" 1
    NEW_OBJ
    PUSH 3
    SET_FIELD "k"
    GET_FIELD "k"
    THROW
h:
    CAP_CALL "io.print" 1
    HALT
.func twice 1
    DUP
    ADD
    RET
''',
    'loop': '''.func main
    PUSH 0
    STORE 0
loop:
    LOAD 0
    PUSH 5
    GE
    JNZ done
    LOAD 0
    PUSH 1
    ADD
    STORE 0
    PUSH %d
    POP
    JMP loop
done:
    LOAD 0
    CAP_CALL "io.print" 1
    HALT
''' % MARK,
    'tiny': '''.func main
    PUSH_STR "hi"
    CAP_CALL "io.print" 1
    HALT
''',
}


class Variant:
    __slots__ = ('group', 'name', 'data', 'allowed', 'ext', 'stdout', 'flags')

    def __init__(self, group, name, data, allowed, ext='.nvmb', stdout=None, flags=None):
        self.group, self.name, self.data = group, name, data
        self.allowed, self.ext, self.stdout = allowed, ext, stdout
        self.flags = RUN_FLAGS if flags is None else flags


def run(cmd, timeout=TIMEOUT):
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
        return p.returncode, p.stdout, p.stderr.decode('utf-8', 'replace')
    except subprocess.TimeoutExpired as e:
        return None, e.stdout or b'', (e.stderr or b'').decode('utf-8', 'replace')


def assemble(nanovm, tmp):
    """Returns {name: bytes} of the seed modules and a list of problems."""
    mods, problems = {}, []
    for name, src in BASE_PROGRAMS.items():
        s = os.path.join(tmp, name + '.casm')
        o = os.path.join(tmp, name + '.nvmb')
        with open(s, 'w') as f:
            f.write(src)
        rc, _, err = run([nanovm, 'asm', s, '-o', o])
        if rc != 0 or not os.path.exists(o):
            problems.append('asm of seed program %s failed (exit %s): %s' % (name, rc, err.strip()))
            continue
        with open(o, 'rb') as f:
            mods[name] = f.read()
    return mods, problems


def gen_truncate(mods):
    for name, data in mods.items():
        for n in range(len(data)):
            yield Variant('truncate', '%s[:%d]' % (name, n), data[:n], {3})


def gen_flip(mods, count, rng):
    names = sorted(mods)
    for i in range(count):
        name = names[i % len(names)]
        b = bytearray(mods[name])
        for _ in range(rng.randint(1, 3)):
            pos = rng.randrange(len(b))
            b[pos] ^= rng.randint(1, 255)
        yield Variant('flip', '%s#%d' % (name, i), bytes(b), LOADS_OR_NOT)


def gen_random(count, rng):
    for i in range(count):
        n = rng.randint(0, 400)
        body = bytes(rng.randrange(256) for _ in range(n))
        if i % 2 == 0:
            # magic + a plausible version, then noise
            body = b'NVMB' + struct.pack('<HH', 1, rng.randrange(4)) + body
        yield Variant('random', 'random#%d' % i, body, LOADS_OR_NOT)


def gen_jump(mods):
    data = mods.get('loop')
    if data is None:
        return
    marker = b'\x01' + struct.pack('<q', MARK) + b'\x06' + b'\x38'  # PUSH MARK; POP; JMP
    at = data.find(marker)
    if at < 0:
        yield Variant('jump', 'marker-not-found', b'', set())  # no allowed status: fails
        return
    op = at + len(marker)  # offset of the JMP's u32 operand
    for target in list(range(0, 96)) + [0x7FFFFFFF, 0xFFFFFFFF, 0x80000000, 0x10000]:
        b = bytearray(data)
        b[op:op + 4] = struct.pack('<I', target)
        yield Variant('jump', 'loop-jmp->%d' % target, bytes(b), LOADS_OR_NOT)


def gen_count(mods):
    for name, data in mods.items():
        for i in range(0, len(data) - 3):
            b = bytearray(data)
            b[i:i + 4] = b'\xff\xff\xff\xff'
            yield Variant('count', '%s@%d=0xFFFFFFFF' % (name, i), bytes(b), LOADS_OR_NOT)


def gen_source(quick):
    pr = 'CAP_CALL "io.print" 1\n'
    n = 20000 if quick else 100000
    yield Variant('source', '%d PUSH then %d POP' % (n, n),
                  ('.func main\n' + 'PUSH 1\n' * n + 'POP\n' * n + 'PUSH_STR "ok"\n' + pr +
                   'HALT\n').encode(), {0}, '.casm', b'ok\n', RUN_BIG)
    # a function may hold at most 1,000,000 instructions: stay just below, then go above
    n = 100000 if quick else 999990
    yield Variant('source', '%d PUSH then NEW_ARRAY %d' % (n, n),
                  ('.func main\n' + 'PUSH 1\n' * n + 'NEW_ARRAY %d\nLEN\n' % n + pr +
                   'HALT\n').encode(), {0}, '.casm', b'%d\n' % n, RUN_BIG)
    if not quick:
        n = 1000000
        yield Variant('source', '%d PUSH then NEW_ARRAY %d' % (n, n),
                      ('.func main\n' + 'PUSH 1\n' * n + 'NEW_ARRAY %d\nLEN\n' % n + pr +
                       'HALT\n').encode(), {0, 3}, '.casm', b'%d\n' % n, RUN_BIG)
    yield Variant('source', 'NEW_ARRAY 1000000 on an empty stack',
                  b'.func main\nNEW_ARRAY 1000000\nHALT\n', {3}, '.casm')
    yield Variant('source', 'NEW_ARRAY 0xFFFFFFFF',
                  b'.func main\nNEW_ARRAY 0xFFFFFFFF\nHALT\n', {3}, '.casm')
    yield Variant('source', 'PICK 0xFFFFFFFF', b'.func main\nPUSH 1\nPICK 4294967295\nHALT\n',
                  {3}, '.casm')
    yield Variant('source', 'STORE 0xFFFFFFFF', b'.func main\nPUSH 1\nSTORE 4294967295\nHALT\n',
                  {0, 3, 5}, '.casm')
    yield Variant('source', 'MAKE_RANGE huge', b'.func main\nPUSH 0\nPUSH 9223372036854775807\n'
                  b'MAKE_RANGE\nHALT\n', {5}, '.casm')
    yield Variant('source', 'NUL inside a string',
                  b'.func main\nPUSH_STR "a\x00b"\nLEN\n' + pr.encode() + b'HALT\n', {3}, '.casm')
    yield Variant('source', 'NUL inside a mnemonic', b'.func main\nPU\x00SH 1\nHALT\n', {3}, '.casm')
    yield Variant('source', 'NUL first byte', b'\x00.func main\nHALT\n', {3}, '.casm')
    yield Variant('source', 'only NULs', b'\x00' * 4096, {3}, '.casm')
    yield Variant('source', 'invalid UTF-8 in a string',
                  b'.func main\nPUSH_STR "\xff\xfe\xc3"\nLEN\n' + pr.encode() + b'HALT\n',
                  {3}, '.casm')
    yield Variant('source', 'invalid UTF-8 mnemonic', b'.func main\n\xff\xfePUSH 1\nHALT\n', {3},
                  '.casm')
    yield Variant('source', 'invalid UTF-8 label', b'.func main\nJMP \xc3\x28\n\xc3\x28:\nHALT\n',
                  {3}, '.casm')
    yield Variant('source', 'invalid UTF-8 function name', b'.func \xff\xff\nHALT\n', {3},
                  '.casm')
    yield Variant('source', 'invalid UTF-8 in a comment', b'; \xff\xfe\xfd\n.func main\nHALT\n',
                  {3}, '.casm')
    mb = 1 << 20
    yield Variant('source', '1 MB string constant',
                  b'.func main\nPUSH_STR "' + b'a' * mb + b'"\nLEN\n' + pr.encode() + b'HALT\n',
                  {0}, '.casm', b'%d\n' % mb)
    yield Variant('source', '1 MB garbage line', b'.func main\n' + b'x' * mb + b'\nHALT\n', {3},
                  '.casm')
    yield Variant('source', '1 MB comment line', b'; ' + b'c' * mb + b'\n.func main\nHALT\n', {0},
                  '.casm')
    yield Variant('source', '1 MB label', b'.func main\nJMP ' + b'L' * mb + b'\n' + b'L' * mb +
                  b':\nHALT\n', {0, 3}, '.casm')
    yield Variant('source', '1 MB function name', b'.func main\nCALL ' + b'f' * mb + b'\nHALT\n.func '
                  + b'f' * mb + b'\nPUSH_NULL\nRET\n', {0, 3}, '.casm')
    yield Variant('source', '1 MB integer', b'.func main\nPUSH ' + b'9' * mb + b'\nHALT\n', {3},
                  '.casm')
    yield Variant('source', '1 MB of zeros then 1', b'.func main\nPUSH ' + b'0' * mb + b'1\n' +
                  pr.encode() + b'HALT\n', {0, 3}, '.casm')
    yield Variant('source', 'unterminated string at EOF', b'.func main\nPUSH_STR "abc', {3}, '.casm')
    yield Variant('source', 'backslash at EOF', b'.func main\nPUSH_STR "abc\\', {3}, '.casm')
    yield Variant('source', '100000 labels on one line',
                  b'.func main\n' + b''.join(b'l%d: ' % i for i in range(100000)) + b'HALT\n',
                  {0, 3}, '.casm')
    yield Variant('source', '10000 functions calling the next',
                  b'.func main\nCALL f0\nHALT\n' + b''.join(
                      b'.func f%d\nCALL f%d\nRET\n' % (i, i + 1) for i in range(9999)) +
                  b'.func f9999\nPUSH 1\nRET\n', {0}, '.casm', None, RUN_BIG)
    yield Variant('json', 'deeply nested JSON', b'[' * 200000 + b']' * 200000, {3}, '.json')
    yield Variant('json', 'truncated JSON', b'{"version":"1.0","functions":{"main":{"body":[{"op":',
                  {3}, '.json')
    yield Variant('json', 'huge jump target',
                  b'{"version":"1.0","functions":{"main":{"body":[{"op":"jmp","target":'
                  b'99999999999999999999}]}}}', {3}, '.json')
    yield Variant('json', 'negative count',
                  b'{"version":"1.0","functions":{"main":{"body":[{"op":"new_array","n":-1},'
                  b'{"op":"halt"}]}}}', {3}, '.json')
    yield Variant('json', 'body is not a list',
                  b'{"version":"1.0","functions":{"main":{"body":7}}}', {3}, '.json')
    yield Variant('json', 'NUL in JSON string',
                  b'{"version":"1.0","functions":{"ma\\u0000in":{"body":[{"op":"halt"}]}}}',
                  {0, 3}, '.json')


TIER_FLAGS = []  # set from --tier


def check(nanovm, tmp, idx, v):
    path = os.path.join(tmp, 'v%06d%s' % (idx, v.ext))
    with open(path, 'wb') as f:
        f.write(v.data)
    rc, out, err = run([nanovm, 'run'] + TIER_FLAGS + v.flags + [path])
    problems = []
    if rc is None:
        problems.append('timed out after %d s' % TIMEOUT)
    elif rc < 0:
        problems.append('killed by signal %d' % -rc)
    elif rc == 70:
        problems.append('internal error (exit 70)')
    elif rc not in v.allowed:
        problems.append('exit status %d, allowed %s' % (rc, sorted(v.allowed)))
    if 'Sanitizer' in err or 'runtime error:' in err:
        problems.append('sanitizer report')
    if rc == 3 and not err.startswith('nanovm:'):
        problems.append('exit 3 without a "nanovm:" message')
    if rc == 0 and v.stdout is not None and out != v.stdout:
        problems.append('stdout %r, expected %r' % (out[:80], v.stdout[:80]))
    if not problems:
        os.unlink(path)
    return rc, problems, path, err


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--nanovm', required=True)
    ap.add_argument('--jobs', type=int, default=os.cpu_count() or 2)
    ap.add_argument('--keep', metavar='DIR', help='copy failing inputs here')
    ap.add_argument('--quick', action='store_true', help='fewer and smaller inputs')
    ap.add_argument('--tier', help='run every input on this tier (nanovm run --tier T)')
    ap.add_argument('--flips', type=int, default=2000)
    ap.add_argument('--work', metavar='DIR',
                    help='write the inputs in a new directory under DIR (created) instead of the '
                    'system temporary directory; kept when an input failed')
    args = ap.parse_args()
    if args.tier:
        TIER_FLAGS[:] = ['--tier', args.tier]
        probe = subprocess.run([args.nanovm, 'run', '--tier', args.tier, os.devnull],
                               capture_output=True, text=True)
        if 'not available in this build' in probe.stderr:
            print('SKIP: tier %s is not in this build' % args.tier)
            return 77
    nanovm = os.path.abspath(args.nanovm)
    rng = random.Random(0x4E564D)

    if args.work:
        os.makedirs(args.work, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix='run-', dir=args.work)
    else:
        tmp = tempfile.mkdtemp(prefix='nvm-hostile-')
    passed = failed = 0
    try:
        mods, problems = assemble(nanovm, tmp)
        for p in problems:
            print('FAIL seed: ' + p)
            failed += 1
        variants = []
        variants += gen_truncate(mods)
        variants += gen_flip(mods, 200 if args.quick else args.flips, rng) if mods else []
        variants += gen_random(100, rng)
        variants += gen_jump(mods)
        variants += gen_count(mods)
        variants += gen_source(args.quick)

        stats = {}
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
            futs = [(v, ex.submit(check, nanovm, tmp, i, v)) for i, v in enumerate(variants)]
            for v, fut in futs:
                rc, problems, path, err = fut.result()
                g = stats.setdefault(v.group, {})
                g[rc] = g.get(rc, 0) + 1
                if problems:
                    failed += 1
                    kept = path
                    if args.keep:
                        os.makedirs(args.keep, exist_ok=True)
                        kept = os.path.join(args.keep, os.path.basename(path))
                        shutil.copyfile(path, kept)
                    print('FAIL %s %s (input %s): %s' % (v.group, v.name, kept, '; '.join(problems)))
                    for line in err.strip().splitlines()[:6]:
                        print('    ' + line)
                else:
                    passed += 1
        for g in sorted(stats):
            print('  %-9s exit statuses: %s' % (g, ', '.join(
                '%s x%d' % (k, n) for k, n in sorted(stats[g].items(), key=lambda kv: str(kv[0])))))
    finally:
        if not args.keep and not (args.work and failed):
            shutil.rmtree(tmp, ignore_errors=True)
    print('%d passed, %d failed' % (passed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())

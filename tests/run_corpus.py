#!/usr/bin/env python3
"""run_corpus.py - runs NanoVM's data-driven test corpus (python3, standard library only).

Case files (see tests/programs/):
  X.casm  directives in its leading comment lines:  ; @exit N   ; @stderr TEXT   ; @flags ...
          ; @stdin LINE   (each may repeat except @exit); expected stdout in X.out (absent = empty)
  X.json  same directives, without ';', in the sidecar X.json.meta; expected stdout in X.out

Modes (may be combined in one invocation):
  DIR...            run every case under DIR: exact stdout, exit status, stderr substrings
  --roundtrip       for the DIR cases instead: every case that loads (expected exit != 3) must
                    survive asm -> disasm -> asm with byte-identical bytecode, and running the
                    bytecode must give the same stdout and exit status as running the source
                    (--asm-flags passes extra options to both `nanovm asm` steps)
  --upstream DIR    upstream programs with X.expected (an expected text starting with ERROR
                    means exit 3 and stdout is not compared)
  --reject DIR      every file must be rejected: exit 3 and a "nanovm:" message on stderr

--tier T runs every case on execution tier T (`nanovm run --tier T`): same expectations, so the
output, errors and exit statuses of every tier must be identical. A tier the binary was built
without (the JIT off x86-64 or with -DNVM_NO_JIT=ON) prints a SKIP line and exits 77 (CTest's
SKIP_RETURN_CODE).

Every run also fails on a crash (signal), exit 70, or sanitizer output on stderr.
Ends with the line "N passed, M failed" (", K skipped" when any); exits 1 when any failed.
"""
import argparse
import concurrent.futures
import difflib
import functools
import os
import platform
import shlex
import subprocess
import sys
import tempfile

TIMEOUT = 60
SKIP_EXIT = 77


def tier_built(nanovm, tier):
    """Whether this nanovm build has `tier` (it says "not available in this build" otherwise)."""
    import subprocess, tempfile, os
    with tempfile.NamedTemporaryFile("w", suffix=".casm", delete=False) as f:
        f.write(".func main\n    HALT\n")
        path = f.name
    try:
        r = subprocess.run([nanovm, "run", "--tier", tier, path], capture_output=True, text=True)
    finally:
        os.unlink(path)
    return "not available in this build" not in r.stderr

CASE_EXTS = ('.casm', '.json')
UPSTREAM_SKIP = {}
# Upstream programs that need capabilities: extra `nanovm run` options (a policy whose sandboxed
# ceiling has fs.exists, and the grant for the current directory, where the program looks).
CAPS_POLICY = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'caps', 'fs_policy.json')
UPSTREAM_FLAGS = {
    'guide_examples_08_host_caps.casm':
        lambda: ['--policy', CAPS_POLICY, '--allow', 'fs.exists:%s/**' % os.getcwd()],
}


class Case:
    def __init__(self, path):
        self.path = path
        self.name = path
        self.exit = 0
        self.stderr = []
        self.flags = []
        self.stdin = None
        self.stdout = b''
        self.parse()

    def parse(self):
        if self.path.endswith('.json'):
            meta = self.path + '.meta'
            lines = []
            if os.path.exists(meta):
                with open(meta, encoding='utf-8') as f:
                    lines = f.read().splitlines()
            self.apply(lines, prefix='')
        else:
            with open(self.path, 'rb') as f:
                text = f.read().decode('utf-8', errors='replace')
            head = []
            for line in text.splitlines():
                s = line.strip()
                if s == '':
                    continue
                if not (s.startswith(';') or s.startswith('#')):
                    break
                head.append(s[1:].strip())
            self.apply(head, prefix='')
        out = os.path.splitext(self.path)[0] + '.out'
        if os.path.exists(out):
            with open(out, 'rb') as f:
                self.stdout = f.read()

    def apply(self, lines, prefix):
        stdin_lines = []
        for line in lines:
            s = line.strip()
            if not s.startswith('@'):
                continue
            key, _, val = s.partition(' ')
            if key == '@exit':
                self.exit = int(val.strip())
            elif key == '@stderr':
                self.stderr.append(val.strip())
            elif key == '@flags':
                self.flags += shlex.split(val)
            elif key == '@stdin':
                stdin_lines.append(val)
        if stdin_lines:
            self.stdin = ''.join(s + '\n' for s in stdin_lines).encode('utf-8')


def run(cmd, stdin=None, timeout=TIMEOUT):
    """Returns (exit status or None on timeout, stdout bytes, stderr text)."""
    try:
        p = subprocess.run(cmd, input=stdin if stdin is not None else b'',
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return None, e.stdout or b'', (e.stderr or b'').decode('utf-8', 'replace')
    return p.returncode, p.stdout, p.stderr.decode('utf-8', 'replace')


def health_problem(rc, err):
    """A crash, an internal error or a sanitizer report fails every kind of case."""
    if rc is None:
        return 'timed out after %d s' % TIMEOUT
    if rc < 0:
        return 'killed by signal %d' % -rc
    if rc == 70:
        return 'internal error (exit 70)'
    if 'Sanitizer' in err or 'runtime error:' in err:
        return 'sanitizer report'
    return None


def show(data):
    if isinstance(data, bytes):
        data = data.decode('utf-8', 'replace')
    return data.splitlines(keepends=True)


def stdout_diff(expected, got):
    lines = difflib.unified_diff(show(expected), show(got), 'expected stdout', 'actual stdout',
                                 lineterm='')
    return ''.join(l if l.endswith('\n') else l + '\n' for l in lines)


def check_case(nanovm, extra, case):
    cmd = [nanovm, 'run'] + extra + case.flags + [case.path]
    rc, out, err = run(cmd, case.stdin)
    problems = []
    h = health_problem(rc, err)
    if h:
        problems.append(h)
    if rc != case.exit:
        problems.append('exit status %s, expected %d' % (rc, case.exit))
    if out != case.stdout:
        problems.append('stdout differs:\n' + stdout_diff(case.stdout, out))
    for s in case.stderr:
        if s not in err:
            problems.append('stderr lacks %r' % s)
    return problems, cmd, err


def check_roundtrip(nanovm, extra, case, asm_flags=()):
    if case.exit == 3:
        return None, None, ''
    with tempfile.TemporaryDirectory(prefix='nvm-rt-') as d:
        a = os.path.join(d, 'a.nvmb')
        b = os.path.join(d, 'b.casm')
        c = os.path.join(d, 'c.nvmb')
        cmd = [nanovm, 'asm'] + list(asm_flags) + [case.path, '-o', a]
        rc, _, err = run(cmd)
        if rc != 0:
            return ['asm failed (exit %s): %s' % (rc, err.strip())], cmd, err
        cmd = [nanovm, 'disasm', a]
        rc, text, err = run(cmd)
        if rc != 0:
            return ['disasm failed (exit %s): %s' % (rc, err.strip())], cmd, err
        with open(b, 'wb') as f:
            f.write(text)
        cmd = [nanovm, 'asm'] + list(asm_flags) + [b, '-o', c]
        rc, _, err = run(cmd)
        if rc != 0:
            return ['re-assembling the disassembly failed (exit %s): %s' % (rc, err.strip())], cmd, err
        with open(a, 'rb') as f:
            abytes = f.read()
        with open(c, 'rb') as f:
            cbytes = f.read()
        problems = []
        if abytes != cbytes:
            first = next((i for i in range(min(len(abytes), len(cbytes)))
                          if abytes[i] != cbytes[i]), min(len(abytes), len(cbytes)))
            hint = ''
            if run([nanovm, 'disasm', c])[1] == text:
                hint = '; both disassemble to the same text (line table?)'
            problems.append('bytecode differs after asm -> disasm -> asm (%d vs %d bytes, first '
                            'difference at byte %d%s)' % (len(abytes), len(cbytes), first, hint))
        src = run([nanovm, 'run'] + extra + case.flags + [case.path], case.stdin)
        cmd = [nanovm, 'run'] + extra + case.flags + [a]
        bc = run(cmd, case.stdin)
        for r in (src, bc):
            h = health_problem(r[0], r[2])
            if h:
                problems.append(h)
        if src[0] != bc[0]:
            problems.append('exit status: source %s, bytecode %s' % (src[0], bc[0]))
        if src[1] != bc[1]:
            problems.append('stdout of bytecode differs from source:\n' + stdout_diff(src[1], bc[1]))
        return problems, cmd, bc[2]


def check_upstream(nanovm, extra, path):
    with open(path + '.expected', 'rb') as f:
        expected = f.read()
    flags = UPSTREAM_FLAGS.get(os.path.basename(path))
    cmd = [nanovm, 'run'] + extra + (flags() if flags else []) + [path]
    rc, out, err = run(cmd)
    problems = []
    h = health_problem(rc, err)
    if h:
        problems.append(h)
    if expected.startswith(b'ERROR'):
        if rc != 3:
            problems.append('exit status %s, expected 3 (upstream says: %s)'
                            % (rc, expected.decode('utf-8', 'replace').strip()))
        if not err.startswith('nanovm:'):
            problems.append('no "nanovm:" message on stderr')
    else:
        if rc != 0:
            problems.append('exit status %s, expected 0' % rc)
        if out != expected:
            problems.append('stdout differs:\n' + stdout_diff(expected, out))
    return problems, cmd, err


def check_reject(nanovm, extra, path):
    cmd = [nanovm, 'run'] + extra + [path]
    rc, _, err = run(cmd)
    problems = []
    h = health_problem(rc, err)
    if h:
        problems.append(h)
    if rc != 3:
        problems.append('exit status %s, expected 3' % rc)
    if not err.startswith('nanovm:'):
        problems.append('no "nanovm:" message on stderr')
    return problems, cmd, err


def find_cases(d):
    found = []
    for root, _, files in os.walk(d):
        for f in files:
            if f.endswith(CASE_EXTS):
                found.append(os.path.join(root, f))
    return sorted(found)


def find_upstream(d):
    return sorted(os.path.join(d, f) for f in os.listdir(d)
                  if not f.endswith('.expected') and os.path.exists(os.path.join(d, f + '.expected')))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--nanovm', required=True, help='path of the nanovm binary')
    ap.add_argument('--flags', default='', help='extra flags for every "nanovm run"')
    ap.add_argument('--tier', help='run every case on this tier (nanovm run --tier TIER)')
    ap.add_argument('--roundtrip', action='store_true', help='asm/disasm round trips instead')
    ap.add_argument('--asm-flags', default='', help='extra flags for "nanovm asm" (round trips)')
    ap.add_argument('--upstream', action='append', default=[], metavar='DIR')
    ap.add_argument('--reject', action='append', default=[], metavar='DIR')
    ap.add_argument('--jobs', type=int, default=2)
    ap.add_argument('dirs', nargs='*', metavar='DIR')
    # "--flags --gc-stress": glue option values that start with "-" so argparse accepts them
    argv, i = [], 1
    while i < len(sys.argv):
        if sys.argv[i] in ('--flags', '--asm-flags') and i + 1 < len(sys.argv):
            argv.append(sys.argv[i] + '=' + sys.argv[i + 1])
            i += 2
        else:
            argv.append(sys.argv[i])
            i += 1
    args = ap.parse_args(argv)
    nanovm = os.path.abspath(args.nanovm)
    extra = shlex.split(args.flags)
    if args.tier:
        if not tier_built(nanovm, args.tier):
            print('SKIP: tier %s is not in this build (%s)' % (args.tier, platform.machine()))
            return SKIP_EXIT
        extra = ['--tier', args.tier] + extra
    asm_flags = shlex.split(args.asm_flags)

    jobs = []  # (name, function, argument) ; function returns (problems or None, cmd, stderr)
    skipped = []
    for d in args.dirs:
        for path in find_cases(d):
            c = Case(path)
            if args.roundtrip:
                jobs.append((path, functools.partial(check_roundtrip, asm_flags=asm_flags), c))
            else:
                jobs.append((path, check_case, c))
    for d in args.upstream:
        for path in find_upstream(d):
            reason = UPSTREAM_SKIP.get(os.path.basename(path))
            if reason:
                skipped.append((path, reason))
            else:
                jobs.append((path, check_upstream, path))
    for d in args.reject:
        for path in sorted(os.path.join(d, f) for f in os.listdir(d)):
            if os.path.isfile(path):
                jobs.append((path, check_reject, path))

    passed = failed = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
        futures = [(name, ex.submit(fn, nanovm, extra, arg)) for name, fn, arg in jobs]
        for name, fut in futures:
            try:
                problems, cmd, err = fut.result()
            except Exception as e:  # a broken case file counts as a failure
                problems, cmd, err = ['runner error: %r' % e], None, ''
            if problems is None:
                skipped.append((name, 'does not load (expected exit 3)'))
                continue
            if problems:
                failed += 1
                print('FAIL %s' % name)
                if cmd:
                    print('  command: %s' % ' '.join(shlex.quote(c) for c in cmd))
                for p in problems:
                    print('  ' + p.rstrip('\n').replace('\n', '\n    '))
                if err.strip():
                    tail = err.strip().splitlines()[:8]
                    print('  stderr: ' + '\n          '.join(tail))
            else:
                passed += 1
    for name, reason in skipped:
        if not args.roundtrip or 'expected exit 3' not in reason:
            print('SKIP %s (%s)' % (name, reason))
    line = '%d passed, %d failed' % (passed, failed)
    if skipped:
        line += ', %d skipped' % len(skipped)
    print(line)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())

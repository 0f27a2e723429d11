#!/usr/bin/env python3
"""difffuzz.py --nanovm PATH [--seed S] [--count N] - differential fuzzing of two execution tiers
(python3, standard library only).

Generates random CASM programs that the verifier accepts (every statement leaves the stack as it
found it, so heights agree wherever paths merge) and runs each with `nanovm run --tier A` and
`--tier B` (default interp and jit), comparing standard output, standard error, exit status and
the gas used (`--gas-report`). A third of the programs run again on both tiers with a `--gas`
limit drawn below what the program needs, so that both must stop at the same instruction.

The programs mix ints (near-overflow values included), floats (NaN, infinities, -0.0), bools,
null, strings, arrays and maps; GET_FIELD/SET_FIELD and the map operations; frame slots (and now
and then a slot never written); nested bounded loops (JZ and JNZ back-edges); calls with
arguments, recursion (and rarely one deep enough to hit the depth limit); ENTER_TRY/EXIT_TRY/
THROW, with throws out of callees; type errors, overflow and division by zero, caught and
uncaught; comparisons; PICK/ROLL/SWAP/ROT/DUP; io.print and io.eprint.

Program I of seed S is the same on every machine (`--only I` reruns it). A mismatch writes the
program, shrunk by deleting statements while the mismatch persists, and both runs' results to
OUT/difffuzz-S-I.casm (`--out`, default the current directory). A program the verifier rejects
is a generator bug and fails the same way. Exits 0 when every program agreed, 1 otherwise, 77 when
a tier is not in this build (the JIT off x86-64 or with -DNVM_NO_JIT=ON).
"""
import argparse
import concurrent.futures
import os
import platform
import random
import re
import subprocess
import sys
import tempfile

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
TIMEOUT = 20
GHOST = "%GHOST%"  # stands for the function's never-written slot until it is known
INT_EXTREMES = [9223372036854775807, -9223372036854775808, 9223372036854775806,
                -9223372036854775807, 4611686018427387904, -4611686018427387904,
                3037000499, -3037000500, 4294967296, 2147483647, -2147483648, -1, 0, 1]
FLOATS = ["0.0", "-0.0", "0.5", "-2.25", "1.0", "3.0", "1e300", "-1e300", "1e-7", "2.5e-07",
          "nan", "inf", "-inf", "123.456", "0.1", "9007199254740993.0", "-7.5"]
STRINGS = ['""', '"a"', '"abc"', '"Hello"', '"x\\ty"', '"line\\n"', '"\\x41\\x42"', '"12"',
           '"3.5"', '"-7"', '"true"', '" sp "', '"\\xc3\\xbcn\\xc3\\xafc\\xc3\\xb6de"', '"a,b,c"',
           '"ABCdef"', '"k"', '","', '"\\""', '"\\\\"']
FIELDS = ["k", "x", "y", "name", "n0"]
TYPES = ["int", "float", "bool", "str", "arr", "map", "null"]
VALUE_TYPES = ["int", "int", "int", "float", "bool", "str", "str", "arr", "map"]


# ---- program representation: blocks of statements that are stack-neutral ----

class Leaf:
    """Straight-line code (no labels)."""

    def __init__(self, lines):
        self.lines = lines

    def blocks(self):
        return []

    def render(self, r):
        r.out.extend(self.lines)


class If:
    def __init__(self, cond, jnz, then, other):
        self.cond, self.jnz, self.then, self.other = cond, jnz, then, other

    def blocks(self):
        return [self.then, self.other]

    def render(self, r):
        l_else, l_end = r.label("else"), r.label("endif")
        r.out.extend(self.cond)
        r.out.append(("JNZ " if self.jnz else "JZ ") + l_else)
        r.block(self.then)
        r.out.append("JMP " + l_end)
        r.out.append(l_else + ":")
        r.block(self.other)
        r.out.append(l_end + ":")


class Loop:
    """A counted loop on a slot of its own: `while` tests at the top (JZ out), `do` at the bottom
    (JNZ back). The counter only grows, so that a throw to a handler left installed in the body
    (a Try without EXIT_TRY) cannot make the loop run again from an earlier count."""

    def __init__(self, slot, start, bound, body, do):
        self.slot, self.start, self.bound, self.body, self.do = slot, start, bound, body, do

    def blocks(self):
        return [self.body]

    def render(self, r):
        top, end = r.label("loop"), r.label("done")
        s = str(self.slot)
        r.out += ["PUSH %d" % self.start, "STORE " + s, top + ":"]
        if not self.do:
            r.out += ["LOAD " + s, "PUSH %d" % self.bound, "LT", "JZ " + end]
            r.block(self.body)
            r.out += ["LOAD " + s, "PUSH 1", "ADD", "STORE " + s, "JMP " + top, end + ":"]
        else:
            r.block(self.body)
            r.out += ["LOAD " + s, "PUSH 1", "ADD", "DUP", "STORE " + s, "PUSH %d" % self.bound,
                      "LT", "JNZ " + top]


class Try:
    """ENTER_TRY h; body; EXIT_TRY; JMP end; h: handler (thrown value on the stack); end."""

    def __init__(self, body, handler, skip_exit):
        self.body, self.handler, self.skip_exit = body, handler, skip_exit

    def blocks(self):
        return [self.body]

    def render(self, r):
        h, end = r.label("catch"), r.label("endtry")
        r.out.append("ENTER_TRY " + h)
        r.block(self.body)
        if not self.skip_exit:
            r.out.append("EXIT_TRY")
        r.out.append("JMP " + end)
        r.out.append(h + ":")
        r.out.extend(self.handler)
        r.out.append(end + ":")


class Keep:
    """A value pushed before a block and consumed after it: it stays in a stack slot across the
    block's loops, calls and throws."""

    def __init__(self, expr, body, tail):
        self.expr, self.body, self.tail = expr, body, tail

    def blocks(self):
        return [self.body]

    def render(self, r):
        r.out.extend(self.expr)
        r.block(self.body)
        r.out.extend(self.tail)


class Func:
    def __init__(self, name, argtypes, rettype):
        self.name, self.argtypes, self.rettype = name, argtypes, rettype
        self.prologue = []
        self.body = []
        self.epilogue = []
        self.ghost = 0


class Renderer:
    def __init__(self):
        self.out = []
        self.n = 0

    def label(self, kind):
        self.n += 1
        return "%s_%d" % (kind, self.n)

    def block(self, stmts):
        for s in stmts:
            s.render(self)


def render(funcs):
    r = Renderer()
    for f in funcs:
        r.out.append(".func %s %d" % (f.name, len(f.argtypes)))
        start = len(r.out)
        r.out.extend(f.prologue)
        r.block(f.body)
        r.out.extend(f.epilogue)
        r.out[start:] = [x.replace(GHOST, str(f.ghost)) for x in r.out[start:]]
    lines = []
    for line in r.out:
        lines.append(line if line.endswith(":") or line.startswith(".") else "    " + line)
    return "\n".join(lines) + "\n"


# ---- the generator ----

class Ctx:
    """One function being generated: its slots (each with a fixed type), loop counters, the
    functions it may call."""

    def __init__(self, fn, slot_types, callees, is_main):
        self.fn = fn
        self.slot_types = slot_types  # slot -> type; args first
        self.callees = callees
        self.is_main = is_main
        self.next_counter = len(slot_types)  # loop counters: one slot per loop, never reused
        self.loop_depth = 0
        self.loop_work = 1  # product of the enclosing loops' trip counts
        self.try_depth = 0


class Gen:
    def __init__(self, rng):
        self.rng = rng
        self.budget = 0

    def chance(self, p):
        return self.rng.random() < p

    def pick(self, seq):
        return self.rng.choice(seq)

    # -- literals --
    def int_lit(self, small=False):
        r = self.rng.random()
        if small or r < 0.55:
            return self.rng.randint(-10, 10)
        if r < 0.8:
            return self.rng.randint(-1000, 1000)
        return self.pick(INT_EXTREMES)

    def lit(self, ty):
        if ty == "int":
            return ["PUSH %d" % self.int_lit()]
        if ty == "float":
            if self.chance(0.5):
                return ["PUSH_F64 " + self.pick(FLOATS)]
            return ["PUSH_F64 " + repr(round(self.rng.uniform(-100, 100), self.rng.randint(0, 4)))]
        if ty == "bool":
            return ["PUSH_BOOL " + self.pick(["true", "false"])]
        if ty == "str":
            return ["PUSH_STR " + self.pick(STRINGS)]
        if ty == "null":
            return ["PUSH_NULL"]
        if ty == "arr":
            n = self.rng.randint(0, 3)
            out = []
            for _ in range(n):
                out += self.lit(self.pick(["int", "str", "float", "bool", "null"]))
            return out + ["NEW_ARRAY %d" % n]
        if ty == "map":
            out = ["NEW_OBJ"]
            for _ in range(self.rng.randint(0, 2)):
                out += self.lit(self.pick(["int", "str", "null"]))
                out.append('SET_FIELD "%s"' % self.pick(FIELDS))
            return out
        return self.lit(self.pick(TYPES))

    # -- expressions: each pushes exactly one value --
    def expr(self, c, ty, depth=0, small=False):
        """Code that pushes one value of type ty ("num": int or float, "any": anything). Now and
        then (a few per cent) a value of another type, so that type errors happen. `small`:
        nothing that can be large (no loads of strings, arrays or maps, no calls)."""
        self.budget -= 1
        if ty == "num":
            ty = self.pick(["int", "int", "float"])
        if ty == "any":
            ty = self.pick(TYPES)
        if self.chance(0.01):
            ty = self.pick(TYPES)  # deliberately ill-typed
        if depth >= 4 or self.budget <= 0 or self.chance(0.25 + 0.15 * depth):
            return self.leaf(c, ty, small)
        f = getattr(self, "e_" + ty)
        return f(c, depth + 1, small)

    def leaf(self, c, ty, small):
        slots = [s for s, t in c.slot_types.items() if t == ty and
                 (not small or ty in ("int", "float", "bool", "null"))]
        if slots and self.chance(0.5):
            return ["LOAD %d" % self.pick(slots)]
        if self.chance(0.01):
            return ["LOAD " + GHOST]  # never written: an error
        return self.lit(ty)

    def call(self, c, ty, depth):
        cands = [f for f in c.callees if f.rettype == ty or ty == "any"]
        if not cands:
            return None
        f = self.pick(cands)
        if f.name == "rec":  # rec(n, acc) with a small n
            return self.expr(c, "int", depth + 1) + ["PUSH %d" % self.rng.randint(-1, 12),
                                                     "CALL rec"]
        out = []
        for t in reversed(f.argtypes):  # the last argument is pushed first
            out += self.expr(c, t, depth + 1)
        return out + ["CALL " + f.name]

    def shuffle(self, c, ty, ops, depth, small):
        """A stack shuffle (SWAP, ROT, DUP, PICK, ROLL) over values of one type, reduced to one
        value with binary operators of that type."""
        kind = self.pick(["SWAP", "ROT", "DUP", "PICK", "ROLL"])
        n = {"SWAP": 2, "ROT": 3, "DUP": 1}.get(kind, self.rng.randint(1, 4))
        out = []
        for _ in range(n):
            out += self.expr(c, ty, depth + 1, small)
        if kind in ("SWAP", "ROT", "DUP"):
            out.append(kind)
            extra = 1 if kind == "DUP" else 0
        elif kind == "PICK":
            out.append("PICK %d" % self.rng.randint(0, n - 1))
            extra = 1
        else:
            out.append("ROLL %d" % self.rng.randint(0, n - 1))
            extra = 0
        for _ in range(n - 1 + extra):
            out.append(self.pick(ops))
        return out

    def e_int(self, c, d, small):
        r = self.rng.random()
        if r < 0.35:
            op = self.pick(["ADD", "SUB", "MUL", "ADD", "SUB", "DIV", "MOD", "BITAND", "BITOR",
                            "BITXOR"])
            return self.expr(c, "int", d, small) + self.expr(c, "int", d, small) + [op]
        if r < 0.42:
            sh = self.rng.randint(-1, 64) if self.chance(0.1) else self.rng.randint(0, 62)
            return self.expr(c, "int", d, small) + ["PUSH %d" % sh, self.pick(["SHL", "SHR"])]
        if r < 0.48:
            return self.expr(c, "int", d, small) + [self.pick(["NEG", "BITNOT"])]
        if r < 0.56:
            return self.shuffle(c, "int", ["ADD", "SUB", "MUL", "BITXOR"], d, small)
        if r < 0.62:
            return self.expr(c, self.pick(["str", "arr", "map"]), d, small) + \
                [self.pick(["LEN", "ARR_LEN"])]
        if r < 0.68:
            src = self.pick(["float", "bool", "str", "int"])
            return self.expr(c, src, d, small) + ['CAST "int"']
        if r < 0.72:
            return self.expr(c, "str", d, small) + self.expr(c, "str", d, small) + ["STR_FIND"]
        if r < 0.75:
            return self.expr(c, "str", d, small) + ["PUSH %d" % self.rng.randint(-1, 5),
                                                    "STR_ORD"]
        if r < 0.80:
            return self.expr(c, "arr", d, small) + ["PUSH %d" % self.rng.randint(-3, 3),
                                                    "ARR_GET"] + \
                (['CAST "int"'] if self.chance(0.5) else [])
        if not small and r < 0.92:
            code = self.call(c, "int", d)
            if code:
                return code
        return self.lit("int")

    def e_float(self, c, d, small):
        r = self.rng.random()
        if r < 0.4:
            op = self.pick(["ADD", "SUB", "MUL", "DIV", "MOD"])
            a, b = self.pick([("float", "num"), ("num", "float"), ("float", "float")])
            return self.expr(c, a, d, small) + self.expr(c, b, d, small) + [op]
        if r < 0.55:
            fn = self.pick(["MATH_SQRT", "MATH_ABS", "MATH_ROUND", "MATH_FLOOR", "MATH_CEIL"])
            return self.expr(c, "num", d, small) + [fn]
        if r < 0.62:
            return self.expr(c, "num", d, small) + self.expr(c, "num", d, small) + ["MATH_POW"]
        if r < 0.7:
            return self.expr(c, self.pick(["int", "str", "float"]), d, small) + ['CAST "float"']
        if r < 0.78:
            return self.expr(c, "float", d, small) + ["NEG"]
        if r < 0.85:
            return self.shuffle(c, "float", ["ADD", "SUB", "MUL"], d, small)
        if not small and r < 0.93:
            code = self.call(c, "float", d)
            if code:
                return code
        return self.lit("float")

    def e_bool(self, c, d, small):
        r = self.rng.random()
        if r < 0.3:
            a = self.pick(["num", "num", "str"])
            op = self.pick(["LT", "LE", "GT", "GE"])
            return self.expr(c, a, d, small) + self.expr(c, a, d, small) + [op]
        if r < 0.5:
            t = self.pick(["any", "int", "num", "str"])
            return self.expr(c, t, d, small) + self.expr(c, t, d, small) + \
                [self.pick(["EQ", "NE"])]
        if r < 0.62:
            return self.expr(c, "any", d, small) + self.expr(c, "any", d, small) + \
                [self.pick(["AND", "OR"])]
        if r < 0.7:
            return self.expr(c, "any", d, small) + ["NOT"]
        if r < 0.76:
            key = self.pick(['PUSH_STR "%s"' % self.pick(FIELDS), "PUSH %d" % self.int_lit(True)])
            return self.expr(c, "map", d, small) + [key, "MAP_HAS"]
        if r < 0.84:
            op = self.pick(["STR_CONTAINS", "STR_STARTS_WITH", "STR_ENDS_WITH"])
            return self.expr(c, "str", d, small) + self.expr(c, "str", d, small) + [op]
        if r < 0.88:
            return self.expr(c, "any", d, small) + ['CAST "bool"']
        if r < 0.92:
            return self.shuffle(c, "bool", ["AND", "OR", "EQ", "NE"], d, small)
        if not small and r < 0.96:
            code = self.call(c, "bool", d)
            if code:
                return code
        return self.lit("bool")

    def e_str(self, c, d, small):
        r = self.rng.random()
        if r < 0.25:
            if self.chance(0.5):
                return self.expr(c, "str", d, small) + self.expr(c, "any", d, True) + ["ADD"]
            return self.expr(c, "str", d, True) + self.expr(c, "any", d, True) + ["SWAP", "ADD"]
        if r < 0.35:
            return self.expr(c, "any", d, small) + ['CAST "str"']
        if r < 0.42:
            return self.expr(c, "any", d, small) + ["TYPEOF"]
        if r < 0.52:
            op = self.pick(["STR_TO_UPPER", "STR_TO_LOWER", "STR_TRIM"])
            return self.expr(c, "str", d, small) + [op]
        if r < 0.58:
            a, b = sorted([self.rng.randint(-1, 4), self.rng.randint(0, 5)])
            return self.expr(c, "str", d, small) + ["PUSH %d" % a, "PUSH %d" % b, "STR_SUB"]
        if r < 0.63:
            return self.expr(c, "str", d, small) + \
                ["PUSH_STR " + self.pick(['"a"', '"b"', '","', '"l"', '"a"', '"b"', '""']),
                 "PUSH_STR " + self.pick(['"Z"', '""', '"-"'])] + ["STR_REPLACE"]
        if r < 0.68:
            return ["PUSH %d" % self.rng.randint(-2, 260), "STR_CHR"]
        if r < 0.74:
            return self.expr(c, "arr", d, small) + ["PUSH_STR " + self.pick(['","', '""', '"-"']),
                                                    "STR_JOIN"]
        if r < 0.79:
            return self.expr(c, "num", d, small) + ["PUSH %d" % self.rng.randint(-1, 22),
                                                    "STR_FMT_FIXED"]
        if r < 0.84:
            return self.expr(c, "map", d, small) + ['GET_FIELD "%s"' % self.pick(FIELDS),
                                                    'CAST "str"']
        if r < 0.88:
            return self.shuffle(c, "str", ["ADD"], d, True)
        if not small and r < 0.94:
            code = self.call(c, "str", d)
            if code:
                return code
        return self.lit("str")

    def e_arr(self, c, d, small):
        r = self.rng.random()
        if r < 0.3:
            n = self.rng.randint(0, 4)
            out = []
            for _ in range(n):
                out += self.expr(c, "any", d, True)
            return out + ["NEW_ARRAY %d" % n]
        if r < 0.45:
            # bools often: an array made by NEW_ARRAY 0 stores bools as bytes until another
            # value comes (heap.h)
            return self.expr(c, "arr", d, small) + self.expr(c, self.pick(["any", "bool"]), d,
                                                             True) + ["ARR_PUSH"]
        if r < 0.55:
            return self.expr(c, "arr", d, small) + ["PUSH %d" % self.rng.randint(-3, 3)] + \
                self.expr(c, self.pick(["any", "bool"]), d, True) + ["ARR_SET"]
        if r < 0.63:
            a = self.rng.randint(-3, 5)
            return ["PUSH %d" % a, "PUSH %d" % (a + self.rng.randint(-1, 6)), "MAKE_RANGE"]
        if r < 0.7:
            return self.expr(c, "str", d, small) + \
                ["PUSH_STR " + self.pick(['","', '""', '"b"']), "STR_SPLIT"]
        if r < 0.77:
            return self.expr(c, "map", d, small) + ["MAP_KEYS"]
        if not small and r < 0.85:
            code = self.call(c, "arr", d)
            if code:
                return code
        return self.lit("arr")

    def e_map(self, c, d, small):
        r = self.rng.random()
        if r < 0.3:
            return self.expr(c, "map", d, small) + self.expr(c, "any", d, True) + \
                ['SET_FIELD "%s"' % self.pick(FIELDS)]
        if r < 0.5:
            key = self.pick(['PUSH_STR "%s"' % self.pick(FIELDS), "PUSH %d" % self.int_lit(True)])
            return self.expr(c, "map", d, small) + [key] + self.expr(c, "any", d, True) + \
                ["MAP_SET"]
        if r < 0.6:
            key = self.pick(['PUSH_STR "%s"' % self.pick(FIELDS), "PUSH %d" % self.int_lit(True)])
            return self.expr(c, "map", d, small) + [key, "MAP_DEL"]
        if not small and r < 0.7:
            code = self.call(c, "map", d)
            if code:
                return code
        return self.lit("map")

    def e_null(self, c, d, small):
        r = self.rng.random()
        if r < 0.3:
            return self.expr(c, "map", d, small) + ['GET_FIELD "zz"']
        if r < 0.5:
            return self.expr(c, "map", d, small) + ["PUSH 999", "MAP_GET"]
        return ["PUSH_NULL"]

    def any_value(self, c, d=0):
        """A value of any type, through the map and array readers too."""
        r = self.rng.random()
        if r < 0.1:
            return self.expr(c, "map", d) + ['GET_FIELD "%s"' % self.pick(FIELDS)]
        if r < 0.15:
            key = self.pick(['PUSH_STR "%s"' % self.pick(FIELDS), "PUSH %d" % self.int_lit(True)])
            return self.expr(c, "map", d) + [key, "MAP_GET"]
        if r < 0.2:
            return self.expr(c, "arr", d) + ["ARR_POP"]
        return self.expr(c, "any", d)

    # -- statements --
    def block(self, c, depth, n):
        return [self.stmt(c, depth) for _ in range(n)]

    def stmt(self, c, depth):
        self.budget = 40
        r = self.rng.random()
        compound = depth < 3
        if r < 0.22:
            n = self.rng.randint(1, 3) if self.chance(0.2) else 1
            out = []
            for _ in range(n):
                out += self.any_value(c)
            cap = "io.eprint" if self.chance(0.08) else "io.print"
            return Leaf(out + ['CAP_CALL "%s" %d' % (cap, n)])
        if r < 0.4:
            slot = self.pick(list(c.slot_types))
            return Leaf(self.expr(c, c.slot_types[slot]) + ["STORE %d" % slot])
        if r < 0.45:
            return Leaf(self.any_value(c) + ["POP"])
        if r < 0.5:
            slots = [s for s, t in c.slot_types.items() if t in ("arr", "map")]
            if slots:
                s = self.pick(slots)
                if c.slot_types[s] == "arr":
                    return Leaf(["LOAD %d" % s] + self.expr(c, self.pick(["any", "bool"]), 0, True) +
                                ["ARR_PUSH", "POP"])
                return Leaf(["LOAD %d" % s] + self.expr(c, "any", 0, True) +
                            ['SET_FIELD "%s"' % self.pick(FIELDS), "POP"])
        if compound and r < 0.6:
            cond = self.expr(c, self.pick(["bool", "bool", "any"]))
            return If(cond, self.chance(0.3), self.block(c, depth + 1, self.rng.randint(1, 3)),
                      self.block(c, depth + 1, self.rng.randint(0, 2)))
        if compound and r < 0.7 and c.loop_depth < 3 and c.loop_work < 100:
            # mostly short loops; now and then a long one (a hot loop for a tier that compiles
            # after a count)
            trips = self.rng.randint(0, 4) if c.loop_work > 4 or self.chance(0.7) else \
                self.rng.randint(10, 300 // c.loop_work)
            start = self.rng.randint(-1, 1)
            slot = c.next_counter
            c.next_counter += 1
            c.loop_depth += 1
            saved = c.loop_work
            c.loop_work *= max(1, trips - start)
            body = self.block(c, depth + 1, self.rng.randint(1, 4))
            c.loop_depth -= 1
            c.loop_work = saved
            return Loop(slot, start, start + trips, body, self.chance(0.35))
        if compound and r < 0.8:
            c.try_depth += 1
            body = self.block(c, depth + 1, self.rng.randint(1, 4))
            c.try_depth -= 1
            k = self.rng.random()
            if k < 0.6:
                handler = ['PUSH_STR "caught: "', "SWAP", "ADD", 'CAP_CALL "io.print" 1']
            elif k < 0.8:
                handler = ["TYPEOF", 'CAP_CALL "io.print" 1']
            elif k < 0.95 or c.try_depth == 0:
                handler = ["POP"]
            else:
                handler = ["THROW"]  # rethrow to the enclosing handler
            return Try(body, handler, self.chance(0.03))
        if compound and r < 0.85:
            body = self.block(c, depth + 1, self.rng.randint(1, 3))
            tail = self.expr(c, "any") + [self.pick(["SWAP", "NOP"]), "NEW_ARRAY 2",
                                          'CAP_CALL "io.print" 1']
            return Keep(self.any_value(c), body, tail)
        if r < 0.88:
            code = self.call(c, "any", 0)
            if code:
                return Leaf(code + (['CAP_CALL "io.print" 1'] if self.chance(0.6) else ["POP"]))
        if r < 0.91 and (c.try_depth > 0 or self.chance(0.15)):
            return Leaf(self.any_value(c) + ["THROW"])
        if r < 0.93 and self.chance(0.2 if c.try_depth > 0 else 0.03):
            return Leaf(["EXIT_TRY"])
        if r < 0.95 and not c.is_main:
            return Leaf(self.expr(c, c.fn.rettype) + ["RET"])
        if r < 0.96 and c.is_main and self.chance(0.3):
            return Leaf(self.pick([["HALT"], self.any_value(c) + ["RET"]]))
        if r < 0.97 and self.chance(0.05):
            # a recursion deep enough for the call-depth limit (exit 5)
            rec = [f for f in c.callees if f.name == "rec"]
            if rec:
                return Leaf(["PUSH 0", "PUSH %d" % self.rng.randint(100001, 150000), "CALL rec",
                             "POP"])
        return Leaf(self.any_value(c) + ['CAP_CALL "io.print" 1'])

    def prologue(self, c, nargs):
        out = ["STORE %d" % i for i in range(nargs)]
        for s, t in c.slot_types.items():
            if s >= nargs:
                out += self.lit(t)
                out.append("STORE %d" % s)
        return out

    def program(self):
        funcs = []
        # rec(n, acc): the last argument (acc) is pushed first
        rec = Func("rec", ["int", "int"], "int")
        nhelpers = self.rng.randint(0, 4)
        helpers = []
        for i in range(nhelpers):
            args = [self.pick(VALUE_TYPES) for _ in range(self.rng.randint(0, 3))]
            helpers.append(Func("f%d" % i, args, self.pick(VALUE_TYPES)))
        main = Func("main", [], "int")
        # rec
        c = Ctx(rec, {0: "int", 1: "int", 2: self.pick(VALUE_TYPES)}, [], False)
        rec.prologue = self.prologue(c, 2)
        self.budget = 10
        step = self.expr(c, "int", 2)
        base = Leaf(["LOAD 0", "PUSH 0", "LE", "JZ rec_more", "LOAD 1", "RET", "rec_more:"])
        rec.body = [base] + (self.block(c, 3, self.rng.randint(0, 2)) if self.chance(0.5) else [])
        rec.epilogue = ["LOAD 1"] + step + ["ADD", "LOAD 0", "PUSH 1", "SUB", "CALL rec", "RET"]
        rec.ghost = c.next_counter
        # helpers call lower-numbered helpers and rec
        for i, f in enumerate(helpers):
            slots = {k: t for k, t in enumerate(f.argtypes)}
            for k in range(self.rng.randint(1, 3)):
                slots[len(slots)] = self.pick(VALUE_TYPES)
            c = Ctx(f, slots, helpers[:i] + [rec], False)
            c.loop_work = 8  # keeps the work of calls in loops bounded
            f.prologue = self.prologue(c, len(f.argtypes))
            f.body = self.block(c, 1, self.rng.randint(1, 4))
            self.budget = 30
            if self.chance(0.1):
                f.epilogue = []  # falls off its end: returns null
            else:
                f.epilogue = self.expr(c, f.rettype) + ["RET"]
            f.ghost = c.next_counter
        slots = {k: self.pick(VALUE_TYPES) for k in range(self.rng.randint(2, 6))}
        c = Ctx(main, slots, helpers + [rec], True)
        main.prologue = self.prologue(c, 0)
        main.body = []
        for _ in range(self.rng.randint(4, 14)):
            st = self.stmt(c, 0)
            if self.chance(0.4):  # more programs live to their end
                st = Try([st], ['PUSH_STR "main caught: "', "SWAP", "ADD",
                                'CAP_CALL "io.print" 1'], False)
            main.body.append(st)
        main.epilogue = self.pick([["HALT"], ["HALT"], ["PUSH 0", "RET"], []])
        main.ghost = c.next_counter
        funcs = [main] + helpers + [rec]
        return funcs


# ---- running and comparing ----

GAS_RE = re.compile(r"^gas used: (-?\d+)$", re.M)


def run(nanovm, tier, path, gas=None):
    cmd = [nanovm, "run", "--tier", tier, "--gas-report"]
    if gas is not None:
        cmd += ["--gas", str(gas)]
    cmd.append(path)
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=TIMEOUT)
        res = (p.returncode, p.stdout, p.stderr.decode("utf-8", "replace"))
    except subprocess.TimeoutExpired:
        res = (None, b"", "timed out after %d s" % TIMEOUT)
    m = GAS_RE.search(res[2])
    return {"cmd": " ".join(cmd), "exit": res[0], "stdout": res[1], "stderr": res[2],
            "gas": int(m.group(1)) if m else None}


def differ(a, b):
    """The fields in which two runs differ (empty when they agree)."""
    return [k for k in ("exit", "stdout", "stderr", "gas") if a[k] != b[k]]


def health(res):
    if res["exit"] is None:
        return "timed out"
    if res["exit"] < 0:
        return "killed by signal %d" % -res["exit"]
    if res["exit"] == 70:
        return "internal error (exit 70)"
    if "Sanitizer" in res["stderr"] or "runtime error:" in res["stderr"]:
        return "sanitizer report"
    return None


class Checker:
    def __init__(self, args):
        self.a = args

    def check_text(self, text, path, gas_rng):
        """None when the tiers agree, else (kind, details). kind: 'reject' (the verifier refused
        the program), 'mismatch', or 'health'."""
        with open(path, "w") as f:
            f.write(text)
        ra = run(self.a.nanovm, self.a.tier_a, path)
        if ra["exit"] == 3:
            return ("reject", [ra])
        if ra["exit"] is None:
            return ("runaway", [ra])  # a generator bug too: programs are meant to end
        rb = run(self.a.nanovm, self.a.tier_b, path)
        bad = [h for h in (health(ra), health(rb)) if h]
        if bad:
            return ("health: " + "; ".join(bad), [ra, rb])
        if differ(ra, rb):
            return ("mismatch", [ra, rb])
        if gas_rng is not None and ra["gas"]:
            limit = gas_rng.randint(0, ra["gas"])
            ga = run(self.a.nanovm, self.a.tier_a, path, limit)
            gb = run(self.a.nanovm, self.a.tier_b, path, limit)
            bad = [h for h in (health(ga), health(gb)) if h]
            if bad:
                return ("health: " + "; ".join(bad), [ga, gb])
            if differ(ga, gb):
                return ("mismatch with --gas %d" % limit, [ga, gb])
        return None


def shrink(checker, funcs, kind, path, gas_seed):
    """Deletes statements (anywhere in any function), or replaces a compound statement by one of
    its blocks, while the same kind of failure persists."""
    def positions():
        out = []

        def walk(block):
            for i in range(len(block)):
                out.append((block, i))
                for b in block[i].blocks():
                    walk(b)
        for f in funcs:
            walk(f.body)
        return out

    def same(text):
        r = checker.check_text(text, path, random.Random(gas_seed) if gas_seed else None)
        return r is not None and r[0].split(" ")[0] == kind.split(" ")[0]

    changed = True
    rounds = 0
    while changed and rounds < 8:
        changed = False
        rounds += 1
        for block, i in reversed(positions()):
            if i >= len(block):
                continue
            saved = block[i]
            for repl in [[]] + saved.blocks():
                block[i:i + 1] = repl
                if same(render(funcs)):
                    changed = True
                    break
                block[i:i + len(repl)] = [saved]
    return render(funcs)


def describe(res):
    out = ["; command: " + res["cmd"], "; exit: %s, gas used: %s" % (res["exit"], res["gas"])]
    for line in res["stdout"].decode("utf-8", "replace").splitlines()[:40]:
        out.append("; stdout| " + line)
    for line in res["stderr"].splitlines()[:40]:
        out.append("; stderr| " + line)
    return out


def one(args, checker, work, i):
    seed = args.seed * 1000003 + i
    rng = random.Random(seed)
    gen = Gen(rng)
    funcs = gen.program()
    text = render(funcs)
    use_gas = rng.random() < 1 / 3
    gas_seed = seed + 7 if use_gas else None
    path = os.path.join(work, "p%d.casm" % i)
    r = checker.check_text(text, path, random.Random(gas_seed) if use_gas else None)
    if r is None:
        return None
    kind, runs = r
    if not args.no_shrink and kind not in ("reject", "runaway"):
        text = shrink(checker, funcs, kind, os.path.join(work, "s%d.casm" % i), gas_seed)
        again = checker.check_text(text, path, random.Random(gas_seed) if use_gas else None)
        if again is not None:
            kind, runs = again
    out = os.path.join(args.out, "difffuzz-%d-%d.casm" % (args.seed, i))
    head = ["; difffuzz --seed %d --only %d: %s (tiers %s and %s)" %
            (args.seed, i, kind, args.tier_a, args.tier_b)]
    for res in runs:
        head += describe(res)
    with open(out, "w") as f:
        f.write("\n".join(head) + "\n" + text)
    return "program %d: %s; written to %s" % (i, kind, out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nanovm", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--only", type=int, help="run only program I of the seed")
    ap.add_argument("--tier-a", default="interp", help="reference tier (default interp)")
    ap.add_argument("--tier-b", default="jit", help="tier under test (default jit)")
    ap.add_argument("--out", default=".", help="where failing programs are written")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--no-shrink", action="store_true")
    ap.add_argument("--print", action="store_true", help="print the programs, run nothing")
    args = ap.parse_args()
    args.nanovm = os.path.abspath(args.nanovm)
    os.makedirs(args.out, exist_ok=True)
    idx = [args.only] if args.only is not None else list(range(args.count))
    if args.print:
        for i in idx:
            print("; program %d" % i)
            print(render(Gen(random.Random(args.seed * 1000003 + i)).program()))
        return 0
    for t in (args.tier_a, args.tier_b):
        if not tier_built(args.nanovm, t):
            print("SKIP: no %s tier in this build (%s)" % (t, platform.machine()))
            return SKIP_EXIT
    checker = Checker(args)
    failures = []
    with tempfile.TemporaryDirectory(prefix="nvm-difffuzz-") as work:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
            for res in ex.map(lambda i: one(args, checker, work, i), idx):
                if res:
                    failures.append(res)
                    print("FAIL " + res, flush=True)
    print("%d programs, %d agreed, %d failed (seed %d, tiers %s and %s)" %
          (len(idx), len(idx) - len(failures), len(failures), args.seed, args.tier_a,
           args.tier_b))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

/* x64.h - a small x86-64 machine-code emitter for the JIT: a growable byte buffer, labels with
 * rel32 fixups, and the instruction forms the compiler uses (integer ALU, SSE2 scalar doubles,
 * memory operands [base + disp]).
 *
 * Invariants: a buffer that failed to grow has `oom` set and ignores further writes (the compiler
 * checks once at the end); a label is bound at most once; every fixup names a label that is
 * bound before nvm_x64_link runs.
 */
#ifndef NVM_X64_H
#define NVM_X64_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { RAX = 0, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13, R14, R15 };
enum { XMM0 = 0, XMM1, XMM2, XMM3, XMM4, XMM5, XMM6, XMM7 };

/* condition codes (the low nibble of Jcc / SETcc) */
enum {
    CC_O = 0x0,
    CC_NO = 0x1,
    CC_B = 0x2,
    CC_AE = 0x3,
    CC_E = 0x4,
    CC_NE = 0x5,
    CC_BE = 0x6,
    CC_A = 0x7,
    CC_S = 0x8,
    CC_NS = 0x9,
    CC_P = 0xA,
    CC_NP = 0xB,
    CC_L = 0xC,
    CC_GE = 0xD,
    CC_LE = 0xE,
    CC_G = 0xF
};

typedef struct x64_fix {
    uint32_t pos;   /* offset of the rel32 field */
    uint32_t label; /* target */
    uint8_t buf;    /* buffer holding the rel32 (0 hot, 1 cold) */
} x64_fix;

typedef struct x64_buf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
} x64_buf;

typedef struct x64_asm {
    x64_buf b[2];    /* hot code, cold stubs (appended after the hot code) */
    int cur;         /* buffer being written */
    int64_t *labels; /* label -> (buffer << 40 | offset), or -1 while unbound */
    uint32_t nlabels, labels_cap;
    x64_fix *fix;
    uint32_t nfix, fix_cap;
    bool oom;
} x64_asm;

static inline void x64_byte(x64_asm *a, uint8_t v)
{
    x64_buf *b = &a->b[a->cur];
    if (b->len == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 4096;
        uint8_t *q = realloc(b->p, nc);
        if (q == NULL) {
            a->oom = true;
            return;
        }
        b->p = q;
        b->cap = nc;
    }
    b->p[b->len++] = v;
}
static inline void x64_u32(x64_asm *a, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        x64_byte(a, (uint8_t)(v >> (8 * i)));
}
static inline void x64_u64(x64_asm *a, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        x64_byte(a, (uint8_t)(v >> (8 * i)));
}

static inline uint32_t x64_label(x64_asm *a)
{
    if (a->nlabels == a->labels_cap) {
        uint32_t nc = a->labels_cap ? a->labels_cap * 2 : 256;
        int64_t *q = realloc(a->labels, sizeof *q * nc);
        if (q == NULL) {
            a->oom = true;
            return 0;
        }
        a->labels = q;
        a->labels_cap = nc;
    }
    a->labels[a->nlabels] = -1;
    return a->nlabels++;
}
static inline void x64_bind(x64_asm *a, uint32_t l)
{
    if (l < a->nlabels)
        a->labels[l] = ((int64_t)a->cur << 40) | (int64_t)a->b[a->cur].len;
}
static inline bool x64_bound(const x64_asm *a, uint32_t l)
{
    return l < a->nlabels && a->labels[l] >= 0;
}
static inline void x64_rel32(x64_asm *a, uint32_t l)
{
    if (a->nfix == a->fix_cap) {
        uint32_t nc = a->fix_cap ? a->fix_cap * 2 : 1024;
        x64_fix *q = realloc(a->fix, sizeof *q * nc);
        if (q == NULL) {
            a->oom = true;
            return;
        }
        a->fix = q;
        a->fix_cap = nc;
    }
    a->fix[a->nfix++] = (x64_fix){(uint32_t)a->b[a->cur].len, l, (uint8_t)a->cur};
    x64_u32(a, 0);
}

/* REX prefix for (reg, rm/base) with W; `force` emits it even when empty (byte registers). */
static inline void x64_rex(x64_asm *a, int w, int reg, int rm, bool force)
{
    uint8_t r = (uint8_t)(0x40 | (w ? 8 : 0) | ((reg & 8) ? 4 : 0) | ((rm & 8) ? 1 : 0));
    if (r != 0x40 || force)
        x64_byte(a, r);
}
/* ModRM for [base + disp] (disp8 or disp32; SIB for RSP/R12 bases). */
static inline void x64_mem(x64_asm *a, int reg, int base, int32_t disp)
{
    int mod = disp == 0 && (base & 7) != RBP ? 0 : (disp >= -128 && disp <= 127 ? 1 : 2);
    x64_byte(a, (uint8_t)((mod << 6) | ((reg & 7) << 3) | (base & 7)));
    if ((base & 7) == RSP)
        x64_byte(a, 0x24);
    if (mod == 1)
        x64_byte(a, (uint8_t)(int8_t)disp);
    else if (mod == 2)
        x64_u32(a, (uint32_t)disp);
}
static inline void x64_modrr(x64_asm *a, int reg, int rm)
{
    x64_byte(a, (uint8_t)(0xC0 | ((reg & 7) << 3) | (rm & 7)));
}

/* op r, [base+disp] / op [base+disp], r with one opcode byte */
static inline void x64_op_rm(x64_asm *a, int w, uint8_t op, int reg, int base, int32_t disp)
{
    x64_rex(a, w, reg, base, false);
    x64_byte(a, op);
    x64_mem(a, reg, base, disp);
}
static inline void x64_op_rr(x64_asm *a, int w, uint8_t op, int reg, int rm)
{
    x64_rex(a, w, reg, rm, false);
    x64_byte(a, op);
    x64_modrr(a, reg, rm);
}

/* ---- moves ---- */
static inline void mov_rr(x64_asm *a, int dst, int src)
{
    if (dst != src)
        x64_op_rr(a, 1, 0x89, src, dst);
}
static inline void mov_rm(x64_asm *a, int dst, int base, int32_t disp) /* 64-bit load */
{
    x64_op_rm(a, 1, 0x8B, dst, base, disp);
}
static inline void mov_mr(x64_asm *a, int base, int32_t disp, int src) /* 64-bit store */
{
    x64_op_rm(a, 1, 0x89, src, base, disp);
}
static inline void mov32_rm(x64_asm *a, int dst, int base, int32_t disp)
{
    x64_op_rm(a, 0, 0x8B, dst, base, disp);
}
static inline void mov32_mr(x64_asm *a, int base, int32_t disp, int src)
{
    x64_op_rm(a, 0, 0x89, src, base, disp);
}
static inline void mov32_mi(x64_asm *a, int base, int32_t disp, uint32_t imm)
{
    x64_op_rm(a, 0, 0xC7, 0, base, disp);
    x64_u32(a, imm);
}
static inline void mov64_mi(x64_asm *a, int base, int32_t disp, int32_t imm) /* sign-extended */
{
    x64_op_rm(a, 1, 0xC7, 0, base, disp);
    x64_u32(a, (uint32_t)imm);
}
static inline void mov_ri(x64_asm *a, int dst, int64_t imm)
{
    if (imm >= 0 && imm <= 0xFFFFFFFFll) { /* mov r32, imm32 zero-extends */
        x64_rex(a, 0, 0, dst, false);
        x64_byte(a, (uint8_t)(0xB8 + (dst & 7)));
        x64_u32(a, (uint32_t)imm);
    } else if (imm >= INT32_MIN && imm <= INT32_MAX) {
        x64_rex(a, 1, 0, dst, false);
        x64_byte(a, 0xC7);
        x64_modrr(a, 0, dst);
        x64_u32(a, (uint32_t)imm);
    } else {
        x64_rex(a, 1, 0, dst, false);
        x64_byte(a, (uint8_t)(0xB8 + (dst & 7)));
        x64_u64(a, (uint64_t)imm);
    }
}
static inline void lea(x64_asm *a, int dst, int base, int32_t disp)
{
    x64_op_rm(a, 1, 0x8D, dst, base, disp);
}

/* lea r, [r + r*4] (r not RBP or R13, which need a displacement as a base) */
static inline void lea_x5(x64_asm *a, int r)
{
    x64_byte(a, (uint8_t)(0x48 | ((r & 8) ? 4 : 0) | ((r & 8) ? 2 : 0) | ((r & 8) ? 1 : 0)));
    x64_byte(a, 0x8D);
    x64_byte(a, (uint8_t)(((r & 7) << 3) | 4));
    x64_byte(a, (uint8_t)((2 << 6) | ((r & 7) << 3) | (r & 7)));
}

/* ---- integer ALU: op is the /digit of 0x81 and (op << 3 | 1) the r/m,r form ---- */
enum { ALU_ADD = 0, ALU_OR = 1, ALU_AND = 4, ALU_SUB = 5, ALU_XOR = 6, ALU_CMP = 7 };
static inline void alu_rr(x64_asm *a, int op, int dst, int src)
{
    x64_op_rr(a, 1, (uint8_t)(op << 3 | 1), src, dst);
}
static inline void alu_rm(x64_asm *a, int op, int dst, int base, int32_t disp)
{
    x64_op_rm(a, 1, (uint8_t)(op << 3 | 3), dst, base, disp);
}
static inline void alu_ri(x64_asm *a, int op, int dst, int32_t imm)
{
    x64_rex(a, 1, 0, dst, false);
    if (imm >= -128 && imm <= 127) {
        x64_byte(a, 0x83);
        x64_modrr(a, op, dst);
        x64_byte(a, (uint8_t)(int8_t)imm);
    } else {
        x64_byte(a, 0x81);
        x64_modrr(a, op, dst);
        x64_u32(a, (uint32_t)imm);
    }
}
/* 32-bit op on memory with an immediate (cmp dword [m], imm ...) */
static inline void alu32_mi(x64_asm *a, int op, int base, int32_t disp, int32_t imm)
{
    if (imm >= -128 && imm <= 127) {
        x64_op_rm(a, 0, 0x83, op, base, disp);
        x64_byte(a, (uint8_t)(int8_t)imm);
    } else {
        x64_op_rm(a, 0, 0x81, op, base, disp);
        x64_u32(a, (uint32_t)imm);
    }
}
static inline void cmp8_mi(x64_asm *a, int base, int32_t disp, uint8_t imm) /* cmp byte */
{
    x64_op_rm(a, 0, 0x80, ALU_CMP, base, disp);
    x64_byte(a, imm);
}
static inline void movzx8_rm(x64_asm *a, int dst, int base, int32_t disp) /* movzx r32, byte */
{
    x64_rex(a, 0, dst, base, false);
    x64_byte(a, 0x0F);
    x64_byte(a, 0xB6);
    x64_mem(a, dst, base, disp);
}
static inline void mov8_mr(x64_asm *a, int base, int32_t disp, int src) /* mov byte, src's low */
{
    x64_rex(a, 0, src, base, src >= 4); /* SPL..DIL need a REX prefix */
    x64_byte(a, 0x88);
    x64_mem(a, src, base, disp);
}
static inline void alu64_mi(x64_asm *a, int op, int base, int32_t disp, int32_t imm)
{
    if (imm >= -128 && imm <= 127) {
        x64_op_rm(a, 1, 0x83, op, base, disp);
        x64_byte(a, (uint8_t)(int8_t)imm);
    } else {
        x64_op_rm(a, 1, 0x81, op, base, disp);
        x64_u32(a, (uint32_t)imm);
    }
}
static inline void alu32_rm(x64_asm *a, int op, int dst, int base, int32_t disp)
{
    x64_op_rm(a, 0, (uint8_t)(op << 3 | 3), dst, base, disp);
}
static inline void test_rr(x64_asm *a, int x, int y)
{
    x64_op_rr(a, 1, 0x85, y, x);
}
static inline void test32_rr(x64_asm *a, int x, int y)
{
    x64_op_rr(a, 0, 0x85, y, x);
}
static inline void imul_rr(x64_asm *a, int dst, int src)
{
    x64_rex(a, 1, dst, src, false);
    x64_byte(a, 0x0F);
    x64_byte(a, 0xAF);
    x64_modrr(a, dst, src);
}
static inline void imul_rm(x64_asm *a, int dst, int base, int32_t disp)
{
    x64_rex(a, 1, dst, base, false);
    x64_byte(a, 0x0F);
    x64_byte(a, 0xAF);
    x64_mem(a, dst, base, disp);
}
static inline void imul_rri(x64_asm *a, int dst, int src, int32_t imm)
{
    x64_rex(a, 1, dst, src, false);
    x64_byte(a, 0x69);
    x64_modrr(a, dst, src);
    x64_u32(a, (uint32_t)imm);
}
static inline void cqo(x64_asm *a)
{
    x64_byte(a, 0x48);
    x64_byte(a, 0x99);
}
static inline void unary_r(x64_asm *a, int digit, int r) /* F7 /digit: 2 not, 3 neg, 7 idiv */
{
    x64_op_rr(a, 1, 0xF7, digit, r);
}
static inline void shift_cl(x64_asm *a, int digit, int r) /* D3 /digit: 4 shl, 7 sar */
{
    x64_op_rr(a, 1, 0xD3, digit, r);
}
static inline void shift_ri(x64_asm *a, int digit, int r, uint8_t n)
{
    x64_op_rr(a, 1, 0xC1, digit, r);
    x64_byte(a, n);
}
static inline void setcc(x64_asm *a, int cc, int r) /* setcc r8; movzx r32, r8 */
{
    x64_rex(a, 0, 0, r, r >= 4);
    x64_byte(a, 0x0F);
    x64_byte(a, (uint8_t)(0x90 | cc));
    x64_modrr(a, 0, r);
    x64_rex(a, 0, r, r, r >= 4);
    x64_byte(a, 0x0F);
    x64_byte(a, 0xB6);
    x64_modrr(a, r, r);
}
static inline void push_r(x64_asm *a, int r)
{
    x64_rex(a, 0, 0, r, false);
    x64_byte(a, (uint8_t)(0x50 + (r & 7)));
}
static inline void pop_r(x64_asm *a, int r)
{
    x64_rex(a, 0, 0, r, false);
    x64_byte(a, (uint8_t)(0x58 + (r & 7)));
}
static inline void ret(x64_asm *a)
{
    x64_byte(a, 0xC3);
}

/* ---- control ---- */
static inline void jcc(x64_asm *a, int cc, uint32_t l)
{
    x64_byte(a, 0x0F);
    x64_byte(a, (uint8_t)(0x80 | cc));
    x64_rel32(a, l);
}
static inline void jmp(x64_asm *a, uint32_t l)
{
    x64_byte(a, 0xE9);
    x64_rel32(a, l);
}
static inline void call_label(x64_asm *a, uint32_t l)
{
    x64_byte(a, 0xE8);
    x64_rel32(a, l);
}
/* the address of a C function as an integer (function pointers convert to integers) */
#define X64_FN(f) ((uint64_t)(uintptr_t)(f))
static inline void call_abs(x64_asm *a, uint64_t fn) /* through RAX */
{
    mov_ri(a, RAX, (int64_t)fn);
    x64_byte(a, 0xFF);
    x64_modrr(a, 2, RAX);
}
static inline void call_r(x64_asm *a, int r)
{
    x64_rex(a, 0, 0, r, false);
    x64_byte(a, 0xFF);
    x64_modrr(a, 2, r);
}

/* ---- SSE2 scalar doubles ---- */
static inline void sse_rm(x64_asm *a, uint8_t pfx, uint8_t op, int x, int base, int32_t disp)
{
    x64_byte(a, pfx);
    x64_rex(a, 0, x, base, false);
    x64_byte(a, 0x0F);
    x64_byte(a, op);
    x64_mem(a, x, base, disp);
}
static inline void sse_rr(x64_asm *a, uint8_t pfx, uint8_t op, int x, int y)
{
    x64_byte(a, pfx);
    x64_rex(a, 0, x, y, false);
    x64_byte(a, 0x0F);
    x64_byte(a, op);
    x64_modrr(a, x, y);
}
#define SD_LOAD 0x10  /* movsd x, [m] (F2) */
#define SD_STORE 0x11 /* movsd [m], x (F2) */
#define SD_ADD 0x58
#define SD_MUL 0x59
#define SD_SUB 0x5C
#define SD_DIV 0x5E
#define SD_SQRT 0x51
static inline void movsd_xm(x64_asm *a, int x, int base, int32_t disp)
{
    sse_rm(a, 0xF2, SD_LOAD, x, base, disp);
}
static inline void movsd_mx(x64_asm *a, int base, int32_t disp, int x)
{
    sse_rm(a, 0xF2, SD_STORE, x, base, disp);
}
static inline void sd_rr(x64_asm *a, uint8_t op, int x, int y)
{
    sse_rr(a, 0xF2, op, x, y);
}
static inline void sd_rm(x64_asm *a, uint8_t op, int x, int base, int32_t disp)
{
    sse_rm(a, 0xF2, op, x, base, disp);
}
static inline void movapd_rr(x64_asm *a, int x, int y)
{
    if (x != y)
        sse_rr(a, 0x66, 0x28, x, y);
}
static inline void ucomisd_rr(x64_asm *a, int x, int y)
{
    sse_rr(a, 0x66, 0x2E, x, y);
}
static inline void movq_xr(x64_asm *a, int x, int r) /* movq xmm, r64 */
{
    x64_byte(a, 0x66);
    x64_rex(a, 1, x, r, false);
    x64_byte(a, 0x0F);
    x64_byte(a, 0x6E);
    x64_modrr(a, x, r);
}
static inline void movq_rx(x64_asm *a, int r, int x) /* movq r64, xmm */
{
    x64_byte(a, 0x66);
    x64_rex(a, 1, x, r, false);
    x64_byte(a, 0x0F);
    x64_byte(a, 0x7E);
    x64_modrr(a, x, r);
}
static inline void cvtsi2sd_xr(x64_asm *a, int x, int r)
{
    x64_byte(a, 0xF2);
    x64_rex(a, 1, x, r, false);
    x64_byte(a, 0x0F);
    x64_byte(a, 0x2A);
    x64_modrr(a, x, r);
}
static inline void xorpd_rr(x64_asm *a, int x, int y)
{
    sse_rr(a, 0x66, 0x57, x, y);
}

#endif

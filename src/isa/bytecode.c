/* bytecode.c - the .nvmb bytecode module format: writer (nvm_module_to_bytecode) and reader
 * (nvm_module_from_bytecode). The layout is documented byte by byte in docs/bytecode.md.
 *
 * The reader trusts nothing: every count is bounded by a limit and by the bytes that remain,
 * every length is checked before it is read, every index is checked against its table, and jump
 * offsets must land on instruction boundaries. The module it builds is then verified.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "module.h"
#include "operand.h"

#define BC_HEADER_SIZE 12u
#define BC_FLAG_LINES 0x0001u
#define BC_MAX_FUNCS 65536u
#define BC_MAX_INSNS 1000000u
#define BC_MAX_STRS 1000000u
#define BC_MAX_CAPS 65536u
#define BC_MAX_SLOTS 65536u
#define BC_MAX_ARGC 65535

/* ---- writer ---- */

/* A string of the on-disk pool: the module's constants first, then function and capability
 * names that are not already constants. */
typedef struct wstr {
    const char *s;
    uint32_t len;
} wstr;

typedef struct wpool {
    wstr *items;
    uint32_t n, cap;
    uint32_t *ht; /* index + 1, 0 = empty; power-of-two size */
    uint32_t htcap;
} wpool;

static uint32_t fnv(const char *s, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

/* Finds s in the pool; with `add`, appends it when absent. Returns index + 1, 0 when absent
 * (or when out of memory, reported through *oom). */
static uint32_t pool_get(const nvm_module *m, wpool *p, const char *s, uint32_t len, bool add,
                         bool *oom)
{
    uint32_t mask = p->htcap - 1;
    uint32_t i = fnv(s, len) & mask;
    while (p->ht[i] != 0) {
        const wstr *w = &p->items[p->ht[i] - 1];
        if (w->len == len && memcmp(w->s, s, len) == 0)
            return p->ht[i];
        i = (i + 1) & mask;
    }
    if (!add)
        return 0;
    if (p->n == p->cap) {
        *oom = true;
        return 0;
    }
    (void)m;
    p->items[p->n].s = s;
    p->items[p->n].len = len;
    p->n++;
    p->ht[i] = p->n;
    return p->n;
}

static uint32_t pow2_above(uint64_t n)
{
    uint64_t c = 16;
    while (c < n * 2)
        c *= 2;
    return (uint32_t)c;
}

nvm_status nvm_module_to_bytecode(const nvm_module *m, uint8_t **out_data, size_t *out_len,
                                  nvm_error *err)
{
    nvm_status st = NVM_OK;
    wpool pool = {0};
    uint32_t **offs = NULL; /* per function: byte offset of each instruction, ninsn + 1 entries */
    uint8_t *buf = NULL;
    size_t total = 0;
    const char *file = m->name;
    *out_data = NULL;
    *out_len = 0;

    uint64_t maxstrs = (uint64_t)m->nstrs + m->ncaps + m->nfuncs;
    pool.cap = (uint32_t)maxstrs;
    pool.htcap = pow2_above(maxstrs);
    pool.items = nvm_mod_alloc(m, (size_t)pool.cap * sizeof *pool.items);
    pool.ht = nvm_mod_alloc(m, (size_t)pool.htcap * sizeof *pool.ht);
    offs = nvm_mod_alloc(m, (size_t)m->nfuncs * sizeof *offs);
    if (pool.items == NULL || pool.ht == NULL || offs == NULL)
        goto oom;
    bool oom_flag = false;
    for (uint32_t i = 0; i < m->nstrs; i++) {
        /* constants keep their indices even when two are equal */
        pool.items[pool.n].s = m->strs[i].bytes;
        pool.items[pool.n].len = m->strs[i].len;
        pool.n++;
        uint32_t mask = pool.htcap - 1;
        uint32_t h = fnv(m->strs[i].bytes, m->strs[i].len) & mask;
        bool dup = false;
        while (pool.ht[h] != 0) {
            const wstr *w = &pool.items[pool.ht[h] - 1];
            if (w->len == m->strs[i].len && memcmp(w->s, m->strs[i].bytes, w->len) == 0) {
                dup = true;
                break;
            }
            h = (h + 1) & mask;
        }
        if (!dup)
            pool.ht[h] = pool.n;
    }
    for (uint32_t i = 0; i < m->ncaps; i++)
        pool_get(m, &pool, m->caps[i], (uint32_t)strlen(m->caps[i]), true, &oom_flag);
    for (uint32_t i = 0; i < m->nfuncs; i++)
        pool_get(m, &pool, m->funcs[i].name, (uint32_t)strlen(m->funcs[i].name), true, &oom_flag);
    if (oom_flag)
        goto oom;

    bool lines = false;
    total = BC_HEADER_SIZE + 12;
    for (uint32_t i = 0; i < pool.n; i++)
        total += 4 + (size_t)pool.items[i].len;
    total += 4 * (size_t)m->ncaps;
    for (uint32_t f = 0; f < m->nfuncs; f++) {
        const nvm_func *fn = &m->funcs[f];
        offs[f] = nvm_mod_alloc(m, ((size_t)fn->ninsn + 1) * sizeof **offs);
        if (offs[f] == NULL)
            goto oom;
        uint64_t o = 0;
        for (uint32_t k = 0; k < fn->ninsn; k++) {
            uint32_t sz = nvm_insn_size(fn->code[k].op);
            if (sz == 0) {
                st = nvm_error_set(err, NVM_E_INTERNAL, file, 0, 0,
                                   "function %s, instruction %u: unassigned opcode 0x%02X",
                                   fn->name, k, fn->code[k].op);
                goto fail;
            }
            offs[f][k] = (uint32_t)o;
            o += sz;
        }
        if (o > UINT32_MAX) {
            st = nvm_error_set(err, NVM_E_FORMAT, file, 0, 0, "function %s is too large", fn->name);
            goto fail;
        }
        offs[f][fn->ninsn] = (uint32_t)o;
        total += 16 + (size_t)o;
        if (fn->lines != NULL)
            lines = true;
    }
    if (lines)
        for (uint32_t f = 0; f < m->nfuncs; f++)
            total += 4 * (size_t)m->funcs[f].ninsn;

    buf = nvm_mod_alloc(m, total);
    if (buf == NULL)
        goto oom;
    uint8_t *p = buf;
    memcpy(p, NVM_BC_MAGIC, 4);
    nvm_put_u16(p + 4, NVM_BC_VERSION);
    nvm_put_u16(p + 6, lines ? BC_FLAG_LINES : 0);
    nvm_put_u32(p + 8, m->entry);
    p += BC_HEADER_SIZE;
    nvm_put_u32(p, pool.n);
    p += 4;
    for (uint32_t i = 0; i < pool.n; i++) {
        nvm_put_u32(p, pool.items[i].len);
        if (pool.items[i].len > 0)
            memcpy(p + 4, pool.items[i].s, pool.items[i].len);
        p += 4 + pool.items[i].len;
    }
    nvm_put_u32(p, m->ncaps);
    p += 4;
    for (uint32_t i = 0; i < m->ncaps; i++) {
        uint32_t idx = pool_get(m, &pool, m->caps[i], (uint32_t)strlen(m->caps[i]), false, NULL);
        nvm_put_u32(p, idx - 1);
        p += 4;
    }
    nvm_put_u32(p, m->nfuncs);
    p += 4;
    for (uint32_t f = 0; f < m->nfuncs; f++) {
        const nvm_func *fn = &m->funcs[f];
        uint32_t idx = pool_get(m, &pool, fn->name, (uint32_t)strlen(fn->name), false, NULL);
        nvm_put_u32(p, idx - 1);
        nvm_put_u32(p + 4, (uint32_t)fn->declared_argc);
        nvm_put_u32(p + 8, fn->nslots);
        nvm_put_u32(p + 12, offs[f][fn->ninsn]);
        p += 16;
        for (uint32_t k = 0; k < fn->ninsn; k++) {
            const nvm_insn *in = &fn->code[k];
            uint32_t lab = 0;
            if (nvm_opinfo_table[in->op].operand == NVM_OPK_LABEL) {
                if (in->a > fn->ninsn) {
                    st = nvm_error_set(err, NVM_E_INTERNAL, file, 0, 0,
                                       "function %s, instruction %u: label %u out of range",
                                       fn->name, k, in->a);
                    goto fail;
                }
                lab = offs[f][in->a];
            }
            p += nvm_insn_encode(in, lab, p);
        }
        if (lines) {
            for (uint32_t k = 0; k < fn->ninsn; k++) {
                nvm_put_u32(p, fn->lines != NULL ? fn->lines[k] : 0);
                p += 4;
            }
        }
    }
    *out_data = buf;
    *out_len = total;
    buf = NULL;
    goto done;
oom:
    st = nvm_error_set(err, NVM_E_MEMORY, file, 0, 0, "out of memory while writing bytecode");
fail:
    nvm_mod_free(m, buf, total);
done:
    if (offs != NULL)
        for (uint32_t f = 0; f < m->nfuncs; f++)
            nvm_mod_free(m, offs[f], ((size_t)m->funcs[f].ninsn + 1) * sizeof **offs);
    nvm_mod_free(m, offs, (size_t)m->nfuncs * sizeof *offs);
    nvm_mod_free(m, pool.items, (size_t)pool.cap * sizeof *pool.items);
    nvm_mod_free(m, pool.ht, (size_t)pool.htcap * sizeof *pool.ht);
    return st;
}

/* ---- reader ---- */

typedef struct rd {
    const uint8_t *p;
    size_t len, pos;
    const char *file;
    nvm_error *err;
} rd;

static nvm_status need(rd *r, size_t n, const char *what)
{
    if (r->len - r->pos >= n)
        return NVM_OK;
    return nvm_error_set(r->err, NVM_E_FORMAT, r->file, 0, 0,
                         "truncated bytecode: %s needs %zu bytes at offset %zu, %zu left", what, n,
                         r->pos, r->len - r->pos);
}

static nvm_status rd_u32(rd *r, uint32_t *v, const char *what)
{
    nvm_status st = need(r, 4, what);
    if (st != NVM_OK)
        return st;
    *v = nvm_get_u32(r->p + r->pos);
    r->pos += 4;
    return NVM_OK;
}

/* Reads a count and checks it against a limit and against the bytes left (each element takes at
 * least `min_size` bytes). */
static nvm_status rd_count(rd *r, uint32_t *v, uint32_t limit, size_t min_size, const char *what)
{
    nvm_status st = rd_u32(r, v, what);
    if (st != NVM_OK)
        return st;
    if (*v > limit)
        return nvm_error_set(r->err, NVM_E_FORMAT, r->file, 0, 0,
                             "bytecode declares %u %s (limit %u)", *v, what, limit);
    if ((uint64_t)*v * min_size > r->len - r->pos)
        return nvm_error_set(r->err, NVM_E_FORMAT, r->file, 0, 0,
                             "truncated bytecode: %u %s do not fit in the %zu bytes left", *v, what,
                             r->len - r->pos);
    return NVM_OK;
}

static nvm_status bad(rd *r, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static nvm_status bad(rd *r, const char *fmt, ...)
{
    char msg[NVM_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return nvm_error_set(r->err, NVM_E_FORMAT, r->file, 0, 0, "%s", msg);
}

/* Duplicate names are found by sorting (name, index) pairs by content. */
typedef struct name_ref {
    const char *s;
    uint32_t i;
} name_ref;

static int cmp_name_ref(const void *x, const void *y)
{
    return strcmp(((const name_ref *)x)->s, ((const name_ref *)y)->s);
}

/* Returns the index of a name that occurs twice in names[0..n), or -1. Uses scratch (n entries). */
static int64_t find_dup(const char *const *names, uint32_t n, name_ref *scratch)
{
    for (uint32_t i = 0; i < n; i++) {
        scratch[i].s = names[i];
        scratch[i].i = i;
    }
    qsort(scratch, n, sizeof *scratch, cmp_name_ref);
    for (uint32_t i = 1; i < n; i++)
        if (strcmp(scratch[i - 1].s, scratch[i].s) == 0)
            return scratch[i].i;
    return -1;
}

/* Index of the instruction that starts at byte `off`, or -1 (binary search over starts). */
static int64_t insn_at(const uint32_t *starts, uint32_t n, uint32_t off)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (starts[mid] < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (lo < n && starts[lo] == off) ? (int64_t)lo : -1;
}

static bool valid_name(const nvm_strconst *s, uint32_t maxlen)
{
    return s->len > 0 && s->len <= maxlen && memchr(s->bytes, '\0', s->len) == NULL;
}

static nvm_status read_func(rd *r, nvm_module *m, nvm_func *fn, uint32_t fi, bool lines,
                            uint32_t **starts, uint32_t *starts_cap)
{
    nvm_status st;
    uint32_t name, argc, nslots, code_len;
    if ((st = rd_u32(r, &name, "function name")) != NVM_OK ||
        (st = rd_u32(r, &argc, "function argc")) != NVM_OK ||
        (st = rd_u32(r, &nslots, "function slot count")) != NVM_OK ||
        (st = rd_u32(r, &code_len, "function code length")) != NVM_OK)
        return st;
    if (name >= m->nstrs)
        return bad(r, "function %u: name index %u out of range", fi, name);
    if (!valid_name(&m->strs[name], 4096))
        return bad(r, "function %u: invalid name (string %u)", fi, name);
    fn->name = nvm_mod_alloc(m, (size_t)m->strs[name].len + 1);
    if (fn->name == NULL)
        return nvm_error_set(r->err, NVM_E_MEMORY, r->file, 0, 0, "out of memory");
    memcpy(fn->name, m->strs[name].bytes, m->strs[name].len);
    int32_t sargc = (int32_t)argc;
    if (sargc < -1 || sargc > BC_MAX_ARGC)
        return bad(r, "function %s: declared argument count %d out of range", fn->name, sargc);
    fn->declared_argc = sargc;
    if (nslots > BC_MAX_SLOTS)
        return bad(r, "function %s: %u slots (limit %u)", fn->name, nslots, BC_MAX_SLOTS);
    fn->nslots = nslots;
    if ((st = need(r, code_len, "function code")) != NVM_OK)
        return st;
    const uint8_t *code = r->p + r->pos;
    /* pass 1: instruction boundaries */
    uint32_t n = 0;
    for (uint32_t off = 0; off < code_len;) {
        nvm_insn tmp;
        uint32_t sz = 0;
        nvm_decode_result dr = nvm_insn_decode(code + off, code_len - off, &tmp, &sz);
        if (dr == NVM_DECODE_BAD_OP)
            return bad(r, "unknown opcode byte 0x%02X at offset %u in function %s", code[off], off,
                       fn->name);
        if (dr == NVM_DECODE_TRUNCATED)
            return bad(r, "function %s: instruction at offset %u runs past the code end (%u bytes)",
                       fn->name, off, code_len);
        if (dr == NVM_DECODE_BAD_OPERAND)
            return bad(r, "function %s: invalid operand of the instruction at offset %u", fn->name,
                       off);
        if (n >= BC_MAX_INSNS)
            return bad(r, "function %s: more than %u instructions", fn->name, BC_MAX_INSNS);
        if (n == *starts_cap) {
            uint32_t nc = *starts_cap < 64 ? 64 : *starts_cap * 2;
            uint32_t *ns = nvm_mod_realloc(m, *starts, (size_t)*starts_cap * sizeof *ns,
                                           (size_t)nc * sizeof *ns);
            if (ns == NULL)
                return nvm_error_set(r->err, NVM_E_MEMORY, r->file, 0, 0, "out of memory");
            *starts = ns;
            *starts_cap = nc;
        }
        (*starts)[n++] = off;
        off += sz;
    }
    /* pass 2: decode and check operands */
    fn->code = nvm_mod_alloc(m, (size_t)n * sizeof *fn->code);
    if (fn->code == NULL)
        return nvm_error_set(r->err, NVM_E_MEMORY, r->file, 0, 0, "out of memory");
    fn->ninsn = n;
    for (uint32_t k = 0; k < n; k++) {
        nvm_insn *in = &fn->code[k];
        uint32_t sz;
        uint32_t off = (*starts)[k];
        nvm_insn_decode(code + off, code_len - off, in, &sz);
        switch (nvm_opinfo_table[in->op].operand) {
        case NVM_OPK_STR:
            if (in->a >= m->nstrs)
                return bad(r, "function %s, instruction %u: string index %u out of range", fn->name,
                           k, in->a);
            break;
        case NVM_OPK_SLOT:
            if (in->a >= fn->nslots)
                return bad(r, "function %s, instruction %u: slot %u beyond the slot count",
                           fn->name, k, in->a);
            break;
        case NVM_OPK_FUNC:
            if (in->a >= m->nfuncs)
                return bad(r, "function %s, instruction %u: function index %u out of range",
                           fn->name, k, in->a);
            break;
        case NVM_OPK_CAP:
            if (in->a >= m->ncaps)
                return bad(r, "function %s, instruction %u: capability index %u out of range",
                           fn->name, k, in->a);
            break;
        case NVM_OPK_LABEL: {
            int64_t t = insn_at(*starts, n, in->a);
            if (in->a >= code_len)
                return nvm_error_set(r->err, NVM_E_FORMAT, r->file, 0, 0,
                                     "jump target %u is outside function %s (%u code bytes)", in->a,
                                     fn->name, code_len);
            if (t < 0)
                return nvm_error_set(r->err, NVM_E_FORMAT, r->file, 0, 0,
                                     "jump target %u is not an instruction boundary in function "
                                     "%s",
                                     in->a, fn->name);
            in->a = (uint32_t)t;
            break;
        }
        default: break;
        }
    }
    /* A built module always ends every function in a terminator (the builder appends
     * PUSH_NULL RET); a module that does not could not come from the builder, and its
     * disassembly would not assemble back to the same bytes. */
    if (n == 0 || (nvm_opinfo_table[fn->code[n - 1].op].flags & NVM_OPF_TERM) == 0)
        return bad(r, "function %s does not end in JMP, RET, HALT or THROW", fn->name);
    r->pos += code_len;
    if (lines) {
        if ((uint64_t)n * 4 > r->len - r->pos)
            return need(r, (size_t)n * 4, "line table");
        fn->lines = nvm_mod_alloc(m, (size_t)n * sizeof *fn->lines);
        if (fn->lines == NULL && n > 0)
            return nvm_error_set(r->err, NVM_E_MEMORY, r->file, 0, 0, "out of memory");
        for (uint32_t k = 0; k < n; k++)
            fn->lines[k] = nvm_get_u32(r->p + r->pos + 4 * (size_t)k);
        r->pos += 4 * (size_t)n;
    }
    return NVM_OK;
}

nvm_status nvm_module_from_bytecode(const nvm_config *cfg, const uint8_t *data, size_t len,
                                    const char *name, nvm_module **out, nvm_error *err)
{
    nvm_status st;
    uint32_t *starts = NULL, starts_cap = 0;
    const char **names = NULL;
    name_ref *scratch = NULL;
    uint32_t nnames = 0;
    rd r = {data, len, 0, name, err};
    *out = NULL;
    nvm_module *m = nvm_module_new_empty(cfg);
    if (m == NULL)
        return nvm_error_set(err, NVM_E_MEMORY, name, 0, 0, "out of memory");
    if (name != NULL) {
        m->name = nvm_mod_alloc(m, strlen(name) + 1);
        if (m->name == NULL)
            goto oom;
        memcpy(m->name, name, strlen(name));
    }
    if (data == NULL || len < BC_HEADER_SIZE) {
        st = nvm_error_set(err, NVM_E_FORMAT, name, 0, 0,
                           "truncated bytecode: %zu bytes, the header alone takes %u", len,
                           BC_HEADER_SIZE);
        goto fail;
    }
    if (memcmp(data, NVM_BC_MAGIC, 4) != 0) {
        st = nvm_error_set(err, NVM_E_FORMAT, name, 0, 0,
                           "not a NanoVM bytecode module (bad "
                           "magic)");
        goto fail;
    }
    uint16_t version = nvm_get_u16(data + 4), flags = nvm_get_u16(data + 6);
    if (version != NVM_BC_VERSION) {
        st = nvm_error_set(err, NVM_E_FORMAT, name, 0, 0,
                           "unsupported bytecode version %u (this build reads version %u)", version,
                           NVM_BC_VERSION);
        goto fail;
    }
    if ((flags & ~BC_FLAG_LINES) != 0) {
        st = nvm_error_set(err, NVM_E_FORMAT, name, 0, 0, "unknown bytecode flags 0x%04X", flags);
        goto fail;
    }
    uint32_t entry = nvm_get_u32(data + 8);
    r.pos = BC_HEADER_SIZE;

    uint32_t n;
    if ((st = rd_count(&r, &n, BC_MAX_STRS, 4, "strings")) != NVM_OK)
        goto fail;
    m->strs = nvm_mod_alloc(m, (size_t)n * sizeof *m->strs);
    if (m->strs == NULL)
        goto oom;
    m->nstrs = n; /* entries stay {NULL, 0} until read: nvm_module_free copes */
    for (uint32_t i = 0; i < n; i++) {
        uint32_t sl;
        if ((st = rd_u32(&r, &sl, "string length")) != NVM_OK ||
            (st = need(&r, sl, "string bytes")) != NVM_OK)
            goto fail;
        if (sl == UINT32_MAX) {
            st = nvm_error_set(err, NVM_E_FORMAT, name, 0, 0, "string %u too long", i);
            goto fail;
        }
        char *s = nvm_mod_alloc(m, (size_t)sl + 1);
        if (s == NULL)
            goto oom;
        if (sl > 0)
            memcpy(s, data + r.pos, sl);
        r.pos += sl;
        m->strs[i].bytes = s;
        m->strs[i].len = sl;
    }

    if ((st = rd_count(&r, &n, BC_MAX_CAPS, 4, "capabilities")) != NVM_OK)
        goto fail;
    m->caps = nvm_mod_alloc(m, (size_t)n * sizeof *m->caps);
    if (m->caps == NULL)
        goto oom;
    m->ncaps = n;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t si;
        if ((st = rd_u32(&r, &si, "capability name")) != NVM_OK)
            goto fail;
        if (si >= m->nstrs || !valid_name(&m->strs[si], 255)) {
            st = bad(&r, "capability %u: invalid name (string index %u)", i, si);
            goto fail;
        }
        m->caps[i] = nvm_mod_alloc(m, (size_t)m->strs[si].len + 1);
        if (m->caps[i] == NULL)
            goto oom;
        memcpy(m->caps[i], m->strs[si].bytes, m->strs[si].len);
    }

    if ((st = rd_count(&r, &n, BC_MAX_FUNCS, 16, "functions")) != NVM_OK)
        goto fail;
    if (n == 0) {
        st = nvm_error_set(err, NVM_E_FORMAT, name, 0, 0, "bytecode module has no function");
        goto fail;
    }
    if (entry >= n) {
        st = nvm_error_set(err, NVM_E_FORMAT, name, 0, 0,
                           "entry function index %u out of range (%u functions)", entry, n);
        goto fail;
    }
    m->funcs = nvm_mod_alloc(m, (size_t)n * sizeof *m->funcs);
    if (m->funcs == NULL)
        goto oom;
    m->nfuncs = n;
    m->entry = entry;
    for (uint32_t i = 0; i < n; i++)
        m->funcs[i].declared_argc = -1;
    for (uint32_t i = 0; i < n; i++) {
        st = read_func(&r, m, &m->funcs[i], i, (flags & BC_FLAG_LINES) != 0, &starts, &starts_cap);
        if (st != NVM_OK)
            goto fail;
    }
    if (r.pos != len) {
        st = nvm_error_set(err, NVM_E_FORMAT, name, 0, 0,
                           "%zu trailing bytes after the last function (offset %zu)", len - r.pos,
                           r.pos);
        goto fail;
    }

    nnames = m->nfuncs > m->ncaps ? m->nfuncs : m->ncaps;
    names = nvm_mod_alloc(m, (size_t)nnames * sizeof *names);
    scratch = nvm_mod_alloc(m, (size_t)nnames * sizeof *scratch);
    if (names == NULL || scratch == NULL)
        goto oom;
    for (uint32_t i = 0; i < m->nfuncs; i++)
        names[i] = m->funcs[i].name;
    int64_t d = find_dup(names, m->nfuncs, scratch);
    if (d >= 0) {
        st = nvm_error_set(err, NVM_E_FORMAT, name, 0, 0, "function name \"%s\" is used twice",
                           m->funcs[d].name);
        goto fail;
    }
    for (uint32_t i = 0; i < m->ncaps; i++)
        names[i] = m->caps[i];
    d = find_dup(names, m->ncaps, scratch);
    if (d >= 0) {
        st = nvm_error_set(err, NVM_E_FORMAT, name, 0, 0, "capability \"%s\" is listed twice",
                           m->caps[d]);
        goto fail;
    }
    st = nvm_verify(m, err);
fail:
    nvm_mod_free(m, starts, (size_t)starts_cap * sizeof *starts);
    nvm_mod_free(m, names, (size_t)nnames * sizeof *names);
    nvm_mod_free(m, scratch, (size_t)nnames * sizeof *scratch);
    if (st == NVM_OK) {
        *out = m;
        return NVM_OK;
    }
    nvm_module_free(m);
    return st;
oom:
    st = nvm_error_set(err, NVM_E_MEMORY, name, 0, 0, "out of memory while reading bytecode");
    goto fail;
}

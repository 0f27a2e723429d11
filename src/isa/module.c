/* module.c - module memory through the allocator hook, the module builder shared by every loader,
 * the error helper, and the content-sniffing loader entry point.
 *
 * The builder grows one nvm_module in place. Invariants while building:
 *   - m->funcs[0..nfuncs) are the functions seen so far, defined (`.func`) or only referenced;
 *     fx[i] holds the builder-only state of function i (capacities, definition order, ...);
 *   - code/lines arrays have fx[i].cap entries allocated, m->funcs[i].ninsn used;
 *   - the three hash tables map names/bytes to indices (slot value = index + 1, 0 = empty);
 *   - labels[id].func is 0 while undefined, else defining function index + 1.
 * nvm_builder_finish shrinks every array to its exact size, so that nvm_module_free can give the
 * allocator hook the exact block sizes.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "module.h"

#define MAX_FUNCS 65536u
#define MAX_INSNS 1000000u
#define MAX_STRS 1000000u
#define MAX_CAPS 65536u
#define MAX_SLOTS 65536u
#define MAX_LABELS (1u << 26)
#define MAX_STR_LEN 0x7fffffffu

/* ---- allocation ---- */

void *nvm_mod_alloc(const nvm_module *m, size_t n)
{
    if (n == 0)
        n = 1;
    void *p = m->alloc(m->alloc_ud, NULL, 0, n);
    if (p != NULL)
        memset(p, 0, n);
    return p;
}

void *nvm_mod_realloc(const nvm_module *m, void *p, size_t o, size_t n)
{
    if (p == NULL)
        return nvm_mod_alloc(m, n);
    if (n == 0)
        n = 1;
    void *q = m->alloc(m->alloc_ud, p, o, n);
    if (q != NULL && n > o)
        memset((char *)q + o, 0, n - o);
    return q;
}

void nvm_mod_free(const nvm_module *m, void *p, size_t n)
{
    if (p != NULL)
        m->alloc(m->alloc_ud, p, n == 0 ? 1 : n, 0);
}

nvm_module *nvm_module_new_empty(const nvm_config *cfg)
{
    nvm_alloc_fn fn = (cfg != NULL && cfg->alloc != NULL) ? cfg->alloc : nvm_default_alloc;
    void *ud = (cfg != NULL && cfg->alloc != NULL) ? cfg->alloc_ud : NULL;
    nvm_module *m = fn(ud, NULL, 0, sizeof *m);
    if (m == NULL)
        return NULL;
    memset(m, 0, sizeof *m);
    m->alloc = fn;
    m->alloc_ud = ud;
    return m;
}

static void free_func(const nvm_module *m, nvm_func *f, uint32_t cap)
{
    if (f->name != NULL)
        nvm_mod_free(m, f->name, strlen(f->name) + 1);
    nvm_mod_free(m, f->code, (size_t)cap * sizeof *f->code);
    nvm_mod_free(m, f->lines, (size_t)cap * sizeof *f->lines);
    nvm_mod_free(m, f->heights, ((size_t)f->ninsn + 1) * sizeof *f->heights);
}

void nvm_module_free(nvm_module *m)
{
    if (m == NULL)
        return;
    for (uint32_t i = 0; i < m->nfuncs; i++)
        free_func(m, &m->funcs[i], m->funcs[i].ninsn);
    nvm_mod_free(m, m->funcs, (size_t)m->nfuncs * sizeof *m->funcs);
    for (uint32_t i = 0; i < m->nstrs; i++)
        nvm_mod_free(m, m->strs[i].bytes, (size_t)m->strs[i].len + 1);
    nvm_mod_free(m, m->strs, (size_t)m->nstrs * sizeof *m->strs);
    for (uint32_t i = 0; i < m->ncaps; i++)
        if (m->caps[i] != NULL)
            nvm_mod_free(m, m->caps[i], strlen(m->caps[i]) + 1);
    nvm_mod_free(m, m->caps, (size_t)m->ncaps * sizeof *m->caps);
    if (m->name != NULL)
        nvm_mod_free(m, m->name, strlen(m->name) + 1);
    nvm_alloc_fn fn = m->alloc;
    fn(m->alloc_ud, m, sizeof *m, 0);
}

void nvm_module_free_buffer(const nvm_module *m, uint8_t *data, size_t len)
{
    if (m != NULL)
        nvm_mod_free(m, data, len);
}

void nvm_module_drop_lines(nvm_module *m)
{
    for (uint32_t i = 0; i < m->nfuncs; i++) {
        nvm_mod_free(m, m->funcs[i].lines, (size_t)m->funcs[i].ninsn * sizeof(uint32_t));
        m->funcs[i].lines = NULL;
    }
}

uint32_t nvm_module_cap_count(const nvm_module *m)
{
    return m != NULL ? m->ncaps : 0;
}

const char *nvm_module_cap_name(const nvm_module *m, uint32_t i)
{
    return (m != NULL && i < m->ncaps) ? m->caps[i] : NULL;
}

nvm_status nvm_module_verify(nvm_module *m, nvm_error *err)
{
    if (m == NULL)
        return nvm_error_set(err, NVM_E_USAGE, NULL, 0, 0, "no module to verify");
    if (m->verified)
        return NVM_OK;
    return nvm_verify(m, err);
}

nvm_status nvm_module_set_entry(nvm_module *m, const char *name, nvm_error *err)
{
    if (m == NULL || name == NULL)
        return nvm_error_set(err, NVM_E_USAGE, NULL, 0, 0, "set_entry: no module or name");
    uint32_t want = m->nfuncs;
    for (uint32_t i = 0; i < m->nfuncs && want == m->nfuncs; i++)
        if (strcmp(m->funcs[i].name, name) == 0)
            want = i;
    if (want == m->nfuncs)
        return nvm_error_set(err, NVM_E_LINK, m->name, 0, 0,
                             "entry function \"%.200s\" not defined", name);
    if (want == m->entry && m->verified)
        return NVM_OK;
    const uint32_t old = m->entry;
    m->entry = want;
    nvm_status st = nvm_verify(m, err);
    if (st != NVM_OK) {
        m->entry = old;
        (void)nvm_verify(m, NULL);
    }
    return st;
}

/* ---- errors ---- */

nvm_status nvm_error_set(nvm_error *err, nvm_status st, const char *file, uint32_t line,
                         uint32_t col, const char *fmt, ...)
{
    if (err == NULL)
        return st;
    err->status = st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    err->file[0] = '\0';
    if (file != NULL)
        snprintf(err->file, sizeof err->file, "%s", file);
    err->line = line;
    err->col = col;
    err->backtrace[0] = '\0';
    return st;
}

/* ---- loader dispatch ---- */

nvm_status nvm_module_load(const nvm_config *cfg, const uint8_t *data, size_t len, const char *name,
                           nvm_module **out, nvm_error *err)
{
    if (data == NULL && len > 0)
        return nvm_error_set(err, NVM_E_USAGE, name, 0, 0, "no input");
    if (len >= 4 && memcmp(data, NVM_BC_MAGIC, 4) == 0)
        return nvm_module_from_bytecode(cfg, data, len, name, out, err);
    size_t i = 0;
    if (len >= 3 && data[0] == 0xEF && data[1] == 0xBB && data[2] == 0xBF)
        i = 3;
    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n'))
        i++;
    if (i < len && data[i] == '{')
        return nvm_module_from_json(cfg, (const char *)data, len, name, out, err);
    return nvm_module_from_casm(cfg, (const char *)data, len, name, out, err);
}

/* ---- builder ---- */

typedef struct bfunc {
    bool defined;
    uint32_t cap;       /* allocated entries of code[] and lines[] */
    uint32_t def_order; /* order of definition (0 = first .func) */
    uint32_t def_line;
    uint32_t ref_line;       /* line of the first CALL before the definition, 0 if none */
    uint32_t last_label_pos; /* position of the latest label defined here, UINT32_MAX if none */
} bfunc;

typedef struct blabel {
    uint32_t func; /* defining function + 1, 0 while undefined */
    uint32_t pos;
} blabel;

typedef struct bfixup {
    uint32_t func, insn, label, line;
} bfixup;

typedef struct htab {
    uint32_t *slots; /* index + 1, 0 = empty */
    uint32_t cap;    /* power of two or 0 */
    uint32_t count;
} htab;

struct nvm_builder {
    nvm_module hook; /* holds only the allocator hook: builder-private memory */
    nvm_module *m;   /* the module being built; NULL once finish handed it over */
    bfunc *fx;
    uint32_t fx_cap, funcs_cap, strs_cap, caps_cap;
    uint32_t ndefined;
    int64_t cur; /* function being emitted into, -1 before the first */
    htab fn_ht, str_ht, cap_ht;
    blabel *labels;
    uint32_t labels_cap;
    bfixup *fixups;
    uint32_t nfixups, fixups_cap;
    char msg[NVM_ERROR_MESSAGE_MAX];
};

static nvm_status bset(nvm_builder *b, nvm_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static nvm_status bset(nvm_builder *b, nvm_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->msg, sizeof b->msg, fmt, ap);
    va_end(ap);
    return st;
}

const char *nvm_builder_message(const nvm_builder *b)
{
    return b->msg;
}

static uint32_t hash_bytes(const char *s, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

enum { HT_FUNC, HT_STR, HT_CAP };

static void key_of(const nvm_builder *b, int kind, uint32_t idx, const char **s, size_t *len)
{
    const nvm_module *m = b->m;
    if (kind == HT_FUNC) {
        *s = m->funcs[idx].name;
        *len = strlen(*s);
    } else if (kind == HT_STR) {
        *s = m->strs[idx].bytes;
        *len = m->strs[idx].len;
    } else {
        *s = m->caps[idx];
        *len = strlen(*s);
    }
}

/* Returns the index + 1 of the key, or 0; *slot receives the slot where it is or would go. */
static uint32_t ht_find(const nvm_builder *b, const htab *t, int kind, const char *s, size_t len,
                        uint32_t *slot)
{
    if (t->cap == 0) {
        *slot = 0;
        return 0;
    }
    uint32_t mask = t->cap - 1;
    uint32_t i = hash_bytes(s, len) & mask;
    for (;;) {
        uint32_t v = t->slots[i];
        if (v == 0) {
            *slot = i;
            return 0;
        }
        const char *ks;
        size_t kl;
        key_of(b, kind, v - 1, &ks, &kl);
        if (kl == len && memcmp(ks, s, len) == 0) {
            *slot = i;
            return v;
        }
        i = (i + 1) & mask;
    }
}

/* Makes room for one more entry (load factor <= 1/2). */
static nvm_status ht_reserve(nvm_builder *b, htab *t, int kind)
{
    if ((t->count + 1) * 2 <= t->cap)
        return NVM_OK;
    uint32_t ncap = t->cap == 0 ? 64 : t->cap * 2;
    uint32_t *ns = nvm_mod_alloc(b->m, (size_t)ncap * sizeof *ns);
    if (ns == NULL)
        return bset(b, NVM_E_MEMORY, "out of memory");
    for (uint32_t i = 0; i < t->cap; i++) {
        uint32_t v = t->slots[i];
        if (v == 0)
            continue;
        const char *ks;
        size_t kl;
        key_of(b, kind, v - 1, &ks, &kl);
        uint32_t j = hash_bytes(ks, kl) & (ncap - 1);
        while (ns[j] != 0)
            j = (j + 1) & (ncap - 1);
        ns[j] = v;
    }
    nvm_mod_free(b->m, t->slots, (size_t)t->cap * sizeof *t->slots);
    t->slots = ns;
    t->cap = ncap;
    return NVM_OK;
}

/* Grows an array of `size`-byte elements so that it holds at least `need` (geometric). */
static nvm_status grow(nvm_builder *b, void **arr, uint32_t *cap, uint32_t need, size_t size)
{
    if (need <= *cap)
        return NVM_OK;
    uint64_t ncap = *cap < 8 ? 8 : (uint64_t)*cap * 2;
    if (ncap < need)
        ncap = need;
    if (ncap > UINT32_MAX)
        ncap = UINT32_MAX;
    void *p = nvm_mod_realloc(b->m, *arr, (size_t)*cap * size, (size_t)ncap * size);
    if (p == NULL)
        return bset(b, NVM_E_MEMORY, "out of memory");
    *arr = p;
    *cap = (uint32_t)ncap;
    return NVM_OK;
}

static char *dup_name(const nvm_module *m, const char *s, size_t len)
{
    char *p = nvm_mod_alloc(m, len + 1);
    if (p != NULL)
        memcpy(p, s, len);
    return p;
}

nvm_builder *nvm_builder_new(const nvm_config *cfg, const char *source_name)
{
    nvm_module *m = nvm_module_new_empty(cfg);
    nvm_builder *b = NULL;
    if (m == NULL)
        return NULL;
    b = nvm_mod_alloc(m, sizeof *b);
    if (b == NULL)
        goto fail;
    b->hook.alloc = m->alloc;
    b->hook.alloc_ud = m->alloc_ud;
    b->m = m;
    b->cur = -1;
    if (source_name != NULL) {
        m->name = dup_name(m, source_name, strlen(source_name));
        if (m->name == NULL)
            goto fail;
    }
    return b;
fail:
    nvm_mod_free(m, b, sizeof *b);
    nvm_module_free(m);
    return NULL;
}

static void builder_release_module(nvm_builder *b)
{
    nvm_module *m = b->m;
    /* funcs[i].code/lines are allocated with fx[i].cap entries while building. */
    for (uint32_t i = 0; i < m->nfuncs; i++) {
        free_func(m, &m->funcs[i], b->fx[i].cap);
        memset(&m->funcs[i], 0, sizeof m->funcs[i]);
    }
    nvm_mod_free(m, m->funcs, (size_t)b->funcs_cap * sizeof *m->funcs);
    m->funcs = NULL;
    m->nfuncs = 0;
    for (uint32_t i = 0; i < m->nstrs; i++)
        nvm_mod_free(m, m->strs[i].bytes, (size_t)m->strs[i].len + 1);
    nvm_mod_free(m, m->strs, (size_t)b->strs_cap * sizeof *m->strs);
    m->strs = NULL;
    m->nstrs = 0;
    for (uint32_t i = 0; i < m->ncaps; i++)
        nvm_mod_free(m, m->caps[i], strlen(m->caps[i]) + 1);
    nvm_mod_free(m, m->caps, (size_t)b->caps_cap * sizeof *m->caps);
    m->caps = NULL;
    m->ncaps = 0;
    nvm_module_free(m);
}

void nvm_builder_free(nvm_builder *b)
{
    if (b == NULL)
        return;
    const nvm_module *h = &b->hook;
    if (b->m != NULL)
        builder_release_module(b);
    nvm_mod_free(h, b->fx, (size_t)b->fx_cap * sizeof *b->fx);
    nvm_mod_free(h, b->fn_ht.slots, (size_t)b->fn_ht.cap * sizeof(uint32_t));
    nvm_mod_free(h, b->str_ht.slots, (size_t)b->str_ht.cap * sizeof(uint32_t));
    nvm_mod_free(h, b->cap_ht.slots, (size_t)b->cap_ht.cap * sizeof(uint32_t));
    nvm_mod_free(h, b->labels, (size_t)b->labels_cap * sizeof *b->labels);
    nvm_mod_free(h, b->fixups, (size_t)b->fixups_cap * sizeof *b->fixups);
    nvm_alloc_fn fn = h->alloc;
    fn(h->alloc_ud, b, sizeof *b, 0);
}

/* Finds or adds function `name`; *idx receives its index. */
static nvm_status func_find_or_add(nvm_builder *b, const char *name, size_t len, uint32_t *idx)
{
    nvm_module *m = b->m;
    if (len == 0 || len > 4096 || memchr(name, '\0', len) != NULL)
        return bset(b, NVM_E_FORMAT,
                    "a function name must have 1 to 4096 bytes and contain no NUL byte");
    uint32_t slot;
    uint32_t v = ht_find(b, &b->fn_ht, HT_FUNC, name, len, &slot);
    if (v != 0) {
        *idx = v - 1;
        return NVM_OK;
    }
    if (m->nfuncs >= MAX_FUNCS)
        return bset(b, NVM_E_FORMAT, "too many functions (limit %u)", MAX_FUNCS);
    nvm_status st = ht_reserve(b, &b->fn_ht, HT_FUNC);
    if (st != NVM_OK)
        return st;
    st = grow(b, (void **)&m->funcs, &b->funcs_cap, m->nfuncs + 1, sizeof *m->funcs);
    if (st == NVM_OK)
        st = grow(b, (void **)&b->fx, &b->fx_cap, m->nfuncs + 1, sizeof *b->fx);
    if (st != NVM_OK)
        return st;
    char *copy = dup_name(m, name, len);
    if (copy == NULL)
        return bset(b, NVM_E_MEMORY, "out of memory");
    uint32_t i = m->nfuncs;
    memset(&m->funcs[i], 0, sizeof m->funcs[i]);
    m->funcs[i].name = copy;
    m->funcs[i].declared_argc = -1;
    memset(&b->fx[i], 0, sizeof b->fx[i]);
    b->fx[i].last_label_pos = UINT32_MAX;
    m->nfuncs++;
    /* the slot may have moved if the table grew */
    ht_find(b, &b->fn_ht, HT_FUNC, name, len, &slot);
    b->fn_ht.slots[slot] = i + 1;
    b->fn_ht.count++;
    *idx = i;
    return NVM_OK;
}

nvm_status nvm_builder_begin_func(nvm_builder *b, const char *name, size_t len, int32_t argc,
                                  uint32_t line, nvm_error *err)
{
    const char *file = b->m->name;
    uint32_t idx;
    nvm_status st = func_find_or_add(b, name, len, &idx);
    if (st != NVM_OK)
        return nvm_error_set(err, st, file, line, 0, "%s", b->msg);
    bfunc *fx = &b->fx[idx];
    if (fx->defined)
        return nvm_error_set(err, NVM_E_SYNTAX, file, line, 0,
                             "function \"%s\" is already defined (line %u)", b->m->funcs[idx].name,
                             fx->def_line);
    fx->defined = true;
    fx->def_order = b->ndefined++;
    fx->def_line = line;
    b->m->funcs[idx].declared_argc = argc;
    b->cur = idx;
    return NVM_OK;
}

nvm_status nvm_builder_func_ref(nvm_builder *b, const char *name, size_t len, uint32_t *idx)
{
    return func_find_or_add(b, name, len, idx);
}

nvm_status nvm_builder_str(nvm_builder *b, const char *s, size_t len, uint32_t *idx)
{
    nvm_module *m = b->m;
    if (len > MAX_STR_LEN)
        return bset(b, NVM_E_FORMAT, "string constant too long (%zu bytes)", len);
    uint32_t slot;
    uint32_t v = ht_find(b, &b->str_ht, HT_STR, s, len, &slot);
    if (v != 0) {
        *idx = v - 1;
        return NVM_OK;
    }
    if (m->nstrs >= MAX_STRS)
        return bset(b, NVM_E_FORMAT, "too many string constants (limit %u)", MAX_STRS);
    nvm_status st = ht_reserve(b, &b->str_ht, HT_STR);
    if (st == NVM_OK)
        st = grow(b, (void **)&m->strs, &b->strs_cap, m->nstrs + 1, sizeof *m->strs);
    if (st != NVM_OK)
        return st;
    char *copy = nvm_mod_alloc(m, len + 1);
    if (copy == NULL)
        return bset(b, NVM_E_MEMORY, "out of memory");
    if (len > 0)
        memcpy(copy, s, len);
    uint32_t i = m->nstrs++;
    m->strs[i].bytes = copy;
    m->strs[i].len = (uint32_t)len;
    ht_find(b, &b->str_ht, HT_STR, s, len, &slot);
    b->str_ht.slots[slot] = i + 1;
    b->str_ht.count++;
    *idx = i;
    return NVM_OK;
}

nvm_status nvm_builder_cap(nvm_builder *b, const char *name, size_t len, uint32_t *idx)
{
    nvm_module *m = b->m;
    if (len == 0 || memchr(name, '\0', len) != NULL)
        return bset(b, NVM_E_FORMAT, "a capability name must be non-empty and contain no NUL byte");
    if (len > 255)
        return bset(b, NVM_E_FORMAT, "capability name too long (%zu bytes, limit 255)", len);
    uint32_t slot;
    uint32_t v = ht_find(b, &b->cap_ht, HT_CAP, name, len, &slot);
    if (v != 0) {
        *idx = v - 1;
        return NVM_OK;
    }
    if (m->ncaps >= MAX_CAPS)
        return bset(b, NVM_E_FORMAT, "too many capabilities (limit %u)", MAX_CAPS);
    nvm_status st = ht_reserve(b, &b->cap_ht, HT_CAP);
    if (st == NVM_OK)
        st = grow(b, (void **)&m->caps, &b->caps_cap, m->ncaps + 1, sizeof *m->caps);
    if (st != NVM_OK)
        return st;
    char *copy = dup_name(m, name, len);
    if (copy == NULL)
        return bset(b, NVM_E_MEMORY, "out of memory");
    uint32_t i = m->ncaps++;
    m->caps[i] = copy;
    ht_find(b, &b->cap_ht, HT_CAP, name, len, &slot);
    b->cap_ht.slots[slot] = i + 1;
    b->cap_ht.count++;
    *idx = i;
    return NVM_OK;
}

/* Appends one instruction to the current function without operand checks. */
static nvm_status append(nvm_builder *b, uint32_t f, const nvm_insn *insn, uint32_t line)
{
    nvm_func *fn = &b->m->funcs[f];
    bfunc *fx = &b->fx[f];
    if (fn->ninsn >= MAX_INSNS)
        return bset(b, NVM_E_FORMAT, "function %s has too many instructions (limit %u)", fn->name,
                    MAX_INSNS);
    if (fn->ninsn == fx->cap) {
        uint32_t cap = fx->cap;
        nvm_status st = grow(b, (void **)&fn->code, &cap, fn->ninsn + 1, sizeof *fn->code);
        if (st != NVM_OK)
            return st;
        uint32_t *nl = nvm_mod_realloc(b->m, fn->lines, (size_t)fx->cap * sizeof *nl,
                                       (size_t)cap * sizeof *nl);
        if (nl == NULL) {
            /* code grew but lines did not: keep code's old capacity consistent */
            nvm_insn *oc = nvm_mod_realloc(b->m, fn->code, (size_t)cap * sizeof *fn->code,
                                           (size_t)fx->cap * sizeof *fn->code);
            if (oc != NULL)
                fn->code = oc;
            else if (fx->cap == 0) {
                nvm_mod_free(b->m, fn->code, (size_t)cap * sizeof *fn->code);
                fn->code = NULL;
            }
            return bset(b, NVM_E_MEMORY, "out of memory");
        }
        fn->lines = nl;
        fx->cap = cap;
    }
    fn->code[fn->ninsn] = *insn;
    fn->code[fn->ninsn].pad = 0;
    fn->lines[fn->ninsn] = line;
    fn->ninsn++;
    return NVM_OK;
}

nvm_status nvm_builder_emit(nvm_builder *b, const nvm_insn *insn, uint32_t line)
{
    nvm_module *m = b->m;
    if (b->cur < 0)
        return bset(b, NVM_E_USAGE, "instruction outside any function");
    const nvm_opinfo *oi = &nvm_opinfo_table[insn->op];
    if (oi->name == NULL)
        return bset(b, NVM_E_FORMAT, "unknown opcode byte 0x%02X", insn->op);
    uint32_t f = (uint32_t)b->cur;
    switch (oi->operand) {
    case NVM_OPK_STR:
        if (insn->a >= m->nstrs)
            return bset(b, NVM_E_FORMAT, "string index %u out of range", insn->a);
        break;
    case NVM_OPK_SLOT:
        if (insn->a >= MAX_SLOTS)
            return bset(b, NVM_E_FORMAT, "slot %u out of range (limit %u)", insn->a, MAX_SLOTS - 1);
        if (insn->a + 1 > m->funcs[f].nslots)
            m->funcs[f].nslots = insn->a + 1;
        break;
    case NVM_OPK_FUNC:
        if (insn->a >= m->nfuncs)
            return bset(b, NVM_E_FORMAT, "function index %u out of range", insn->a);
        if (!b->fx[insn->a].defined && b->fx[insn->a].ref_line == 0)
            b->fx[insn->a].ref_line = line == 0 ? UINT32_MAX : line;
        break;
    case NVM_OPK_CAP:
        if (insn->a >= m->ncaps)
            return bset(b, NVM_E_FORMAT, "capability index %u out of range", insn->a);
        break;
    case NVM_OPK_BOOL:
        if (insn->b > 1)
            return bset(b, NVM_E_FORMAT, "boolean operand %u is not 0 or 1", insn->b);
        break;
    case NVM_OPK_CAST:
        if (insn->b > NVM_CAST_BOOL)
            return bset(b, NVM_E_FORMAT, "cast type %u out of range", insn->b);
        break;
    default: break;
    }
    return append(b, f, insn, line);
}

static nvm_status label_slot(nvm_builder *b, uint32_t id)
{
    if (id >= MAX_LABELS)
        return bset(b, NVM_E_FORMAT, "too many labels (limit %u)", MAX_LABELS);
    return grow(b, (void **)&b->labels, &b->labels_cap, id + 1, sizeof *b->labels);
}

nvm_status nvm_builder_label_def(nvm_builder *b, uint32_t label_id)
{
    if (b->cur < 0)
        return bset(b, NVM_E_USAGE, "label outside any function");
    nvm_status st = label_slot(b, label_id);
    if (st != NVM_OK)
        return st;
    if (b->labels[label_id].func != 0)
        return bset(b, NVM_E_SYNTAX, "label defined twice");
    uint32_t f = (uint32_t)b->cur;
    b->labels[label_id].func = f + 1;
    b->labels[label_id].pos = b->m->funcs[f].ninsn;
    b->fx[f].last_label_pos = b->m->funcs[f].ninsn;
    return NVM_OK;
}

nvm_status nvm_builder_emit_jump(nvm_builder *b, const nvm_insn *insn, uint32_t label_id,
                                 uint32_t line)
{
    if (b->cur < 0)
        return bset(b, NVM_E_USAGE, "instruction outside any function");
    if (nvm_opinfo_table[insn->op].operand != NVM_OPK_LABEL)
        return bset(b, NVM_E_USAGE, "emit_jump needs an instruction with a label operand");
    nvm_status st = label_slot(b, label_id);
    if (st == NVM_OK)
        st = grow(b, (void **)&b->fixups, &b->fixups_cap, b->nfixups + 1, sizeof *b->fixups);
    if (st != NVM_OK)
        return st;
    uint32_t f = (uint32_t)b->cur;
    nvm_insn j = *insn;
    j.a = 0;
    st = append(b, f, &j, line);
    if (st != NVM_OK)
        return st;
    bfixup *fx = &b->fixups[b->nfixups++];
    fx->func = f;
    fx->insn = b->m->funcs[f].ninsn - 1;
    fx->label = label_id;
    fx->line = line;
    return NVM_OK;
}

static bool is_term(uint8_t op)
{
    return (nvm_opinfo_table[op].flags & NVM_OPF_TERM) != 0;
}

/* Shrinks every builder array of the module to its exact size. */
static nvm_status shrink_all(nvm_builder *b)
{
    nvm_module *m = b->m;
    for (uint32_t i = 0; i < m->nfuncs; i++) {
        nvm_func *fn = &m->funcs[i];
        bfunc *fx = &b->fx[i];
        if (fx->cap == fn->ninsn)
            continue;
        if (fn->ninsn == 0) {
            nvm_mod_free(m, fn->code, (size_t)fx->cap * sizeof *fn->code);
            nvm_mod_free(m, fn->lines, (size_t)fx->cap * sizeof *fn->lines);
            fn->code = NULL;
            fn->lines = NULL;
            fx->cap = 0;
            continue;
        }
        nvm_insn *c = nvm_mod_realloc(m, fn->code, (size_t)fx->cap * sizeof *c,
                                      (size_t)fn->ninsn * sizeof *c);
        if (c == NULL)
            return bset(b, NVM_E_MEMORY, "out of memory");
        fn->code = c;
        uint32_t *l = nvm_mod_realloc(m, fn->lines, (size_t)fx->cap * sizeof *l,
                                      (size_t)fn->ninsn * sizeof *l);
        if (l == NULL) {
            /* code is already exact: give lines up rather than keep mismatched sizes */
            nvm_mod_free(m, fn->lines, (size_t)fx->cap * sizeof *l);
            fn->lines = NULL;
            fx->cap = fn->ninsn;
            return bset(b, NVM_E_MEMORY, "out of memory");
        }
        fn->lines = l;
        fx->cap = fn->ninsn;
    }
    if (b->funcs_cap != m->nfuncs) {
        nvm_func *p = nvm_mod_realloc(m, m->funcs, (size_t)b->funcs_cap * sizeof *p,
                                      (size_t)m->nfuncs * sizeof *p);
        if (p == NULL)
            return bset(b, NVM_E_MEMORY, "out of memory");
        m->funcs = p;
        b->funcs_cap = m->nfuncs;
    }
    if (b->strs_cap != m->nstrs) {
        nvm_strconst *p = nvm_mod_realloc(m, m->strs, (size_t)b->strs_cap * sizeof *p,
                                          (size_t)m->nstrs * sizeof *p);
        if (p == NULL)
            return bset(b, NVM_E_MEMORY, "out of memory");
        m->strs = p;
        b->strs_cap = m->nstrs;
    }
    if (b->caps_cap != m->ncaps) {
        char **p = nvm_mod_realloc(m, m->caps, (size_t)b->caps_cap * sizeof *p,
                                   (size_t)m->ncaps * sizeof *p);
        if (p == NULL)
            return bset(b, NVM_E_MEMORY, "out of memory");
        m->caps = p;
        b->caps_cap = m->ncaps;
    }
    return NVM_OK;
}

/* Renumbers functions in definition order and remaps every CALL operand. */
static nvm_status reorder_funcs(nvm_builder *b)
{
    nvm_module *m = b->m;
    uint32_t n = m->nfuncs;
    bool identity = true;
    for (uint32_t i = 0; i < n; i++)
        if (b->fx[i].def_order != i)
            identity = false;
    if (identity)
        return NVM_OK;
    nvm_func *nf = nvm_mod_alloc(m, (size_t)b->funcs_cap * sizeof *nf);
    bfunc *nx = nvm_mod_alloc(m, (size_t)b->fx_cap * sizeof *nx);
    if (nf == NULL || nx == NULL) {
        nvm_mod_free(m, nf, (size_t)b->funcs_cap * sizeof *nf);
        nvm_mod_free(m, nx, (size_t)b->fx_cap * sizeof *nx);
        return bset(b, NVM_E_MEMORY, "out of memory");
    }
    for (uint32_t i = 0; i < n; i++) {
        nf[b->fx[i].def_order] = m->funcs[i];
        nx[b->fx[i].def_order] = b->fx[i];
    }
    for (uint32_t i = 0; i < n; i++) {
        nvm_func *fn = &nf[i];
        for (uint32_t k = 0; k < fn->ninsn; k++)
            if (nvm_opinfo_table[fn->code[k].op].operand == NVM_OPK_FUNC)
                fn->code[k].a = b->fx[fn->code[k].a].def_order;
    }
    nvm_mod_free(m, m->funcs, (size_t)b->funcs_cap * sizeof *nf);
    nvm_mod_free(m, b->fx, (size_t)b->fx_cap * sizeof *nx);
    m->funcs = nf;
    b->fx = nx;
    for (uint32_t i = 0; i < n; i++)
        b->fx[i].def_order = i;
    return NVM_OK;
}

nvm_status nvm_builder_finish(nvm_builder *b, const char *entry, nvm_module **out, nvm_error *err)
{
    nvm_module *m = b->m;
    const char *file = m->name;
    nvm_status st;
    if (b->ndefined == 0)
        return nvm_error_set(err, NVM_E_LINK, file, 0, 0,
                             "no function defined (expected at least one .func)");
    for (uint32_t i = 0; i < m->nfuncs; i++)
        if (!b->fx[i].defined) {
            uint32_t line = b->fx[i].ref_line == UINT32_MAX ? 0 : b->fx[i].ref_line;
            return nvm_error_set(err, NVM_E_LINK, file, line, 0,
                                 "call to undefined function \"%s\"", m->funcs[i].name);
        }
    /* an explicit return at every function end that control could fall past */
    for (uint32_t i = 0; i < m->nfuncs; i++) {
        nvm_func *fn = &m->funcs[i];
        bool need = fn->ninsn == 0 || !is_term(fn->code[fn->ninsn - 1].op) ||
                    b->fx[i].last_label_pos == fn->ninsn;
        if (!need)
            continue;
        if (fn->ninsn + 2 > MAX_INSNS)
            return nvm_error_set(err, NVM_E_FORMAT, file, 0, 0,
                                 "function %s has too many instructions (limit %u)", fn->name,
                                 MAX_INSNS);
        nvm_insn pn = {.op = NVM_OP_PUSH_NULL};
        nvm_insn rt = {.op = NVM_OP_RET};
        uint32_t line = fn->ninsn > 0 ? fn->lines[fn->ninsn - 1] : b->fx[i].def_line;
        st = append(b, i, &pn, line);
        if (st == NVM_OK)
            st = append(b, i, &rt, line);
        if (st != NVM_OK)
            return nvm_error_set(err, st, file, 0, 0, "%s", b->msg);
    }
    for (uint32_t k = 0; k < b->nfixups; k++) {
        const bfixup *fx = &b->fixups[k];
        const blabel *lb = &b->labels[fx->label];
        if (lb->func == 0)
            return nvm_error_set(err, NVM_E_LINK, file, fx->line, 0,
                                 "undefined label in function %s", m->funcs[fx->func].name);
        if (lb->func != fx->func + 1)
            return nvm_error_set(err, NVM_E_LINK, file, fx->line, 0,
                                 "jump from function %s to a label of function %s",
                                 m->funcs[fx->func].name, m->funcs[lb->func - 1].name);
        m->funcs[fx->func].code[fx->insn].a = lb->pos;
    }
    st = reorder_funcs(b);
    if (st == NVM_OK)
        st = shrink_all(b);
    if (st != NVM_OK)
        return nvm_error_set(err, st, file, 0, 0, "%s", b->msg);
    const char *want = entry != NULL ? entry : "main";
    uint32_t slot;
    uint32_t v = ht_find(b, &b->fn_ht, HT_FUNC, want, strlen(want), &slot);
    if (v == 0 && entry != NULL)
        return nvm_error_set(err, NVM_E_LINK, file, 0, 0, "entry function \"%s\" not defined",
                             entry);
    /* the hash table holds pre-reorder indices: look the name up in the final order */
    m->entry = 0;
    if (v != 0)
        for (uint32_t i = 0; i < m->nfuncs; i++)
            if (strcmp(m->funcs[i].name, want) == 0)
                m->entry = i;
    bool any_line = false;
    for (uint32_t i = 0; i < m->nfuncs && !any_line; i++)
        for (uint32_t k = 0; k < m->funcs[i].ninsn; k++)
            if (m->funcs[i].lines[k] != 0) {
                any_line = true;
                break;
            }
    if (!any_line)
        nvm_module_drop_lines(m);
    /* ownership moves to the caller; the builder keeps only its private tables */
    *out = m;
    b->m = NULL;
    return NVM_OK;
}

void nvm_module_strip_debug(nvm_module *m)
{
    if (m != NULL)
        nvm_module_drop_lines(m);
}

/* disasm.c - the disassembler (nvm_module_disasm): a module back to CASM text that the assembler
 * turns into the same code. Functions appear in index order (the builder numbers functions in
 * definition order, so the text reassembles to the same indices); string constants are first used
 * in index order for modules built from text or JSON, so the pool comes back identical as well.
 * Labels are named L<function>_<instruction> (labels are file-global in CASM). Floats are printed
 * with the fewest digits that read back to the same double; nan/inf/-inf are spelled out.
 * Line tables are not reproduced: compare bytecode with them dropped (nvm_module_drop_lines).
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "asm_internal.h"
#include "isa/module.h"

typedef struct sbuf {
    const nvm_module *m;
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap < 256 ? 256 : b->cap;
        while (nc < b->len + n + 1)
            nc *= 2;
        char *np = nvm_mod_realloc(b->m, b->p, b->cap, nc);
        if (np == NULL) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static void sb_printf(sbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        sb_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void sb_quoted(sbuf *b, const char *s, size_t len)
{
    sb_add(b, "\"", 1);
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        unsigned c = u[i];
        switch (c) {
        case '"':
            sb_puts(b, "\\\"");
            i++;
            continue;
        case '\\':
            sb_puts(b, "\\\\");
            i++;
            continue;
        case '\n':
            sb_puts(b, "\\n");
            i++;
            continue;
        case '\t':
            sb_puts(b, "\\t");
            i++;
            continue;
        case '\r':
            sb_puts(b, "\\r");
            i++;
            continue;
        case 0:
            sb_puts(b, "\\0");
            i++;
            continue;
        default: break;
        }
        if (c < 0x20 || c == 0x7f) {
            sb_printf(b, "\\x%02X", c);
            i++;
            continue;
        }
        size_t n = nvm_utf8_seq(u + i, len - i);
        if (n == 0) {
            sb_printf(b, "\\x%02X", c);
            i++;
            continue;
        }
        sb_add(b, s + i, n);
        i += n;
    }
    sb_add(b, "\"", 1);
}

static void sb_name(sbuf *b, const char *s)
{
    size_t n = strlen(s);
    if (nvm_casm_bare_name(s, n))
        sb_add(b, s, n);
    else
        sb_quoted(b, s, n);
}

static void sb_float(sbuf *b, double d)
{
    if (isnan(d)) {
        sb_puts(b, "nan");
        return;
    }
    if (isinf(d)) {
        sb_puts(b, d < 0 ? "-inf" : "inf");
        return;
    }
    char tmp[64];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    /* keep a float look for integral values ("3" would also assemble, but "3.0" reads better) */
    if (strpbrk(tmp, ".eEn") == NULL)
        strcat(tmp, ".0");
    sb_puts(b, tmp);
}

nvm_status nvm_module_disasm(const nvm_module *m, char **out_text, size_t *out_len, nvm_error *err)
{
    sbuf b = {m, NULL, 0, 0, false};
    bool *is_target = NULL;
    uint32_t target_cap = 0;
    nvm_status st = NVM_OK;
    *out_text = NULL;
    *out_len = 0;
    for (uint32_t f = 0; f < m->nfuncs; f++)
        if (m->funcs[f].ninsn + 1 > target_cap)
            target_cap = m->funcs[f].ninsn + 1;
    is_target = nvm_mod_alloc(m, target_cap);
    if (is_target == NULL)
        goto oom;
    for (uint32_t f = 0; f < m->nfuncs; f++) {
        const nvm_func *fn = &m->funcs[f];
        memset(is_target, 0, target_cap);
        for (uint32_t k = 0; k < fn->ninsn; k++)
            if (nvm_opinfo_table[fn->code[k].op].operand == NVM_OPK_LABEL) {
                if (fn->code[k].a > fn->ninsn) {
                    st = nvm_error_set(err, NVM_E_INTERNAL, m->name, 0, 0,
                                       "function %s, instruction %u: label out of range", fn->name,
                                       k);
                    goto fail;
                }
                is_target[fn->code[k].a] = true;
            }
        sb_puts(&b, ".func ");
        sb_name(&b, fn->name);
        if (fn->declared_argc >= 0)
            sb_printf(&b, " %d", (int)fn->declared_argc);
        sb_puts(&b, "\n");
        for (uint32_t k = 0; k <= fn->ninsn; k++) {
            if (is_target[k])
                sb_printf(&b, "L%u_%u:\n", f, k);
            if (k == fn->ninsn)
                break;
            const nvm_insn *in = &fn->code[k];
            const nvm_opinfo *oi = &nvm_opinfo_table[in->op];
            if (oi->name == NULL) {
                st = nvm_error_set(err, NVM_E_INTERNAL, m->name, 0, 0,
                                   "function %s, instruction %u: unassigned opcode 0x%02X",
                                   fn->name, k, in->op);
                goto fail;
            }
            sb_puts(&b, "    ");
            sb_puts(&b, oi->name);
            switch (oi->operand) {
            case NVM_OPK_NONE: break;
            case NVM_OPK_I64: sb_printf(&b, " %" PRId64, in->k.i); break;
            case NVM_OPK_F64:
                sb_puts(&b, " ");
                sb_float(&b, in->k.f);
                break;
            case NVM_OPK_STR:
                sb_puts(&b, " ");
                if (in->a < m->nstrs)
                    sb_quoted(&b, m->strs[in->a].bytes, m->strs[in->a].len);
                break;
            case NVM_OPK_BOOL: sb_puts(&b, in->b ? " true" : " false"); break;
            case NVM_OPK_SLOT:
            case NVM_OPK_COUNT: sb_printf(&b, " %u", in->a); break;
            case NVM_OPK_LABEL: sb_printf(&b, " L%u_%u", f, in->a); break;
            case NVM_OPK_FUNC:
                sb_puts(&b, " ");
                if (in->a < m->nfuncs)
                    sb_name(&b, m->funcs[in->a].name);
                break;
            case NVM_OPK_CAP:
                sb_puts(&b, " ");
                if (in->a < m->ncaps)
                    sb_quoted(&b, m->caps[in->a], strlen(m->caps[in->a]));
                sb_printf(&b, " %u", in->b);
                break;
            case NVM_OPK_CAST:
                sb_puts(&b, " \"");
                sb_puts(&b, nvm_cast_type_name(in->b));
                sb_puts(&b, "\"");
                break;
            }
            sb_puts(&b, "\n");
        }
    }
    if (b.p == NULL)
        sb_add(&b, "", 0);
    if (b.oom)
        goto oom;
    /* hand out a block of exactly len + 1 bytes, as nvm_module_free_buffer expects */
    char *exact = nvm_mod_realloc(m, b.p, b.cap, b.len + 1);
    if (exact == NULL)
        goto oom;
    *out_text = exact;
    *out_len = b.len;
    b.p = NULL;
    goto done;
oom:
    st = nvm_error_set(err, NVM_E_MEMORY, m->name, 0, 0, "out of memory while disassembling");
fail:
    nvm_mod_free(m, b.p, b.cap);
done:
    nvm_mod_free(m, is_target, target_cap);
    return st;
}

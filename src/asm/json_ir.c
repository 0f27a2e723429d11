/* json_ir.c - loader for the upstream CASM JSON IR (nvm_module_from_json), major version 1:
 *   {"version":"1.0","functions":{NAME:{"params":[],"locals":[],"body":[{"op":...},...]}},
 *    "manifest":{"permissions":[...]}}
 * Ops are the lower-case mnemonics (plus a few upstream aliases); operands sit beside "op";
 * jump "target" is an instruction index in the same function (== body length means the function
 * end); variable names get frame slots in order of first use. Unknown ops, unknown functions and
 * capabilities missing from manifest.permissions are load errors. Keys we do not use ("meta",
 * "lang", ...) are ignored, except meta.line, which becomes the instruction's source line.
 * Builds without jansson (the wasm32 core) get a stub that reports the missing support.
 */
#include <stdint.h>
#include <string.h>

#include "isa/module.h"

#ifdef NVM_HAVE_JANSSON

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#include "asm_internal.h"

/* Upstream op names that differ from our mnemonics (everything else is the mnemonic in lower
 * case, looked up case-insensitively in the opcode table). */
static const struct {
    const char *name;
    uint8_t op;
} aliases[] = {
    {"push_int", NVM_OP_PUSH},    {"push_float", NVM_OP_PUSH_F64}, {"jmp_if_not", NVM_OP_JZ},
    {"jump_if_false", NVM_OP_JZ}, {"jmp_if", NVM_OP_JNZ},          {"jump_if_true", NVM_OP_JNZ},
    {"jump", NVM_OP_JMP},         {"new_struct", NVM_OP_NEW_OBJ},  {"new_object", NVM_OP_NEW_OBJ},
    {"return", NVM_OP_RET},
};

typedef struct jl {
    const nvm_module *hook; /* allocator carrier for the loader's own buffers */
    nvm_builder *b;
    const char *file;
    nvm_error *err;
    json_t *perms; /* manifest.permissions array, or NULL */
    const char *fname;
    uint32_t line; /* meta.line of the current instruction, 0 if none */
} jl;

static nvm_status jerr(jl *j, nvm_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static nvm_status jerr(jl *j, nvm_status st, const char *fmt, ...)
{
    char msg[NVM_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return nvm_error_set(j->err, st, j->file, j->line, 0, "%s", msg);
}

/* Resolves an op name; returns the opcode or -1 (error set). */
static int resolve_op(jl *j, const char *op, size_t idx)
{
    size_t n = strlen(op);
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcmp(aliases[i].name, op) == 0)
            return aliases[i].op;
    int code = nvm_op_lookup(op, n);
    if (code >= 0)
        return code;
    if (nvm_upstream_unsupported(op, n)) {
        char upn[64];
        size_t k = 0;
        for (; k < n && k < sizeof upn - 1; k++)
            upn[k] = (op[k] >= 'a' && op[k] <= 'z') ? (char)(op[k] - 'a' + 'A') : op[k];
        upn[k] = '\0';
        jerr(j, NVM_E_FORMAT,
             "unsupported upstream opcode %s (not part of NanoVM's CASM): function %s, "
             "instruction %zu",
             upn, j->fname, idx);
        return -1;
    }
    jerr(j, NVM_E_FORMAT, "unknown op \"%.60s\": function %s, instruction %zu", op, j->fname, idx);
    return -1;
}

/* The first of the keys present in the instruction object, or NULL. */
static json_t *operand(json_t *insn, const char *const *keys)
{
    for (; *keys != NULL; keys++) {
        json_t *v = json_object_get(insn, *keys);
        if (v != NULL)
            return v;
    }
    return NULL;
}

static nvm_status int_field(jl *j, json_t *insn, const char *const *keys, const char *op,
                            size_t idx, json_int_t lo, json_int_t hi, json_int_t *out)
{
    json_t *v = operand(insn, keys);
    if (v == NULL || !json_is_integer(v))
        return jerr(j, NVM_E_FORMAT, "%s needs an integer \"%s\": function %s, instruction %zu", op,
                    keys[0], j->fname, idx);
    *out = json_integer_value(v);
    if (*out < lo || *out > hi)
        return jerr(j, NVM_E_FORMAT,
                    "%s \"%s\" %lld out of range (%lld..%lld): function %s, instruction %zu", op,
                    keys[0], (long long)*out, (long long)lo, (long long)hi, j->fname, idx);
    return NVM_OK;
}

static nvm_status str_field(jl *j, json_t *insn, const char *const *keys, const char *op,
                            size_t idx, const char **s, size_t *n)
{
    json_t *v = operand(insn, keys);
    if (v == NULL || !json_is_string(v))
        return jerr(j, NVM_E_FORMAT, "%s needs a string \"%s\": function %s, instruction %zu", op,
                    keys[0], j->fname, idx);
    *s = json_string_value(v);
    *n = json_string_length(v);
    return NVM_OK;
}

static const char *const k_value[] = {"value", NULL};
static const char *const k_count[] = {"n", "count", "size", "value", NULL};
static const char *const k_target[] = {"target", NULL};
static const char *const k_function[] = {"function", "name", NULL};
static const char *const k_name[] = {"name", NULL};
static const char *const k_argc[] = {"argc", NULL};
static const char *const k_type[] = {"type", "to", "value", NULL};
static const char *const k_field[] = {"name", "field", "key", NULL};
static const char *const k_slot[] = {"slot", "index", NULL};

/* Slot of a load/store: a variable name (slots in order of first use) or a slot number. */
static nvm_status slot_of(jl *j, json_t *insn, json_t *vars, const char *op, size_t idx,
                          uint32_t *slot)
{
    json_t *name = json_object_get(insn, "name");
    if (name != NULL && json_is_string(name)) {
        const char *s = json_string_value(name);
        if (json_string_length(name) != strlen(s) || *s == '\0')
            return jerr(j, NVM_E_FORMAT, "%s: invalid variable name: function %s, instruction %zu",
                        op, j->fname, idx);
        json_t *have = json_object_get(vars, s);
        if (have != NULL) {
            *slot = (uint32_t)json_integer_value(have);
            return NVM_OK;
        }
        size_t next = json_object_size(vars);
        if (next >= 65536)
            return jerr(j, NVM_E_FORMAT, "too many variables in function %s (limit 65536)",
                        j->fname);
        if (json_object_set_new(vars, s, json_integer((json_int_t)next)) != 0)
            return jerr(j, NVM_E_MEMORY, "out of memory");
        *slot = (uint32_t)next;
        return NVM_OK;
    }
    json_int_t v;
    const char *const keys[] = {"name", "slot", "index", NULL};
    if (name == NULL && operand(insn, k_slot) == NULL)
        return jerr(j, NVM_E_FORMAT,
                    "%s needs a variable \"name\" or a \"slot\" number: function %s, "
                    "instruction %zu",
                    op, j->fname, idx);
    nvm_status st = int_field(j, insn, keys, op, idx, 0, 65535, &v);
    if (st == NVM_OK)
        *slot = (uint32_t)v;
    return st;
}

static bool permitted(const jl *j, const char *name)
{
    size_t i;
    json_t *v;
    if (j->perms == NULL)
        return false;
    json_array_foreach(j->perms, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), name) == 0)
            return true;
    }
    return false;
}

static nvm_status load_func(jl *j, const char *fname, json_t *fobj, uint32_t base)
{
    nvm_status st = NVM_OK;
    json_t *vars = NULL;
    uint8_t *targeted = NULL;
    j->fname = fname;
    j->line = 0;
    if (!json_is_object(fobj))
        return jerr(j, NVM_E_FORMAT, "function %s must be an object with a \"body\" array", fname);
    json_t *body = json_object_get(fobj, "body");
    if (body == NULL || !json_is_array(body)) {
        if (json_object_get(fobj, "instructions") != NULL)
            return jerr(j, NVM_E_FORMAT,
                        "function %s uses the legacy \"instructions\" list; expected \"body\"",
                        fname);
        return jerr(j, NVM_E_FORMAT, "function %s has no \"body\" array", fname);
    }
    json_t *params = json_object_get(fobj, "params");
    if (params != NULL && !json_is_array(params))
        return jerr(j, NVM_E_FORMAT, "function %s: \"params\" must be an array", fname);
    json_t *locals = json_object_get(fobj, "locals");
    if (locals != NULL && !json_is_array(locals))
        return jerr(j, NVM_E_FORMAT, "function %s: \"locals\" must be an array", fname);
    size_t len = json_array_size(body);
    if (len >= 1000000)
        return jerr(j, NVM_E_FORMAT, "function %s has too many instructions (limit 1000000)",
                    fname);
    st = nvm_builder_begin_func(j->b, fname, strlen(fname), -1, 0, j->err);
    if (st != NVM_OK)
        return st;
    vars = json_object();
    /* which instruction indices are jump targets (index len = function end) */
    targeted = nvm_mod_alloc(j->hook, len + 1);
    if (vars == NULL || targeted == NULL) {
        st = jerr(j, NVM_E_MEMORY, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < len; i++) {
        json_t *insn = json_array_get(body, i);
        json_t *opv = json_is_object(insn) ? json_object_get(insn, "op") : NULL;
        if (opv == NULL || !json_is_string(opv)) {
            if (json_is_object(insn) && json_object_get(insn, "opcode") != NULL)
                st = jerr(j, NVM_E_FORMAT,
                          "legacy CASM dialect ({\"opcode\": ..., \"arg\": ...}) is not "
                          "supported: function %s, instruction %zu; expected {\"op\": ...}",
                          fname, i);
            else
                st = jerr(j, NVM_E_FORMAT,
                          "function %s, instruction %zu: expected an object with a string "
                          "\"op\"",
                          fname, i);
            goto done;
        }
        json_t *meta = json_object_get(insn, "meta");
        json_t *ml = json_is_object(meta) ? json_object_get(meta, "line") : NULL;
        j->line = (json_is_integer(ml) && json_integer_value(ml) > 0 &&
                   json_integer_value(ml) <= UINT32_MAX)
                      ? (uint32_t)json_integer_value(ml)
                      : 0;
        int op = resolve_op(j, json_string_value(opv), i);
        if (op < 0) {
            st = j->err != NULL ? j->err->status : NVM_E_FORMAT;
            goto done;
        }
        if (nvm_opinfo_table[op].operand == NVM_OPK_LABEL) {
            json_int_t t;
            st = int_field(j, insn, k_target, json_string_value(opv), i, 0, (json_int_t)len, &t);
            if (st != NVM_OK)
                goto done;
            targeted[t] = 1;
        }
    }
    for (size_t i = 0; i <= len; i++) {
        if (targeted[i] && (st = nvm_builder_label_def(j->b, base + (uint32_t)i)) != NVM_OK) {
            st = jerr(j, st, "%s", nvm_builder_message(j->b));
            goto done;
        }
        if (i == len)
            break;
        json_t *insn = json_array_get(body, i);
        const char *opname = json_string_value(json_object_get(insn, "op"));
        json_t *meta = json_object_get(insn, "meta");
        json_t *ml = json_is_object(meta) ? json_object_get(meta, "line") : NULL;
        j->line = (json_is_integer(ml) && json_integer_value(ml) > 0 &&
                   json_integer_value(ml) <= UINT32_MAX)
                      ? (uint32_t)json_integer_value(ml)
                      : 0;
        int op = resolve_op(j, opname, i);
        nvm_insn in;
        memset(&in, 0, sizeof in);
        in.op = (uint8_t)op;
        json_int_t v = 0;
        const char *s;
        size_t n;
        uint32_t label = 0;
        switch (nvm_opinfo_table[op].operand) {
        case NVM_OPK_NONE: break;
        case NVM_OPK_I64: {
            json_t *val = json_object_get(insn, "value");
            if (val == NULL || !json_is_integer(val)) {
                st = jerr(j, NVM_E_FORMAT,
                          "%s needs an integer \"value\"%s: function %s, instruction %zu", opname,
                          json_is_real(val) ? " (use push_float for floats)" : "", fname, i);
                goto done;
            }
            in.k.i = json_integer_value(val);
            break;
        }
        case NVM_OPK_F64: {
            json_t *val = json_object_get(insn, "value");
            if (json_is_number(val)) {
                in.k.f = json_number_value(val);
            } else if (json_is_string(val) && strcmp(json_string_value(val), "nan") == 0) {
                in.k.f = NAN;
            } else if (json_is_string(val) && strcmp(json_string_value(val), "inf") == 0) {
                in.k.f = INFINITY;
            } else if (json_is_string(val) && strcmp(json_string_value(val), "-inf") == 0) {
                in.k.f = -INFINITY;
            } else {
                st = jerr(j, NVM_E_FORMAT,
                          "%s needs a number \"value\" (or \"nan\", \"inf\", \"-inf\"): "
                          "function %s, instruction %zu",
                          opname, fname, i);
                goto done;
            }
            break;
        }
        case NVM_OPK_STR: {
            const char *const *keys = op == NVM_OP_PUSH_STR ? k_value : k_field;
            if ((st = str_field(j, insn, keys, opname, i, &s, &n)) != NVM_OK)
                goto done;
            if ((st = nvm_builder_str(j->b, s, n, &in.a)) != NVM_OK) {
                st = jerr(j, st, "%s", nvm_builder_message(j->b));
                goto done;
            }
            break;
        }
        case NVM_OPK_BOOL: {
            json_t *val = json_object_get(insn, "value");
            if (json_is_boolean(val))
                in.b = json_is_true(val) ? 1 : 0;
            else if (json_is_integer(val) &&
                     (json_integer_value(val) == 0 || json_integer_value(val) == 1))
                in.b = (uint8_t)json_integer_value(val);
            else {
                st = jerr(j, NVM_E_FORMAT,
                          "%s needs a boolean \"value\": function %s, instruction %zu", opname,
                          fname, i);
                goto done;
            }
            break;
        }
        case NVM_OPK_SLOT:
            if ((st = slot_of(j, insn, vars, opname, i, &in.a)) != NVM_OK)
                goto done;
            break;
        case NVM_OPK_COUNT:
            if ((st = int_field(j, insn, k_count, opname, i, 0, UINT32_MAX, &v)) != NVM_OK)
                goto done;
            in.a = (uint32_t)v;
            break;
        case NVM_OPK_LABEL:
            v = json_integer_value(json_object_get(insn, "target"));
            label = base + (uint32_t)v;
            break;
        case NVM_OPK_FUNC: {
            if ((st = str_field(j, insn, k_function, opname, i, &s, &n)) != NVM_OK)
                goto done;
            json_t *argc = json_object_get(insn, "argc");
            if (argc != NULL && (!json_is_integer(argc) || json_integer_value(argc) < 0)) {
                st = jerr(j, NVM_E_FORMAT,
                          "call \"argc\" must be a non-negative integer: function %s, "
                          "instruction %zu",
                          fname, i);
                goto done;
            }
            if ((st = nvm_builder_func_ref(j->b, s, n, &in.a)) != NVM_OK) {
                st = jerr(j, st, "%s", nvm_builder_message(j->b));
                goto done;
            }
            break;
        }
        case NVM_OPK_CAP:
            if ((st = str_field(j, insn, k_name, opname, i, &s, &n)) != NVM_OK ||
                (st = int_field(j, insn, k_argc, opname, i, 0, 255, &v)) != NVM_OK)
                goto done;
            if (n != strlen(s) || !permitted(j, s)) {
                st = jerr(j, NVM_E_LINK,
                          "capability %.200s used but not declared in manifest.permissions "
                          "(function %s, instruction %zu)",
                          s, fname, i);
                goto done;
            }
            if ((st = nvm_builder_cap(j->b, s, n, &in.a)) != NVM_OK) {
                st = jerr(j, st, "%s", nvm_builder_message(j->b));
                goto done;
            }
            in.b = (uint8_t)v;
            break;
        case NVM_OPK_CAST: {
            if ((st = str_field(j, insn, k_type, opname, i, &s, &n)) != NVM_OK)
                goto done;
            int t = nvm_cast_type_lookup(s, n);
            if (t < 0) {
                st = jerr(j, NVM_E_FORMAT,
                          "cast type \"%.40s\" unknown (expected int, float, str or bool): "
                          "function %s, instruction %zu",
                          s, fname, i);
                goto done;
            }
            in.b = (uint8_t)t;
            break;
        }
        }
        st = nvm_opinfo_table[op].operand == NVM_OPK_LABEL
                 ? nvm_builder_emit_jump(j->b, &in, label, j->line)
                 : nvm_builder_emit(j->b, &in, j->line);
        if (st != NVM_OK) {
            st = jerr(j, st, "%s", nvm_builder_message(j->b));
            goto done;
        }
    }
done:
    json_decref(vars);
    nvm_mod_free(j->hook, targeted, len + 1);
    return st;
}

static nvm_status check_version(jl *j, json_t *root)
{
    json_t *v = json_object_get(root, "version");
    if (v == NULL)
        return jerr(j, NVM_E_FORMAT, "missing \"version\" (expected \"1.x\")");
    if (!json_is_string(v))
        return jerr(j, NVM_E_FORMAT, "\"version\" must be a string like \"1.0\"");
    const char *s = json_string_value(v);
    size_t k = 0;
    while (s[k] >= '0' && s[k] <= '9')
        k++;
    if (k == 0 || (s[k] != '\0' && s[k] != '.'))
        return jerr(j, NVM_E_FORMAT, "invalid \"version\" \"%.40s\" (expected \"1.x\")", s);
    if (k != 1 || s[0] != '1')
        return jerr(j, NVM_E_FORMAT, "version mismatch: expected 1.x, found %.40s", s);
    return NVM_OK;
}

nvm_status nvm_module_from_json(const nvm_config *cfg, const char *src, size_t len,
                                const char *name, nvm_module **out, nvm_error *err)
{
    nvm_status st;
    json_error_t je;
    json_t *root = NULL;
    nvm_module *m = NULL;
    jl j;
    memset(&j, 0, sizeof j);
    j.file = name;
    j.err = err;
    *out = NULL;
    nvm_module *hook = nvm_module_new_empty(cfg);
    if (hook == NULL)
        return nvm_error_set(err, NVM_E_MEMORY, name, 0, 0, "out of memory");
    j.hook = hook;
    root = json_loadb(src, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (root == NULL) {
        st = nvm_error_set(err, NVM_E_SYNTAX, name, je.line > 0 ? (uint32_t)je.line : 0,
                           je.column > 0 ? (uint32_t)je.column : 0, "JSON syntax error: %s",
                           je.text);
        goto fail;
    }
    if (!json_is_object(root)) {
        st = jerr(&j, NVM_E_FORMAT,
                  "JSON IR must be an object with \"version\" and "
                  "\"functions\"");
        goto fail;
    }
    if ((st = check_version(&j, root)) != NVM_OK)
        goto fail;
    json_t *funcs = json_object_get(root, "functions");
    if (funcs == NULL && json_object_get(root, "instructions") != NULL) {
        st = jerr(&j, NVM_E_FORMAT,
                  "legacy CASM artifact dialect (an \"instructions\" list of {\"opcode\", "
                  "\"arg\"} entries) is not supported; expected \"functions\": {NAME: "
                  "{\"body\": [{\"op\": ...}]}}");
        goto fail;
    }
    if (funcs == NULL || !json_is_object(funcs) || json_object_size(funcs) == 0) {
        st = jerr(&j, NVM_E_FORMAT, "JSON IR needs a non-empty \"functions\" object");
        goto fail;
    }
    json_t *manifest = json_object_get(root, "manifest");
    if (manifest != NULL) {
        if (!json_is_object(manifest)) {
            st = jerr(&j, NVM_E_FORMAT, "\"manifest\" must be an object");
            goto fail;
        }
        j.perms = json_object_get(manifest, "permissions");
        if (j.perms != NULL && !json_is_array(j.perms)) {
            st = jerr(&j, NVM_E_FORMAT, "\"manifest.permissions\" must be an array of strings");
            goto fail;
        }
    }
    j.b = nvm_builder_new(cfg, name);
    if (j.b == NULL) {
        st = nvm_error_set(err, NVM_E_MEMORY, name, 0, 0, "out of memory");
        goto fail;
    }
    const char *fname;
    json_t *fobj;
    uint64_t base = 0;
    json_object_foreach(funcs, fname, fobj)
    {
        if (base > (1u << 26)) {
            st = jerr(&j, NVM_E_FORMAT, "JSON IR program too large");
            goto fail;
        }
        if ((st = load_func(&j, fname, fobj, (uint32_t)base)) != NVM_OK)
            goto fail;
        base += json_array_size(json_object_get(fobj, "body")) + 1;
    }
    j.line = 0;
    if ((st = nvm_builder_finish(j.b, NULL, &m, err)) != NVM_OK)
        goto fail;
    if ((st = nvm_verify(m, err)) != NVM_OK)
        goto fail;
    *out = m;
    m = NULL;
fail:
    nvm_module_free(m);
    nvm_builder_free(j.b);
    json_decref(root);
    nvm_module_free(hook);
    return st;
}

#else /* !NVM_HAVE_JANSSON */

nvm_status nvm_module_from_json(const nvm_config *cfg, const char *src, size_t len,
                                const char *name, nvm_module **out, nvm_error *err)
{
    (void)cfg;
    (void)src;
    (void)len;
    *out = NULL;
    return nvm_error_set(err, NVM_E_FORMAT, name, 0, 0,
                         "JSON IR support is not built into this configuration");
}

#endif

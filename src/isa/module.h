/* module.h - the in-memory bytecode module, its builder, serializer, verifier and disassembler.
 *
 * Invariants of a loaded module (established by the loaders, checked again by the verifier):
 *   - every insn.op is an assigned opcode; operands are in range (string, function, capability
 *     indices resolved; labels are instruction indices in 0..ninsn);
 *   - funcs[i].nslots is greater than every SLOT operand in the function;
 *   - after nvm_verify succeeds, `verified` is true and every function's `heights`, `consumed`,
 *     `returns` and `max_height` are filled.
 * A module never changes after it is verified and may be shared between VMs.
 */
#ifndef NVM_MODULE_H
#define NVM_MODULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nanovm.h"
#include "isa.h"

/* A pre-decoded instruction (16 bytes). Which fields are meaningful depends on the operand kind
 * (see isa.h). */
typedef struct nvm_insn {
    uint8_t op;
    uint8_t b; /* BOOL value, CAP argc, CAST type */
    uint16_t pad;
    uint32_t a; /* STR/SLOT/COUNT/LABEL/FUNC/CAP index */
    union {
        int64_t i;
        double f;
    } k;
} nvm_insn;

typedef struct nvm_func {
    char *name; /* NUL-terminated, may contain dots */
    uint32_t ninsn;
    nvm_insn *code;
    uint32_t *lines;       /* source line per instruction (0 = unknown); may be NULL */
    uint32_t nslots;       /* frame slots used (max SLOT operand + 1) */
    int32_t declared_argc; /* from `.func NAME ARGC`, -1 when not declared */
    /* verifier output */
    int32_t *heights;    /* operand stack height before each insn, relative to entry;
                            INT32_MIN for unreachable instructions; ninsn + 1 entries */
    uint32_t consumed;   /* arguments the function takes from the caller's stack */
    bool returns;        /* some path reaches RET (CALL then pushes one result) */
    uint32_t max_height; /* highest height above (entry - consumed) anywhere in the function */
} nvm_func;

typedef struct nvm_strconst {
    char *bytes; /* NUL-terminated copy; len may include NUL bytes */
    uint32_t len;
} nvm_strconst;

struct nvm_module {
    nvm_alloc_fn alloc;
    void *alloc_ud;
    char *name; /* source file name for messages */
    uint32_t nfuncs;
    nvm_func *funcs;
    uint32_t entry; /* index of the entry function */
    uint32_t nstrs;
    nvm_strconst *strs;
    uint32_t ncaps;
    char **caps; /* capability names used by CAP_CALL */
    bool verified;
};

/* ---- allocation through the module's hook (module.c) ---- */
void *nvm_mod_alloc(const nvm_module *m, size_t n); /* zeroed; NULL on failure */
void *nvm_mod_realloc(const nvm_module *m, void *p, size_t o, size_t n);
void nvm_mod_free(const nvm_module *m, void *p, size_t n);
nvm_module *nvm_module_new_empty(const nvm_config *cfg); /* NULL on failure */

/* ---- builder, shared by the CASM assembler, the JSON IR loader and the bytecode reader ----
 * Usage: b = builder_new; for each function: begin_func, emit*, label defs/uses; then finish.
 * Labels are builder-global ids; a label use records a fixup resolved at end_func (a label used
 * in a function but defined in another is an error). */
typedef struct nvm_builder nvm_builder;
nvm_builder *nvm_builder_new(const nvm_config *cfg, const char *source_name);
void nvm_builder_free(nvm_builder *b);
/* Returns the function index; *err filled on duplicate names. Functions may be referenced
 * before they are defined via nvm_builder_func_ref. */
nvm_status nvm_builder_begin_func(nvm_builder *b, const char *name, size_t len, int32_t argc,
                                  uint32_t line, nvm_error *err);
nvm_status nvm_builder_func_ref(nvm_builder *b, const char *name, size_t len, uint32_t *idx);
nvm_status nvm_builder_str(nvm_builder *b, const char *s, size_t len, uint32_t *idx);
nvm_status nvm_builder_cap(nvm_builder *b, const char *name, size_t len, uint32_t *idx);
nvm_status nvm_builder_emit(nvm_builder *b, const nvm_insn *insn, uint32_t line);
/* Label ids come from the caller (e.g. an index into its own label table). */
nvm_status nvm_builder_label_def(nvm_builder *b, uint32_t label_id);
/* Emits insn whose `a` is resolved to the label's instruction index at end of function. */
nvm_status nvm_builder_emit_jump(nvm_builder *b, const nvm_insn *insn, uint32_t label_id,
                                 uint32_t line);
/* Takes ownership of the built module on success (the builder is still freed by the caller).
 * `entry`: name of the entry function, or NULL for "main, else the first function". Fails with
 * NVM_E_LINK for functions referenced but never defined, undefined labels. */
nvm_status nvm_builder_finish(nvm_builder *b, const char *entry, nvm_module **out, nvm_error *err);
/* Message of the last failing builder call that takes no nvm_error (func_ref, str, cap, emit,
 * label_def, emit_jump). Owned by the builder. */
const char *nvm_builder_message(const nvm_builder *b);
/* Frees the per-instruction line tables (funcs[i].lines = NULL). Used to compare the bytecode of
 * two modules built from different texts of the same code. */
void nvm_module_drop_lines(nvm_module *m);

/* ---- verifier (verify.c) ---- */
nvm_status nvm_verify(nvm_module *m, nvm_error *err);

/* ---- bytecode format (bytecode.c) ---- */
#define NVM_BC_MAGIC "NVMB"
#define NVM_BC_VERSION 1

/* ---- error helpers (module.c) ---- */
nvm_status nvm_error_set(nvm_error *err, nvm_status st, const char *file, uint32_t line,
                         uint32_t col, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;

#endif

/* vm.c - the VM instance: configuration defaults, life cycle, the capability registry, the error
 * record, binding a module (nvm_vm_load), running it (nvm_vm_run, backtraces) and the GC roots. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vm.h"
#include "../isa/capcat.h"
#include "fused.h"

#define NVM_DEFAULT_MAX_MEMORY ((size_t)1 << 30)
#define NVM_DEFAULT_MAX_STACK 1048576u
#define NVM_DEFAULT_MAX_DEPTH 100000u

void nvm_config_init(nvm_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->alloc = NULL;
    cfg->alloc_ud = NULL;
    cfg->gas = -1;
    cfg->max_memory = NVM_DEFAULT_MAX_MEMORY;
    cfg->max_stack = NVM_DEFAULT_MAX_STACK;
    cfg->max_depth = NVM_DEFAULT_MAX_DEPTH;
    cfg->gc_stress = false;
    cfg->fail_alloc_at = 0;
    cfg->interrupt = NULL;
    cfg->interrupt_ud = NULL;
}

nvm_status nvm_vm_new(const nvm_config *cfg, nvm_vm **out)
{
    nvm_config c;
    if (out == NULL)
        return NVM_E_USAGE;
    *out = NULL;
    if (cfg != NULL)
        c = *cfg;
    else
        nvm_config_init(&c);
    if (c.alloc == NULL) {
        c.alloc = nvm_default_alloc;
        c.alloc_ud = NULL;
    }
    if (c.max_memory == 0)
        c.max_memory = NVM_DEFAULT_MAX_MEMORY;
    if (c.max_stack == 0)
        c.max_stack = NVM_DEFAULT_MAX_STACK;
    if (c.max_depth == 0)
        c.max_depth = NVM_DEFAULT_MAX_DEPTH;

    nvm_vm *vm = c.alloc(c.alloc_ud, NULL, 0, sizeof *vm);
    if (vm == NULL)
        return NVM_E_MEMORY;
    memset(vm, 0, sizeof *vm);
    vm->cfg = c;
    vm->gas_limit = c.gas;
    vm->err.status = NVM_OK;
    nvm_status st = nvm_heap_init(vm);
    if (st != NVM_OK) {
        nvm_heap_destroy(vm);
        c.alloc(c.alloc_ud, vm, sizeof *vm, 0);
        return st;
    }
    *out = vm;
    return NVM_OK;
}

/* Drops the module binding: constants and the capability map. */
static void unbind_module(nvm_vm *vm)
{
    if (vm->consts != NULL)
        nvm_mem_free(vm, vm->consts, sizeof(nvm_value) * vm->nconsts_cap);
    vm->consts = NULL;
    vm->nconsts = 0;
    vm->nconsts_cap = 0;
    if (vm->capbind != NULL)
        nvm_mem_free(vm, vm->capbind, sizeof(uint32_t) * vm->ncapbind);
    if (vm->capresults != NULL)
        nvm_mem_free(vm, vm->capresults, vm->ncapbind);
    vm->capbind = NULL;
    vm->capresults = NULL;
    vm->ncapbind = 0;
    nvm_prep_free(vm);
    vm->mod = NULL;
}

void nvm_vm_free(nvm_vm *vm)
{
    if (vm == NULL)
        return;
    unbind_module(vm);
    for (uint32_t i = 0; i < vm->ncaps; i++)
        nvm_mem_free(vm, vm->caps[i].name, vm->caps[i].name_len + 1);
    if (vm->caps != NULL)
        nvm_mem_free(vm, vm->caps, sizeof(nvm_capentry) * vm->caps_cap);
    if (vm->stack != NULL)
        nvm_mem_free(vm, vm->stack, sizeof(nvm_value) * vm->stack_cap);
    if (vm->slots != NULL)
        nvm_mem_free(vm, vm->slots, sizeof(nvm_value) * vm->slots_cap);
    if (vm->frames != NULL)
        nvm_mem_free(vm, vm->frames, sizeof(nvm_frame) * vm->frames_cap);
    if (vm->handlers != NULL)
        nvm_mem_free(vm, vm->handlers, sizeof(nvm_handler) * vm->handlers_cap);
    nvm_heap_destroy(vm);
    nvm_alloc_fn alloc = vm->cfg.alloc;
    void *ud = vm->cfg.alloc_ud;
    alloc(ud, vm, sizeof *vm, 0);
}

const nvm_error *nvm_vm_error(const nvm_vm *vm)
{
    return &vm->err;
}

nvm_status nvm_vm_vraise(nvm_vm *vm, nvm_status st, const char *fmt, va_list ap)
{
    vm->err.status = st;
    vsnprintf(vm->err.message, sizeof vm->err.message, fmt, ap);
    vm->err.file[0] = '\0';
    vm->err.line = 0;
    vm->err.col = 0;
    vm->err.backtrace[0] = '\0';
    return st;
}

nvm_status nvm_vm_raise(nvm_vm *vm, nvm_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    nvm_vm_vraise(vm, st, fmt, ap);
    va_end(ap);
    return st;
}

nvm_status nvm_cap_fail(nvm_vm *vm, nvm_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    nvm_vm_vraise(vm, status, fmt, ap);
    va_end(ap);
    return status;
}

static int find_cap(const nvm_vm *vm, const char *name, size_t len)
{
    for (uint32_t i = 0; i < vm->ncaps; i++) {
        if (vm->caps[i].name_len == len && memcmp(vm->caps[i].name, name, len) == 0)
            return (int)i;
    }
    return -1;
}

nvm_status nvm_vm_register_cap(nvm_vm *vm, const char *name, uint32_t argc, nvm_cap_fn fn, void *ud)
{
    if (vm == NULL)
        return NVM_E_USAGE;
    if (name == NULL || fn == NULL)
        return nvm_vm_raise(vm, NVM_E_USAGE, "capability registration needs a name and a function");
    size_t len = strlen(name);
    int found = find_cap(vm, name, len);
    if (found >= 0) {
        nvm_capentry *e = &vm->caps[found];
        e->argc = argc;
        e->fn = fn;
        e->ud = ud;
        return NVM_OK;
    }
    if (vm->ncaps == vm->caps_cap) {
        uint32_t ncap = vm->caps_cap != 0 ? vm->caps_cap * 2 : 8;
        void *p = vm->caps;
        nvm_status st = nvm_mem_realloc(vm, &p, sizeof(nvm_capentry) * vm->caps_cap,
                                        sizeof(nvm_capentry) * ncap, false);
        if (st != NVM_OK)
            return st;
        vm->caps = p;
        vm->caps_cap = ncap;
    }
    void *copy = NULL;
    nvm_status st = nvm_mem_alloc(vm, len + 1, false, &copy);
    if (st != NVM_OK)
        return st;
    memcpy(copy, name, len + 1);
    nvm_capentry *e = &vm->caps[vm->ncaps++];
    e->name = copy;
    e->name_len = len;
    e->argc = argc;
    e->fn = fn;
    e->ud = ud;
    return NVM_OK;
}

/* Sets a link error located at instruction `pc` of function `fn`. */
static nvm_status link_error_at(nvm_vm *vm, const nvm_module *m, const nvm_func *fn, uint32_t pc,
                                const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

static nvm_status link_error_at(nvm_vm *vm, const nvm_module *m, const nvm_func *fn, uint32_t pc,
                                const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    nvm_vm_vraise(vm, NVM_E_LINK, fmt, ap);
    va_end(ap);
    if (m->name != NULL)
        snprintf(vm->err.file, sizeof vm->err.file, "%s", m->name);
    if (fn != NULL && fn->lines != NULL && pc < fn->ninsn)
        vm->err.line = fn->lines[pc];
    return NVM_E_LINK;
}

nvm_status nvm_vm_load(nvm_vm *vm, const nvm_module *m)
{
    nvm_status st;
    if (vm == NULL)
        return NVM_E_USAGE;
    if (vm->running)
        return nvm_vm_raise(vm, NVM_E_USAGE, "nvm_vm_load called during a run");
    if (m == NULL || !m->verified)
        return nvm_vm_raise(vm, NVM_E_USAGE, "nvm_vm_load needs a verified module");
    unbind_module(vm);
    vm->sp = 0;
    vm->depth = 0;
    vm->nhandlers = 0;

    /* Capabilities: module index -> registry index. */
    if (m->ncaps > 0) {
        void *p = NULL;
        st = nvm_mem_alloc(vm, sizeof(uint32_t) * m->ncaps, false, &p);
        if (st != NVM_OK)
            goto fail;
        vm->capbind = p;
        vm->ncapbind = m->ncaps;
        p = NULL;
        st = nvm_mem_alloc(vm, m->ncaps, false, &p);
        if (st != NVM_OK)
            goto fail;
        vm->capresults = p;
    }
    for (uint32_t i = 0; i < m->ncaps; i++) {
        int idx = find_cap(vm, m->caps[i], strlen(m->caps[i]));
        if (idx < 0) {
            st = nvm_vm_raise(vm, NVM_E_LINK, "unknown capability \"%s\"", m->caps[i]);
            goto fail;
        }
        /* A capability of the catalog must be registered with the catalog's signature: the
         * verifier took the CAP_CALL's stack effect from it. */
        const nvm_capsig *sig = nvm_capcat_lookup(m->caps[i]);
        uint32_t reg_argc = vm->caps[idx].argc;
        if (sig != NULL &&
            (sig->argc < 0 ? reg_argc != NVM_VARIADIC : reg_argc != (uint32_t)sig->argc)) {
            st = nvm_vm_raise(vm, NVM_E_LINK,
                              "capability \"%s\" is registered with a signature other than "
                              "its catalog entry (%s arguments)",
                              m->caps[i], sig->argc < 0 ? "variadic" : "fixed");
            goto fail;
        }
        vm->capbind[i] = (uint32_t)idx;
        vm->capresults[i] = (uint8_t)nvm_cap_results(m->caps[i]);
    }
    for (uint32_t f = 0; f < m->nfuncs; f++) {
        const nvm_func *fn = &m->funcs[f];
        for (uint32_t pc = 0; pc < fn->ninsn; pc++) {
            const nvm_insn *in = &fn->code[pc];
            if (in->op != NVM_OP_CAP_CALL)
                continue;
            const nvm_capentry *e = &vm->caps[vm->capbind[in->a]];
            if (e->argc != NVM_VARIADIC && e->argc != in->b) {
                st = link_error_at(vm, m, fn, pc,
                                   "capability \"%s\" takes %u argument%s, called with %u: "
                                   "function %s, instruction %u (CAP_CALL)",
                                   e->name, e->argc, e->argc == 1 ? "" : "s", (unsigned)in->b,
                                   fn->name, pc);
                goto fail;
            }
        }
    }

    st = nvm_prep_build(vm, m);
    if (st != NVM_OK)
        goto fail;

    /* String constants as arena strings. nconsts counts those created so far: they are roots. */
    if (m->nstrs > 0) {
        void *p = NULL;
        st = nvm_mem_alloc(vm, sizeof(nvm_value) * m->nstrs, false, &p);
        if (st != NVM_OK)
            goto fail;
        vm->consts = p;
        vm->nconsts_cap = m->nstrs;
        vm->nconsts = 0;
    }
    for (uint32_t i = 0; i < m->nstrs; i++) {
        nvm_value v;
        st = nvm_str_new(vm, m->strs[i].bytes, m->strs[i].len, &v);
        if (st != NVM_OK)
            goto fail;
        vm->consts[i] = v;
        vm->nconsts = i + 1;
    }
    vm->mod = m;
    return NVM_OK;
fail:
    if (st == NVM_E_LINK && m->name != NULL && vm->err.file[0] == '\0')
        snprintf(vm->err.file, sizeof vm->err.file, "%s", m->name);
    unbind_module(vm);
    return st;
}

/* Appends "  at NAME (FILE:LINE)" lines, innermost frame first, to err.backtrace. */
static void build_backtrace(nvm_vm *vm)
{
    const nvm_module *m = vm->mod;
    const char *file = m->name != NULL ? m->name : "?";
    char *bt = vm->err.backtrace;
    size_t cap = sizeof vm->err.backtrace;
    size_t len = 0;
    bt[0] = '\0';
    for (uint32_t k = 0; k < vm->depth; k++) {
        const nvm_frame *fr = &vm->frames[vm->depth - 1 - k];
        /* The innermost frame's pc is the failing instruction; a caller's pc is the instruction
         * after its CALL. */
        const nvm_func *fn = fr->pf->fn;
        uint32_t pc = fr->ip != NULL ? (uint32_t)(fr->ip - fr->pf->code) : 0;
        if (k > 0 && pc > 0)
            pc--;
        uint32_t line = 0;
        if (fn->lines != NULL && pc < fn->ninsn)
            line = fn->lines[pc];
        if (k == 0) {
            snprintf(vm->err.file, sizeof vm->err.file, "%s", file);
            vm->err.line = line;
            vm->err.col = 0;
        }
        char entry[384];
        int n;
        if (line != 0)
            n = snprintf(entry, sizeof entry, "%s  at %s (%s:%u)", k > 0 ? "\n" : "", fn->name,
                         file, (unsigned)line);
        else
            n = snprintf(entry, sizeof entry, "%s  at %s (%s)", k > 0 ? "\n" : "", fn->name, file);
        if (n < 0)
            break;
        size_t nl = (size_t)n < sizeof entry ? (size_t)n : sizeof entry - 1;
        /* Keep room for the "... more frames" line. */
        if (len + nl + 48 >= cap) {
            snprintf(bt + len, cap - len, "\n  ... %u more frame%s", vm->depth - k,
                     vm->depth - k == 1 ? "" : "s");
            return;
        }
        memcpy(bt + len, entry, nl);
        len += nl;
        bt[len] = '\0';
    }
}

nvm_status nvm_vm_run(nvm_vm *vm)
{
    return nvm_vm_run_with(vm, NULL, NULL);
}

nvm_status nvm_vm_run_with(nvm_vm *vm, nvm_status (*runner)(nvm_vm *vm, void *ud), void *ud)
{
    if (vm == NULL)
        return NVM_E_USAGE;
    if (vm->running)
        return nvm_vm_raise(vm, NVM_E_USAGE, "nvm_vm_run called during a run");
    if (vm->mod == NULL)
        return nvm_vm_raise(vm, NVM_E_USAGE, "nvm_vm_run needs a loaded module");
    memset(&vm->err, 0, sizeof vm->err);
    vm->err.status = NVM_OK;
    vm->sp = 0;
    vm->depth = 0;
    vm->nhandlers = 0;
    vm->gas_used = 0;
    vm->gas_limit = vm->cfg.gas;
    vm->running = true;
    vm->thrown_pending = false;
    nvm_status st = runner != NULL ? runner(vm, ud) : nvm_interp_run(vm);
    vm->running = false;
    vm->thrown_pending = false;
    if (st != NVM_OK) {
        vm->err.status = st;
        if (vm->depth > 0)
            build_backtrace(vm);
    } else {
        memset(&vm->err, 0, sizeof vm->err);
        vm->err.status = NVM_OK;
    }
    /* Drop the run's values so that the collector may reclaim them. */
    vm->sp = 0;
    vm->depth = 0;
    vm->nhandlers = 0;
    return st;
}

int64_t nvm_vm_gas_used(const nvm_vm *vm)
{
    return vm->gas_used;
}

void nvm_vm_mark_roots(nvm_vm *vm)
{
    for (uint32_t i = 0; i < vm->sp; i++) {
        if (NVM_IS_OBJ(vm->stack[i]))
            nvm_gc_mark_value(vm, vm->stack[i]);
    }
    uint32_t nslots = 0;
    for (uint32_t d = 0; d < vm->depth; d++)
        nslots += vm->frames[d].pf->nslots;
    for (uint32_t i = 0; i < nslots; i++) {
        if (NVM_IS_OBJ(vm->slots[i]))
            nvm_gc_mark_value(vm, vm->slots[i]);
    }
    for (uint32_t i = 0; i < vm->nconsts; i++)
        nvm_gc_mark_value(vm, vm->consts[i]);
    if (vm->thrown_pending)
        nvm_gc_mark_value(vm, vm->thrown);
}

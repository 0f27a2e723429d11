/* interp.c - the reference interpreter.
 *
 * Executes verified bytecode. The hot state (instruction pointer, operand stack pointer, frame
 * slots, gas countdown) lives in locals; vm->sp is written back before any call that may allocate
 * (a collection marks stack[0..vm->sp)) or raise. Dispatch is direct threading through a table of
 * label addresses with GNU C, a switch otherwise; both expand the same op bodies (CASE/NEXT).
 *
 * Invariants:
 *   - `ip` points at the instruction being executed; `code` is the running function's code;
 *   - `sp` is one past the top value; `stack` == vm->stack (reloaded after CALL, which may grow
 * it);
 *   - `slots` == vm->slots + frame->slot_base (reloaded whenever the frame changes);
 *   - gas: every dispatched instruction decrements gas_left first; a negative count goes to
 *     gas_event, which refills the countdown from vm->gas_rest (at most NVM_GAS_CHUNK at a
 *     time, and calls the interrupt hook) or ends the run when no gas is left.
 *     vm->gas_used == GAS_USED() whenever control leaves the loop;
 *   - the operand stack never overflows inside a function: CALL reserves the callee's verified
 *     max_height (plus one) before entering it.
 */
#include <math.h>
#include <string.h>

#include "vm.h"
#include "fused.h"

#if defined(__GNUC__)
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#define NVM_COLD __attribute__((noinline))
#else
#define LIKELY(x) (x)
#define UNLIKELY(x) (x)
#define NVM_COLD
#endif

#if defined(__wasm__) && !defined(NVM_NO_COMPUTED_GOTO)
/* WebAssembly has no indirect jump: clang lowers computed gotos to one central br_table indexed by
 * a label number loaded from a label table in linear memory. A switch on the dispatch id is the
 * same br_table without that load; each op body ends with its own gas check and dispatch-id load
 * (DISPATCH below), and the sandbox's build turns the br_table back into one indirect jump per op
 * body (src/tier/wasm/w2c_dispatch.c). */
#define NVM_NO_COMPUTED_GOTO 1
#endif
#if defined(__GNUC__) && !defined(NVM_NO_COMPUTED_GOTO)
#define NVM_COMPUTED_GOTO 1
#else
#define NVM_COMPUTED_GOTO 0
#endif

/* GCC merges the identical dispatch tails of the op bodies back into one indirect jump (cross
 * jumping), which defeats direct threading; keep one indirect jump per op body. Clang does not
 * merge them and has no such option. */
#if NVM_COMPUTED_GOTO && !defined(__clang__)
#define NVM_INTERP_ATTR __attribute__((optimize("no-crossjumping")))
#else
#define NVM_INTERP_ATTR
#endif

static const char *const type_names[] = {"null", "bool",  "int", "float",
                                         "str",  "array", "map", "undefined"};

static const char *tname(nvm_value v)
{
    return v.type < sizeof type_names / sizeof type_names[0] ? type_names[v.type] : "?";
}

static const char *opname(uint8_t op)
{
    const char *n = nvm_opinfo_table[op].name;
    return n != NULL ? n : "?";
}

/* ---- overflow-checked int arithmetic ---- */
static inline bool add_ovf(int64_t a, int64_t b, int64_t *r)
{
#if defined(__GNUC__)
    return __builtin_add_overflow(a, b, r);
#else
    if ((b > 0 && a > INT64_MAX - b) || (b < 0 && a < INT64_MIN - b))
        return true;
    *r = a + b;
    return false;
#endif
}

static inline bool sub_ovf(int64_t a, int64_t b, int64_t *r)
{
#if defined(__GNUC__)
    return __builtin_sub_overflow(a, b, r);
#else
    if ((b < 0 && a > INT64_MAX + b) || (b > 0 && a < INT64_MIN + b))
        return true;
    *r = a - b;
    return false;
#endif
}

static inline bool mul_ovf(int64_t a, int64_t b, int64_t *r)
{
#if defined(__GNUC__)
#if UINTPTR_MAX == 0xFFFFFFFFu
    /* 32-bit targets (the wasm32 sandbox): the overflow builtin calls a 128-bit multiply;
     * operands that fit in 32 bits cannot overflow a 64-bit product. */
    if (a == (int32_t)a && b == (int32_t)b) {
        *r = a * b;
        return false;
    }
#endif
    return __builtin_mul_overflow(a, b, r);
#else
    if (a > 0) {
        if (b > 0 ? a > INT64_MAX / b : b < INT64_MIN / a)
            return true;
    } else if (a < 0) {
        if (b > 0 ? a < INT64_MIN / b : (b != 0 && a < INT64_MAX / b))
            return true;
    }
    *r = a * b;
    return false;
#endif
}

static inline bool is_num(nvm_value v)
{
    return v.type == NVM_T_INT || v.type == NVM_T_FLOAT;
}
static inline double num_val(nvm_value v)
{
    return v.type == NVM_T_INT ? (double)v.as.i : v.as.f;
}

static inline bool truthy(const nvm_vm *vm, nvm_value v)
{
    switch (v.type) {
    case NVM_T_NULL: return false;
    case NVM_T_BOOL: return v.as.b != 0;
    case NVM_T_INT: return v.as.i != 0;
    case NVM_T_FLOAT: return v.as.f != 0.0;
    default: return nvm_truthy(vm, v);
    }
}

/* Copies one value field by field. Op bodies write a value's payload and tag with separate stores;
 * reading it back with one 16-byte load would defeat store-to-load forwarding (a stall of about a
 * dozen cycles), so values are never moved as one 16-byte block on the hot paths. */
static inline void vcopy(nvm_value *dst, const nvm_value *src)
{
    int64_t i = src->as.i;
    uint32_t t = src->type;
    dst->as.i = i;
    dst->type = t;
}

static inline nvm_value undef_value(void)
{
    nvm_value v;
    v.as.i = 0;
    v.type = NVM_T_UNDEF;
    return v;
}

/* Bytewise string order: memcmp over the common prefix, then length. */
static int str_cmp(const nvm_vm *vm, nvm_value a, nvm_value b)
{
    const nvm_str *x = nvm_heap_obj(&vm->heap, a);
    const nvm_str *y = nvm_heap_obj(&vm->heap, b);
    uint32_t n = x->len < y->len ? x->len : y->len;
    int c = n > 0 ? memcmp(x->data, y->data, n) : 0;
    if (c != 0)
        return c < 0 ? -1 : 1;
    return x->len < y->len ? -1 : (x->len > y->len ? 1 : 0);
}

/* ---- error helpers (cold) ---- */
static NVM_COLD nvm_status type_error2(nvm_vm *vm, uint8_t op, const char *what, nvm_value a,
                                       nvm_value b)
{
    return nvm_vm_raise(vm, NVM_E_PROGRAM, "type error: %s expects %s, got %s and %s", opname(op),
                        what, tname(a), tname(b));
}

static NVM_COLD nvm_status type_error1(nvm_vm *vm, uint8_t op, const char *what, nvm_value a)
{
    return nvm_vm_raise(vm, NVM_E_PROGRAM, "type error: %s expects %s, got %s", opname(op), what,
                        tname(a));
}

static NVM_COLD nvm_status program_error(nvm_vm *vm, const char *msg, uint8_t op)
{
    return nvm_vm_raise(vm, NVM_E_PROGRAM, "%s%s", msg, op != 0 ? opname(op) : "");
}

/* Message of an uncaught THROW: "uncaught exception: <printed value>". */
static NVM_COLD nvm_status uncaught_throw(nvm_vm *vm, nvm_value v)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    nvm_status st = nvm_format_append(vm, v, &buf, &len, &cap);
    if (st == NVM_OK)
        st = nvm_vm_raise(vm, NVM_E_PROGRAM, "uncaught exception: %.*s", (int)len,
                          buf != NULL ? buf : "");
    if (buf != NULL)
        nvm_mem_free(vm, buf, cap);
    return st;
}

/* ---- growth of the VM's stacks (all through the allocator hook, within the limits) ---- */
static NVM_COLD nvm_status grow_array(nvm_vm *vm, void **p, uint32_t *cap, uint64_t need,
                                      uint64_t limit, size_t elem)
{
    uint64_t ncap = *cap != 0 ? (uint64_t)*cap * 2 : 64;
    if (ncap < need)
        ncap = need;
    if (ncap > limit)
        ncap = limit;
    if (ncap > SIZE_MAX / elem)
        return nvm_vm_raise(vm, NVM_E_MEMORY, "memory limit exceeded");
    void *q = *p;
    nvm_status st = nvm_mem_realloc(vm, &q, (size_t)*cap * elem, (size_t)ncap * elem, true);
    if (st != NVM_OK)
        return st;
    *p = q;
    *cap = (uint32_t)ncap;
    return NVM_OK;
}

/* Recomputes the limits CALL compares against (vm.h). */
static void set_limits(nvm_vm *vm)
{
    uint32_t lim = vm->frames_cap < vm->cfg.max_depth ? vm->frames_cap : vm->cfg.max_depth;
    vm->stack_end = vm->stack != NULL ? vm->stack + vm->stack_cap : NULL;
    vm->slots_end = vm->slots != NULL ? vm->slots + vm->slots_cap : NULL;
    vm->frames_end = vm->frames != NULL ? vm->frames + lim : NULL;
}

/* Makes room for a call to `pf` made at operand stack index `spi` whose slots start at index
 * `slot_base`: depth limit, operand stack (spi + need values), a frame record and the callee's
 * slots. */
static NVM_COLD nvm_status ensure_call_space(nvm_vm *vm, const nvm_pfunc *pf, uint32_t spi,
                                             uint32_t slot_base)
{
    nvm_status st = NVM_OK;
    if (vm->depth >= vm->cfg.max_depth)
        return nvm_vm_raise(vm, NVM_E_DEPTH, "call depth limit exceeded (%u frames)",
                            (unsigned)vm->cfg.max_depth);
    uint64_t need = (uint64_t)spi + pf->need;
    if (need > vm->stack_cap) {
        if (need > vm->cfg.max_stack)
            return nvm_vm_raise(vm, NVM_E_STACK, "operand stack limit exceeded (%u values)",
                                (unsigned)vm->cfg.max_stack);
        void *p = vm->stack;
        st = grow_array(vm, &p, &vm->stack_cap, need, vm->cfg.max_stack, sizeof(nvm_value));
        vm->stack = p;
        if (st != NVM_OK)
            goto done;
    }
    if (vm->depth >= vm->frames_cap) {
        void *p = vm->frames;
        st = grow_array(vm, &p, &vm->frames_cap, (uint64_t)vm->depth + 1, vm->cfg.max_depth,
                        sizeof(nvm_frame));
        vm->frames = p;
        if (st != NVM_OK)
            goto done;
    }
    uint64_t sneed = (uint64_t)slot_base + pf->nslots;
    if (sneed > vm->slots_cap) {
        if (sneed > UINT32_MAX) {
            st = nvm_vm_raise(vm, NVM_E_MEMORY, "memory limit exceeded (frame slots)");
            goto done;
        }
        void *p = vm->slots;
        st = grow_array(vm, &p, &vm->slots_cap, sneed, UINT32_MAX, sizeof(nvm_value));
        vm->slots = p;
    }
done:
    set_limits(vm);
    return st;
}

static NVM_COLD nvm_status grow_handlers(nvm_vm *vm)
{
    void *p = vm->handlers;
    nvm_status st = grow_array(vm, &p, &vm->handlers_cap, (uint64_t)vm->nhandlers + 1, UINT32_MAX,
                               sizeof(nvm_handler));
    vm->handlers = p;
    return st;
}

/* Stores *v at arr[k] (k < cap) when the array's storage can hold it without converting; false:
 * the caller takes the general path (nvm_array_set/push), which converts a bool array. */
static inline bool arr_put(nvm_array *arr, int64_t k, const nvm_value *v)
{
    if (LIKELY(arr->hdr.sub == NVM_ARR_VALUES)) {
        vcopy(&arr->items[k], v);
        return true;
    }
    if (v->type != NVM_T_BOOL)
        return false;
    arr->bools[k] = (uint8_t)(v->as.b != 0);
    return true;
}

/* Fills `arr` (fresh, rooted only by the caller's troot) with n values. */
static nvm_status fill_array(nvm_vm *vm, nvm_value out, const nvm_value *vals, uint32_t n)
{
    nvm_array *arr = nvm_heap_obj(&vm->heap, out);
    if (arr->cap >= n) {
        if (n > 0)
            memcpy(arr->items, vals, sizeof(nvm_value) * n);
        arr->len = n;
        return NVM_OK;
    }
    nvm_status st = nvm_troot_push(vm, out);
    if (st != NVM_OK)
        return st;
    for (uint32_t i = 0; i < n && st == NVM_OK; i++)
        st = nvm_array_push(vm, out, vals[i]);
    nvm_troot_pop(vm, 1);
    return st;
}

/* ---- dispatch machinery ---- */
#if NVM_COMPUTED_GOTO
#define DISPATCH()                                                                                 \
    do {                                                                                           \
        if (UNLIKELY(--gas_left < 0))                                                              \
            goto gas_event;                                                                        \
        goto *dispatch_table[ip->pad];                                                             \
    } while (0)
#define CASE(name) L_##name:
#define CASE_FX(name) LF_##name:
/* Run the handler of the instruction's own opcode: executes the first original instruction of a
 * fused sequence (its gas was charged by DISPATCH). */
#define FX_FALLBACK() goto *dispatch_table[ip->op]
#else
#define DISPATCH() goto dispatch
#define CASE(name) case NVM_OP_##name:
#define CASE_FX(name) case NVM_FX_##name:
#define FX_FALLBACK()                                                                              \
    do {                                                                                           \
        opsel = ip->op;                                                                            \
        goto reswitch;                                                                             \
    } while (0)
#endif
#define NEXT()                                                                                     \
    do {                                                                                           \
        ip++;                                                                                      \
        DISPATCH();                                                                                \
    } while (0)
#if defined(__wasm__)
/* Ends an op body with the gas check and the switch on the next dispatch id (see above). */
#undef DISPATCH
#define DISPATCH()                                                                                 \
    do {                                                                                           \
        if (UNLIKELY(--gas_left < 0))                                                              \
            goto gas_event;                                                                        \
        opsel = ip->pad;                                                                           \
        goto reswitch;                                                                             \
    } while (0)
#endif
#define SYNC() (vm->sp = (uint32_t)(sp - stack))
/* Gas charged so far: the countdown holds at most NVM_GAS_CHUNK of the remaining gas, the rest
 * waits in vm->gas_rest; each refill is a point where the interrupt hook runs. */
#define GAS_USED() (gas_start - vm->gas_rest - gas_left)
/* Call a function that may allocate or raise; on failure go to the error path. */
#define CHECK(call)                                                                                \
    do {                                                                                           \
        SYNC();                                                                                    \
        st = (call);                                                                               \
        if (UNLIKELY(st != NVM_OK))                                                                \
            goto error;                                                                            \
    } while (0)
#define FAIL(call)                                                                                 \
    do {                                                                                           \
        SYNC();                                                                                    \
        st = (call);                                                                               \
        goto error;                                                                                \
    } while (0)
#define TYPE_ERR2(what) FAIL(type_error2(vm, ip->op, what, sp[-2], sp[-1]))
#define TYPE_ERR1(what) FAIL(type_error1(vm, ip->op, what, sp[-1]))
/* Require the value `v` to have type `t`; names the opcode in the error. */
#define EXPECT(v, t, what)                                                                         \
    do {                                                                                           \
        if (UNLIKELY((v).type != (t)))                                                             \
            FAIL(type_error1(vm, ip->op, what, (v)));                                              \
    } while (0)

/* Binary integer-only operators. */
#define INT_BINOP(NAME, EXPR)                                                                      \
    CASE(NAME)                                                                                     \
    {                                                                                              \
        if (UNLIKELY(sp[-2].type != NVM_T_INT || sp[-1].type != NVM_T_INT))                        \
            TYPE_ERR2("ints");                                                                     \
        int64_t x = sp[-2].as.i, y = sp[-1].as.i;                                                  \
        sp[-2].as.i = (EXPR);                                                                      \
        sp--;                                                                                      \
        NEXT();                                                                                    \
    }

/* Ordered comparisons: ints exactly, numbers by promotion, strings bytewise. */
#define CMP_OP(NAME, OP)                                                                           \
    CASE(NAME)                                                                                     \
    {                                                                                              \
        const nvm_value *x = sp - 2, *y = sp - 1;                                                  \
        bool r;                                                                                    \
        if (LIKELY(x->type == NVM_T_INT && y->type == NVM_T_INT))                                  \
            r = x->as.i OP y->as.i;                                                                \
        else if (is_num(*x) && is_num(*y))                                                         \
            r = num_val(*x) OP num_val(*y);                                                        \
        else if (x->type == NVM_T_STR && y->type == NVM_T_STR)                                     \
            r = str_cmp(vm, *x, *y) OP 0;                                                          \
        else                                                                                       \
            TYPE_ERR2("numbers or strings");                                                       \
        sp[-2] = nvm_bool(r);                                                                      \
        sp--;                                                                                      \
        NEXT();                                                                                    \
    }

/* One-operand math: int or float in, float out. */
#define MATH1(NAME, FN)                                                                            \
    CASE(NAME)                                                                                     \
    {                                                                                              \
        if (UNLIKELY(!is_num(sp[-1])))                                                             \
            TYPE_ERR1("a number");                                                                 \
        sp[-1] = nvm_float(FN(num_val(sp[-1])));                                                   \
        NEXT();                                                                                    \
    }

/* Heap operations with one, two or three operands and a result replacing them. The operands stay
 * on the stack (rooted) during the call. */
#define HEAP1(NAME, FN)                                                                            \
    CASE(NAME)                                                                                     \
    {                                                                                              \
        nvm_value out;                                                                             \
        CHECK(FN(vm, sp[-1], &out));                                                               \
        sp[-1] = out;                                                                              \
        NEXT();                                                                                    \
    }
#define HEAP2(NAME, FN)                                                                            \
    CASE(NAME)                                                                                     \
    {                                                                                              \
        nvm_value out;                                                                             \
        CHECK(FN(vm, sp[-2], sp[-1], &out));                                                       \
        sp[-2] = out;                                                                              \
        sp--;                                                                                      \
        NEXT();                                                                                    \
    }
#define HEAP3(NAME, FN)                                                                            \
    CASE(NAME)                                                                                     \
    {                                                                                              \
        nvm_value out;                                                                             \
        CHECK(FN(vm, sp[-3], sp[-2], sp[-1], &out));                                               \
        sp[-3] = out;                                                                              \
        sp -= 2;                                                                                   \
        NEXT();                                                                                    \
    }

/* ---- superinstructions (fused.h) ----
 * fx_arith / fx_cmp are the fast paths of the fused operators; they return false / -1 (nothing
 * done) whenever the original instructions could behave otherwise (other types, overflow,
 * division by zero, EQ/NE on anything but two ints), and the handler then runs the first original
 * instruction instead. */
static inline bool fx_arith(int op, nvm_value x, nvm_value y, nvm_value *r)
{
    if (LIKELY(x.type == NVM_T_INT && y.type == NVM_T_INT)) {
        int64_t a = x.as.i, b = y.as.i, v;
        switch (op) {
        case NVM_OP_ADD:
            if (UNLIKELY(add_ovf(a, b, &v)))
                return false;
            break;
        case NVM_OP_SUB:
            if (UNLIKELY(sub_ovf(a, b, &v)))
                return false;
            break;
        case NVM_OP_MUL:
            if (UNLIKELY(mul_ovf(a, b, &v)))
                return false;
            break;
        case NVM_OP_DIV:
            if (UNLIKELY(b == 0 || (b == -1 && a == INT64_MIN)))
                return false;
            v = a / b;
            break;
        default:
            if (UNLIKELY(b == 0))
                return false;
            v = b == -1 ? 0 : a % b;
            break;
        }
        r->as.i = v;
        r->type = NVM_T_INT;
        return true;
    }
    if (!is_num(x) || !is_num(y))
        return false;
    double a = num_val(x), b = num_val(y), v;
    switch (op) {
    case NVM_OP_ADD: v = a + b; break;
    case NVM_OP_SUB: v = a - b; break;
    case NVM_OP_MUL: v = a * b; break;
    case NVM_OP_DIV:
        if (UNLIKELY(b == 0.0))
            return false;
        v = a / b;
        break;
    default:
        if (UNLIKELY(b == 0.0))
            return false;
        v = fmod(a, b);
        break;
    }
    r->as.f = v;
    r->type = NVM_T_FLOAT;
    return true;
}

static inline int fx_cmp(int op, nvm_value x, nvm_value y)
{
    if (LIKELY(x.type == NVM_T_INT && y.type == NVM_T_INT)) {
        int64_t a = x.as.i, b = y.as.i;
        switch (op) {
        case NVM_OP_LT: return a < b;
        case NVM_OP_LE: return a <= b;
        case NVM_OP_GT: return a > b;
        case NVM_OP_GE: return a >= b;
        case NVM_OP_EQ: return a == b;
        default: return a != b;
        }
    }
    if (op == NVM_OP_EQ || op == NVM_OP_NE || !is_num(x) || !is_num(y))
        return -1;
    double a = num_val(x), b = num_val(y);
    switch (op) {
    case NVM_OP_LT: return a < b;
    case NVM_OP_LE: return a <= b;
    case NVM_OP_GT: return a > b;
    default: return a >= b;
    }
}

static inline nvm_value fx_slot(const nvm_value *s)
{
    nvm_value v;
    vcopy(&v, s);
    return v;
}

/* Per form: original instructions before the tail, operands, values taken from the stack, and
 * where the tail's operand lives. */
#define FX_LEN_LL 3
#define FX_LEN_LK 3
#define FX_LEN_L 2
#define FX_LEN_K 2
#define FX_LEN_F 2
#define FX_LEN_S 1
#define FX_X_LL fx_slot(&slots[ip->a])
#define FX_Y_LL fx_slot(&slots[nvm_fx_lo(ip->k.i)])
#define FX_X_LK fx_slot(&slots[ip->a])
#define FX_Y_LK nvm_int((int32_t)nvm_fx_lo(ip->k.i))
#define FX_X_L fx_slot(sp - 1)
#define FX_Y_L fx_slot(&slots[ip->a])
#define FX_X_K fx_slot(sp - 1)
#define FX_Y_K nvm_int(ip->k.i)
#define FX_X_F fx_slot(sp - 1)
#define FX_Y_F nvm_float(ip->k.f)
#define FX_X_S fx_slot(sp - 2)
#define FX_Y_S fx_slot(sp - 1)
#define FX_IN_LL 0
#define FX_IN_LK 0
#define FX_IN_L 1
#define FX_IN_K 1
#define FX_IN_F 1
#define FX_IN_S 2
#define FX_TOP_LL nvm_fx_hi(ip->k.i)
#define FX_TOP_LK nvm_fx_hi(ip->k.i)
#define FX_TOP_L nvm_fx_hi(ip->k.i)
#define FX_TOP_K ip->a
#define FX_TOP_F ip->a
#define FX_TOP_S ip->a
#define FX_TLEN_P 0
#define FX_TLEN_S 1
#define FX_TLEN_JZ 1
#define FX_TLEN_JNZ 1
#define FX_TLEN_XADD 1
#define FX_TLEN_XSUB 1
#define FX_TLEN_XMUL 1
#define FX_KIND_ADD ARITH
#define FX_KIND_SUB ARITH
#define FX_KIND_MUL ARITH
#define FX_KIND_DIV ARITH
#define FX_KIND_MOD ARITH
#define FX_KIND_LT CMP
#define FX_KIND_LE CMP
#define FX_KIND_GT CMP
#define FX_KIND_GE CMP
#define FX_KIND_EQ CMP
#define FX_KIND_NE CMP

/* Arithmetic tails: push the result, or store it (STORE c). */
#define FX_ATAIL_P(F) vcopy(sp++, &r_)
#define FX_ATAIL_S(F) vcopy(&slots[FX_TOP_##F], &r_)
#define FX_ATAIL_XADD(F) vcopy(sp - 1, &r_)
#define FX_ATAIL_XSUB(F) vcopy(sp - 1, &r_)
#define FX_ATAIL_XMUL(F) vcopy(sp - 1, &r_)
/* Second operator of the X tails (form LL: nothing was taken from the stack): top OP2 r_. */
#define FX_AOK_P 1
#define FX_AOK_S 1
#define FX_AOK_XADD fx_arith(NVM_OP_ADD, fx_slot(sp - 1), r_, &r_)
#define FX_AOK_XSUB fx_arith(NVM_OP_SUB, fx_slot(sp - 1), r_, &r_)
#define FX_AOK_XMUL fx_arith(NVM_OP_MUL, fx_slot(sp - 1), r_, &r_)
/* Comparison tails: push the bool, or branch on it. */
#define FX_CTAIL_P(F) (*sp++ = nvm_bool(c_ != 0))
#define FX_CTAIL_JZ(F)                                                                             \
    if (!c_) {                                                                                     \
        ip += (int32_t)FX_TOP_##F;                                                                 \
        DISPATCH();                                                                                \
    }
#define FX_CTAIL_JNZ(F)                                                                            \
    if (c_) {                                                                                      \
        ip += (int32_t)FX_TOP_##F;                                                                 \
        DISPATCH();                                                                                \
    }

#define FX_BODY_ARITH(F, O, T)                                                                     \
    CASE_FX(F##_##O##_##T)                                                                         \
    {                                                                                              \
        const int64_t kk_ = FX_LEN_##F + FX_TLEN_##T;                                              \
        nvm_value r_;                                                                              \
        if (UNLIKELY(gas_left < kk_ - 1 || !fx_arith(NVM_OP_##O, FX_X_##F, FX_Y_##F, &r_) ||       \
                     !FX_AOK_##T))                                                                 \
            FX_FALLBACK();                                                                         \
        gas_left -= kk_ - 1;                                                                       \
        sp -= FX_IN_##F;                                                                           \
        FX_ATAIL_##T(F);                                                                           \
        ip += kk_;                                                                                 \
        DISPATCH();                                                                                \
    }
#define FX_BODY_CMP(F, O, T)                                                                       \
    CASE_FX(F##_##O##_##T)                                                                         \
    {                                                                                              \
        const int64_t kk_ = FX_LEN_##F + FX_TLEN_##T;                                              \
        int c_;                                                                                    \
        if (UNLIKELY(gas_left < kk_ - 1 || (c_ = fx_cmp(NVM_OP_##O, FX_X_##F, FX_Y_##F)) < 0))     \
            FX_FALLBACK();                                                                         \
        gas_left -= kk_ - 1;                                                                       \
        sp -= FX_IN_##F;                                                                           \
        FX_CTAIL_##T(F);                                                                           \
        ip += kk_;                                                                                 \
        DISPATCH();                                                                                \
    }
/* JMP into a compare-and-branch superinstruction: the dispatch charged the JMP; the target's
 * sequence runs when the countdown covers it and the fast path applies, otherwise control goes
 * on at the target as after a plain JMP. */
#define FX_JHANDLER(F, O, T)                                                                       \
    CASE_FX(J_##F##_##O##_##T)                                                                     \
    {                                                                                              \
        const int64_t kk_ = FX_LEN_##F + FX_TLEN_##T;                                              \
        int c_;                                                                                    \
        ip += (int32_t)ip->a;                                                                      \
        if (UNLIKELY(gas_left < kk_ || (c_ = fx_cmp(NVM_OP_##O, FX_X_##F, FX_Y_##F)) < 0))         \
            DISPATCH();                                                                            \
        gas_left -= kk_;                                                                           \
        FX_CTAIL_##T(F);                                                                           \
        ip += kk_;                                                                                 \
        DISPATCH();                                                                                \
    }
/* Array element compared with a slot, then a branch (NVM_FX_GLIST). */
#define FX_TOP_G nvm_fx_hi(ip->k.i)
#define FX_GHANDLER(F, O, T)                                                                       \
    CASE_FX(G_##O##_##T)                                                                           \
    {                                                                                              \
        const nvm_value *u = &slots[ip->a], *w = &slots[nvm_fx_lo(ip->k.i) & 0xffff];              \
        int c_;                                                                                    \
        if (UNLIKELY(gas_left < 5 || u->type != NVM_T_ARRAY || w->type != NVM_T_INT))              \
            FX_FALLBACK();                                                                         \
        const nvm_array *arr = nvm_heap_obj(&vm->heap, *u);                                        \
        int64_t k = w->as.i < 0 ? w->as.i + (int64_t)arr->len : w->as.i;                           \
        if (UNLIKELY(k < 0 || k >= (int64_t)arr->len || arr->hdr.sub != NVM_ARR_VALUES ||          \
                     (c_ = fx_cmp(NVM_OP_##O, fx_slot(&arr->items[k]),                             \
                                  fx_slot(&slots[nvm_fx_lo(ip->k.i) >> 16]))) < 0))                \
            FX_FALLBACK();                                                                         \
        gas_left -= 5;                                                                             \
        FX_CTAIL_##T(G);                                                                           \
        ip += 6;                                                                                   \
        DISPATCH();                                                                                \
    }
#define FX_BODY3(K, F, O, T) FX_BODY_##K(F, O, T)
#define FX_BODY2(K, F, O, T) FX_BODY3(K, F, O, T)
#define FX_HANDLER(F, O, T) FX_BODY2(FX_KIND_##O, F, O, T)

#if NVM_COMPUTED_GOTO
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#if defined(__clang__)
#pragma GCC diagnostic ignored "-Winitializer-overrides"
#else
#pragma GCC diagnostic ignored "-Woverride-init"
#endif
#endif

NVM_INTERP_ATTR static nvm_status interp_core(nvm_vm *vm, int mode, uint32_t slot_base,
                                              int64_t *gas_io, bool *ended)
{
#if NVM_COMPUTED_GOTO
    static const void *const dispatch_table[NVM_FX_END] = {
        [0 ... NVM_FX_END - 1] = &&L_INVALID,
#define X(name, byte, opk, pops, pushes, flags, meaning) [byte] = &&L_##name,
#include "../isa/opcodes.def"
#undef X
#define FX_LABEL(F, O, T) [NVM_FX_##F##_##O##_##T] = &&LF_##F##_##O##_##T,
        NVM_FX_LIST(FX_LABEL)
#undef FX_LABEL
#define FX_JLABEL(F, O, T) [NVM_FX_J_##F##_##O##_##T] = &&LF_J_##F##_##O##_##T,
            NVM_FX_JLIST(FX_JLABEL)
#undef FX_JLABEL
#define FX_GLABEL(F, O, T) [NVM_FX_G_##O##_##T] = &&LF_G_##O##_##T,
                NVM_FX_GLIST(FX_GLABEL)
#undef FX_GLABEL
                    [NVM_FX_PUSH2] = &&LF_PUSH2,
        [NVM_FX_MOV] = &&LF_MOV,
        [NVM_FX_TEE] = &&LF_TEE,
        [NVM_FX_LLGET] = &&LF_LLGET,
        [NVM_FX_SETPOP] = &&LF_SETPOP,
        [NVM_FX_PUSHPOP] = &&LF_PUSHPOP,
        [NVM_FX_ASETL] = &&LF_ASETL,
        [NVM_FX_ASETB] = &&LF_ASETB,
        [NVM_FX_APUSHL] = &&LF_APUSHL,
        [NVM_FX_APUSHB] = &&LF_APUSHB,
        [NVM_FX_LGETF] = &&LF_LGETF,
        [NVM_FX_SETFPOP] = &&LF_SETFPOP,
    };
#else
    uint32_t opsel;
#endif
    const nvm_pfunc *const pfuncs = vm->pfuncs;
    nvm_status st = NVM_OK;
    const int64_t gas_start = vm->gas_start;
    int64_t gas_left = *gas_io;
    /* frames below stop_frame belong to the native caller of this run (none for a program) */
    const uint32_t stop_frame = vm->depth - 1;
    nvm_frame *frame = vm->frames + (vm->depth - 1);
    nvm_value *stack = vm->stack;
    nvm_value *sp = stack + vm->sp;
    nvm_value *slots = vm->slots + slot_base;
    const nvm_insn *ip = frame->ip;
    *ended = false;
    /* NVM_INTERP_STEP: the caller's countdown waits in gas_rest while the step runs */
    const int64_t step_gas = mode == NVM_INTERP_STEP ? gas_left : 0;
    if (mode == NVM_INTERP_STEP) {
        /* one unfused instruction; its gas was charged by the caller. The NEXT() after it finds
         * the countdown at -1 and leaves through gas_event. */
        vm->gas_rest += step_gas;
        gas_left = 0;
#if NVM_COMPUTED_GOTO
        goto *dispatch_table[ip->op];
#else
        opsel = ip->op;
        goto reswitch;
#endif
    }

#if NVM_COMPUTED_GOTO
    DISPATCH();
    {
#else
#if defined(__wasm__)
    goto dispatch; /* the op bodies no longer jump to this label */
#endif
dispatch:
    if (UNLIKELY(--gas_left < 0))
        goto gas_event;
    opsel = ip->pad;
reswitch:
    switch (opsel) {
#endif

        /* ---- stack ---- */
        CASE(NOP)
        {
            NEXT();
        }
        CASE(PUSH)
        {
            *sp++ = nvm_int(ip->k.i);
            NEXT();
        }
        CASE(PUSH_F64)
        {
            *sp++ = nvm_float(ip->k.f);
            NEXT();
        }
        CASE(PUSH_STR)
        {
            vcopy(sp++, &vm->consts[ip->a]);
            NEXT();
        }
        CASE(PUSH_BOOL)
        {
            *sp++ = nvm_bool(ip->b != 0);
            NEXT();
        }
        CASE(PUSH_NULL)
        {
            *sp++ = nvm_null();
            NEXT();
        }
        CASE(POP)
        {
            sp--;
            NEXT();
        }
        CASE(DUP)
        {
            vcopy(sp, sp - 1);
            sp++;
            NEXT();
        }
        CASE(SWAP)
        {
            nvm_value t;
            vcopy(&t, sp - 1);
            vcopy(sp - 1, sp - 2);
            vcopy(sp - 2, &t);
            NEXT();
        }
        CASE(ROT)
        {
            nvm_value a;
            vcopy(&a, sp - 3);
            vcopy(sp - 3, sp - 2);
            vcopy(sp - 2, sp - 1);
            vcopy(sp - 1, &a);
            NEXT();
        }
        CASE(PICK)
        {
            vcopy(sp, sp - 1 - (ptrdiff_t)ip->a);
            sp++;
            NEXT();
        }
        CASE(ROLL)
        {
            uint32_t n = ip->a;
            nvm_value v;
            vcopy(&v, sp - 1 - (ptrdiff_t)n);
            for (nvm_value *q = sp - 1 - n; q < sp - 1; q++)
                vcopy(q, q + 1);
            vcopy(sp - 1, &v);
            NEXT();
        }

        /* ---- frame slots ---- */
        CASE(LOAD)
        {
            const nvm_value *v = &slots[ip->a];
            if (UNLIKELY(v->type == NVM_T_UNDEF))
                FAIL(nvm_vm_raise(vm, NVM_E_PROGRAM, "read of uninitialised slot %u",
                                  (unsigned)ip->a));
            vcopy(sp++, v);
            NEXT();
        }
        CASE(STORE)
        {
            vcopy(&slots[ip->a], --sp);
            NEXT();
        }

        /* ---- arithmetic ---- */
        CASE(ADD)
        {
            const nvm_value *x = sp - 2, *y = sp - 1;
            if (LIKELY(x->type == NVM_T_INT && y->type == NVM_T_INT)) {
                int64_t r;
                if (UNLIKELY(add_ovf(x->as.i, y->as.i, &r)))
                    FAIL(program_error(vm, "integer overflow in ", ip->op));
                sp[-2].as.i = r;
            } else if (is_num(*x) && is_num(*y)) {
                sp[-2] = nvm_float(num_val(*x) + num_val(*y));
            } else if (x->type == NVM_T_STR || y->type == NVM_T_STR) {
                nvm_value out;
                CHECK(nvm_str_concat(vm, *x, *y, &out));
                sp[-2] = out;
            } else {
                TYPE_ERR2("numbers or a string");
            }
            sp--;
            NEXT();
        }
        CASE(SUB)
        {
            const nvm_value *x = sp - 2, *y = sp - 1;
            if (LIKELY(x->type == NVM_T_INT && y->type == NVM_T_INT)) {
                int64_t r;
                if (UNLIKELY(sub_ovf(x->as.i, y->as.i, &r)))
                    FAIL(program_error(vm, "integer overflow in ", ip->op));
                sp[-2].as.i = r;
            } else if (is_num(*x) && is_num(*y)) {
                sp[-2] = nvm_float(num_val(*x) - num_val(*y));
            } else {
                TYPE_ERR2("numbers");
            }
            sp--;
            NEXT();
        }
        CASE(MUL)
        {
            const nvm_value *x = sp - 2, *y = sp - 1;
            if (LIKELY(x->type == NVM_T_INT && y->type == NVM_T_INT)) {
                int64_t r;
                if (UNLIKELY(mul_ovf(x->as.i, y->as.i, &r)))
                    FAIL(program_error(vm, "integer overflow in ", ip->op));
                sp[-2].as.i = r;
            } else if (is_num(*x) && is_num(*y)) {
                sp[-2] = nvm_float(num_val(*x) * num_val(*y));
            } else {
                TYPE_ERR2("numbers");
            }
            sp--;
            NEXT();
        }
        CASE(DIV)
        {
            const nvm_value *x = sp - 2, *y = sp - 1;
            if (LIKELY(x->type == NVM_T_INT && y->type == NVM_T_INT)) {
                if (UNLIKELY(y->as.i == 0))
                    FAIL(program_error(vm, "division by zero", 0));
                if (UNLIKELY(y->as.i == -1 && x->as.i == INT64_MIN))
                    FAIL(program_error(vm, "integer overflow in ", ip->op));
                sp[-2].as.i = x->as.i / y->as.i;
            } else if (is_num(*x) && is_num(*y)) {
                double d = num_val(*y);
                if (UNLIKELY(d == 0.0))
                    FAIL(program_error(vm, "division by zero", 0));
                sp[-2] = nvm_float(num_val(*x) / d);
            } else {
                TYPE_ERR2("numbers");
            }
            sp--;
            NEXT();
        }
        CASE(MOD)
        {
            const nvm_value *x = sp - 2, *y = sp - 1;
            if (LIKELY(x->type == NVM_T_INT && y->type == NVM_T_INT)) {
                if (UNLIKELY(y->as.i == 0))
                    FAIL(program_error(vm, "division by zero", 0));
                sp[-2].as.i = y->as.i == -1 ? 0 : x->as.i % y->as.i;
            } else if (is_num(*x) && is_num(*y)) {
                double d = num_val(*y);
                if (UNLIKELY(d == 0.0))
                    FAIL(program_error(vm, "division by zero", 0));
                sp[-2] = nvm_float(fmod(num_val(*x), d));
            } else {
                TYPE_ERR2("numbers");
            }
            sp--;
            NEXT();
        }
        CASE(NEG)
        {
            const nvm_value *x = sp - 1;
            if (LIKELY(x->type == NVM_T_INT)) {
                if (UNLIKELY(x->as.i == INT64_MIN))
                    FAIL(program_error(vm, "integer overflow in ", ip->op));
                sp[-1].as.i = -x->as.i;
            } else if (x->type == NVM_T_FLOAT) {
                sp[-1].as.f = -x->as.f;
            } else {
                TYPE_ERR1("a number");
            }
            NEXT();
        }

        /* ---- comparison ---- */
        CASE(EQ)
        {
            const nvm_value *x = sp - 2, *y = sp - 1;
            bool r;
            if (LIKELY(x->type == NVM_T_INT && y->type == NVM_T_INT))
                r = x->as.i == y->as.i;
            else
                r = nvm_equal(vm, *x, *y);
            sp[-2] = nvm_bool(r);
            sp--;
            NEXT();
        }
        CASE(NE)
        {
            const nvm_value *x = sp - 2, *y = sp - 1;
            bool r;
            if (LIKELY(x->type == NVM_T_INT && y->type == NVM_T_INT))
                r = x->as.i != y->as.i;
            else
                r = !nvm_equal(vm, *x, *y);
            sp[-2] = nvm_bool(r);
            sp--;
            NEXT();
        }
        CMP_OP(LT, <)
        CMP_OP(LE, <=)
        CMP_OP(GT, >)
        CMP_OP(GE, >=)

        /* ---- logic and bits ---- */
        CASE(AND)
        {
            bool r = truthy(vm, sp[-2]) && truthy(vm, sp[-1]);
            sp[-2] = nvm_bool(r);
            sp--;
            NEXT();
        }
        CASE(OR)
        {
            bool r = truthy(vm, sp[-2]) || truthy(vm, sp[-1]);
            sp[-2] = nvm_bool(r);
            sp--;
            NEXT();
        }
        CASE(NOT)
        {
            sp[-1] = nvm_bool(!truthy(vm, sp[-1]));
            NEXT();
        }
        INT_BINOP(BITAND, x & y)
        INT_BINOP(BITOR, x | y)
        INT_BINOP(BITXOR, x ^ y)
        CASE(BITNOT)
        {
            if (UNLIKELY(sp[-1].type != NVM_T_INT))
                TYPE_ERR1("an int");
            sp[-1].as.i = ~sp[-1].as.i;
            NEXT();
        }
        CASE(SHL)
        {
            if (UNLIKELY(sp[-2].type != NVM_T_INT || sp[-1].type != NVM_T_INT))
                TYPE_ERR2("ints");
            int64_t n = sp[-1].as.i;
            if (UNLIKELY(n < 0 || n > 63))
                FAIL(nvm_vm_raise(vm, NVM_E_PROGRAM, "shift count %lld out of range (0..63) in SHL",
                                  (long long)n));
            sp[-2].as.i = (int64_t)((uint64_t)sp[-2].as.i << n);
            sp--;
            NEXT();
        }
        CASE(SHR)
        {
            if (UNLIKELY(sp[-2].type != NVM_T_INT || sp[-1].type != NVM_T_INT))
                TYPE_ERR2("ints");
            int64_t n = sp[-1].as.i;
            if (UNLIKELY(n < 0 || n > 63))
                FAIL(nvm_vm_raise(vm, NVM_E_PROGRAM, "shift count %lld out of range (0..63) in SHR",
                                  (long long)n));
            int64_t x = sp[-2].as.i;
            sp[-2].as.i = x >= 0 ? x >> n : ~(~x >> n);
            sp--;
            NEXT();
        }

        /* ---- control ---- */
        CASE(JMP)
        {
            ip += (int32_t)ip->a;
            DISPATCH();
        }
        CASE(JZ)
        {
            const nvm_value *c = --sp;
            bool t = LIKELY(c->type == NVM_T_BOOL) ? c->as.b != 0 : truthy(vm, *c);
            if (!t) {
                ip += (int32_t)ip->a;
                DISPATCH();
            }
            NEXT();
        }
        CASE(JNZ)
        {
            const nvm_value *c = --sp;
            bool t = LIKELY(c->type == NVM_T_BOOL) ? c->as.b != 0 : truthy(vm, *c);
            if (t) {
                ip += (int32_t)ip->a;
                DISPATCH();
            }
            NEXT();
        }
        CASE(CALL)
        {
            /* The callee's slots follow the caller's (k: the caller's slot count, prep.c). */
            const nvm_pfunc *cf = &pfuncs[ip->a];
            nvm_value *cslots = slots + ip->k.i;
            if (UNLIKELY(frame + 1 >= vm->frames_end || sp + cf->need > vm->stack_end ||
                         cslots + cf->nslots > vm->slots_end)) {
                uint32_t spi = (uint32_t)(sp - stack);
                uint32_t sb = (uint32_t)(cslots - vm->slots);
                CHECK(ensure_call_space(vm, cf, spi, sb));
                stack = vm->stack;
                sp = stack + spi;
                frame = vm->frames + (vm->depth - 1);
                cslots = vm->slots + sb;
            }
            frame->ip = ip + 1;
            frame++;
            frame->pf = cf;
            vm->depth++;
            slots = cslots;
            for (uint32_t i = 0, n = cf->nslots; i < n; i++)
                slots[i].type = NVM_T_UNDEF;
            ip = cf->code;
            DISPATCH();
        }
        CASE(RET)
        {
            /* a: the height of the stack above the frame's lowest value (prep.c). */
            nvm_value result;
            vcopy(&result, sp - 1);
            if (UNLIKELY(frame == vm->frames)) {
                *ended = true;
                st = NVM_OK;
                goto finish;
            }
            uint32_t nh = vm->nhandlers;
            if (UNLIKELY(nh > 0 && vm->handlers[nh - 1].frame == vm->depth - 1)) {
                while (nh > 0 && vm->handlers[nh - 1].frame == vm->depth - 1)
                    nh--;
                vm->nhandlers = nh;
            }
            sp -= ip->a;
            vcopy(sp++, &result);
            vm->depth--;
            frame--;
            if (UNLIKELY(vm->depth == stop_frame))
                goto finish_noip; /* the frame this run resumed returned to its native caller */
            slots -= frame->pf->nslots;
            ip = frame->ip;
            DISPATCH();
        }
        CASE(HALT)
        {
            *ended = true;
            st = NVM_OK;
            goto finish;
        }
        CASE(ENTER_TRY)
        {
            if (UNLIKELY(vm->nhandlers >= vm->handlers_cap))
                CHECK(grow_handlers(vm));
            nvm_handler *h = &vm->handlers[vm->nhandlers++];
            h->frame = vm->depth - 1;
            h->sp = (uint32_t)(sp - stack);
            h->target = ip->a;
            h->slot_base = (uint32_t)(slots - vm->slots);
            NEXT();
        }
        CASE(EXIT_TRY)
        {
            if (UNLIKELY(vm->nhandlers == 0 ||
                         vm->handlers[vm->nhandlers - 1].frame != vm->depth - 1))
                FAIL(program_error(vm, "EXIT_TRY without a matching ENTER_TRY", 0));
            vm->nhandlers--;
            NEXT();
        }
        CASE(THROW)
        {
            nvm_value v = sp[-1];
            if (vm->nhandlers == 0) {
                SYNC();
                st = uncaught_throw(vm, v);
                if (st == NVM_OK)
                    st = NVM_E_PROGRAM;
                goto finish;
            }
            if (UNLIKELY(mode == NVM_INTERP_STEP ||
                         vm->handlers[vm->nhandlers - 1].frame < stop_frame)) {
                /* caught by a frame of the native caller (jit.c takes it from here) */
                vm->thrown = v;
                vm->thrown_pending = true;
                st = NVM_E_PROGRAM;
                goto finish;
            }
            {
                nvm_handler h = vm->handlers[--vm->nhandlers];
                vm->depth = h.frame + 1;
                frame = &vm->frames[h.frame];
                slots = vm->slots + h.slot_base;
                sp = stack + h.sp;
                *sp++ = v;
                ip = frame->pf->code + h.target;
            }
            DISPATCH();
        }
        CASE(CAP_CALL)
        {
            const nvm_capentry *ce = &vm->caps[vm->capbind[ip->a]];
            uint32_t argc = ip->b;
            nvm_value result = nvm_null();
            SYNC();
            vm->gas_used = GAS_USED();
            frame->ip = ip;
            vm->err.status = NVM_OK;
            st = ce->fn(vm, ce->ud, sp - argc, argc, &result);
            if (UNLIKELY(st != NVM_OK)) {
                if (vm->err.status != st)
                    nvm_vm_raise(vm, st, "capability \"%s\" failed",
                                 vm->caps[vm->capbind[ip->a]].name);
                goto error;
            }
            sp -= argc;
            if (vm->capresults[ip->a] != 0)
                vcopy(sp++, &result);
            NEXT();
        }

        /* ---- types ---- */
        HEAP1(TYPEOF, nvm_typeof)
        CASE(CAST)
        {
            nvm_value out;
            CHECK(nvm_cast(vm, sp[-1], ip->b, &out));
            sp[-1] = out;
            NEXT();
        }

        /* ---- arrays ---- */
        CASE(NEW_ARRAY)
        {
            uint32_t n = ip->a;
            nvm_value out;
            /* an empty array keeps bools as bytes until another value is stored */
            CHECK(n == 0 ? nvm_array_new_bools(vm, &out) : nvm_array_new(vm, n, &out));
            CHECK(fill_array(vm, out, sp - n, n));
            sp -= n;
            *sp++ = out;
            NEXT();
        }
        CASE(ARR_GET)
        {
            nvm_value a = sp[-2], i = sp[-1];
            if (LIKELY(a.type == NVM_T_ARRAY && i.type == NVM_T_INT)) {
                const nvm_array *arr = nvm_heap_obj(&vm->heap, a);
                int64_t k = i.as.i < 0 ? i.as.i + (int64_t)arr->len : i.as.i;
                if (LIKELY(k >= 0 && k < (int64_t)arr->len)) {
                    if (LIKELY(arr->hdr.sub == NVM_ARR_VALUES))
                        vcopy(sp - 2, &arr->items[k]);
                    else
                        sp[-2] = nvm_bool(arr->bools[k] != 0);
                    sp--;
                    NEXT();
                }
            } else if (UNLIKELY(a.type != NVM_T_ARRAY && a.type != NVM_T_STR)) {
                TYPE_ERR2("an array or a string and an int");
            }
            nvm_value out;
            CHECK(nvm_array_get(vm, a, i, &out));
            sp[-2] = out;
            sp--;
            NEXT();
        }
        CASE(ARR_SET)
        {
            nvm_value a = sp[-3], i = sp[-2];
            EXPECT(a, NVM_T_ARRAY, "an array");
            if (LIKELY(i.type == NVM_T_INT)) {
                nvm_array *arr = nvm_heap_obj(&vm->heap, a);
                int64_t k = i.as.i < 0 ? i.as.i + (int64_t)arr->len : i.as.i;
                if (LIKELY(k >= 0 && k < (int64_t)arr->len && arr_put(arr, k, sp - 1))) {
                    sp -= 2;
                    NEXT();
                }
            }
            CHECK(nvm_array_set(vm, a, i, sp[-1]));
            sp -= 2;
            NEXT();
        }
        CASE(ARR_LEN)
        {
            nvm_value v = sp[-1];
            if (LIKELY(v.type == NVM_T_ARRAY)) {
                sp[-1] = nvm_int(((const nvm_array *)nvm_heap_obj(&vm->heap, v))->len);
                NEXT();
            }
            nvm_value out;
            CHECK(nvm_len(vm, v, &out));
            sp[-1] = out;
            NEXT();
        }
        CASE(ARR_PUSH)
        {
            EXPECT(sp[-2], NVM_T_ARRAY, "an array");
            CHECK(nvm_array_push(vm, sp[-2], sp[-1]));
            sp--;
            NEXT();
        }
        CASE(ARR_POP)
        {
            EXPECT(sp[-1], NVM_T_ARRAY, "an array");
            nvm_value out;
            CHECK(nvm_array_pop(vm, sp[-1], &out));
            sp[-1] = out;
            NEXT();
        }
        CASE(MAKE_RANGE)
        {
            if (UNLIKELY(sp[-2].type != NVM_T_INT || sp[-1].type != NVM_T_INT))
                TYPE_ERR2("ints");
            nvm_value out;
            CHECK(nvm_array_range(vm, sp[-2], sp[-1], &out));
            sp[-2] = out;
            sp--;
            NEXT();
        }

        /* ---- maps ---- */
        CASE(NEW_OBJ)
        {
            nvm_value out;
            CHECK(nvm_map_new(vm, &out));
            *sp++ = out;
            NEXT();
        }
        /* GET_FIELD and SET_FIELD keep an inline cache in the prepared instruction's k: the entry
         * position where the constant key (the very same string object) was last found. */
        CASE(GET_FIELD)
        {
            EXPECT(sp[-1], NVM_T_MAP, "a map");
            const nvm_map *mp = nvm_heap_obj(&vm->heap, sp[-1]);
            nvm_value key = vm->consts[ip->a];
            uint32_t pos = nvm_fx_lo(ip->k.i);
            if (LIKELY(pos < mp->nentries && mp->entries[pos].key.type == NVM_T_STR &&
                       mp->entries[pos].key.as.h == key.as.h)) {
                vcopy(sp - 1, &mp->entries[pos].value);
                NEXT();
            }
            int64_t found = nvm_map_find(&vm->heap, mp, key);
            if (found >= 0) {
                ((nvm_insn *)ip)->k.i = found;
                vcopy(sp - 1, &mp->entries[found].value);
            } else {
                sp[-1] = nvm_null();
            }
            NEXT();
        }
        CASE(SET_FIELD)
        {
            EXPECT(sp[-2], NVM_T_MAP, "a map");
            nvm_map *mp = nvm_heap_obj(&vm->heap, sp[-2]);
            nvm_value key = vm->consts[ip->a];
            uint32_t pos = nvm_fx_lo(ip->k.i);
            if (LIKELY(pos < mp->nentries && mp->entries[pos].key.type == NVM_T_STR &&
                       mp->entries[pos].key.as.h == key.as.h)) {
                vcopy(&mp->entries[pos].value, sp - 1);
                sp--;
                NEXT();
            }
            CHECK(nvm_map_set(vm, sp[-2], key, sp[-1]));
            int64_t found = nvm_map_find(&vm->heap, nvm_heap_obj(&vm->heap, sp[-2]), key);
            if (found >= 0)
                ((nvm_insn *)ip)->k.i = found;
            sp--;
            NEXT();
        }
        CASE(MAP_GET)
        {
            EXPECT(sp[-2], NVM_T_MAP, "a map");
            nvm_value out;
            CHECK(nvm_map_get(vm, sp[-2], sp[-1], &out, NULL));
            sp[-2] = out;
            sp--;
            NEXT();
        }
        CASE(MAP_SET)
        {
            EXPECT(sp[-3], NVM_T_MAP, "a map");
            CHECK(nvm_map_set(vm, sp[-3], sp[-2], sp[-1]));
            sp -= 2;
            NEXT();
        }
        CASE(MAP_HAS)
        {
            EXPECT(sp[-2], NVM_T_MAP, "a map");
            nvm_value out;
            bool found = false;
            CHECK(nvm_map_get(vm, sp[-2], sp[-1], &out, &found));
            sp[-2] = nvm_bool(found);
            sp--;
            NEXT();
        }
        CASE(MAP_DEL)
        {
            EXPECT(sp[-2], NVM_T_MAP, "a map");
            CHECK(nvm_map_del(vm, sp[-2], sp[-1]));
            sp--;
            NEXT();
        }
        CASE(MAP_KEYS)
        {
            EXPECT(sp[-1], NVM_T_MAP, "a map");
            nvm_value out;
            CHECK(nvm_map_keys(vm, sp[-1], &out));
            sp[-1] = out;
            NEXT();
        }
        CASE(LEN)
        {
            nvm_value v = sp[-1];
            if (LIKELY(v.type == NVM_T_STR)) {
                sp[-1] = nvm_int(((const nvm_str *)nvm_heap_obj(&vm->heap, v))->len);
                NEXT();
            }
            nvm_value out;
            CHECK(nvm_len(vm, v, &out));
            sp[-1] = out;
            NEXT();
        }

        /* ---- strings ---- */
        HEAP2(STR_CONTAINS, nvm_str_contains)
        HEAP2(STR_SPLIT, nvm_str_split)
        HEAP3(STR_REPLACE, nvm_str_replace)
        HEAP2(STR_JOIN, nvm_str_join)
        HEAP2(STR_STARTS_WITH, nvm_str_starts_with)
        HEAP2(STR_ENDS_WITH, nvm_str_ends_with)
        HEAP1(STR_TO_UPPER, nvm_str_to_upper)
        HEAP1(STR_TO_LOWER, nvm_str_to_lower)
        HEAP1(STR_TRIM, nvm_str_trim)
        HEAP3(STR_SUB, nvm_str_sub)
        HEAP2(STR_FIND, nvm_str_find)
        HEAP2(STR_ORD, nvm_str_ord)
        HEAP1(STR_CHR, nvm_str_chr)
        HEAP2(STR_FMT_FIXED, nvm_str_fmt_fixed)

        /* ---- math ---- */
        CASE(MATH_POW)
        {
            if (UNLIKELY(!is_num(sp[-2]) || !is_num(sp[-1])))
                TYPE_ERR2("numbers");
            sp[-2] = nvm_float(pow(num_val(sp[-2]), num_val(sp[-1])));
            sp--;
            NEXT();
        }
        MATH1(MATH_SQRT, sqrt)
        MATH1(MATH_ABS, fabs)
        MATH1(MATH_ROUND, round)
        MATH1(MATH_FLOOR, floor)
        MATH1(MATH_CEIL, ceil)

        /* ---- superinstructions (fused.h) ---- */
        NVM_FX_LIST(FX_HANDLER)
        NVM_FX_JLIST(FX_JHANDLER)
        NVM_FX_GLIST(FX_GHANDLER)
        CASE_FX(PUSH2)
        {
            const nvm_value *u = &slots[ip->a], *w = &slots[nvm_fx_lo(ip->k.i)];
            if (UNLIKELY(gas_left < 1 || u->type == NVM_T_UNDEF || w->type == NVM_T_UNDEF))
                FX_FALLBACK();
            gas_left -= 1;
            vcopy(sp, u);
            vcopy(sp + 1, w);
            sp += 2;
            ip += 2;
            DISPATCH();
        }
        CASE_FX(MOV)
        {
            const nvm_value *u = &slots[ip->a];
            if (UNLIKELY(gas_left < 1 || u->type == NVM_T_UNDEF))
                FX_FALLBACK();
            gas_left -= 1;
            vcopy(&slots[nvm_fx_lo(ip->k.i)], u);
            ip += 2;
            DISPATCH();
        }
        CASE_FX(TEE)
        {
            if (UNLIKELY(gas_left < 1))
                FX_FALLBACK();
            gas_left -= 1;
            vcopy(&slots[ip->a], sp - 1);
            ip += 2;
            DISPATCH();
        }
        CASE_FX(LLGET)
        {
            const nvm_value *u = &slots[ip->a], *w = &slots[nvm_fx_lo(ip->k.i)];
            if (UNLIKELY(gas_left < 2 || u->type != NVM_T_ARRAY || w->type != NVM_T_INT))
                FX_FALLBACK();
            const nvm_array *arr = nvm_heap_obj(&vm->heap, *u);
            int64_t k = w->as.i < 0 ? w->as.i + (int64_t)arr->len : w->as.i;
            if (UNLIKELY(k < 0 || k >= (int64_t)arr->len))
                FX_FALLBACK();
            gas_left -= 2;
            if (LIKELY(arr->hdr.sub == NVM_ARR_VALUES))
                vcopy(sp, &arr->items[k]);
            else
                *sp = nvm_bool(arr->bools[k] != 0);
            sp++;
            ip += 3;
            DISPATCH();
        }
        CASE_FX(SETPOP)
        {
            if (UNLIKELY(gas_left < 1 || sp[-3].type != NVM_T_ARRAY || sp[-2].type != NVM_T_INT))
                FX_FALLBACK();
            nvm_array *arr = nvm_heap_obj(&vm->heap, sp[-3]);
            int64_t k = sp[-2].as.i < 0 ? sp[-2].as.i + (int64_t)arr->len : sp[-2].as.i;
            if (UNLIKELY(k < 0 || k >= (int64_t)arr->len || !arr_put(arr, k, sp - 1)))
                FX_FALLBACK();
            gas_left -= 1;
            sp -= 3;
            ip += 2;
            DISPATCH();
        }
        CASE_FX(PUSHPOP)
        {
            if (UNLIKELY(gas_left < 1 || sp[-2].type != NVM_T_ARRAY))
                FX_FALLBACK();
            nvm_array *arr = nvm_heap_obj(&vm->heap, sp[-2]);
            if (!(LIKELY(arr->len < arr->cap) && arr_put(arr, arr->len, sp - 1)))
                CHECK(nvm_array_push(vm, sp[-2], sp[-1]));
            else
                arr->len++;
            gas_left -= 1;
            sp -= 2;
            ip += 2;
            DISPATCH();
        }
        CASE_FX(ASETL)
        {
            const nvm_value *u = &slots[ip->a], *w = &slots[nvm_fx_lo(ip->k.i)];
            const nvm_value *x = &slots[nvm_fx_hi(ip->k.i)];
            if (UNLIKELY(gas_left < 4 || u->type != NVM_T_ARRAY || w->type != NVM_T_INT ||
                         x->type == NVM_T_UNDEF))
                FX_FALLBACK();
            nvm_array *arr = nvm_heap_obj(&vm->heap, *u);
            int64_t k = w->as.i < 0 ? w->as.i + (int64_t)arr->len : w->as.i;
            if (UNLIKELY(k < 0 || k >= (int64_t)arr->len || !arr_put(arr, k, x)))
                FX_FALLBACK();
            gas_left -= 4;
            ip += 5;
            DISPATCH();
        }
        CASE_FX(ASETB)
        {
            const nvm_value *u = &slots[ip->a], *w = &slots[nvm_fx_lo(ip->k.i)];
            if (UNLIKELY(gas_left < 4 || u->type != NVM_T_ARRAY || w->type != NVM_T_INT))
                FX_FALLBACK();
            nvm_array *arr = nvm_heap_obj(&vm->heap, *u);
            int64_t k = w->as.i < 0 ? w->as.i + (int64_t)arr->len : w->as.i;
            if (UNLIKELY(k < 0 || k >= (int64_t)arr->len))
                FX_FALLBACK();
            gas_left -= 4;
            if (LIKELY(arr->hdr.sub == NVM_ARR_VALUES))
                arr->items[k] = nvm_bool(nvm_fx_hi(ip->k.i) != 0);
            else
                arr->bools[k] = (uint8_t)(nvm_fx_hi(ip->k.i) != 0);
            ip += 5;
            DISPATCH();
        }
        CASE_FX(APUSHL)
        {
            const nvm_value *u = &slots[ip->a], *x = &slots[nvm_fx_lo(ip->k.i)];
            if (UNLIKELY(gas_left < 3 || u->type != NVM_T_ARRAY || x->type == NVM_T_UNDEF))
                FX_FALLBACK();
            nvm_array *arr = nvm_heap_obj(&vm->heap, *u);
            if (UNLIKELY(arr->len >= arr->cap || !arr_put(arr, arr->len, x)))
                FX_FALLBACK();
            gas_left -= 3;
            arr->len++;
            ip += 4;
            DISPATCH();
        }
        CASE_FX(APUSHB)
        {
            const nvm_value *u = &slots[ip->a];
            if (UNLIKELY(gas_left < 3 || u->type != NVM_T_ARRAY))
                FX_FALLBACK();
            nvm_array *arr = nvm_heap_obj(&vm->heap, *u);
            if (UNLIKELY(arr->len >= arr->cap))
                FX_FALLBACK();
            gas_left -= 3;
            if (LIKELY(arr->hdr.sub == NVM_ARR_VALUES))
                arr->items[arr->len++] = nvm_bool(nvm_fx_lo(ip->k.i) != 0);
            else
                arr->bools[arr->len++] = (uint8_t)(nvm_fx_lo(ip->k.i) != 0);
            ip += 4;
            DISPATCH();
        }
        CASE_FX(LGETF)
        {
            /* The GET_FIELD at ip + 1 holds the key and the inline cache. */
            const nvm_value *u = &slots[ip->a];
            if (UNLIKELY(gas_left < 1 || u->type != NVM_T_MAP))
                FX_FALLBACK();
            const nvm_map *mp = nvm_heap_obj(&vm->heap, *u);
            uint32_t pos = nvm_fx_lo(ip[1].k.i);
            if (UNLIKELY(pos >= mp->nentries || mp->entries[pos].key.type != NVM_T_STR ||
                         mp->entries[pos].key.as.h != vm->consts[ip[1].a].as.h))
                FX_FALLBACK();
            gas_left -= 1;
            vcopy(sp++, &mp->entries[pos].value);
            ip += 2;
            DISPATCH();
        }
        CASE_FX(SETFPOP)
        {
            if (UNLIKELY(gas_left < 1 || sp[-2].type != NVM_T_MAP))
                FX_FALLBACK();
            nvm_map *mp = nvm_heap_obj(&vm->heap, sp[-2]);
            uint32_t pos = nvm_fx_lo(ip->k.i);
            if (UNLIKELY(pos >= mp->nentries || mp->entries[pos].key.type != NVM_T_STR ||
                         mp->entries[pos].key.as.h != vm->consts[ip->a].as.h))
                FX_FALLBACK();
            gas_left -= 1;
            vcopy(&mp->entries[pos].value, sp - 1);
            sp -= 2;
            ip += 2;
            DISPATCH();
        }

#if NVM_COMPUTED_GOTO
    L_INVALID :
#else
    default:
#endif
    {
        SYNC();
        st = nvm_vm_raise(vm, NVM_E_INTERNAL, "invalid opcode 0x%02x", (unsigned)ip->op);
        goto finish;
    }
    }

error:
    /* A program error (vm->err filled): catchable when a handler exists. */
    if ((st == NVM_E_PROGRAM || st == NVM_E_DENIED) && vm->nhandlers > 0 &&
        mode != NVM_INTERP_STEP && vm->handlers[vm->nhandlers - 1].frame >= stop_frame) {
        nvm_handler h = vm->handlers[--vm->nhandlers];
        vm->depth = h.frame + 1;
        frame = &vm->frames[h.frame];
        slots = vm->slots + h.slot_base;
        sp = stack + h.sp;
        ip = frame->pf->code + h.target;
        SYNC();
        nvm_value msg;
        st = nvm_str_new(vm, vm->err.message, strlen(vm->err.message), &msg);
        if (st != NVM_OK)
            goto finish;
        *sp++ = msg;
        DISPATCH();
    }
    goto finish;

gas_event:
    /* The countdown ran out (gas_left is -1: the instruction at ip is charged but not run). */
    if (mode == NVM_INTERP_STEP) {
        st = NVM_OK; /* the stepped instruction is done; ip is the next one */
        goto finish;
    }
    if (vm->gas_rest == 0) {
        gas_left = 0;
        SYNC();
        st = nvm_vm_raise(vm, NVM_E_GAS, "gas exhausted after %lld instructions",
                          (long long)gas_start);
        goto finish;
    }
    {
        int64_t chunk = vm->gas_rest < NVM_GAS_CHUNK ? vm->gas_rest : NVM_GAS_CHUNK;
        vm->gas_rest -= chunk;
        gas_left += chunk;
    }
    if (vm->cfg.interrupt != NULL) {
        SYNC();
        vm->gas_used = GAS_USED();
        frame->ip = ip;
        vm->err.status = NVM_OK;
        st = vm->cfg.interrupt(vm->cfg.interrupt_ud);
        if (st != NVM_OK) {
            gas_left++; /* the instruction at ip does not run */
            if (vm->err.status != st)
                nvm_vm_raise(vm, st, "%s after %lld instructions", nvm_status_meaning(st),
                             (long long)GAS_USED());
            goto finish;
        }
    }
#if NVM_COMPUTED_GOTO
    goto *dispatch_table[ip->pad];
#else
    opsel = ip->pad;
    goto reswitch;
#endif

finish:
    if (vm->depth > 0)
        vm->frames[vm->depth - 1].ip = ip;
finish_noip:
    vm->sp = (uint32_t)(sp - stack);
    if (mode == NVM_INTERP_STEP) {
        vm->gas_rest -= step_gas;
        gas_left = step_gas;
    }
    *gas_io = gas_left;
    vm->gas_used = GAS_USED();
    return st;
}

nvm_status nvm_vm_start(nvm_vm *vm, int64_t *gas_left)
{
    const nvm_pfunc *entry = &vm->pfuncs[vm->mod->entry];
    vm->gas_start = vm->gas_limit < 0 ? INT64_MAX : vm->gas_limit;
    *gas_left = vm->gas_start < NVM_GAS_CHUNK ? vm->gas_start : NVM_GAS_CHUNK;
    vm->gas_rest = vm->gas_start - *gas_left;
    vm->jit_gas = *gas_left;
    vm->jit_status = NVM_OK;
    vm->sp = 0;
    vm->depth = 0;
    vm->nhandlers = 0;
    vm->gas_used = 0;
    vm->thrown_pending = false;
    set_limits(vm);
    nvm_status st = ensure_call_space(vm, entry, 0, 0);
    if (st != NVM_OK)
        return st;
    vm->frames[0].pf = entry;
    vm->frames[0].ip = entry->code;
    vm->depth = 1;
    for (uint32_t i = 0; i < entry->nslots; i++)
        vm->slots[i] = undef_value();
    return NVM_OK;
}

nvm_status nvm_interp_run(nvm_vm *vm)
{
    int64_t gas_left;
    nvm_status st = nvm_vm_start(vm, &gas_left);
    if (st != NVM_OK)
        return st;
    bool ended;
    return interp_core(vm, NVM_INTERP_RUN, 0, &gas_left, &ended);
}

nvm_status nvm_interp_resume(nvm_vm *vm, int mode, uint32_t slot_base, int64_t *gas_left,
                             bool *ended)
{
    return interp_core(vm, mode, slot_base, gas_left, ended);
}

void nvm_vm_set_limits(nvm_vm *vm)
{
    set_limits(vm);
}

nvm_status nvm_vm_call_space(nvm_vm *vm, const nvm_pfunc *pf, uint32_t spi, uint32_t slot_base)
{
    return ensure_call_space(vm, pf, spi, slot_base);
}

#if NVM_COMPUTED_GOTO
#pragma GCC diagnostic pop
#endif

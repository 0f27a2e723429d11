/* test_asm.c - unit tests of the front end: CASM assembler, JSON IR loader, bytecode reader and
 * writer, disassembler (round trips), and their error reporting. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "isa/module.h"

#define GUIDE_DIR NVM_SHARED_DIR "/conformance/upstream/guide"
#define LEGACY_DIR NVM_SHARED_DIR "/conformance/upstream/book-legacy"

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    *len = fread(buf, 1, (size_t)n, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Calls fn(path) for every file in dir whose name ends with suffix; returns how many. */
static int each_file(const char *dir, const char *suffix, void (*fn)(const char *path))
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!ends_with(e->d_name, suffix))
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        fn(path);
        n++;
    }
    closedir(d);
    return n;
}

static nvm_status casm(const char *src, nvm_module **m, nvm_error *err)
{
    memset(err, 0, sizeof *err);
    *m = NULL;
    return nvm_module_from_casm(NULL, src, strlen(src), "t.casm", m, err);
}

static nvm_status json(const char *src, nvm_module **m, nvm_error *err)
{
    memset(err, 0, sizeof *err);
    *m = NULL;
    return nvm_module_from_json(NULL, src, strlen(src), "t.json", m, err);
}

/* Asserts that src fails with status st at line:col and a message containing `needle`. */
static void expect_casm_error(const char *src, nvm_status st, uint32_t line, uint32_t col,
                              const char *needle)
{
    nvm_module *m;
    nvm_error err;
    nvm_status got = casm(src, &m, &err);
    if (got != st || (line != 0 && err.line != line) || (col != 0 && err.col != col) ||
        strstr(err.message, needle) == NULL)
        print_error("source:\n%s\ngot status %d at %u:%u: %s\n", src, (int)got, err.line, err.col,
                    err.message);
    assert_int_equal(got, st);
    assert_null(m);
    if (line != 0)
        assert_int_equal(err.line, line);
    if (col != 0)
        assert_int_equal(err.col, col);
    assert_non_null(strstr(err.message, needle));
    assert_string_equal(err.file, "t.casm");
}

/* bytecode of m without line tables */
static uint8_t *code_bytes(nvm_module *m, size_t *len)
{
    nvm_error err;
    uint8_t *bc = NULL;
    nvm_module_drop_lines(m);
    assert_int_equal(nvm_module_to_bytecode(m, &bc, len, &err), NVM_OK);
    return bc;
}

/* asm -> bytecode -> disasm -> asm -> bytecode: identical bytes; also bytecode -> module ->
 * bytecode is the identity. */
static void check_round_trip(nvm_module *m)
{
    nvm_error err;
    char *text = NULL;
    size_t tlen = 0;
    assert_int_equal(nvm_module_disasm(m, &text, &tlen, &err), NVM_OK);
    assert_int_equal(strlen(text), tlen);
    nvm_module *m2 = NULL;
    nvm_status st = nvm_module_from_casm(NULL, text, tlen, "disasm", &m2, &err);
    if (st != NVM_OK)
        print_error("reassembly failed at %u:%u: %s\n%s", err.line, err.col, err.message, text);
    assert_int_equal(st, NVM_OK);
    size_t l1, l2, l3;
    uint8_t *b1 = code_bytes(m, &l1);
    uint8_t *b2 = code_bytes(m2, &l2);
    assert_int_equal(l1, l2);
    assert_memory_equal(b1, b2, l1);
    nvm_module *m3 = NULL;
    assert_int_equal(nvm_module_from_bytecode(NULL, b1, l1, "bc", &m3, &err), NVM_OK);
    uint8_t *b3 = code_bytes(m3, &l3);
    assert_int_equal(l1, l3);
    assert_memory_equal(b1, b3, l1);
    nvm_module_free_buffer(m, b1, l1);
    nvm_module_free_buffer(m2, b2, l2);
    nvm_module_free_buffer(m3, b3, l3);
    nvm_module_free_buffer(m, (uint8_t *)text, tlen + 1);
    nvm_module_free(m2);
    nvm_module_free(m3);
}

/* ---- guide programs ---- */

static void assemble_guide_file(const char *path)
{
    size_t len;
    char *src = slurp(path, &len);
    assert_non_null(src);
    nvm_module *m = NULL;
    nvm_error err;
    nvm_status st = nvm_module_from_casm(NULL, src, len, path, &m, &err);
    /* This test is about the assembler: a verifier verdict is checked by the corpus tests. */
    if (st == NVM_E_VERIFY) {
        print_message("note: %s assembles but is rejected by the verifier: %s\n", path,
                      err.message);
        free(src);
        return;
    }
    if (st != NVM_OK)
        print_error("%s:%u:%u: %s\n", path, err.line, err.col, err.message);
    assert_int_equal(st, NVM_OK);
    assert_true(m->nfuncs >= 1);
    assert_string_equal(m->funcs[m->entry].name, "main");
    check_round_trip(m);
    nvm_module_free(m);
    free(src);
}

static void test_guide_casm_assembles(void **state)
{
    (void)state;
    int n = each_file(GUIDE_DIR, ".casm", assemble_guide_file);
    assert_true(n >= 20);
}

static void load_guide_json(const char *path)
{
    size_t len;
    char *src = slurp(path, &len);
    assert_non_null(src);
    nvm_module *m = NULL;
    nvm_error err;
    nvm_status st = nvm_module_load(NULL, (const uint8_t *)src, len, path, &m, &err);
    if (strstr(path, "version_0_1_rejected") != NULL) {
        assert_int_equal(st, NVM_E_FORMAT);
        assert_string_equal(err.message, "version mismatch: expected 1.x, found 0.1");
    } else if (strstr(path, "shl_not_lowered") != NULL) {
        /* loads fine, then the verifier rejects SHL on a one-value stack */
        assert_int_equal(st, NVM_E_VERIFY);
        assert_non_null(strstr(err.message, "SHL"));
    } else {
        if (st != NVM_OK)
            print_error("%s: %s\n", path, err.message);
        assert_int_equal(st, NVM_OK);
        check_round_trip(m);
    }
    nvm_module_free(m);
    free(src);
}

static void test_guide_json_loads(void **state)
{
    (void)state;
    int n = each_file(GUIDE_DIR, ".json", load_guide_json);
    assert_true(n >= 4);
}

static void reject_legacy(const char *path)
{
    size_t len;
    char *src = slurp(path, &len);
    assert_non_null(src);
    nvm_module *m = NULL;
    nvm_error err;
    nvm_status st = nvm_module_load(NULL, (const uint8_t *)src, len, path, &m, &err);
    assert_int_equal(st, NVM_E_FORMAT);
    assert_null(m);
    if (strstr(src, "\"instructions\"") != NULL)
        assert_non_null(strstr(err.message, "legacy CASM artifact dialect"));
    else
        assert_string_equal(err.message, "version mismatch: expected 1.x, found 0.1");
    free(src);
}

static void test_book_legacy_rejected(void **state)
{
    (void)state;
    int n = each_file(LEGACY_DIR, ".json", reject_legacy);
    assert_true(n >= 10);
}

/* ---- CASM syntax ---- */

static void test_syntax_features(void **state)
{
    (void)state;
    const char *src = "; comment line\n"
                      "# another\n"
                      ".func main\n"
                      "  a: b:  push 0x10   ; two labels on one line, lower-case mnemonic\n"
                      "    PUSH -0x8000000000000000\n"
                      "    POP\n"
                      "    PUSH_F64 -2.5e3\n"
                      "    POP\n"
                      "    PUSH_BOOL true\n"
                      "    PUSH_BOOL 0\n"
                      "    POP\n"
                      "    POP\n"
                      "    CALL lib.helper\n"
                      "    JZ end\n"
                      "    JMP a\n"
                      "end:\n"
                      ".func lib.helper 1\n"
                      "    CAST \"str\"\n"
                      "    RET\n";
    nvm_module *m;
    nvm_error err;
    nvm_status st = casm(src, &m, &err);
    if (st != NVM_OK)
        print_error("%u:%u %s\n", err.line, err.col, err.message);
    assert_int_equal(st, NVM_OK);
    assert_int_equal(m->nfuncs, 2);
    assert_string_equal(m->funcs[1].name, "lib.helper");
    assert_int_equal(m->funcs[1].declared_argc, 1);
    assert_int_equal(m->funcs[0].declared_argc, -1);
    const nvm_func *f = &m->funcs[0];
    assert_int_equal(f->code[0].op, NVM_OP_PUSH);
    assert_int_equal(f->code[0].k.i, 16);
    assert_int_equal(f->code[1].k.i, INT64_MIN);
    assert_true(f->code[3].k.f == -2500.0);
    assert_int_equal(f->code[5].b, 1);
    assert_int_equal(f->code[6].b, 0);
    assert_int_equal(f->code[9].op, NVM_OP_CALL);
    assert_int_equal(f->code[9].a, 1);
    assert_int_equal(f->code[11].a, 0); /* JMP a -> instruction 0 */
    /* `end:` at the function end: PUSH_NULL + RET appended, JZ goes to the PUSH_NULL */
    assert_int_equal(f->ninsn, 14);
    assert_int_equal(f->code[10].a, 12);
    assert_int_equal(f->code[12].op, NVM_OP_PUSH_NULL);
    assert_int_equal(f->code[13].op, NVM_OP_RET);
    assert_non_null(f->lines);
    assert_int_equal(f->lines[0], 4);
    assert_int_equal(f->lines[1], 5);
    assert_int_equal(m->funcs[1].code[0].b, NVM_CAST_STR);
    check_round_trip(m);
    nvm_module_free(m);
}

static void test_function_end_and_entry(void **state)
{
    (void)state;
    nvm_module *m;
    nvm_error err;
    /* no main: the first function is the entry; empty and fall-through functions get
     * PUSH_NULL + RET */
    assert_int_equal(casm(".func first\n  PUSH 1\n  POP\n.func second\n", &m, &err), NVM_OK);
    assert_int_equal(m->entry, 0);
    assert_int_equal(m->funcs[0].ninsn, 4);
    assert_int_equal(m->funcs[0].code[3].op, NVM_OP_RET);
    assert_int_equal(m->funcs[1].ninsn, 2);
    assert_int_equal(m->funcs[1].code[0].op, NVM_OP_PUSH_NULL);
    nvm_module_free(m);
    assert_int_equal(casm(".func a\n HALT\n.func main\n HALT\n", &m, &err), NVM_OK);
    assert_int_equal(m->entry, 1);
    assert_int_equal(m->funcs[1].ninsn, 1);
    nvm_module_free(m);
}

static void test_function_order_round_trip(void **state)
{
    (void)state;
    /* functions referenced before their definition in a different order than defined */
    const char *src = ".func main\n CALL c\n POP\n HALT\n"
                      ".func b\n CALL d\n RET\n"
                      ".func d\n PUSH 4\n RET\n"
                      ".func c\n CALL e\n RET\n"
                      ".func e\n PUSH_STR \"e\"\n RET\n";
    nvm_module *m;
    nvm_error err;
    assert_int_equal(casm(src, &m, &err), NVM_OK);
    assert_string_equal(m->funcs[1].name, "b");
    assert_string_equal(m->funcs[3].name, "c");
    assert_int_equal(m->funcs[0].code[0].a, 3);
    check_round_trip(m);
    nvm_module_free(m);
}

static void test_label_errors(void **state)
{
    (void)state;
    expect_casm_error(".func main\n  JMP nowhere\n", NVM_E_LINK, 2, 7,
                      "undefined label \"nowhere\"");
    expect_casm_error(".func main\nx:\n  HALT\n.func f\n  JMP x\n", NVM_E_LINK, 5, 7,
                      "a jump must stay inside its function");
    expect_casm_error(".func main\nx:\nx:\n  HALT\n", NVM_E_SYNTAX, 3, 1,
                      "label \"x\" is already defined at line 2");
    expect_casm_error("x:\n.func main\n", NVM_E_SYNTAX, 1, 1, "outside any function");
    expect_casm_error(".func main\n  JMP 12\n", NVM_E_SYNTAX, 2, 7, "expected a label name");
}

static void test_bad_operands(void **state)
{
    (void)state;
    expect_casm_error(".func main\n    PUSH abc\n", NVM_E_SYNTAX, 2, 10,
                      "expected an integer operand for PUSH, found \"abc\"");
    expect_casm_error(".func main\n    PUSH\n", NVM_E_SYNTAX, 2, 9,
                      "expected an integer operand for PUSH, found end of line");
    expect_casm_error(".func main\n  PUSH 1.5\n", NVM_E_SYNTAX, 2, 8, "PUSH_F64");
    expect_casm_error(".func main\n  PUSH 9223372036854775808\n", NVM_E_SYNTAX, 2, 8,
                      "out of the 64-bit range");
    expect_casm_error(".func main\n  PUSH 12abc\n", NVM_E_SYNTAX, 2, 8, "found \"12abc\"");
    expect_casm_error(".func main\n  PUSH 1 2\n", NVM_E_SYNTAX, 2, 10, "unexpected \"2\"");
    expect_casm_error(".func main\n  ADD 1\n", NVM_E_SYNTAX, 2, 7, "ADD takes no operand");
    expect_casm_error(".func main\n  LOAD 70000\n", NVM_E_SYNTAX, 2, 8, "out of range");
    expect_casm_error(".func main\n  LOAD -1\n", NVM_E_SYNTAX, 2, 8, "out of range");
    expect_casm_error(".func main\n  PUSH_F64 1e999\n", NVM_E_SYNTAX, 2, 12, "out of range");
    expect_casm_error(".func main\n  PUSH_F64 abc\n", NVM_E_SYNTAX, 2, 12, "expected a float");
    expect_casm_error(".func main\n  PUSH_STR hello\n", NVM_E_SYNTAX, 2, 12,
                      "expected a double-quoted string");
    expect_casm_error(".func main\n  PUSH_STR \"abc\n", NVM_E_SYNTAX, 2, 12, "unterminated string");
    expect_casm_error(".func main\n  PUSH_BOOL yes\n", NVM_E_SYNTAX, 2, 13, "true, false, 1 or 0");
    expect_casm_error(".func main\n  CAST \"double\"\n", NVM_E_SYNTAX, 2, 8, "unknown type");
    expect_casm_error(".func main\n  CAP_CALL \"io.print\"\n", NVM_E_SYNTAX, 2, 0,
                      "expected an argument count for CAP_CALL");
    expect_casm_error(".func main\n  CAP_CALL \"io.print\" 256\n", NVM_E_SYNTAX, 2, 23,
                      "out of range");
    expect_casm_error(".func main\n  FROB\n", NVM_E_SYNTAX, 2, 3, "unknown instruction \"FROB\"");
    expect_casm_error(".func main\n  ai_ask\n", NVM_E_FORMAT, 2, 3,
                      "unsupported upstream opcode AI_ASK (not part of NanoVM's CASM)");
    expect_casm_error(".func main\n  NEW_TUPLE 2\n", NVM_E_FORMAT, 2, 3,
                      "unsupported upstream opcode NEW_TUPLE");
    expect_casm_error("  PUSH 1\n", NVM_E_SYNTAX, 1, 3, "outside any function");
    expect_casm_error(".func main\n  CALL nope\n  HALT\n", NVM_E_LINK, 2, 0,
                      "undefined function \"nope\"");
    expect_casm_error(".func main\n HALT\n.func main\n HALT\n", NVM_E_SYNTAX, 3, 0,
                      "already defined");
    expect_casm_error(".funk main\n", NVM_E_SYNTAX, 1, 1, "unknown directive");
    expect_casm_error("; nothing\n", NVM_E_SYNTAX, 0, 0, "no function defined");
}

static void test_string_escapes(void **state)
{
    (void)state;
    nvm_module *m;
    nvm_error err;
    const char *src = ".func main\n  PUSH_STR \"a\\n\\t\\\"\\\\\\r\\0\\x41\\xff;#\" ; c\n  POP\n"
                      "  PUSH_STR \"h\xC3\xA9\"\n  HALT\n";
    nvm_status st = casm(src, &m, &err);
    if (st != NVM_OK)
        print_error("%u:%u %s\n", err.line, err.col, err.message);
    assert_int_equal(st, NVM_OK);
    const nvm_strconst *s = &m->strs[m->funcs[0].code[0].a];
    assert_int_equal(s->len, 11);
    assert_memory_equal(s->bytes, "a\n\t\"\\\r\0A\xff;#", 11);
    assert_int_equal(m->strs[m->funcs[0].code[2].a].len, 3);
    check_round_trip(m);
    nvm_module_free(m);
    expect_casm_error(".func main\n  PUSH_STR \"a\\q\"\n", NVM_E_SYNTAX, 2, 14,
                      "unknown escape \\q");
    expect_casm_error(".func main\n  PUSH_STR \"\\x4\"\n", NVM_E_SYNTAX, 2, 13, "two hex digits");
}

static void test_nul_and_utf8_rejected(void **state)
{
    (void)state;
    nvm_module *m = NULL;
    nvm_error err;
    static const char nul_src[] = ".func main\n  PUSH_STR \"a\0b\"\n";
    assert_int_equal(nvm_module_from_casm(NULL, nul_src, sizeof nul_src - 1, "t.casm", &m, &err),
                     NVM_E_SYNTAX);
    assert_int_equal(err.line, 2);
    assert_int_equal(err.col, 14);
    assert_non_null(strstr(err.message, "NUL byte"));
    expect_casm_error(".func main\n; bad \xC3\x28 here\n", NVM_E_SYNTAX, 2, 7, "invalid UTF-8");
    expect_casm_error(".func main\n  PUSH_STR \"\xED\xA0\x80\"\n", NVM_E_SYNTAX, 2, 13,
                      "invalid UTF-8");
    expect_casm_error(".func main\n\xC0\xAF\n", NVM_E_SYNTAX, 2, 1, "invalid UTF-8");
}

static void test_floats_round_trip(void **state)
{
    (void)state;
    const char *src = ".func main\n"
                      "  PUSH_F64 0.1\n  PUSH_F64 -0.0\n  PUSH_F64 nan\n  PUSH_F64 inf\n"
                      "  PUSH_F64 -inf\n  PUSH_F64 1e300\n  PUSH_F64 4.9e-324\n"
                      "  PUSH_F64 3\n  PUSH_F64 0.30000000000000004\n  PUSH_F64 1e21\n"
                      "  NEW_ARRAY 10\n  HALT\n";
    nvm_module *m;
    nvm_error err;
    assert_int_equal(casm(src, &m, &err), NVM_OK);
    const nvm_insn *c = m->funcs[0].code;
    assert_true(c[0].k.f == 0.1);
    assert_true(c[1].k.f == 0.0 && signbit(c[1].k.f));
    assert_true(isnan(c[2].k.f));
    assert_true(isinf(c[3].k.f) && c[3].k.f > 0);
    assert_true(isinf(c[4].k.f) && c[4].k.f < 0);
    assert_true(c[7].k.f == 3.0);
    check_round_trip(m);
    nvm_module_free(m);
}

static void test_quoted_names_round_trip(void **state)
{
    (void)state;
    const char *src = ".func main\n  CALL \"my func\"\n  HALT\n"
                      ".func \"my func\" 0\n  PUSH 1\n  RET\n";
    nvm_module *m;
    nvm_error err;
    assert_int_equal(casm(src, &m, &err), NVM_OK);
    assert_string_equal(m->funcs[1].name, "my func");
    check_round_trip(m);
    nvm_module_free(m);
}

/* ---- bytecode ---- */

static nvm_module *sample_module(void)
{
    const char *src = ".func main\n"
                      "  PUSH 10\n  STORE 0\n"
                      "top:\n  LOAD 0\n  JZ done\n  LOAD 0\n  CAP_CALL \"io.print\" 1\n"
                      "  LOAD 0\n  PUSH 1\n  SUB\n  STORE 0\n  JMP top\n"
                      "done:\n  PUSH_STR \"bye\"\n  PUSH_F64 2.5\n  PUSH_BOOL true\n"
                      "  NEW_ARRAY 3\n  CALL f\n  HALT\n"
                      ".func f 1\n  STORE 0\n  LOAD 0\n  CAST \"str\"\n  RET\n";
    nvm_module *m;
    nvm_error err;
    nvm_status st = casm(src, &m, &err);
    if (st != NVM_OK)
        print_error("%u:%u %s\n", err.line, err.col, err.message);
    assert_int_equal(st, NVM_OK);
    return m;
}

static void test_bytecode_truncation(void **state)
{
    (void)state;
    nvm_module *m = sample_module();
    nvm_error err;
    uint8_t *bc;
    size_t len;
    assert_int_equal(nvm_module_to_bytecode(m, &bc, &len, &err), NVM_OK);
    assert_non_null(m->funcs[0].lines);
    for (size_t n = 0; n < len; n++) {
        uint8_t *copy = malloc(n + 1); /* exact-size copy so ASan sees any over-read */
        memcpy(copy, bc, n);
        nvm_module *r = NULL;
        nvm_status st = nvm_module_from_bytecode(NULL, copy, n, "cut", &r, &err);
        assert_int_not_equal(st, NVM_OK);
        assert_null(r);
        free(copy);
    }
    /* trailing bytes */
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, bc, len);
    longer[len] = 0;
    nvm_module *r = NULL;
    assert_int_equal(nvm_module_from_bytecode(NULL, longer, len + 1, "long", &r, &err),
                     NVM_E_FORMAT);
    assert_non_null(strstr(err.message, "trailing"));
    /* the full module reads back with its line table */
    assert_int_equal(nvm_module_from_bytecode(NULL, bc, len, "full", &r, &err), NVM_OK);
    assert_non_null(r->funcs[0].lines);
    assert_int_equal(r->funcs[0].lines[0], 2);
    nvm_module_free(r);
    free(longer);
    nvm_module_free_buffer(m, bc, len);
    nvm_module_free(m);
}

/* Offset of the code of function 0 in bytecode written from a module with nstr strings etc.:
 * found by scanning for the first JMP/JZ opcode in the known sample instead. */
static size_t find_byte_after(const uint8_t *bc, size_t len, size_t from, uint8_t b)
{
    for (size_t i = from; i < len; i++)
        if (bc[i] == b)
            return i;
    return len;
}

static void test_bytecode_hostile(void **state)
{
    (void)state;
    nvm_module *m = sample_module();
    nvm_module_drop_lines(m);
    nvm_error err;
    uint8_t *bc;
    size_t len;
    assert_int_equal(nvm_module_to_bytecode(m, &bc, &len, &err), NVM_OK);
    uint8_t *copy = malloc(len);
    nvm_module *r = NULL;

    /* locate main's code: header(12) + strings + caps + funcs count + 16-byte function header */
    size_t p = 12;
    uint32_t nstr = bc[p] | (uint32_t)bc[p + 1] << 8;
    p += 4;
    for (uint32_t i = 0; i < nstr; i++)
        p += 4 + (bc[p] | (uint32_t)bc[p + 1] << 8);
    uint32_t ncap = bc[p];
    p += 4 + 4 * ncap;
    p += 4;
    size_t code = p + 16;
    /* main starts PUSH 10 (9 bytes), STORE 0 (5), LOAD 0 (5), JZ done (5) */
    size_t jz = code + 19;
    assert_int_equal(bc[jz], NVM_OP_JZ);
    assert_int_equal(bc[find_byte_after(bc, len, code, NVM_OP_JZ)], NVM_OP_JZ);

    memcpy(copy, bc, len);
    copy[jz + 1] = 7; /* inside PUSH 10 */
    copy[jz + 2] = copy[jz + 3] = copy[jz + 4] = 0;
    assert_int_equal(nvm_module_from_bytecode(NULL, copy, len, "h", &r, &err), NVM_E_FORMAT);
    assert_string_equal(err.message,
                        "jump target 7 is not an instruction boundary in function main");

    memcpy(copy, bc, len);
    copy[jz + 1] = 0xff; /* far outside */
    assert_int_equal(nvm_module_from_bytecode(NULL, copy, len, "h", &r, &err), NVM_E_FORMAT);
    assert_non_null(strstr(err.message, "outside function main"));

    memcpy(copy, bc, len);
    copy[code] = 0xEE; /* unassigned opcode */
    assert_int_equal(nvm_module_from_bytecode(NULL, copy, len, "h", &r, &err), NVM_E_FORMAT);
    assert_non_null(strstr(err.message, "unknown opcode byte 0xEE"));

    memcpy(copy, bc, len);
    copy[4] = 9; /* version */
    assert_int_equal(nvm_module_from_bytecode(NULL, copy, len, "h", &r, &err), NVM_E_FORMAT);
    assert_non_null(strstr(err.message, "version 9"));

    memcpy(copy, bc, len);
    copy[12] = copy[13] = copy[14] = copy[15] = 0xff; /* huge string count */
    assert_int_equal(nvm_module_from_bytecode(NULL, copy, len, "h", &r, &err), NVM_E_FORMAT);

    memcpy(copy, bc, len);
    copy[code + 10] = 0x7f; /* STORE slot 0x7f: beyond the slot count */
    assert_int_equal(nvm_module_from_bytecode(NULL, copy, len, "h", &r, &err), NVM_E_FORMAT);
    assert_non_null(strstr(err.message, "slot"));

    /* every single-byte corruption is either rejected or loads a module: never a crash */
    for (size_t i = 0; i < len; i++) {
        for (int v = 0; v < 256; v += 51) {
            memcpy(copy, bc, len);
            copy[i] = (uint8_t)(copy[i] ^ (v | 1));
            r = NULL;
            if (nvm_module_from_bytecode(NULL, copy, len, "h", &r, &err) == NVM_OK)
                nvm_module_free(r);
        }
    }
    free(copy);
    nvm_module_free_buffer(m, bc, len);
    nvm_module_free(m);
}

static void test_load_dispatch(void **state)
{
    (void)state;
    nvm_module *m = sample_module();
    nvm_error err;
    uint8_t *bc;
    size_t len;
    assert_int_equal(nvm_module_to_bytecode(m, &bc, &len, &err), NVM_OK);
    nvm_module *r = NULL;
    assert_int_equal(nvm_module_load(NULL, bc, len, "x", &r, &err), NVM_OK);
    nvm_module_free(r);
    const char *j =
        "  {\"version\":\"1.0\",\"functions\":{\"main\":{\"body\":[{\"op\":\"halt\"}]}}}";
    assert_int_equal(nvm_module_load(NULL, (const uint8_t *)j, strlen(j), "x", &r, &err), NVM_OK);
    nvm_module_free(r);
    const char *t = ".func main\nHALT\n";
    assert_int_equal(nvm_module_load(NULL, (const uint8_t *)t, strlen(t), "x", &r, &err), NVM_OK);
    assert_int_equal(nvm_module_cap_count(r), 0);
    nvm_module_free(r);
    assert_int_equal(nvm_module_cap_count(m), 1);
    assert_string_equal(nvm_module_cap_name(m, 0), "io.print");
    assert_null(nvm_module_cap_name(m, 1));
    nvm_module_free_buffer(m, bc, len);
    nvm_module_free(m);
}

/* ---- JSON IR ---- */

static void test_json_ir(void **state)
{
    (void)state;
    nvm_module *m;
    nvm_error err;
    const char *ok =
        "{\"version\":\"1.2\",\"lang\":\"x\",\"functions\":{\"main\":{\"params\":[],"
        "\"body\":[{\"op\":\"push_int\",\"value\":1},{\"op\":\"store\",\"name\":\"x\"},"
        "{\"op\":\"load\",\"name\":\"x\"},{\"op\":\"jmp_if_not\",\"target\":7},"
        "{\"op\":\"push_float\",\"value\":1.5,\"meta\":{\"line\":42}},"
        "{\"op\":\"store\",\"name\":\"y\"},{\"op\":\"jmp\",\"target\":0},"
        "{\"op\":\"push_str\",\"value\":\"a\\u0000b\"},{\"op\":\"cap_call\","
        "\"name\":\"io.print\",\"argc\":1}]}},"
        "\"manifest\":{\"permissions\":[\"io.print\"]}}";
    nvm_status st = json(ok, &m, &err);
    if (st != NVM_OK)
        print_error("%s\n", err.message);
    assert_int_equal(st, NVM_OK);
    const nvm_func *f = &m->funcs[0];
    assert_int_equal(f->code[1].a, 0);
    assert_int_equal(f->code[5].a, 1); /* y: second variable */
    assert_int_equal(f->nslots, 2);
    assert_int_equal(f->code[3].op, NVM_OP_JZ);
    assert_int_equal(f->code[3].a, 7);
    assert_int_equal(f->lines[4], 42);
    assert_int_equal(m->strs[f->code[7].a].len, 3);
    /* the body does not end in a terminator: PUSH_NULL + RET appended */
    assert_int_equal(f->ninsn, 11);
    check_round_trip(m);
    nvm_module_free(m);

    assert_int_equal(json("{\"version\":\"1.0\",\"functions\":{\"main\":{\"body\":["
                          "{\"op\":\"cap_call\",\"name\":\"io.print\",\"argc\":0}]}}}",
                          &m, &err),
                     NVM_E_LINK);
    assert_non_null(strstr(err.message, "capability io.print used but not declared in "
                                        "manifest.permissions"));
    assert_int_equal(json("{\"version\":\"1.0\",\"functions\":{\"main\":{\"body\":["
                          "{\"op\":\"halt\"},{\"op\":\"frobnicate\"}]}}}",
                          &m, &err),
                     NVM_E_FORMAT);
    assert_non_null(strstr(err.message, "unknown op \"frobnicate\""));
    assert_non_null(strstr(err.message, "instruction 1"));
    assert_int_equal(json("{\"version\":\"1.0\",\"functions\":{\"main\":{\"body\":["
                          "{\"op\":\"ai_ask\"}]}}}",
                          &m, &err),
                     NVM_E_FORMAT);
    assert_non_null(strstr(err.message, "unsupported upstream opcode AI_ASK"));
    assert_int_equal(json("{\"version\":\"1.0\",\"functions\":{\"main\":{\"body\":["
                          "{\"op\":\"call\",\"function\":\"ghost\",\"argc\":0},{\"op\":\"halt\"}"
                          "]}}}",
                          &m, &err),
                     NVM_E_LINK);
    assert_non_null(strstr(err.message, "ghost"));
    assert_int_equal(json("{\"version\":\"1.0\",\"functions\":{\"main\":{\"body\":["
                          "{\"op\":\"jmp\",\"target\":5}]}}}",
                          &m, &err),
                     NVM_E_FORMAT);
    assert_non_null(strstr(err.message, "out of range"));
    assert_int_equal(json("{\"version\":\"1.0\",\"functions\":{\"main\":{\"body\":["
                          "{\"op\":\"push_int\",\"value\":1.5}]}}}",
                          &m, &err),
                     NVM_E_FORMAT);
    assert_non_null(strstr(err.message, "push_float"));
    assert_int_equal(json("{\"version\":\"2.0\",\"functions\":{}}", &m, &err), NVM_E_FORMAT);
    assert_string_equal(err.message, "version mismatch: expected 1.x, found 2.0");
    assert_int_equal(json("{\"functions\":{}}", &m, &err), NVM_E_FORMAT);
    assert_non_null(strstr(err.message, "version"));
    assert_int_equal(json("{\"version\":\"1.0\",\n \"functions\": [,]}", &m, &err), NVM_E_SYNTAX);
    assert_int_equal(err.line, 2);
    assert_true(err.col > 0);
    assert_int_equal(json("{\"version\":\"1.0\",\"functions\":{\"main\":{\"body\":["
                          "{\"opcode\":\"PUSH\"}]}}}",
                          &m, &err),
                     NVM_E_FORMAT);
    assert_non_null(strstr(err.message, "legacy CASM dialect"));
    /* a target equal to the body length is the function end */
    assert_int_equal(json("{\"version\":\"1.0\",\"functions\":{\"main\":{\"body\":["
                          "{\"op\":\"push_bool\",\"value\":false},{\"op\":\"jz\",\"target\":2}"
                          "]}}}",
                          &m, &err),
                     NVM_OK);
    assert_int_equal(m->funcs[0].code[1].a, 2);
    assert_int_equal(m->funcs[0].code[2].op, NVM_OP_PUSH_NULL);
    nvm_module_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_guide_casm_assembles),
        cmocka_unit_test(test_guide_json_loads),
        cmocka_unit_test(test_book_legacy_rejected),
        cmocka_unit_test(test_syntax_features),
        cmocka_unit_test(test_function_end_and_entry),
        cmocka_unit_test(test_function_order_round_trip),
        cmocka_unit_test(test_label_errors),
        cmocka_unit_test(test_bad_operands),
        cmocka_unit_test(test_string_escapes),
        cmocka_unit_test(test_nul_and_utf8_rejected),
        cmocka_unit_test(test_floats_round_trip),
        cmocka_unit_test(test_quoted_names_round_trip),
        cmocka_unit_test(test_bytecode_truncation),
        cmocka_unit_test(test_bytecode_hostile),
        cmocka_unit_test(test_load_dispatch),
        cmocka_unit_test(test_json_ir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

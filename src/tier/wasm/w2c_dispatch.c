/* w2c_dispatch.c - build tool: rewrites wasm2c's output so that every large br_table becomes a
 * computed goto through a constant table of label addresses.
 *   w2c_dispatch IN OUT MIN_CASES
 *
 * WebAssembly has no indirect jump, so the interpreter's dispatch reaches wasm2c as one loop whose
 * head is a br_table, which wasm2c emits as
 *       switch (w2c_iN) {
 *         case 0: goto w2c_B12;
 *         ...
 *         case K-1: goto w2c_B7;
 *         default: goto w2c_B3;
 *       }
 * GCC compiles each switch to one indirect jump shared by every op body. A computed goto instead
 * is duplicated into each of its predecessors (GCC's duplicate-computed-gotos pass), which gives
 * every op body its own indirect jump, as the native interpreter's direct threading does.
 *
 * The rewrite keeps the br_table's meaning exactly: the index is an unsigned 32-bit value, clamped
 * to K, and entry K of the table is the default label, so every index reads inside the table and
 * jumps to the label the switch would have chosen. The table is constant host data of the
 * function itself; the guest's linear memory is not involved.
 *
 * Only switches with at least MIN_CASES cases are rewritten (small ones compile better as
 * compares). The tool fails when none is found: the interpreter's dispatch is expected. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Label names and variable names wasm2c emits: w2c_ followed by [A-Za-z0-9_]. */
static size_t ident_len(const char *s)
{
    size_t n = 0;
    if (strncmp(s, "w2c_", 4) != 0)
        return 0;
    n = 4;
    while ((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
           (s[n] >= '0' && s[n] <= '9') || s[n] == '_')
        n++;
    return n > 4 ? n : 0;
}

static const char *skip_spaces(const char *s)
{
    while (*s == ' ')
        s++;
    return s;
}

/* Matches "<spaces>PREFIX<label>;\n" at s; on success *label and *label_len name the label and
 * the return value points after the line, else NULL. PREFIX "case " also parses a number into
 * *num. */
static const char *goto_line(const char *s, const char *prefix, unsigned long *num,
                             const char **label, size_t *label_len)
{
    s = skip_spaces(s);
    size_t pl = strlen(prefix);
    if (strncmp(s, prefix, pl) != 0)
        return NULL;
    s += pl;
    if (num != NULL) {
        char *end;
        if (*s < '0' || *s > '9')
            return NULL;
        *num = strtoul(s, &end, 10);
        s = end;
        if (*s++ != ':')
            return NULL;
        if (*s++ != ' ')
            return NULL;
    }
    if (strncmp(s, "goto ", 5) != 0)
        return NULL;
    s += 5;
    size_t n = ident_len(s);
    if (n == 0 || s[n] != ';' || s[n + 1] != '\n')
        return NULL;
    *label = s;
    *label_len = n;
    return s + n + 2;
}

struct label {
    const char *name;
    size_t len;
};

struct out {
    FILE *f;
    int failed;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (n > 0 && fwrite(s, 1, n, o->f) != n)
        o->failed = 1;
}

static void put_str(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

/* Tries to rewrite the switch whose line starts at `line` (indentation included). Returns the
 * position after the switch when it was rewritten, else NULL (nothing written). */
static const char *rewrite(struct out *o, const char *line, unsigned long min_cases,
                           unsigned long *tables)
{
    const char *s = skip_spaces(line);
    size_t indent = (size_t)(s - line);
    if (strncmp(s, "switch (", 8) != 0)
        return NULL;
    const char *var = s + 8;
    size_t var_len = ident_len(var);
    if (var_len == 0 || strncmp(var + var_len, ") {\n", 4) != 0)
        return NULL;
    s = var + var_len + 4;

    size_t cap = 64, n = 0;
    struct label *labels = malloc(cap * sizeof *labels);
    const char *end = NULL;
    if (labels == NULL)
        goto done;
    for (;;) {
        unsigned long num;
        const char *next = goto_line(s, "case ", &num, &labels[n].name, &labels[n].len);
        if (next == NULL)
            break;
        if (num != n) /* br_table targets come in order 0, 1, ... */
            goto done;
        s = next;
        if (++n == cap) {
            struct label *grown = realloc(labels, 2 * cap * sizeof *labels);
            if (grown == NULL)
                goto done;
            labels = grown;
            cap *= 2;
        }
    }
    s = goto_line(s, "default: ", NULL, &labels[n].name, &labels[n].len);
    if (s == NULL || n < min_cases)
        goto done;
    s = skip_spaces(s);
    if (strncmp(s, "}\n", 2) != 0)
        goto done;
    end = s + 2;

    /* {
     *   static const void *const w2c_dispatchT[n + 1] = {&&L0, ..., &&Ln-1, &&Ldefault};
     *   goto *w2c_dispatchT[var < nu ? var : nu];
     * } */
    char buf[128];
    put(o, line, indent);
    put_str(o, "{\n");
    put(o, line, indent);
    snprintf(buf, sizeof buf, "  static const void *const w2c_dispatch%lu[%zu] = {", *tables,
             n + 1);
    put_str(o, buf);
    for (size_t i = 0; i <= n; i++) {
        put_str(o, i == 0 ? "&&" : ", &&");
        put(o, labels[i].name, labels[i].len);
    }
    put_str(o, "};\n");
    put(o, line, indent);
    snprintf(buf, sizeof buf, "  goto *w2c_dispatch%lu[", *tables);
    put_str(o, buf);
    put(o, var, var_len);
    snprintf(buf, sizeof buf, " < %zuu ? ", n);
    put_str(o, buf);
    put(o, var, var_len);
    snprintf(buf, sizeof buf, " : %zuu];\n", n);
    put_str(o, buf);
    put(o, line, indent);
    put_str(o, "}\n");
    (*tables)++;
done:
    free(labels);
    return end;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
        goto fail;
    buf = malloc((size_t)n + 1);
    if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n)
        goto fail;
    fclose(f);
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
fail:
    fclose(f);
    free(buf);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: w2c_dispatch IN OUT MIN_CASES\n");
        return 2;
    }
    unsigned long min_cases = strtoul(argv[3], NULL, 10);
    size_t len;
    char *src = read_all(argv[1], &len);
    if (src == NULL) {
        fprintf(stderr, "w2c_dispatch: cannot read %s\n", argv[1]);
        return 1;
    }
    struct out o = {fopen(argv[2], "wb"), 0};
    if (o.f == NULL) {
        fprintf(stderr, "w2c_dispatch: cannot write %s\n", argv[2]);
        free(src);
        return 1;
    }
    unsigned long tables = 0;
    const char *p = src, *stop = src + len;
    while (p < stop) {
        const char *nl = memchr(p, '\n', (size_t)(stop - p));
        const char *next = nl != NULL ? nl + 1 : stop;
        const char *after = nl != NULL ? rewrite(&o, p, min_cases, &tables) : NULL;
        if (after != NULL) {
            p = after;
            continue;
        }
        put(&o, p, (size_t)(next - p));
        p = next;
    }
    int rc = 0;
    if (fclose(o.f) != 0 || o.failed) {
        fprintf(stderr, "w2c_dispatch: error writing %s\n", argv[2]);
        rc = 1;
    } else if (tables == 0) {
        fprintf(stderr,
                "w2c_dispatch: no br_table of %lu or more targets in %s (not wabt 1.0.32's "
                "wasm2c output?)\n",
                min_cases, argv[1]);
        rc = 1;
    }
    free(src);
    return rc;
}

/* replay.c - feeds files to LLVMFuzzerTestOneInput without libFuzzer, so that any C compiler
 * can replay the seed corpora and crash reproducers. Link with one harness.
 * Usage: replay PATH...   (a directory means every regular file in it, in name order) */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads the whole file and hands exactly its bytes (in a block of that size) to the harness. */
static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = -1;

    if (f == NULL) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return -1;
    }
    for (;;) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 4096;
            uint8_t *nb = realloc(buf, ncap);
            if (nb == NULL)
                goto fail;
            buf = nb;
            cap = ncap;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        goto fail;
    }
    {
        /* an exact-size copy lets AddressSanitizer catch reads past the end */
        uint8_t *exact = malloc(len ? len : 1);
        if (exact == NULL)
            goto fail;
        memcpy(exact, buf, len);
        LLVMFuzzerTestOneInput(exact, len);
        free(exact);
    }
    rc = 0;
fail:
    free(buf);
    fclose(f);
    return rc;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replays every regular file of a directory; returns the number replayed, -1 on error. */
static long replay_dir(const char *dir)
{
    DIR *d = opendir(dir);
    char **names = NULL;
    size_t n = 0, cap = 0;
    long count = -1;
    struct dirent *e;

    if (d == NULL) {
        fprintf(stderr, "replay: cannot open directory %s\n", dir);
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            char **nn = realloc(names, ncap * sizeof *nn);
            if (nn == NULL)
                goto fail;
            names = nn;
            cap = ncap;
        }
        size_t plen = strlen(dir) + strlen(e->d_name) + 2;
        names[n] = malloc(plen);
        if (names[n] == NULL)
            goto fail;
        snprintf(names[n], plen, "%s/%s", dir, e->d_name);
        n++;
    }
    qsort(names, n, sizeof *names, cmp_names);
    count = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (stat(names[i], &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (replay_file(names[i]) != 0) {
            count = -1;
            goto fail;
        }
        count++;
    }
fail:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return count;
}

int main(int argc, char **argv)
{
    long total = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE-OR-DIR...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: cannot stat %s\n", argv[i]);
            return 1;
        }
        if (S_ISDIR(st.st_mode)) {
            long n = replay_dir(argv[i]);
            if (n < 0)
                return 1;
            total += n;
        } else {
            if (replay_file(argv[i]) != 0)
                return 1;
            total++;
        }
    }
    printf("replayed %ld inputs\n", total);
    return 0;
}

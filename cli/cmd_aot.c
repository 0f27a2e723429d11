/* cmd_aot.c - `nanovm aot` (compile a program for the AOT tier into the cache, or write its C)
 * and `nanovm cache list|clear`. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"

int cmd_aot(int argc, char **argv)
{
    const char *in = NULL, *emit = NULL, *policy = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--emit-c") == 0) {
            if (++i >= argc)
                return usage_error("--emit-c needs a file name%s", "");
            emit = argv[i];
        } else if (strcmp(argv[i], "--policy") == 0) {
            if (++i >= argc)
                return usage_error("--policy needs a file name%s", "");
            policy = argv[i];
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return usage_error("unknown option '%s' for aot", argv[i]);
        } else if (in == NULL) {
            in = argv[i];
        } else {
            return usage_error("aot takes one input file, got another: '%s'", argv[i]);
        }
    }
    if (in == NULL)
        return usage_error("usage: nanovm aot [--policy P] [--emit-c OUT.c] FILE%s", "");
    if (nvm_capsule_is_file(in)) {
        /* a capsule is compiled only when the policy runs it on the AOT tier (trusted) */
        nvm_trust *t = NULL;
        nvm_error err;
        memset(&err, 0, sizeof err);
        nvm_status st = nvm_trust_open(in, policy, NULL, print_message, NULL, &t, &err);
        if (st != NVM_OK)
            return nvm_status_exit_code(st);
        char *text = NULL;
        st = nvm_trust_aot(t, emit, &text, &err);
        if (text != NULL)
            fputs(text, stdout);
        nvm_free_text(text);
        nvm_trust_free(t);
        return nvm_status_exit_code(st);
    }
    if (policy != NULL)
        return usage_error("--policy applies to capsules; %s is a bare program", in);
    nvm_config cfg;
    nvm_config_init(&cfg);
    nvm_module *m = NULL;
    int rc = load_module(&cfg, in, &m);
    if (rc != 0)
        return rc;
    nvm_error err;
    memset(&err, 0, sizeof err);
    char *text = NULL;
    nvm_status st = nvm_aot_compile(m, emit, &text, &err);
    if (st != NVM_OK) {
        rc = report_error(&err);
    } else {
        fputs(text, stdout);
        nvm_free_text(text);
    }
    nvm_module_free(m);
    return rc;
}

int cmd_cache(int argc, char **argv)
{
    nvm_error err;
    memset(&err, 0, sizeof err);
    if (argc == 1 && strcmp(argv[0], "list") == 0) {
        char *text = NULL;
        if (nvm_aot_cache_list(&text, &err) != NVM_OK)
            return report_error(&err);
        fputs(text, stdout);
        nvm_free_text(text);
        return 0;
    }
    if (argc == 1 && strcmp(argv[0], "clear") == 0) {
        uint64_t n = 0;
        if (nvm_aot_cache_clear(&n, &err) != NVM_OK)
            return report_error(&err);
        printf("removed %" PRIu64 " entries\n", n);
        return 0;
    }
    return usage_error("usage: nanovm cache list|clear%s", "");
}

/* cmd_trust.c - the trust side of the command line: `verify`, `audit verify`, `policy check`.
 * The decisions and reports come from the library (nvm_trust_*, nvm_audit_verify_file,
 * nvm_policy_check_file); running a capsule is in main.c.
 * Exit statuses: 0 ok, 2 usage, 3 malformed capsule/manifest/policy, 4 trust rejection. */
#include <stdio.h>
#include <string.h>

#include "nanovm.h"
#include "commands.h"

#define EXIT_REJECTED 4

/* Prints library text on stdout, releases it, returns the exit status of st. */
static int print_text(char *text, nvm_status st, const nvm_error *err)
{
    if (text != NULL)
        fputs(text, stdout);
    nvm_free_text(text);
    return st == NVM_OK ? 0 : report_error(err);
}

int cmd_verify(int argc, char **argv)
{
    const char *policy = NULL, *audit_path = NULL, *file = NULL;
    bool as_json = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--policy") == 0 && i + 1 < argc) {
            policy = argv[++i];
        } else if (strcmp(argv[i], "--audit") == 0 && i + 1 < argc) {
            audit_path = argv[++i];
        } else if (strcmp(argv[i], "--json") == 0) {
            as_json = true;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return usage_error(
                "usage: nanovm verify [--policy P] [--audit FILE] [--json] app.cap%s", "");
        } else if (file == NULL) {
            file = argv[i];
        } else {
            return usage_error("verify takes one capsule%s", "");
        }
    }
    if (file == NULL)
        return usage_error("usage: nanovm verify [--policy P] [--audit FILE] [--json] app.cap%s",
                           "");
    nvm_trust *t = NULL;
    nvm_error err;
    nvm_status st = nvm_trust_open(file, policy, audit_path, print_message, NULL, &t, &err);
    if (st != NVM_OK)
        return nvm_status_exit_code(st);
    char *text = NULL;
    st = nvm_trust_report(t, as_json, &text, &err);
    int rc = print_text(text, st, &err);
    if (rc == 0 && !nvm_trust_may_run(t))
        rc = EXIT_REJECTED;
    fflush(stdout);
    nvm_trust_free(t);
    return rc;
}

int cmd_audit(int argc, char **argv)
{
    static const char usage[] = "usage: nanovm audit verify [--policy P] [--state-dir DIR] [LOG]%s";
    const char *state = NULL, *policy = NULL, *log = NULL;
    if (argc < 1 || strcmp(argv[0], "verify") != 0)
        return usage_error(usage, "");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--state-dir") == 0 && i + 1 < argc)
            state = argv[++i];
        else if (strcmp(argv[i], "--policy") == 0 && i + 1 < argc)
            policy = argv[++i];
        else if (argv[i][0] == '-' && argv[i][1] != '\0')
            return usage_error(usage, "");
        else if (log == NULL)
            log = argv[i];
        else
            return usage_error("audit verify takes one log%s", "");
    }
    char *text = NULL;
    nvm_error err;
    nvm_status st = nvm_audit_verify_file(log, policy, state, NULL, &text, &err);
    if (st == NVM_E_USAGE)
        return usage_error("%s", err.message);
    return print_text(text, st, &err);
}

int cmd_policy(int argc, char **argv)
{
    if (argc != 2 || strcmp(argv[0], "check") != 0)
        return usage_error("usage: nanovm policy check POLICY.json%s", "");
    char *text = NULL;
    nvm_error err;
    nvm_status st = nvm_policy_check_file(argv[1], &text, &err);
    return print_text(text, st, &err);
}

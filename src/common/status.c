/* status.c - names, meanings and exit codes of the status codes, expanded from
 * nanovm_status.def. */
#include "nanovm.h"

static const struct {
    const char *name;
    const char *meaning;
    int exit_code;
} status_table[NVM_STATUS_COUNT] = {
#define X(name, exit_status, meaning) {#name, meaning, exit_status},
#include "nanovm_status.def"
#undef X
};

int nvm_status_exit_code(nvm_status s)
{
    if ((unsigned)s >= (unsigned)NVM_STATUS_COUNT)
        return 70;
    return status_table[s].exit_code;
}

const char *nvm_status_name(nvm_status s)
{
    if ((unsigned)s >= (unsigned)NVM_STATUS_COUNT)
        return "E_UNKNOWN";
    return status_table[s].name;
}

const char *nvm_status_meaning(nvm_status s)
{
    if ((unsigned)s >= (unsigned)NVM_STATUS_COUNT)
        return "unknown status";
    return status_table[s].meaning;
}

/* commands.h - the nanovm subcommands implemented outside main.c. Each takes the arguments after
 * the command word and returns the process exit status. */
#ifndef NVM_CLI_COMMANDS_H
#define NVM_CLI_COMMANDS_H

/* cmd_capsule.c: keys and capsules */
int cmd_keygen(int argc, char **argv);
int cmd_pack(int argc, char **argv);
int cmd_sign(int argc, char **argv);
int cmd_inspect(int argc, char **argv);

/* cmd_trust.c: trust decisions, audit log, policy, running capsules */
#include <stdbool.h>
#include "nanovm.h"
int cmd_verify(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_policy(int argc, char **argv);
/* True when the file starts with the capsule magic. */
bool is_capsule_file(const char *path);
/* Assess, audit and run a capsule; CLI limits may only lower the policy's. tier_from_cli is
 * NULL when --tier was not given. Returns the exit status. */
int run_capsule(const char *file, const nvm_config *cfg_from_cli, const char *policy_path,
                const char *audit_path, const char *tier_from_cli, const char *const *args,
                uint32_t nargs);
/* Run a loaded bare program (.casm, .json, .nvmb) at the sandboxed level: the ambient part of
 * the sandboxed ceiling (io, args, time, random) plus each --allow entry, which must lie within
 * that ceiling (else exit 4). Returns the exit status. */
int run_bare(const char *file, nvm_module *m, const nvm_config *cfg, const char *policy_path,
             const char *audit_path, const char *const *allows, size_t nallow,
             const char *const *args, uint32_t nargs);

/* main.c: print an error record (location, message, backtrace) to stderr. */
void print_error(const nvm_error *err, const char *fallback_file);

#endif

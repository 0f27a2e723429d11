/* commands.h - the nanovm subcommands implemented outside main.c. Each takes the arguments after
 * the command word and returns the process exit status. The CLI includes only nanovm.h. */
#ifndef NVM_CLI_COMMANDS_H
#define NVM_CLI_COMMANDS_H

#include "nanovm.h"

/* cmd_capsule.c: keys and capsules */
int cmd_keygen(int argc, char **argv);
int cmd_pack(int argc, char **argv);
int cmd_sign(int argc, char **argv);
int cmd_inspect(int argc, char **argv);

/* cmd_trust.c: trust decisions, audit log, policy */
int cmd_verify(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_policy(int argc, char **argv);

/* cmd_aot.c: the AOT tier's compiler and cache */
int cmd_aot(int argc, char **argv);
int cmd_cache(int argc, char **argv);

/* main.c: load and verify a program (.casm, .json, .nvmb); 0 or an exit status after printing */
int load_module(const nvm_config *cfg, const char *path, nvm_module **out);

/* main.c: print an error record (location, message, backtrace) to stderr. */
void print_error(const nvm_error *err, const char *fallback_file);
/* main.c: print a library failure as "nanovm: FILE: MESSAGE" (or "nanovm: MESSAGE") and return
 * its exit status. */
int report_error(const nvm_error *err);
/* main.c: the nvm_message_fn of the CLI: "nanovm: TEXT" on stderr, after flushing stdout. */
void print_message(void *ud, const char *text);
/* main.c: print a usage error with the pointer to --help; returns 2. */
int usage_error(const char *fmt, const char *arg);

#endif

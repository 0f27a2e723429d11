/* main.c - the nanovm command line: run, asm, disasm, check, and the dispatch to the capsule and
 * trust commands. The CLI includes only nanovm.h; it is the only place that prints and chooses
 * exit statuses (nvm_status_exit_code). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "nanovm.h"

#define EXIT_USAGE 2

static const char usage_text[] =
    "usage: nanovm <command> [options]\n"
    "\n"
    "commands:\n"
    "  run [options] FILE [--] [args...]   load, verify and run a program (.casm, .json, .nvmb)\n"
    "      --tier interp|auto|jit|aot|wasm\n"
    "                             execution tier (default: a capsule's policy tier, the\n"
    "                             interpreter for a bare program; auto follows the trust level;\n"
    "                             exit 2 when the tier is not available in this build)\n"
    "      --isolate              run in a separate sandboxed process whose capability calls\n"
    "                             this process performs (docs/security.md)\n"
    "      --gas N                stop after N instructions (default unlimited)\n"
    "      --max-memory SIZE      arena and stack memory limit, e.g. 64M (default 1G)\n"
    "      --max-stack N          operand stack values (default 1048576)\n"
    "      --max-depth N          call frames (default 100000)\n"
    "      --gc-stress            collect garbage at every allocation (testing)\n"
    "      --fail-alloc N         make the Nth allocation fail (testing)\n"
    "      --gas-report           after the run, print 'gas used: N' on stderr\n"
    "      --jit-stats            after the run, print the JIT code cache's counters on stderr\n"
    "      --policy P             trust policy (default /etc/nanovm/policy.json)\n"
    "      --audit FILE           audit log of the run (overrides the policy's)\n"
    "      --allow CAP            grant a capability to a bare program, e.g.\n"
    "                             'fs.read:/srv/data/**' (repeatable; within the policy's\n"
    "                             sandboxed ceiling, else exit 4; docs/capabilities.md)\n"
    "                             a capsule (.cap) is assessed first: exit 4 when rejected;\n"
    "                             its level's limits apply, the options above only lower them;\n"
    "                             a bare program runs at the sandboxed level\n"
    "  asm [--strip] FILE -o OUT.nvmb      assemble CASM text or JSON IR into a bytecode module\n"
    "                                      (--strip: without source lines)\n"
    "  disasm FILE                         print a module (any input format) as CASM text\n"
    "  check FILE                          load and verify only\n"
    "  keygen -o KEY.pem                   generate an Ed25519 signing key (PKCS#8 PEM, 0600)\n"
    "  pack --manifest M.json -o APP.cap PROGRAM [--asset FILE]...\n"
    "                                      build an unsigned capsule from a program (.casm,\n"
    "                                      .json, .nvmb), its manifest and asset files\n"
    "  sign --key KEY.pem [--cert LEAF.pem] [--chain INTERMEDIATES.pem] APP.cap [-o OUT.cap]\n"
    "                                      sign a capsule (in place unless -o), optionally\n"
    "                                      with the signer's certificate chain\n"
    "  inspect [--json] APP.cap            show sections, manifest, hashes, signature, chain\n"
    "  verify [--policy P] [--audit FILE] [--json] APP.cap\n"
    "                                      print the trust decision (level, signer, chain,\n"
    "                                      reasons, capabilities); exit 0 may run, 4 rejected\n"
    "  audit verify [--policy P] [--state-dir DIR] [LOG]\n"
    "                                      check an audit log's hash chain (exit 4 if broken)\n"
    "  policy check POLICY.json            validate a policy file and explain it\n"
    "  aot [--policy P] [--emit-c OUT.c] FILE\n"
    "                                      compile a program for the AOT tier into the cache\n"
    "                                      (or write its C); a capsule only after its trust\n"
    "                                      decision, when its level runs on aot; docs/aot.md\n"
    "  cache list | cache clear            the cache of compiled programs and verified chains\n"
    "  help | --help                       this text\n"
    "  version | --version                 print the version\n"
    "\n"
    "exit status: 0 success, 1 uncaught program error, 2 bad command line, 3 invalid input\n"
    "(syntax, malformed file, verifier rejection), 4 trust rejection, 5 resource limit,\n"
    "6 capability denied, 70 internal error\n";

int usage_error(const char *fmt, const char *arg)
{
    fputs("nanovm: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\n(run 'nanovm --help' for usage)\n", stderr);
    return EXIT_USAGE;
}

/* Reads a whole file; returns 0 or an exit status after printing why. */
static int read_file(const char *path, uint8_t **out, size_t *out_len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "nanovm: cannot open %s: %s\n", path, strerror(errno));
        return nvm_status_exit_code(NVM_E_FORMAT);
    }
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc(cap);
    if (buf == NULL)
        goto oom;
    for (;;) {
        if (len == cap) {
            uint8_t *nb = realloc(buf, cap * 2);
            if (nb == NULL)
                goto oom;
            buf = nb;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        fprintf(stderr, "nanovm: cannot read %s: %s\n", path, strerror(errno));
        free(buf);
        fclose(f);
        return nvm_status_exit_code(NVM_E_FORMAT);
    }
    fclose(f);
    *out = buf;
    *out_len = len;
    return 0;
oom:
    free(buf);
    fclose(f);
    fprintf(stderr, "nanovm: out of memory reading %s\n", path);
    return nvm_status_exit_code(NVM_E_INTERNAL);
}

void print_error(const nvm_error *err, const char *fallback_file)
{
    fflush(stdout);
    const char *file = err->file[0] ? err->file : fallback_file;
    if (err->line > 0 && err->col > 0)
        fprintf(stderr, "nanovm: %s:%" PRIu32 ":%" PRIu32 ": %s\n", file, err->line, err->col,
                err->message);
    else if (err->line > 0)
        fprintf(stderr, "nanovm: %s:%" PRIu32 ": %s\n", file, err->line, err->message);
    else
        fprintf(stderr, "nanovm: %s: %s\n", file, err->message);
    if (err->backtrace[0]) {
        size_t n = strlen(err->backtrace);
        fputs(err->backtrace, stderr);
        if (err->backtrace[n - 1] != '\n')
            fputc('\n', stderr);
    }
}

int report_error(const nvm_error *err)
{
    fflush(stdout);
    if (err->file[0])
        fprintf(stderr, "nanovm: %s: %s\n", err->file, err->message);
    else
        fprintf(stderr, "nanovm: %s\n", err->message);
    return nvm_status_exit_code(err->status);
}

void print_message(void *ud, const char *text)
{
    (void)ud;
    fflush(stdout);
    fprintf(stderr, "nanovm: %s\n", text);
}

int load_module(const nvm_config *cfg, const char *path, nvm_module **out)
{
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = read_file(path, &data, &len);
    if (rc != 0)
        return rc;
    nvm_error err;
    memset(&err, 0, sizeof err);
    nvm_status st = nvm_module_load(cfg, data, len, path, out, &err);
    free(data);
    if (st != NVM_OK) {
        print_error(&err, path);
        return nvm_status_exit_code(st);
    }
    return 0;
}

static int parse_u64(const char *s, uint64_t *out, int allow_suffix)
{
    char *end = NULL;
    errno = 0;
    if (s[0] == '-' || s[0] == '\0')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s)
        return -1;
    uint64_t mul = 1;
    if (allow_suffix && *end) {
        switch (*end) {
        case 'k':
        case 'K': mul = 1024ull; break;
        case 'm':
        case 'M': mul = 1024ull * 1024; break;
        case 'g':
        case 'G': mul = 1024ull * 1024 * 1024; break;
        default: return -1;
        }
        end++;
    }
    if (*end != '\0' || (mul > 1 && v > UINT64_MAX / mul))
        return -1;
    *out = (uint64_t)v * mul;
    return 0;
}

static int cmd_run(int argc, char **argv)
{
    nvm_config cfg;
    nvm_config_init(&cfg);
    const char *file = NULL;
    const char *policy = NULL, *audit_log = NULL;
    nvm_run_options opt;
    memset(&opt, 0, sizeof opt);
    opt.cfg = &cfg;
    const char **allows = calloc((size_t)argc + 1, sizeof *allows);
    size_t nallow = 0;
    int64_t gas_used = 0;
    bool jit_stats = false, attempted = false;
    nvm_code_cache *cache = NULL;
    int rc = 0;
    if (allows == NULL)
        return nvm_status_exit_code(NVM_E_INTERNAL);
    int i = 0;
    for (; i < argc; i++) {
        const char *a = argv[i];
        uint64_t v;
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-' || a[1] == '\0') {
            if (file != NULL)
                break; /* program arguments start */
            file = a;
            continue;
        }
        if (file != NULL)
            break; /* options after FILE belong to the program */
        if (strcmp(a, "--tier") == 0) {
            if (++i >= argc) {
                rc = usage_error("%s needs a value", a);
                goto out;
            }
            const char *t = argv[i];
            if (strcmp(t, "interp") == 0) {
                opt.tier = NVM_TIER_REQ_INTERP;
            } else if (strcmp(t, "auto") == 0) {
                opt.tier = NVM_TIER_REQ_AUTO;
            } else if (strcmp(t, "wasm") == 0 && nvm_tier_available(NVM_TIER_WASM)) {
                opt.tier = NVM_TIER_REQ_WASM;
            } else if (strcmp(t, "jit") == 0 && nvm_tier_available(NVM_TIER_JIT)) {
                opt.tier = NVM_TIER_REQ_JIT;
            } else if (strcmp(t, "aot") == 0 && nvm_tier_available(NVM_TIER_AOT)) {
                opt.tier = NVM_TIER_REQ_AOT;
            } else if (strcmp(t, "jit") == 0 || strcmp(t, "aot") == 0 || strcmp(t, "wasm") == 0) {
                rc = usage_error("tier '%s' is not available in this build", t);
                goto out;
            } else {
                rc = usage_error("unknown tier '%s' (expected interp, auto, jit, aot or wasm)", t);
                goto out;
            }
        } else if (strcmp(a, "--isolate") == 0) {
            if (!nvm_isolation_available()) {
                rc = usage_error("--isolate is not available on this system%s", "");
                goto out;
            }
            opt.isolate = true;
        } else if (strcmp(a, "--policy") == 0 || strcmp(a, "--audit") == 0) {
            if (++i >= argc) {
                rc = usage_error("%s needs a file name", a);
                goto out;
            }
            *(a[2] == 'p' ? &policy : &audit_log) = argv[i];
        } else if (strcmp(a, "--allow") == 0) {
            if (++i >= argc) {
                rc = usage_error("%s needs a capability", a);
                goto out;
            }
            allows[nallow++] = argv[i];
        } else if (strcmp(a, "--gas") == 0) {
            if (++i >= argc || parse_u64(argv[i], &v, 0) != 0 || v > INT64_MAX) {
                rc = usage_error("--gas needs a non-negative integer%s", "");
                goto out;
            }
            cfg.gas = (int64_t)v;
        } else if (strcmp(a, "--max-memory") == 0) {
            if (++i >= argc || parse_u64(argv[i], &v, 1) != 0 || v == 0 || v > SIZE_MAX) {
                rc = usage_error("--max-memory needs a positive size like 64M%s", "");
                goto out;
            }
            cfg.max_memory = (size_t)v;
        } else if (strcmp(a, "--max-stack") == 0) {
            if (++i >= argc || parse_u64(argv[i], &v, 0) != 0 || v == 0 || v > UINT32_MAX) {
                rc = usage_error("--max-stack needs a positive integer%s", "");
                goto out;
            }
            cfg.max_stack = (uint32_t)v;
        } else if (strcmp(a, "--max-depth") == 0) {
            if (++i >= argc || parse_u64(argv[i], &v, 0) != 0 || v == 0 || v > UINT32_MAX) {
                rc = usage_error("--max-depth needs a positive integer%s", "");
                goto out;
            }
            cfg.max_depth = (uint32_t)v;
        } else if (strcmp(a, "--gc-stress") == 0) {
            cfg.gc_stress = true;
        } else if (strcmp(a, "--gas-report") == 0) {
            opt.gas_used = &gas_used;
        } else if (strcmp(a, "--jit-stats") == 0) {
            jit_stats = true;
        } else if (strcmp(a, "--fail-alloc") == 0) {
            if (++i >= argc || parse_u64(argv[i], &v, 0) != 0 || v == 0) {
                rc = usage_error("--fail-alloc needs a positive integer%s", "");
                goto out;
            }
            cfg.fail_alloc_at = v;
        } else {
            rc = usage_error("unknown option '%s' for run", a);
            goto out;
        }
    }
    if (file == NULL && i < argc)
        file = argv[i++];
    if (file == NULL) {
        rc = usage_error("run needs a FILE%s", "");
        goto out;
    }
    opt.args = (const char *const *)argv + i;
    opt.nargs = (uint32_t)(argc - i);
    if (jit_stats) {
        nvm_status cst = nvm_code_cache_new(&cache);
        if (cst != NVM_OK) {
            fprintf(stderr, "nanovm: cannot create a code cache: %s\n", nvm_status_meaning(cst));
            rc = nvm_status_exit_code(cst);
            goto out;
        }
        cfg.code_cache = cache;
    }
    nvm_error err;
    attempted = true;
    if (nvm_capsule_is_file(file)) {
        if (nallow > 0) {
            rc = usage_error("--allow applies to bare programs; the capsule %s requests its "
                             "capabilities in its manifest",
                             file);
            goto out;
        }
        nvm_trust *t = NULL;
        nvm_status st = nvm_trust_open(file, policy, audit_log, print_message, NULL, &t, &err);
        if (st == NVM_OK)
            st = nvm_trust_run(t, &opt, &err);
        nvm_trust_free(t);
        rc = nvm_status_exit_code(st);
        goto out;
    }
    nvm_module *m = NULL;
    rc = load_module(&cfg, file, &m);
    for (size_t k = 0; rc == 0 && k < nallow; k++)
        if (nvm_capability_check(allows[k], &err) != NVM_OK)
            rc = usage_error("--allow: %s", err.message);
    if (rc == 0) {
        nvm_run_request req;
        memset(&req, 0, sizeof req);
        req.file = file;
        req.module = m;
        req.policy_path = policy;
        req.audit_path = audit_log;
        req.allows = allows;
        req.nallow = nallow;
        req.run = opt;
        req.message = print_message;
        rc = nvm_status_exit_code(nvm_run_program(&req, &err));
    }
    nvm_module_free(m);
out:
    if (attempted && rc != EXIT_USAGE) {
        fflush(stdout);
        if (opt.gas_used != NULL)
            fprintf(stderr, "gas used: %" PRId64 "\n", gas_used);
        if (cache != NULL) {
            nvm_code_stats cs;
            nvm_code_cache_stats(cache, &cs);
            fprintf(stderr,
                    "jit: modules=%" PRIu64 " functions=%" PRIu64 " insns=%" PRIu64
                    " code_bytes=%" PRIu64 " compile_us=%" PRIu64 "\n",
                    cs.modules, cs.functions, cs.insns, cs.code_bytes, cs.compile_ns / 1000);
        }
    }
    if (cache != NULL)
        nvm_code_cache_free(cache);
    free(allows);
    return rc;
}

static int cmd_asm(int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    int strip = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--strip") == 0) {
            strip = 1;
        } else if (strcmp(argv[i], "-o") == 0) {
            if (++i >= argc)
                return usage_error("-o needs a file name%s", "");
            out = argv[i];
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return usage_error("unknown option '%s' for asm", argv[i]);
        } else if (in == NULL) {
            in = argv[i];
        } else {
            return usage_error("asm takes one input file, got another: '%s'", argv[i]);
        }
    }
    if (in == NULL || out == NULL)
        return usage_error("usage: nanovm asm FILE -o OUT.nvmb%s", "");
    nvm_config cfg;
    nvm_config_init(&cfg);
    nvm_module *m = NULL;
    int rc = load_module(&cfg, in, &m);
    if (rc != 0)
        return rc;
    if (strip)
        nvm_module_strip_debug(m);
    uint8_t *bc = NULL;
    size_t len = 0;
    nvm_error err;
    memset(&err, 0, sizeof err);
    nvm_status st = nvm_module_to_bytecode(m, &bc, &len, &err);
    if (st != NVM_OK) {
        print_error(&err, in);
        nvm_module_free(m);
        return nvm_status_exit_code(st);
    }
    FILE *f = fopen(out, "wb");
    int ok = f != NULL && fwrite(bc, 1, len, f) == len;
    if (f != NULL && fclose(f) != 0)
        ok = 0;
    if (!ok) {
        fprintf(stderr, "nanovm: cannot write %s: %s\n", out, strerror(errno));
        rc = nvm_status_exit_code(NVM_E_IO);
    }
    nvm_module_free_buffer(m, bc, len);
    nvm_module_free(m);
    return rc;
}

static int cmd_disasm_or_check(int argc, char **argv, int disasm)
{
    if (argc != 1 || (argv[0][0] == '-' && argv[0][1] != '\0'))
        return usage_error(disasm ? "usage: nanovm disasm FILE%s" : "usage: nanovm check FILE%s",
                           "");
    nvm_config cfg;
    nvm_config_init(&cfg);
    nvm_module *m = NULL;
    int rc = load_module(&cfg, argv[0], &m);
    if (rc != 0)
        return rc;
    if (disasm) {
        char *text = NULL;
        size_t len = 0;
        nvm_error err;
        memset(&err, 0, sizeof err);
        nvm_status st = nvm_module_disasm(m, &text, &len, &err);
        if (st != NVM_OK) {
            print_error(&err, argv[0]);
            rc = nvm_status_exit_code(st);
        } else {
            fwrite(text, 1, len, stdout);
            nvm_module_free_buffer(m, (uint8_t *)text, len + 1);
        }
    } else {
        printf("%s: ok\n", argv[0]);
    }
    nvm_module_free(m);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("missing command%s", "");
    const char *cmd = argv[1];
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 2, argv + 2);
    if (strcmp(cmd, "asm") == 0)
        return cmd_asm(argc - 2, argv + 2);
    if (strcmp(cmd, "disasm") == 0)
        return cmd_disasm_or_check(argc - 2, argv + 2, 1);
    if (strcmp(cmd, "check") == 0)
        return cmd_disasm_or_check(argc - 2, argv + 2, 0);
    if (strcmp(cmd, "keygen") == 0)
        return cmd_keygen(argc - 2, argv + 2);
    if (strcmp(cmd, "pack") == 0)
        return cmd_pack(argc - 2, argv + 2);
    if (strcmp(cmd, "sign") == 0)
        return cmd_sign(argc - 2, argv + 2);
    if (strcmp(cmd, "inspect") == 0)
        return cmd_inspect(argc - 2, argv + 2);
    if (strcmp(cmd, "verify") == 0)
        return cmd_verify(argc - 2, argv + 2);
    if (strcmp(cmd, "audit") == 0)
        return cmd_audit(argc - 2, argv + 2);
    if (strcmp(cmd, "aot") == 0)
        return cmd_aot(argc - 2, argv + 2);
    if (strcmp(cmd, "cache") == 0)
        return cmd_cache(argc - 2, argv + 2);
    if (strcmp(cmd, "policy") == 0)
        return cmd_policy(argc - 2, argv + 2);
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("nanovm %s\n", NVM_VERSION_STRING);
        return 0;
    }
    return usage_error("unknown command '%s'", cmd);
}

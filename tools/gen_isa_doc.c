/* gen_isa_doc.c - prints docs/isa.md from opcodes.def (the build compares the output with the
 * committed file). */
#include <stdio.h>

#include "isa.h"

static const char *opk_name(const char *k)
{
    return k;
}

int main(void)
{
    puts("# CASM instruction set\n");
    puts("Generated from `src/isa/opcodes.def` by `tools/gen_isa_doc.c` (`make isa-doc`). Do not "
         "edit.\n");
    puts("Stack pictures read bottom to top; `->` separates the stack before and after. "
         "`pops`/`pushes` of");
    puts("`var` depend on the operand (`NEW_ARRAY n`, `PICK n`, `ROLL n`, `CAP_CALL \"name\" n`) "
         "or on the");
    puts("callee's inferred stack effect (`CALL`). Flags: `J` jump, `T` ends the block, `C` call, "
         "`E` may");
    puts("raise a program error, `A` may allocate in the arena.\n");
    puts("Operand kinds and their encoding in a bytecode module are described in "
         "`docs/bytecode.md`.\n");
    puts("| byte | mnemonic | operand | pops | pushes | flags | meaning |");
    puts("|---|---|---|---|---|---|---|");
#define X(name, byte, opk, pops, pushes, flags, meaning)                                           \
    do {                                                                                           \
        char fl[8];                                                                                \
        int n = 0;                                                                                 \
        if ((flags)&NVM_OPF_JUMP)                                                                  \
            fl[n++] = 'J';                                                                         \
        if ((flags)&NVM_OPF_TERM)                                                                  \
            fl[n++] = 'T';                                                                         \
        if ((flags)&NVM_OPF_CALL)                                                                  \
            fl[n++] = 'C';                                                                         \
        if ((flags)&NVM_OPF_THROWS)                                                                \
            fl[n++] = 'E';                                                                         \
        if ((flags)&NVM_OPF_ALLOC)                                                                 \
            fl[n++] = 'A';                                                                         \
        fl[n] = 0;                                                                                 \
        char pp[8], pu[8];                                                                         \
        if ((pops) < 0)                                                                            \
            snprintf(pp, sizeof pp, "var");                                                        \
        else                                                                                       \
            snprintf(pp, sizeof pp, "%d", (pops));                                                 \
        if ((pushes) < 0)                                                                          \
            snprintf(pu, sizeof pu, "var");                                                        \
        else                                                                                       \
            snprintf(pu, sizeof pu, "%d", (pushes));                                               \
        printf("| 0x%02X | `%s` | %s | %s | %s | %s | ", byte, #name,                              \
               opk_name(#opk)[0] == 'N' ? "" : nvm_operand_kind_name(NVM_OPK_##opk), pp, pu, fl);  \
        for (const char *p = meaning; *p; p++) {                                                   \
            if (*p == '|')                                                                         \
                fputs("\\|", stdout);                                                              \
            else                                                                                   \
                putchar(*p);                                                                       \
        }                                                                                          \
        puts(" |");                                                                                \
    } while (0);
#include "opcodes.def"
#undef X
    return 0;
}

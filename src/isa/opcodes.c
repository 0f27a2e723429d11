/* opcodes.c - the opcode table as data, and name lookups. Expanded from opcodes.def. */
#include <stddef.h>
#include <string.h>

#include "isa.h"

const nvm_opinfo nvm_opinfo_table[NVM_OP_BYTE_MAX] = {
#define X(name, byte, opk, pops, pushes, flags, meaning)                                           \
    [byte] = {#name, NVM_OPK_##opk, pops, pushes, flags, meaning},
#include "opcodes.def"
#undef X
};

static int ascii_upper(int c)
{
    return (c >= 'a' && c <= 'z') ? c - 'a' + 'A' : c;
}

int nvm_op_lookup(const char *name, size_t len)
{
    for (int i = 0; i < NVM_OP_BYTE_MAX; i++) {
        const char *n = nvm_opinfo_table[i].name;
        if (n == NULL || strlen(n) != len)
            continue;
        size_t j = 0;
        while (j < len && ascii_upper((unsigned char)name[j]) == n[j])
            j++;
        if (j == len)
            return i;
    }
    return -1;
}

uint32_t nvm_operand_size(nvm_operand_kind k)
{
    switch (k) {
    case NVM_OPK_NONE: return 0;
    case NVM_OPK_I64:
    case NVM_OPK_F64: return 8;
    case NVM_OPK_STR:
    case NVM_OPK_SLOT:
    case NVM_OPK_COUNT:
    case NVM_OPK_LABEL:
    case NVM_OPK_FUNC: return 4;
    case NVM_OPK_BOOL:
    case NVM_OPK_CAST: return 1;
    case NVM_OPK_CAP: return 5;
    }
    return 0;
}

const char *nvm_operand_kind_name(nvm_operand_kind k)
{
    static const char *const names[] = {"none",  "int",   "float",    "string",     "bool", "slot",
                                        "count", "label", "function", "capability", "type"};
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

static const char *const cast_names[] = {"int", "float", "str", "bool"};

const char *nvm_cast_type_name(int t)
{
    return (t >= 0 && t < 4) ? cast_names[t] : "?";
}

int nvm_cast_type_lookup(const char *s, size_t len)
{
    for (int i = 0; i < 4; i++)
        if (strlen(cast_names[i]) == len && memcmp(cast_names[i], s, len) == 0)
            return i;
    return -1;
}

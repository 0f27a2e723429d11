/* operand.c - the one place that encodes and decodes instructions to and from bytecode bytes.
 * Widths and layouts follow the operand table in isa.h; every multi-byte field is little-endian. */
#include <string.h>

#include "operand.h"

uint32_t nvm_insn_size(uint8_t op)
{
    const nvm_opinfo *oi = &nvm_opinfo_table[op];
    return oi->name == NULL ? 0 : 1 + nvm_operand_size(oi->operand);
}

uint32_t nvm_insn_encode(const nvm_insn *insn, uint32_t label_offset, uint8_t *out)
{
    const nvm_opinfo *oi = &nvm_opinfo_table[insn->op];
    out[0] = insn->op;
    switch (oi->operand) {
    case NVM_OPK_NONE: return 1;
    case NVM_OPK_I64: nvm_put_u64(out + 1, (uint64_t)insn->k.i); return 9;
    case NVM_OPK_F64: {
        uint64_t bits;
        memcpy(&bits, &insn->k.f, sizeof bits);
        nvm_put_u64(out + 1, bits);
        return 9;
    }
    case NVM_OPK_BOOL:
    case NVM_OPK_CAST: out[1] = insn->b; return 2;
    case NVM_OPK_LABEL: nvm_put_u32(out + 1, label_offset); return 5;
    case NVM_OPK_STR:
    case NVM_OPK_SLOT:
    case NVM_OPK_COUNT:
    case NVM_OPK_FUNC: nvm_put_u32(out + 1, insn->a); return 5;
    case NVM_OPK_CAP:
        nvm_put_u32(out + 1, insn->a);
        out[5] = insn->b;
        return 6;
    }
    return 1;
}

nvm_decode_result nvm_insn_decode(const uint8_t *p, size_t avail, nvm_insn *insn, uint32_t *size)
{
    memset(insn, 0, sizeof *insn);
    uint8_t op = p[0];
    const nvm_opinfo *oi = &nvm_opinfo_table[op];
    if (oi->name == NULL)
        return NVM_DECODE_BAD_OP;
    uint32_t n = 1 + nvm_operand_size(oi->operand);
    if (avail < n)
        return NVM_DECODE_TRUNCATED;
    insn->op = op;
    *size = n;
    switch (oi->operand) {
    case NVM_OPK_NONE: break;
    case NVM_OPK_I64: insn->k.i = (int64_t)nvm_get_u64(p + 1); break;
    case NVM_OPK_F64: {
        uint64_t bits = nvm_get_u64(p + 1);
        memcpy(&insn->k.f, &bits, sizeof bits);
        break;
    }
    case NVM_OPK_BOOL:
        if (p[1] > 1)
            return NVM_DECODE_BAD_OPERAND;
        insn->b = p[1];
        break;
    case NVM_OPK_CAST:
        if (p[1] > NVM_CAST_BOOL)
            return NVM_DECODE_BAD_OPERAND;
        insn->b = p[1];
        break;
    case NVM_OPK_STR:
    case NVM_OPK_SLOT:
    case NVM_OPK_COUNT:
    case NVM_OPK_LABEL:
    case NVM_OPK_FUNC: insn->a = nvm_get_u32(p + 1); break;
    case NVM_OPK_CAP:
        insn->a = nvm_get_u32(p + 1);
        insn->b = p[5];
        break;
    }
    return NVM_DECODE_OK;
}

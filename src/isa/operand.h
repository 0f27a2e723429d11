/* operand.h - encoding and decoding of one instruction (opcode byte + operand) to and from the
 * bytecode format, plus the little-endian primitives the file format is built from. operand.c is
 * the only place that knows the on-disk width and layout of each operand kind (isa.h). */
#ifndef NVM_OPERAND_H
#define NVM_OPERAND_H

#include <stddef.h>
#include <stdint.h>

#include "module.h"

/* Largest encoded instruction: opcode byte + an 8-byte operand. */
#define NVM_INSN_MAX_BYTES 9

static inline void nvm_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void nvm_put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline void nvm_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t nvm_get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t nvm_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t nvm_get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Encoded size of an instruction with opcode `op` (1 + operand size); 0 for an unassigned byte. */
uint32_t nvm_insn_size(uint8_t op);

/* Writes insn into out (room for NVM_INSN_MAX_BYTES) and returns the bytes written. For a LABEL
 * operand `label_offset` is written instead of insn->a (the caller converts instruction indices
 * to byte offsets). */
uint32_t nvm_insn_encode(const nvm_insn *insn, uint32_t label_offset, uint8_t *out);

/* Result of decoding one instruction. */
typedef enum nvm_decode_result {
    NVM_DECODE_OK,
    NVM_DECODE_TRUNCATED,  /* the operand runs past `avail` */
    NVM_DECODE_BAD_OP,     /* unassigned opcode byte */
    NVM_DECODE_BAD_OPERAND /* BOOL not 0/1 or CAST type not 0..3 */
} nvm_decode_result;

/* Decodes the instruction at p[0..avail) (avail >= 1) into *insn; *size receives its encoded size.
 * A LABEL operand is left in insn->a as the on-disk byte offset. */
nvm_decode_result nvm_insn_decode(const uint8_t *p, size_t avail, nvm_insn *insn, uint32_t *size);

#endif

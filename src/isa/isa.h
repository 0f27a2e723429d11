/* isa.h - opcodes, operand kinds and the opcode table, expanded from opcodes.def. */
#ifndef NVM_ISA_H
#define NVM_ISA_H

#include <stdint.h>

/* Operand kinds. In memory an instruction is an nvm_insn (module.h); on disk each kind has a fixed
 * width (operand.c is the only place that encodes or decodes them):
 *   NONE  0 bytes
 *   I64   8  int64 little-endian                      -> insn.k.i
 *   F64   8  IEEE double little-endian                -> insn.k.f
 *   STR   4  u32 index into the string constant pool  -> insn.a
 *   BOOL  1  0 or 1                                   -> insn.b
 *   SLOT  4  u32 frame slot number                    -> insn.a
 *   COUNT 4  u32 count (NEW_ARRAY, PICK, ROLL)        -> insn.a
 *   LABEL 4  u32 byte offset of the target instruction in the function's code
 *            (in memory: the target's instruction index; == ninsn means function end)
 *                                                     -> insn.a
 *   FUNC  4  u32 function index                       -> insn.a
 *   CAP   5  u32 capability table index, u8 argc      -> insn.a, insn.b
 *   CAST  1  target type: 0 int, 1 float, 2 str, 3 bool -> insn.b
 */
typedef enum nvm_operand_kind {
    NVM_OPK_NONE,
    NVM_OPK_I64,
    NVM_OPK_F64,
    NVM_OPK_STR,
    NVM_OPK_BOOL,
    NVM_OPK_SLOT,
    NVM_OPK_COUNT,
    NVM_OPK_LABEL,
    NVM_OPK_FUNC,
    NVM_OPK_CAP,
    NVM_OPK_CAST
} nvm_operand_kind;

enum nvm_cast_type { NVM_CAST_INT = 0, NVM_CAST_FLOAT = 1, NVM_CAST_STR = 2, NVM_CAST_BOOL = 3 };

/* Opcode flags. */
#define NVM_OPF_JUMP 0x01   /* operand is a label */
#define NVM_OPF_TERM 0x02   /* control never falls through to the next instruction */
#define NVM_OPF_CALL 0x04   /* calls a function */
#define NVM_OPF_THROWS 0x08 /* may raise a program error */
#define NVM_OPF_ALLOC 0x10  /* may allocate in the arena */

typedef enum nvm_opcode {
#define X(name, byte, opk, pops, pushes, flags, meaning) NVM_OP_##name = byte,
#include "opcodes.def"
#undef X
} nvm_opcode;

#define NVM_OP_BYTE_MAX 256

typedef struct nvm_opinfo {
    const char *name; /* NULL for an unassigned byte */
    nvm_operand_kind operand;
    int8_t pops; /* -1: decided by the operand or the callee */
    int8_t pushes;
    uint8_t flags;
    const char *meaning;
} nvm_opinfo;

/* Indexed by opcode byte; rows for unassigned bytes have name == NULL. */
extern const nvm_opinfo nvm_opinfo_table[NVM_OP_BYTE_MAX];

/* Case-insensitive lookup of a mnemonic; returns -1 when unknown. */
int nvm_op_lookup(const char *name, size_t len);
/* Encoded size of an operand kind on disk (bytes after the opcode byte). */
uint32_t nvm_operand_size(nvm_operand_kind k);
const char *nvm_operand_kind_name(nvm_operand_kind k);
const char *nvm_cast_type_name(int t);
/* Returns 0..3 for "int" "float" "str" "bool", -1 otherwise. */
int nvm_cast_type_lookup(const char *s, size_t len);

#endif

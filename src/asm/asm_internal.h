/* asm_internal.h - helpers shared by the CASM text assembler, the JSON IR loader and the
 * disassembler (not part of the public API). */
#ifndef NVM_ASM_INTERNAL_H
#define NVM_ASM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

/* True when `name` (any case) is an upstream CASM opcode NanoVM deliberately does not support
 * (AI_*, DOM_*, EXEC_LANG, CALL_HOST, SPAWN, YIELD, AWAIT, tuple/list/set/vector operations).
 * Callers ask only after the name failed the opcode table lookup. */
bool nvm_upstream_unsupported(const char *name, size_t len);

/* True when s[0..len) can be written as a bare CASM name (label, function): an ASCII letter, `_`,
 * `.`, `$` or `@` first, then those or digits or `-`. Other names are written as quoted strings. */
bool nvm_casm_bare_name(const char *s, size_t len);

/* Length of the valid UTF-8 sequence at s[0..len), or 0 when the bytes there are not one. */
size_t nvm_utf8_seq(const unsigned char *s, size_t len);

#endif

/* abi.h - the contract between the sandboxed core (guest.c, compiled to wasm32) and its host
 * (sandbox.c): the guest's exports and imports, and the byte layout of the buffers they exchange
 * through linear memory. All integers are little-endian; offsets are bytes.
 *
 * Exports of the guest:
 *   nvm_guest_alloc(len) -> ptr      a block of guest memory (0 when out of memory)
 *   nvm_guest_free(ptr)
 *   nvm_guest_run(req, req_len, res) -> status   runs the request below, fills the result
 *   nvm_guest_forge(cap, ptr, len, out, out_cap) -> reply   passes raw values to the cap_call
 *       import (tests of the host's pointer checks: a compromised guest can do no more)
 * Imports (module "nanovm"; the only other import is the linear memory "env.memory"):
 *   cap_call(cap, args, args_len, out, out_cap) -> reply_len
 *       calls registry entry `cap` of the host's proxy VM with the encoded argument list
 *       (marshal.h) at args; writes the reply at out when reply_len <= out_cap, else keeps it
 *       for cap_reply
 *   cap_reply(out, out_len) -> copied   fetches the kept reply (out_len must equal reply_len)
 *   interrupt() -> status               the host configuration's interrupt callback
 */
#ifndef NVM_WASM_ABI_H
#define NVM_WASM_ABI_H

#define NVM_SB_ABI_VERSION 1u

/* The guest is linked with exactly this initial memory (--initial-memory): its data and its
 * 1 MiB shadow stack, placed first so that a stack overflow leaves the memory (and traps). */
#define NVM_SB_INITIAL_PAGES 32u

/* request: header, then the module name, the bytecode, and ncaps capability entries
 * (u32 argc, u32 name_len, name bytes), in the proxy VM's registry order */
#define NVM_SB_REQ_VERSION 0
#define NVM_SB_REQ_FLAGS 4       /* NVM_SB_F_* */
#define NVM_SB_REQ_GAS 8         /* i64 */
#define NVM_SB_REQ_MAX_MEMORY 16 /* u64 */
#define NVM_SB_REQ_FAIL_ALLOC 24 /* u64 */
#define NVM_SB_REQ_MAX_STACK 32
#define NVM_SB_REQ_MAX_DEPTH 36
#define NVM_SB_REQ_NAME_LEN 40
#define NVM_SB_REQ_BC_LEN 44
#define NVM_SB_REQ_NCAPS 48
#define NVM_SB_REQ_HEADER 52
#define NVM_SB_F_GC_STRESS 1u
#define NVM_SB_F_INTERRUPT 2u

/* result: a fixed block the host allocates in guest memory */
#define NVM_SB_RES_STATUS 0
#define NVM_SB_RES_LINE 4
#define NVM_SB_RES_COL 8
#define NVM_SB_RES_MSG_LEN 12
#define NVM_SB_RES_FILE_LEN 16
#define NVM_SB_RES_BT_LEN 20
#define NVM_SB_RES_GAS 24 /* i64 */
#define NVM_SB_RES_MSG 32
#define NVM_SB_RES_FILE (NVM_SB_RES_MSG + 512)
#define NVM_SB_RES_BT (NVM_SB_RES_FILE + 256)
#define NVM_SB_RES_SIZE (NVM_SB_RES_BT + 4096)

/* cap_call reply: u32 status; for NVM_OK the encoded list of one result value, otherwise
 * u32 message length and the message bytes */
#define NVM_SB_REPLY_SCRATCH 512 /* the guest's first reply buffer */

#endif

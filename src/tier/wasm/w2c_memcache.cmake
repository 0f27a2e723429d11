# w2c_memcache.cmake - rewrites wasm2c's output (IN) into OUT so that every guest function reads
# its linear memory's descriptor once, on entry, instead of before every load and store.
#   cmake -DIN=guest_w2c.c -DOUT=guest_w2c_mc.c -P w2c_memcache.cmake
# wasm2c passes the imported memory as a pointer (instance->Z_envZ_memory) and its loads and
# stores read mem->data each time; since a store through the byte pointer may alias anything, the
# C compiler reloads both pointers after every store. Valid only with guard pages: the memory is
# one fixed 8 GiB reservation (wasm_rt_grow_memory only changes the protection of its pages), so
# data never moves while an instance lives, and loads and stores do not read the size. The
# accesses stay exactly as checked as before (by the guard pages); memory.size/grow and the bulk
# memory operations (explicit checks against the current size) still use the live descriptor.
file(READ ${IN} src)
set(prologue "\n  FUNC_PROLOGUE;\n")
string(FIND "${src}" "${prologue}" at)
string(FIND "${src}" "WASM_RT_MEMCHECK_SIGNAL_HANDLER\n#define MEMCHECK(mem, a, t)\n" guard)
if(at EQUAL -1 OR guard EQUAL -1)
  message(FATAL_ERROR "w2c_memcache: ${IN} does not look like wabt 1.0.32's wasm2c output")
endif()
string(REGEX REPLACE "([ (=]+[if](32|64)_(load|store)[0-9a-z_]*)\\(instance->Z_envZ_memory,"
       "\\1(&w2c_mc," src "${src}")
string(REPLACE "${prologue}"
       "${prologue}  wasm_rt_memory_t w2c_mc = *instance->Z_envZ_memory;\n  (void)w2c_mc;\n"
       src "${src}")
string(REGEX MATCH "[if](32|64)_(load|store)[0-9a-z_]*\\(instance->Z_envZ_memory," left "${src}")
if(left)
  message(FATAL_ERROR "w2c_memcache: an access through the live descriptor is left: ${left}")
endif()
file(WRITE ${OUT} "${src}")

# check_wasm_imports.cmake - fails the build when the sandboxed core imports anything but its
# linear memory and the "nanovm" functions. usage: cmake -DOBJDUMP=... -DWASM=... -P this file
execute_process(COMMAND ${OBJDUMP} -x -j Import ${WASM} OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "wasm-objdump failed on ${WASM}")
endif()
string(REGEX MATCHALL "<- [^\n]*" imports "${out}")
foreach(imp ${imports})
  if(NOT imp MATCHES "^<- (env\\.memory|nanovm\\.[a-z_]+)$")
    message(FATAL_ERROR "the sandboxed core must not import ${imp}")
  endif()
endforeach()
file(WRITE ${STAMP} "${imports}\n")

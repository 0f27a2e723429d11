# Fails the build when the committed docs/isa.md differs from the generated one.
execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files ${GENERATED} ${COMMITTED} RESULT_VARIABLE diff)
if(NOT diff EQUAL 0)
  message(FATAL_ERROR "docs/isa.md is stale (opcodes.def changed): run 'make isa-doc' and commit it")
endif()

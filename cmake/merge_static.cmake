# cmake -DAR=<ar> -DRANLIB=<ranlib> -DOUT=<libssock.a> -DLIBS=<a.a|b.a> -P merge_static.cmake
#
# Appends the members of static archives LIBS to OUT (an MRI script for
# GNU/LLVM ar), so a static libssock carries the mbedTLS it was built with.
# Run as a POST_BUILD step of ssock_static when SSOCK_MBEDTLS_BUNDLED.
foreach(v AR OUT LIBS)
  if(NOT ${v})
    message(FATAL_ERROR "merge_static.cmake: ${v} not set")
  endif()
endforeach()
string(REPLACE "|" ";" LIBS "${LIBS}")
set(_tmp "${OUT}.merge.a")
set(_mri "CREATE ${_tmp}\nADDLIB ${OUT}\n")
foreach(lib IN LISTS LIBS)
  string(APPEND _mri "ADDLIB ${lib}\n")
endforeach()
string(APPEND _mri "SAVE\nEND\n")
file(WRITE "${OUT}.mri" "${_mri}")
execute_process(COMMAND "${AR}" -M INPUT_FILE "${OUT}.mri" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "merge_static.cmake: ${AR} -M failed (${rc})")
endif()
if(RANLIB)
  execute_process(COMMAND "${RANLIB}" "${_tmp}" RESULT_VARIABLE rc)
endif()
file(RENAME "${_tmp}" "${OUT}")
file(REMOVE "${OUT}.mri")

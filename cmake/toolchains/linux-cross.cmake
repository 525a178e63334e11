# The part the ARM toolchain files share (included by them, not used alone):
# they set SSOCK_TARGET_TRIPLET (the multiarch triplet; cmake/tls.cmake looks
# for build/deps/<triplet>/), CMAKE_SYSTEM_PROCESSOR and SSOCK_QEMU (the
# qemu-user program), then include this file.
set(CMAKE_SYSTEM_NAME Linux)

if(NOT DEFINED SSOCK_CROSS_PREFIX)
  if(DEFINED ENV{CROSS_COMPILE})
    set(SSOCK_CROSS_PREFIX "$ENV{CROSS_COMPILE}")
  else()
    set(SSOCK_CROSS_PREFIX "${SSOCK_TARGET_TRIPLET}-")
  endif()
endif()
if(NOT DEFINED SSOCK_CROSS_SYSROOT)
  set(SSOCK_CROSS_SYSROOT "/usr/${SSOCK_TARGET_TRIPLET}")
endif()

set(CMAKE_C_COMPILER "${SSOCK_CROSS_PREFIX}gcc")
find_program(_ssock_cross_ar "${SSOCK_CROSS_PREFIX}ar")
if(_ssock_cross_ar)
  set(CMAKE_AR "${_ssock_cross_ar}" CACHE FILEPATH "Archiver")
endif()

list(APPEND CMAKE_FIND_ROOT_PATH "${SSOCK_CROSS_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Tests and try_run() go through qemu-user, pointed at the target's loader
# and libraries.
if(NOT CMAKE_CROSSCOMPILING_EMULATOR)
  find_program(_ssock_qemu ${SSOCK_QEMU})
  if(_ssock_qemu)
    set(CMAKE_CROSSCOMPILING_EMULATOR "${_ssock_qemu};-L;${SSOCK_CROSS_SYSROOT}")
  endif()
endif()

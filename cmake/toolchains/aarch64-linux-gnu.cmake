# CMake toolchain file: 64-bit ARMv8-A Linux (aarch64-linux-gnu), Debian's cross compiler.
#
#   apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
#   cmake -S . -B build/arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
#         -DSSOCK_TLS_OPENSSL=OFF
#
# `make test-cross ARCH=arm64` (scripts/test-cross.sh) does all of it, with
# mbedTLS 3.6 and cmocka cross-built into build/deps/aarch64-linux-gnu/.
#
# Overridable from the command line or the environment:
#   SSOCK_CROSS_PREFIX   tool prefix (default "aarch64-linux-gnu-"; env CROSS_COMPILE too)
#   SSOCK_CROSS_SYSROOT  target root for libraries and headers (default
#                        /usr/aarch64-linux-gnu, where Debian's libc6-dev-arm64-cross is)
# Dependencies are searched only under CMAKE_FIND_ROOT_PATH (the sysroot plus
# whatever is given with -DCMAKE_FIND_ROOT_PATH=...), never on the host.
# Tests run under qemu-user (CMAKE_CROSSCOMPILING_EMULATOR) when it is found.
set(CMAKE_SYSTEM_NAME Linux)
# The multiarch triplet: cmake/tls.cmake looks for build/deps/aarch64-linux-gnu/.
set(SSOCK_TARGET_TRIPLET aarch64-linux-gnu)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

if(NOT DEFINED SSOCK_CROSS_PREFIX)
  if(DEFINED ENV{CROSS_COMPILE})
    set(SSOCK_CROSS_PREFIX "$ENV{CROSS_COMPILE}")
  else()
    set(SSOCK_CROSS_PREFIX "aarch64-linux-gnu-")
  endif()
endif()
if(NOT DEFINED SSOCK_CROSS_SYSROOT)
  set(SSOCK_CROSS_SYSROOT "/usr/aarch64-linux-gnu")
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
  find_program(_ssock_qemu qemu-aarch64)
  if(_ssock_qemu)
    set(CMAKE_CROSSCOMPILING_EMULATOR "${_ssock_qemu};-L;${SSOCK_CROSS_SYSROOT}")
  endif()
endif()

# CMake toolchain file: 32-bit ARMv7-A hard-float Linux (arm-linux-gnueabihf), Debian's cross compiler.
#
#   apt-get install gcc-arm-linux-gnueabihf libc6-dev-armhf-cross qemu-user
#   cmake -S . -B build/armhf -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/arm-linux-gnueabihf.cmake \
#         -DSSOCK_TLS_OPENSSL=OFF
#
# `make test-cross ARCH=armhf` (scripts/test-cross.sh) does all of it, with
# mbedTLS 3.6 and cmocka cross-built into build/deps/arm-linux-gnueabihf/.
#
# Overridable from the command line or the environment:
#   SSOCK_CROSS_PREFIX   tool prefix (default "arm-linux-gnueabihf-"; env CROSS_COMPILE too)
#   SSOCK_CROSS_SYSROOT  target root for libraries and headers (default
#                        /usr/arm-linux-gnueabihf, where Debian's libc6-dev-armhf-cross is)
# Dependencies are searched only under CMAKE_FIND_ROOT_PATH (the sysroot plus
# whatever is given with -DCMAKE_FIND_ROOT_PATH=...), never on the host.
# Tests run under qemu-user (CMAKE_CROSSCOMPILING_EMULATOR) when it is found.
set(CMAKE_SYSTEM_NAME Linux)
# The multiarch triplet: cmake/tls.cmake looks for build/deps/arm-linux-gnueabihf/.
set(SSOCK_TARGET_TRIPLET arm-linux-gnueabihf)
set(CMAKE_SYSTEM_PROCESSOR arm)

if(NOT DEFINED SSOCK_CROSS_PREFIX)
  if(DEFINED ENV{CROSS_COMPILE})
    set(SSOCK_CROSS_PREFIX "$ENV{CROSS_COMPILE}")
  else()
    set(SSOCK_CROSS_PREFIX "arm-linux-gnueabihf-")
  endif()
endif()
if(NOT DEFINED SSOCK_CROSS_SYSROOT)
  set(SSOCK_CROSS_SYSROOT "/usr/arm-linux-gnueabihf")
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
  find_program(_ssock_qemu qemu-arm)
  if(_ssock_qemu)
    set(CMAKE_CROSSCOMPILING_EMULATOR "${_ssock_qemu};-L;${SSOCK_CROSS_SYSROOT}")
  endif()
endif()

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
set(SSOCK_TARGET_TRIPLET arm-linux-gnueabihf)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(SSOCK_QEMU qemu-arm)
include(${CMAKE_CURRENT_LIST_DIR}/linux-cross.cmake)

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
set(SSOCK_TARGET_TRIPLET aarch64-linux-gnu)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(SSOCK_QEMU qemu-aarch64)
include(${CMAKE_CURRENT_LIST_DIR}/linux-cross.cmake)

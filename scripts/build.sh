#!/usr/bin/env bash
# Configure and build one of the named build trees under build/:
#   gcc       gcc -O2 -g, -Werror (the everyday build; `make build`)
#   valgrind  gcc -O1 -g, -Werror, every test run under Valgrind memcheck
#   asan      clang -O1 -g, -Werror, AddressSanitizer + UndefinedBehaviorSanitizer
#   tsan      clang -O1 -g, -Werror, ThreadSanitizer
#   mbedtls228  gcc -O2 -g, -Werror, against the system's mbedTLS 2.28 even
#             when build/deps/ has 3.6 (-DSSOCK_MBEDTLS_SYSTEM=ON)
#   noopenssl gcc -O2 -g, -Werror, mbedTLS backend only (-DSSOCK_TLS_OPENSSL=OFF)
#   notls     gcc -O2 -g, -Werror, no TLS at all (-DSSOCK_TLS=OFF)
# The other builds use mbedTLS 3.6 from build/deps/ when `make deps` built
# it (cmake/tls.cmake), else the system's.
# Extra arguments go to the CMake configure step.
set -euo pipefail
cd "$(dirname "$0")/.."

name=${1:?usage: scripts/build.sh gcc|valgrind|asan|tsan|mbedtls228|noopenssl|notls [cmake args...]}
shift
case $name in
  gcc)      cc=gcc;   flags="-O2 -g"; extra=() ;;
  valgrind) cc=gcc;   flags="-O1 -g"
            extra=("-DSSOCK_TEST_LAUNCHER=valgrind;--error-exitcode=99;--leak-check=full;--errors-for-leak-kinds=definite;--show-leak-kinds=definite;--track-fds=no;--quiet") ;;
  asan)     cc=clang; flags="-O1 -g"; extra=(-DSSOCK_SANITIZE=address,undefined) ;;
  tsan)     cc=clang; flags="-O1 -g"; extra=(-DSSOCK_SANITIZE=thread) ;;
  mbedtls228) cc=gcc; flags="-O2 -g"; extra=(-DSSOCK_MBEDTLS_SYSTEM=ON) ;;
  noopenssl) cc=gcc;  flags="-O2 -g"; extra=(-DSSOCK_TLS_OPENSSL=OFF) ;;
  notls)    cc=gcc;   flags="-O2 -g"; extra=(-DSSOCK_TLS=OFF) ;;
  *) echo "build.sh: unknown build '$name'" >&2; exit 2 ;;
esac

# RelWithDebInfo with our own flags: no -DNDEBUG, so assertions stay on.
cmake -S . -B "build/$name" \
  -DCMAKE_C_COMPILER="$cc" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="$flags" \
  -DSSOCK_WERROR=ON \
  "${extra[@]}" "$@"
cmake --build "build/$name" -j "$(nproc 2>/dev/null || echo 2)"

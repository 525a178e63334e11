# cmake/tls.cmake — TLS options, backend discovery and ssock/features.h.
#
# Included from the top-level CMakeLists.txt (after project()). Defines:
#   options   SSOCK_TLS (ON), SSOCK_TLS_MBEDTLS (ON), SSOCK_TLS_OPENSSL (ON:
#             built when OpenSSL 3 is found)
#   SSOCK_TLS_SOURCES   sources to add to the library (always src/tls.c, so
#                       the ssock_tls_* API exists even without a backend)
#   SSOCK_TLS_LIBS      libraries to link (absolute paths: the mbedTLS trio,
#                       libssl, libcrypto)
#   SSOCK_PC_LIBS_PRIVATE  the same as -l flags, for Libs.private in ssock.pc
#                       (read by cmake/install.cmake)
#   SSOCK_HAVE_TLS / SSOCK_HAVE_MBEDTLS / SSOCK_HAVE_OPENSSL  (ON/OFF)
#   SSOCK_MBEDTLS_ROOT / SSOCK_MBEDTLS_SYSTEM  which mbedTLS (see below)
#   SSOCK_MBEDTLS_BUNDLED  ON when a static mbedTLS from SSOCK_MBEDTLS_ROOT is
#                       used: the top level merges it into libssock.a
#   SSOCK_MBEDTLS_VERSION / SSOCK_OPENSSL_VERSION  exact versions ("3.6.6")
#   SSOCK_FEATURES_HEADER  ${PROJECT_BINARY_DIR}/include/ssock/features.h,
#                       generated from cmake/features.h.in (install it next
#                       to ssock.h)
#   SSOCK_CERTS_DIR     absolute path of certs/ (tests pass it as a define)
# The backend sources get their include directories as source properties,
# so nothing else is needed on the targets.

include(CMakeDependentOption)

option(SSOCK_TLS "Build TLS support (mbedTLS required, OpenSSL optional)" ON)
cmake_dependent_option(SSOCK_TLS_MBEDTLS "Build the mbedTLS backend" ON
                       "SSOCK_TLS" OFF)
cmake_dependent_option(SSOCK_TLS_OPENSSL
                       "Build the OpenSSL 3 backend when OpenSSL 3 is found" ON
                       "SSOCK_TLS" OFF)

get_filename_component(_ssock_root "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)

set(SSOCK_CERTS_DIR "${_ssock_root}/certs")
set(SSOCK_TLS_SOURCES "${_ssock_root}/src/tls.c")
set(SSOCK_TLS_LIBS "")
set(SSOCK_PC_LIBS_PRIVATE "")
set(SSOCK_HAVE_TLS OFF)
set(SSOCK_HAVE_MBEDTLS OFF)
set(SSOCK_HAVE_OPENSSL OFF)
set(SSOCK_OPENSSL_VERSION "")

# --- mbedTLS (required when SSOCK_TLS_MBEDTLS is ON) --------------------------
# Which mbedTLS, in this order:
#   1. the system's, when it is 3.6 or newer (Debian 13, Fedora, Alpine,
#      Buildroot, Yocto: whatever find_path/find_library see, which honours
#      CMAKE_PREFIX_PATH, CMAKE_FIND_ROOT_PATH and a toolchain's sysroot);
#   2. SSOCK_MBEDTLS_ROOT, an install prefix holding a static, -fPIC mbedTLS
#      3.6 (default: build/deps/mbedtls-3.6 from `make deps`, or
#      build/deps/<triplet>/mbedtls-3.6 when cross-compiling, the triplet
#      from SSOCK_TARGET_TRIPLET (our toolchain files) or the compiler's
#      multiarch directory);
#   3. the system's older one (2.28 LTS on Debian 12), with a warning: it is
#      past its end of life.
# -DSSOCK_MBEDTLS_SYSTEM=ON (or -DSSOCK_MBEDTLS_ROOT=) skips 2.: the gate's
# mbedtls228 build uses it to keep 2.28 tested.
# A static mbedTLS from SSOCK_MBEDTLS_ROOT is linked into libssock.so and
# merged into libssock.a (SSOCK_MBEDTLS_BUNDLED): consumers then need no
# mbedTLS of their own, and ssock.pc / ssockTargets.cmake name no build path.
option(SSOCK_MBEDTLS_SYSTEM "Use the system's mbedTLS even when older than 3.6" OFF)
if(CMAKE_CROSSCOMPILING AND SSOCK_TARGET_TRIPLET)   # cmake/toolchains/*.cmake
  set(_ssock_deps_default "${_ssock_root}/build/deps/${SSOCK_TARGET_TRIPLET}/mbedtls-3.6")
elseif(CMAKE_CROSSCOMPILING AND CMAKE_LIBRARY_ARCHITECTURE)
  set(_ssock_deps_default "${_ssock_root}/build/deps/${CMAKE_LIBRARY_ARCHITECTURE}/mbedtls-3.6")
elseif(CMAKE_CROSSCOMPILING)
  set(_ssock_deps_default "")
else()
  set(_ssock_deps_default "${_ssock_root}/build/deps/mbedtls-3.6")
endif()
set(SSOCK_MBEDTLS_ROOT "${_ssock_deps_default}" CACHE PATH
    "Prefix of a static -fPIC mbedTLS 3.6 to prefer over an older system one (empty: none)")
set(SSOCK_MBEDTLS_BUNDLED OFF)
set(SSOCK_MBEDTLS_VERSION "")

# Reads MBEDTLS_VERSION_STRING from <dir>/mbedtls/build_info.h (3.x) or
# version.h (2.x) into <out>.
function(_ssock_mbedtls_version dir out)
  set(_h "${dir}/mbedtls/build_info.h")
  if(NOT EXISTS "${_h}")
    set(_h "${dir}/mbedtls/version.h")
  endif()
  set(_v "")
  if(EXISTS "${_h}")
    file(STRINGS "${_h}" _line
         REGEX "^#define[ \t]+MBEDTLS_VERSION_STRING[ \t]+\"[0-9.]+\"")
    string(REGEX REPLACE ".*\"([0-9.]+)\".*" "\\1" _v "${_line}")
  endif()
  set(${out} "${_v}" PARENT_SCOPE)
endfunction()

if(SSOCK_TLS_MBEDTLS)
  # Debian ships no CMake package for mbedTLS 2.28: find it by hand.
  find_path(MBEDTLS_INCLUDE_DIR mbedtls/ssl.h)
  find_library(MBEDTLS_LIBRARY mbedtls)
  find_library(MBEDX509_LIBRARY mbedx509)
  find_library(MBEDCRYPTO_LIBRARY mbedcrypto)
  mark_as_advanced(MBEDTLS_INCLUDE_DIR MBEDTLS_LIBRARY MBEDX509_LIBRARY
                   MBEDCRYPTO_LIBRARY)
  set(_sys_ok OFF)
  set(_sys_ver "")
  if(MBEDTLS_INCLUDE_DIR AND EXISTS "${MBEDTLS_INCLUDE_DIR}/mbedtls/ssl.h"
     AND MBEDTLS_LIBRARY AND MBEDX509_LIBRARY AND MBEDCRYPTO_LIBRARY)
    set(_sys_ok ON)
    _ssock_mbedtls_version("${MBEDTLS_INCLUDE_DIR}" _sys_ver)
  endif()

  set(_root "${SSOCK_MBEDTLS_ROOT}")
  set(_deps_ok OFF)
  if(_root AND NOT SSOCK_MBEDTLS_SYSTEM)
    if(EXISTS "${_root}/include/mbedtls/ssl.h" AND EXISTS "${_root}/lib/libmbedtls.a"
       AND EXISTS "${_root}/lib/libmbedx509.a" AND EXISTS "${_root}/lib/libmbedcrypto.a")
      set(_deps_ok ON)
    elseif(NOT _root STREQUAL _ssock_deps_default)
      message(FATAL_ERROR "ssock: SSOCK_MBEDTLS_ROOT=${_root} holds no static mbedTLS "
        "(need include/mbedtls/ssl.h and lib/libmbedtls.a, libmbedx509.a, libmbedcrypto.a)")
    endif()
  endif()

  if(_sys_ok AND (SSOCK_MBEDTLS_SYSTEM OR NOT _deps_ok
                  OR (_sys_ver AND _sys_ver VERSION_GREATER_EQUAL 3.6)))
    set(SSOCK_MBEDTLS_VERSION "${_sys_ver}")
    set(_mb_libs "${MBEDTLS_LIBRARY}" "${MBEDX509_LIBRARY}" "${MBEDCRYPTO_LIBRARY}")
    set(_mb_from "${MBEDTLS_LIBRARY}")
  elseif(_deps_ok)
    # Normal variables shadow the cache entries (fuzz/ reads them too).
    set(MBEDTLS_INCLUDE_DIR "${_root}/include")
    set(MBEDTLS_LIBRARY "${_root}/lib/libmbedtls.a")
    set(MBEDX509_LIBRARY "${_root}/lib/libmbedx509.a")
    set(MBEDCRYPTO_LIBRARY "${_root}/lib/libmbedcrypto.a")
    _ssock_mbedtls_version("${MBEDTLS_INCLUDE_DIR}" SSOCK_MBEDTLS_VERSION)
    set(_mb_libs "${MBEDTLS_LIBRARY}" "${MBEDX509_LIBRARY}" "${MBEDCRYPTO_LIBRARY}")
    set(_mb_from "${_root} (static, bundled into libssock)")
    set(SSOCK_MBEDTLS_BUNDLED ON)
  else()
    message(FATAL_ERROR
      "ssock: mbedTLS not found (need mbedtls/ssl.h and libmbedtls, "
      "libmbedx509, libmbedcrypto; `make deps` builds mbedTLS 3.6 from Debian's "
      "source, or Debian/Ubuntu: apt install libmbedtls-dev). "
      "Configure with -DSSOCK_TLS_MBEDTLS=OFF to build without it, or "
      "-DSSOCK_TLS=OFF to build without TLS.")
  endif()

  if(NOT SSOCK_MBEDTLS_VERSION)
    message(FATAL_ERROR "ssock: cannot read MBEDTLS_VERSION_STRING under ${MBEDTLS_INCLUDE_DIR}")
  endif()
  if(SSOCK_MBEDTLS_VERSION VERSION_LESS 2.28)
    message(FATAL_ERROR "ssock: mbedTLS ${SSOCK_MBEDTLS_VERSION} is too old (need 2.28 LTS or 3.6 LTS)")
  endif()
  set(MBEDTLS_VERSION "${SSOCK_MBEDTLS_VERSION}")
  message(STATUS "ssock: mbedTLS ${SSOCK_MBEDTLS_VERSION} backend: ${_mb_from}")
  if(SSOCK_MBEDTLS_VERSION VERSION_LESS 3.0)
    message(WARNING "ssock: building against mbedTLS ${SSOCK_MBEDTLS_VERSION}: the 2.28 LTS "
      "branch is past its end of life (no more security fixes) and has no TLS 1.3. "
      "Run `make deps` (scripts/deps-mbedtls.sh) to build mbedTLS 3.6 LTS into "
      "build/deps/, or install a system mbedTLS >= 3.6.")
  elseif(SSOCK_MBEDTLS_VERSION VERSION_LESS 3.6)
    message(WARNING "ssock: mbedTLS ${SSOCK_MBEDTLS_VERSION} is not an LTS release; 3.6 LTS is supported")
  endif()

  set(SSOCK_HAVE_MBEDTLS ON)
  list(APPEND SSOCK_TLS_SOURCES "${_ssock_root}/src/tls_mbedtls.c")
  set_source_files_properties("${_ssock_root}/src/tls_mbedtls.c" PROPERTIES
    INCLUDE_DIRECTORIES "${MBEDTLS_INCLUDE_DIR}")
  # Order matters for static linking: tls -> x509 -> crypto.
  list(APPEND SSOCK_TLS_LIBS ${_mb_libs})
  if(NOT SSOCK_MBEDTLS_BUNDLED)
    string(APPEND SSOCK_PC_LIBS_PRIVATE " -lmbedtls -lmbedx509 -lmbedcrypto")
  endif()
endif()

# --- OpenSSL 3 (optional) -----------------------------------------------------
if(SSOCK_TLS_OPENSSL)
  find_package(OpenSSL 3)
  if(OPENSSL_FOUND)
    message(STATUS "ssock: OpenSSL ${OPENSSL_VERSION} backend: ${OPENSSL_SSL_LIBRARY}")
    set(SSOCK_OPENSSL_VERSION "${OPENSSL_VERSION}")
    set(SSOCK_HAVE_OPENSSL ON)
    list(APPEND SSOCK_TLS_SOURCES "${_ssock_root}/src/tls_openssl.c")
    set_source_files_properties("${_ssock_root}/src/tls_openssl.c" PROPERTIES
      INCLUDE_DIRECTORIES "${OPENSSL_INCLUDE_DIR}")
    list(APPEND SSOCK_TLS_LIBS "${OPENSSL_SSL_LIBRARY}" "${OPENSSL_CRYPTO_LIBRARY}")
    string(APPEND SSOCK_PC_LIBS_PRIVATE " -lssl -lcrypto")
  else()
    message(STATUS "ssock: OpenSSL 3 not found: OpenSSL backend not built")
  endif()
endif()

if(SSOCK_HAVE_MBEDTLS OR SSOCK_HAVE_OPENSSL)
  set(SSOCK_HAVE_TLS ON)
elseif(SSOCK_TLS)
  message(WARNING "ssock: SSOCK_TLS is ON but no backend is enabled; "
                  "ssock_tls_config_new() will fail with SSOCK_ENOBACKEND")
endif()
string(STRIP "${SSOCK_PC_LIBS_PRIVATE}" SSOCK_PC_LIBS_PRIVATE)

set(SSOCK_FEATURES_HEADER "${PROJECT_BINARY_DIR}/include/ssock/features.h")
configure_file("${CMAKE_CURRENT_LIST_DIR}/features.h.in"
               "${SSOCK_FEATURES_HEADER}" @ONLY)

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
#   SSOCK_FEATURES_HEADER  the generated ${PROJECT_BINARY_DIR}/include/ssock/features.h
#                          (install it next to ssock.h)
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

# --- mbedTLS (required when SSOCK_TLS_MBEDTLS is ON) --------------------------
# Debian ships no CMake package for mbedTLS 2.28: find it by hand.
if(SSOCK_TLS_MBEDTLS)
  find_path(MBEDTLS_INCLUDE_DIR mbedtls/ssl.h)
  find_library(MBEDTLS_LIBRARY mbedtls)
  find_library(MBEDX509_LIBRARY mbedx509)
  find_library(MBEDCRYPTO_LIBRARY mbedcrypto)
  mark_as_advanced(MBEDTLS_INCLUDE_DIR MBEDTLS_LIBRARY MBEDX509_LIBRARY
                   MBEDCRYPTO_LIBRARY)
  if(NOT MBEDTLS_INCLUDE_DIR OR NOT EXISTS "${MBEDTLS_INCLUDE_DIR}/mbedtls/ssl.h"
     OR NOT MBEDTLS_LIBRARY OR NOT MBEDX509_LIBRARY OR NOT MBEDCRYPTO_LIBRARY)
    message(FATAL_ERROR
      "ssock: mbedTLS not found (need mbedtls/ssl.h and libmbedtls, "
      "libmbedx509, libmbedcrypto; Debian/Ubuntu: apt install libmbedtls-dev). "
      "Configure with -DSSOCK_TLS_MBEDTLS=OFF to build without it, or "
      "-DSSOCK_TLS=OFF to build without TLS.")
  endif()
  set(MBEDTLS_VERSION "")
  if(EXISTS "${MBEDTLS_INCLUDE_DIR}/mbedtls/build_info.h")
    set(_mbed_ver_h "${MBEDTLS_INCLUDE_DIR}/mbedtls/build_info.h")
  else()
    set(_mbed_ver_h "${MBEDTLS_INCLUDE_DIR}/mbedtls/version.h")
  endif()
  file(STRINGS "${_mbed_ver_h}" _mbed_ver
       REGEX "^#define[ \t]+MBEDTLS_VERSION_STRING[ \t]+\"[0-9.]+\"")
  string(REGEX REPLACE ".*\"([0-9.]+)\".*" "\\1" MBEDTLS_VERSION "${_mbed_ver}")
  if(MBEDTLS_VERSION AND MBEDTLS_VERSION VERSION_LESS 2.28)
    message(FATAL_ERROR "ssock: mbedTLS ${MBEDTLS_VERSION} is too old (need 2.28 LTS or 3.x)")
  endif()
  message(STATUS "ssock: mbedTLS ${MBEDTLS_VERSION} backend: ${MBEDTLS_LIBRARY}")
  set(SSOCK_HAVE_MBEDTLS ON)
  list(APPEND SSOCK_TLS_SOURCES "${_ssock_root}/src/tls_mbedtls.c")
  set_source_files_properties("${_ssock_root}/src/tls_mbedtls.c" PROPERTIES
    INCLUDE_DIRECTORIES "${MBEDTLS_INCLUDE_DIR}")
  # Order matters for static linking: tls -> x509 -> crypto.
  list(APPEND SSOCK_TLS_LIBS "${MBEDTLS_LIBRARY}" "${MBEDX509_LIBRARY}"
       "${MBEDCRYPTO_LIBRARY}")
  string(APPEND SSOCK_PC_LIBS_PRIVATE " -lmbedtls -lmbedx509 -lmbedcrypto")
endif()

# --- OpenSSL 3 (optional) -----------------------------------------------------
if(SSOCK_TLS_OPENSSL)
  find_package(OpenSSL 3)
  if(OPENSSL_FOUND)
    message(STATUS "ssock: OpenSSL ${OPENSSL_VERSION} backend: ${OPENSSL_SSL_LIBRARY}")
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
configure_file("${_ssock_root}/include/ssock/features.h.in"
               "${SSOCK_FEATURES_HEADER}" @ONLY)

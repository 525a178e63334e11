# tests/tls_accept.cmake — test_tls_accept: the TLS acceptor and TLS sockets
# end to end (tests/test_tls_accept.c + the in-test libssl client
# tests/tls_client.c). Included from the end of tests/tls.cmake; uses
# ssock_add_test() from tests/CMakeLists.txt.
#
# Needs libssl for the in-test client (whichever backends are built). The
# real peers `openssl` and `gnutls-cli` are looked up here; a missing one is
# skipped at run time with a printed reason. <valgrind/valgrind.h>, when
# present, lets the program notice Valgrind and use smaller client counts.

if(NOT SSOCK_HAVE_TLS)
  message(STATUS "ssock: no TLS backend built: test_tls_accept skipped")
  return()
endif()
if(NOT TARGET OpenSSL::SSL)
  find_package(OpenSSL 3 QUIET)
endif()
if(NOT TARGET OpenSSL::SSL)
  message(STATUS "ssock: libssl (OpenSSL 3) not found: test_tls_accept skipped")
  return()
endif()

find_program(SSOCK_OPENSSL_BIN openssl)
find_program(SSOCK_GNUTLS_CLI gnutls-cli)
mark_as_advanced(SSOCK_OPENSSL_BIN SSOCK_GNUTLS_CLI)
set(_ta_openssl "${SSOCK_OPENSSL_BIN}")
set(_ta_gnutls "${SSOCK_GNUTLS_CLI}")
if(NOT SSOCK_OPENSSL_BIN)
  set(_ta_openssl "")
endif()
if(NOT SSOCK_GNUTLS_CLI)
  set(_ta_gnutls "")
endif()

include(CheckIncludeFile)
check_include_file(valgrind/valgrind.h SSOCK_HAVE_VALGRIND_H)
set(_ta_defs
  SSOCK_CERTS_DIR="${SSOCK_CERTS_DIR}"
  SSOCK_OPENSSL_BIN="${_ta_openssl}"
  SSOCK_GNUTLS_CLI="${_ta_gnutls}")
if(SSOCK_HAVE_VALGRIND_H)
  list(APPEND _ta_defs SSOCK_HAVE_VALGRIND_H=1)
endif()

set(_ta_sources ${CMAKE_CURRENT_LIST_DIR}/test_tls_accept.c
  ${CMAKE_CURRENT_LIST_DIR}/tls_client.c)
if(NOT TARGET ssock_test_helpers)
  list(APPEND _ta_sources ${CMAKE_CURRENT_LIST_DIR}/helpers.c)
endif()

ssock_add_test(test_tls_accept
  SOURCES ${_ta_sources}
  LABELS unit tls concurrency
  TIMEOUT 300
  DEFINITIONS ${_ta_defs}
  LIBRARIES OpenSSL::SSL OpenSSL::Crypto)

# The strict defaults against real clients, and configuration errors that
# need generated certificates (issue 9).
set(_td_sources ${CMAKE_CURRENT_LIST_DIR}/test_tls_defaults.c
  ${CMAKE_CURRENT_LIST_DIR}/tls_client.c)
if(NOT TARGET ssock_test_helpers)
  list(APPEND _td_sources ${CMAKE_CURRENT_LIST_DIR}/helpers.c)
endif()
ssock_add_test(test_tls_defaults
  SOURCES ${_td_sources}
  LABELS unit tls
  TIMEOUT 300
  DEFINITIONS ${_ta_defs}
  LIBRARIES OpenSSL::SSL OpenSSL::Crypto)
include(${CMAKE_CURRENT_LIST_DIR}/tls_socket.cmake)
include(${CMAKE_CURRENT_LIST_DIR}/hostile.cmake)
include(${CMAKE_CURRENT_LIST_DIR}/tls_api.cmake)

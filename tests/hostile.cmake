# tests/hostile.cmake — test_hostile: the hostile-client suite (issue 8):
# floods of records after a ClientHello, ClientHello bursts, the in-flight
# and per-source caps, zero-window readers, resets and half-closes at every
# handshake stage, data before the handshake ends; on every built backend.
# Included from the end of tests/tls_accept.cmake; uses ssock_add_test()
# and needs libssl for its clients (whichever backends are built).
#
# Parts of the API this suite tests were added with issue 8 (per-source
# limit, SSOCK_EBROKEN). Their presence is checked on every configure (not
# cached), and a missing one makes its test FAIL with a message, never skip.

if(NOT SSOCK_HAVE_TLS)
  return()
endif()
if(NOT TARGET OpenSSL::SSL)
  find_package(OpenSSL 3 QUIET)
endif()
if(NOT TARGET OpenSSL::SSL)
  message(STATUS "ssock: libssl (OpenSSL 3) not found: test_hostile skipped")
  return()
endif()

include(CheckIncludeFile)
check_include_file(valgrind/valgrind.h SSOCK_HAVE_VALGRIND_H)
include(CheckCSourceCompiles)
set(_hc_save_inc "${CMAKE_REQUIRED_INCLUDES}")
set(_hc_save_quiet "${CMAKE_REQUIRED_QUIET}")
set(CMAKE_REQUIRED_INCLUDES "${PROJECT_SOURCE_DIR}/include;${PROJECT_BINARY_DIR}/include")
set(CMAKE_REQUIRED_QUIET ON)
unset(SSOCK_HOSTILE_HAVE_SOURCE_LIMIT CACHE)
check_c_source_compiles("
#include <ssock/tls.h>
int main(void) {
  ssock_tls_options t; ssock_tls_stats s;
  t.max_handshakes_per_source = SSOCK_TLS_DEFAULT_MAX_HANDSHAKES_PER_SOURCE;
  t.source_prefix_v6 = 64;
  s.handshakes_source_limited = 0;
  return t.max_handshakes_per_source + t.source_prefix_v6 + (int)s.handshakes_source_limited;
}" SSOCK_HOSTILE_HAVE_SOURCE_LIMIT)
unset(SSOCK_HOSTILE_HAVE_EBROKEN CACHE)
check_c_source_compiles("
#include <ssock/ssock.h>
int main(void) { return SSOCK_EBROKEN == -1020 ? 0 : 1; }" SSOCK_HOSTILE_HAVE_EBROKEN)
set(CMAKE_REQUIRED_INCLUDES "${_hc_save_inc}")
set(CMAKE_REQUIRED_QUIET "${_hc_save_quiet}")

set(_hc_defs SSOCK_CERTS_DIR="${SSOCK_CERTS_DIR}")
if(SSOCK_HAVE_VALGRIND_H)
  list(APPEND _hc_defs SSOCK_HAVE_VALGRIND_H=1)
endif()
if(SSOCK_HOSTILE_HAVE_SOURCE_LIMIT)
  list(APPEND _hc_defs HOSTILE_HAVE_SOURCE_LIMIT=1)
endif()
if(SSOCK_HOSTILE_HAVE_EBROKEN)
  list(APPEND _hc_defs HOSTILE_HAVE_EBROKEN=1)
endif()

set(_hc_sources ${CMAKE_CURRENT_LIST_DIR}/test_hostile.c
  ${CMAKE_CURRENT_LIST_DIR}/hostile_client.c
  ${CMAKE_CURRENT_LIST_DIR}/tls_client.c)
if(NOT TARGET ssock_test_helpers)
  list(APPEND _hc_sources ${CMAKE_CURRENT_LIST_DIR}/helpers.c)
endif()

ssock_add_test(test_hostile
  SOURCES ${_hc_sources}
  LABELS unit tls concurrency hostile
  TIMEOUT 360
  DEFINITIONS ${_hc_defs}
  LIBRARIES OpenSSL::SSL OpenSSL::Crypto)

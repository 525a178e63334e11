# tests/event.cmake — event-driven serving (issue 11): non-blocking sockets,
# the loop-friendly acceptor (ssock_server_try_accept / _poll_fd /
# _next_timeout) and SO_REUSEPORT. Included (OPTIONAL) from the end of
# tests/CMakeLists.txt; uses its ssock_add_test().
#
#   test_event                 the semantics, plain and TLS on every backend
#   test_event_races           seeded explorer: a non-blocking loop against
#                              random closes and chaos system-call faults
#                              (SSOCK_EVENT_SECONDS, default 5 s)
#   test_event_race_regressions  the same program with "regress": the seeds
#                              that once found a bug, replayed
#
# With a TLS backend and libssl (the in-test client, tests/tls_client.c)
# both programs also run on TLS servers of every backend built; without
# libssl they run plain servers only (and say so).

set(_ev_sources ${CMAKE_CURRENT_LIST_DIR}/test_event.c)
set(_evr_sources ${CMAKE_CURRENT_LIST_DIR}/test_event_races.c
  ${CMAKE_CURRENT_LIST_DIR}/chaos.c)
set(_ev_defs "")
set(_ev_libs "")
if(SSOCK_HAVE_TLS AND NOT TARGET OpenSSL::SSL)
  find_package(OpenSSL 3 QUIET)
endif()
if(SSOCK_HAVE_TLS AND TARGET OpenSSL::SSL)
  list(APPEND _ev_sources ${CMAKE_CURRENT_LIST_DIR}/tls_client.c)
  list(APPEND _evr_sources ${CMAKE_CURRENT_LIST_DIR}/tls_client.c)
  list(APPEND _ev_defs SSOCK_EVENT_TLS=1 SSOCK_CERTS_DIR="${SSOCK_CERTS_DIR}")
  set(_ev_libs OpenSSL::SSL OpenSSL::Crypto)
elseif(SSOCK_HAVE_TLS)
  message(STATUS "ssock: libssl not found: test_event runs plain servers only")
endif()
ssock_add_test(test_event
  SOURCES ${_ev_sources}
  LABELS unit concurrency
  TIMEOUT 300
  DEFINITIONS ${_ev_defs}
  LIBRARIES ${_ev_libs})

ssock_add_test(test_event_races
  SOURCES ${_evr_sources}
  LABELS unit concurrency races
  TIMEOUT 300
  DEFINITIONS ${_ev_defs}
  LIBRARIES ${_ev_libs})

add_test(NAME test_event_race_regressions
  COMMAND ${SSOCK_TEST_LAUNCHER} $<TARGET_FILE:test_event_races> regress)
set_tests_properties(test_event_race_regressions PROPERTIES
  LABELS "unit;concurrency;races" TIMEOUT 180)

# tests/races.cmake — race exploration through the system-call seam
# (tests/chaos.c) and deterministic race regressions (issue 8).
# Included from the end of tests/CMakeLists.txt; uses its ssock_add_test().
#
#   test_races             chaos: many seeds, time-bounded (SSOCK_RACES_SECONDS)
#   test_race_regressions  the same program with "regress": gated interleavings
#
# With a TLS backend and libssl (the in-test client, tests/tls_client.c)
# both also run on TLS servers of every backend built.

set(_races_sources ${CMAKE_CURRENT_LIST_DIR}/test_races.c
  ${CMAKE_CURRENT_LIST_DIR}/chaos.c)
set(_races_defs "")
set(_races_libs "")
if(SSOCK_HAVE_TLS AND NOT TARGET OpenSSL::SSL)
  find_package(OpenSSL 3 QUIET)
endif()
if(SSOCK_HAVE_TLS AND TARGET OpenSSL::SSL)
  list(APPEND _races_sources ${CMAKE_CURRENT_LIST_DIR}/tls_client.c)
  list(APPEND _races_defs SSOCK_RACES_TLS=1
    SSOCK_CERTS_DIR="${SSOCK_CERTS_DIR}")
  set(_races_libs OpenSSL::SSL OpenSSL::Crypto)
elseif(SSOCK_HAVE_TLS)
  message(STATUS "ssock: libssl not found: test_races runs plain servers only")
endif()

ssock_add_test(test_races
  SOURCES ${_races_sources}
  LABELS unit concurrency races
  TIMEOUT 300
  DEFINITIONS ${_races_defs}
  LIBRARIES ${_races_libs})

add_test(NAME test_race_regressions
  COMMAND ${SSOCK_TEST_LAUNCHER} $<TARGET_FILE:test_races> regress)
set_tests_properties(test_race_regressions PROPERTIES
  LABELS "unit;concurrency;races" TIMEOUT 180)

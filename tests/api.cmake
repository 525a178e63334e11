# tests/api.cmake — test_api: the 0.2 API surface of ssock.h (sized
# options, versions, error classes, events, drain, socket options, user
# data, binary addresses). Included from the end of tests/CMakeLists.txt.
ssock_add_test(test_api SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_api.c
  LABELS unit concurrency TIMEOUT 120
  DEFINITIONS SSOCK_CERTS_DIR="${SSOCK_CERTS_DIR}")

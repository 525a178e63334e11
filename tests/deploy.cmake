# tests/deploy.cmake — issue 12 (deployment): test_cidr (the trusted-source
# CIDR lists, src/cidr.c; pure) and test_deploy (PROXY protocol through the
# acceptor on plain and TLS servers, certificate rotation with
# ssock_server_set_tls(), socket activation with ssock_server_open_fd() and
# ssock_listen_fds()). Included, OPTIONAL, from the end of
# tests/CMakeLists.txt; uses its ssock_add_test().
#
# test_deploy is built in every configuration; its TLS cases need a TLS
# backend and libssl for the in-test client (tests/tls_client.c): without
# them they are skipped at run time with a printed reason (TH_SKIP: a
# failure in the gate).

ssock_add_test(test_cidr SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_cidr.c
  LABELS unit proxy TIMEOUT 120)

set(_dp_sources ${CMAKE_CURRENT_LIST_DIR}/test_deploy.c)
set(_dp_defs SSOCK_CERTS_DIR="${SSOCK_CERTS_DIR}")
set(_dp_libs "")
if(SSOCK_HAVE_TLS)
  if(NOT TARGET OpenSSL::SSL)
    find_package(OpenSSL 3 QUIET)
  endif()
  if(TARGET OpenSSL::SSL)
    list(APPEND _dp_sources ${CMAKE_CURRENT_LIST_DIR}/tls_client.c)
    list(APPEND _dp_defs SSOCK_DEPLOY_TLS_CLIENT=1)
    list(APPEND _dp_libs OpenSSL::SSL OpenSSL::Crypto)
  else()
    message(STATUS "ssock: libssl (OpenSSL 3) not found: test_deploy's TLS cases skipped")
  endif()
endif()
ssock_add_test(test_deploy
  SOURCES ${_dp_sources}
  LABELS unit proxy tls concurrency
  TIMEOUT 600
  DEFINITIONS ${_dp_defs}
  LIBRARIES ${_dp_libs})

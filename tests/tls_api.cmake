# tests/tls_api.cmake — test_tls_api: the 0.2 TLS API (sized options and
# stats, SSOCK_ETRUNCATED, the ssock_tls_info snapshot, the key-log
# callback, the client's chain as DER, the verify hook). Included from the
# end of tests/tls_accept.cmake, which has checked for a TLS backend and
# libssl and set _ta_defs.
ssock_add_test(test_tls_api
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_tls_api.c
          ${CMAKE_CURRENT_LIST_DIR}/tls_client.c
  LABELS unit tls
  TIMEOUT 300
  DEFINITIONS ${_ta_defs}
  LIBRARIES OpenSSL::SSL OpenSSL::Crypto)

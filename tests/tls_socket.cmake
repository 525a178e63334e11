# tests/tls_socket.cmake — test_tls_socket: TLS sockets through the public
# API (pending bytes, writes that fail part way, shutdown_write, the
# close_notify bound). Included from the end of tests/tls_accept.cmake,
# which has checked for a TLS backend and libssl and set _ta_defs.
ssock_add_test(test_tls_socket
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_tls_socket.c
          ${CMAKE_CURRENT_LIST_DIR}/tls_client.c
  LABELS unit tls concurrency
  TIMEOUT 300
  DEFINITIONS ${_ta_defs}
  LIBRARIES OpenSSL::SSL OpenSSL::Crypto)

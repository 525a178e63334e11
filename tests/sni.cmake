# tests/sni.cmake — test_tls_sni: SNI certificate selection
# (ssock_tls_options.extra_certs): the pure name matching of src/tls.c, the
# configuration errors of extra pairs, and the certificate each backend
# presents for a server name, on TLS 1.2 and 1.3, checked with the in-test
# libssl client (tests/tls_client.c) and once per backend with
# `openssl s_client -servername`. Included (OPTIONAL) from the end of
# tests/CMakeLists.txt; uses its ssock_add_test(). One program loops over
# every built backend itself, as the other TLS tests do.

if(SSOCK_HAVE_TLS)
  if(NOT TARGET OpenSSL::SSL)
    find_package(OpenSSL 3 QUIET)
  endif()
  if(NOT TARGET OpenSSL::SSL)
    message(STATUS "ssock: libssl (OpenSSL 3) not found: test_tls_sni skipped")
  else()
    find_program(SSOCK_OPENSSL_BIN openssl)
    mark_as_advanced(SSOCK_OPENSSL_BIN)
    set(_sni_openssl "${SSOCK_OPENSSL_BIN}")
    if(NOT SSOCK_OPENSSL_BIN)
      set(_sni_openssl "")
    endif()
    set(_sni_defs
      SSOCK_CERTS_DIR="${SSOCK_CERTS_DIR}"
      SSOCK_OPENSSL_BIN="${_sni_openssl}")
    ssock_add_test(test_tls_sni
      SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_tls_sni.c
              ${CMAKE_CURRENT_LIST_DIR}/tls_client.c
      LABELS unit tls concurrency
      TIMEOUT 300
      DEFINITIONS ${_sni_defs}
      LIBRARIES OpenSSL::SSL OpenSSL::Crypto)
  endif()
endif()

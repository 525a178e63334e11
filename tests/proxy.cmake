# tests/proxy.cmake — test_proxy: the PROXY protocol v1/v2 header parser
# (src/proxy.c; pure, no sockets). Included from the end of
# tests/CMakeLists.txt.
ssock_add_test(test_proxy SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_proxy.c
  LABELS unit proxy TIMEOUT 120)

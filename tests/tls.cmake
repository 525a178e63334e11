# tests/tls.cmake — TLS unit tests: the config front (test_tls_config) and the
# backend table driven directly over a socketpair (test_tls_backend).
# Included at the end of tests/CMakeLists.txt; uses its ssock_add_test()
# (ssock_static, SSOCK_WARNINGS, SSOCK_TEST_LAUNCHER, cmocka) when defined.
# Needs SSOCK_CERTS_DIR and SSOCK_HAVE_* from cmake/tls.cmake.

if(NOT SSOCK_CERTS_DIR)
  message(FATAL_ERROR "tests/tls.cmake: include cmake/tls.cmake first")
endif()

# Fallback when included without tests/CMakeLists.txt's helper.
set(_ssock_tls_src_dir "${CMAKE_CURRENT_LIST_DIR}/../src")
if(NOT COMMAND ssock_add_test)
  if(TARGET cmocka::cmocka)
    set(_ssock_tls_cmocka cmocka::cmocka)
  else()
    find_package(cmocka CONFIG QUIET)
    if(CMOCKA_LIBRARIES)
      set(_ssock_tls_cmocka ${CMOCKA_LIBRARIES})
    else()
      find_library(SSOCK_CMOCKA_LIBRARY cmocka REQUIRED)
      set(_ssock_tls_cmocka ${SSOCK_CMOCKA_LIBRARY})
    endif()
  endif()
  function(ssock_add_test name)
    cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LABELS;DEFINITIONS;LIBRARIES" ${ARGN})
    if(NOT T_TIMEOUT)
      set(T_TIMEOUT 120)
    endif()
    add_executable(${name} ${T_SOURCES})
    target_link_libraries(${name} PRIVATE ssock_static ${_ssock_tls_cmocka}
      Threads::Threads ${T_LIBRARIES})
    target_compile_options(${name} PRIVATE ${SSOCK_WARNINGS})
    target_compile_definitions(${name} PRIVATE _GNU_SOURCE ${T_DEFINITIONS})
    target_include_directories(${name} PRIVATE ${_ssock_tls_src_dir})
    add_test(NAME ${name} COMMAND ${SSOCK_TEST_LAUNCHER} $<TARGET_FILE:${name}>)
    set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT})
  endfunction()
endif()

ssock_add_test(test_tls_config
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_tls_config.c
  LABELS unit tls TIMEOUT 120
  DEFINITIONS SSOCK_CERTS_DIR="${SSOCK_CERTS_DIR}")

# The backend test drives the server side through the internal table with an
# in-test OpenSSL client, so it needs libssl even to test mbedTLS.
if(SSOCK_HAVE_TLS AND NOT OPENSSL_FOUND)
  find_package(OpenSSL 3 QUIET)
endif()
if(SSOCK_HAVE_TLS AND OPENSSL_FOUND)
  ssock_add_test(test_tls_backend
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_tls_backend.c
    LABELS unit tls concurrency TIMEOUT 180
    DEFINITIONS SSOCK_CERTS_DIR="${SSOCK_CERTS_DIR}"
    LIBRARIES OpenSSL::SSL OpenSSL::Crypto)
elseif(SSOCK_HAVE_TLS)
  message(STATUS "OpenSSL 3 not found: test_tls_backend (needs an OpenSSL client) skipped")
endif()

include(${CMAKE_CURRENT_LIST_DIR}/tls_accept.cmake)

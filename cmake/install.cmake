# Installation: headers, the shared and static libraries, an exported target
# set (find_package(ssock) gives ssock::ssock and ssock::ssock_static) and
# ssock.pc. Included last by the top-level CMakeLists.txt.
include(CMakePackageConfigHelpers)

set(SSOCK_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/ssock")

install(TARGETS ssock ssock_static
  EXPORT ssockTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime
          NAMELINK_COMPONENT dev
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/ssock
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev
  FILES_MATCHING PATTERN "*.h")
# Generated headers (ssock/features.h), when the configuration made any.
install(DIRECTORY ${PROJECT_BINARY_DIR}/include/ssock
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev OPTIONAL
  FILES_MATCHING PATTERN "*.h")

install(EXPORT ssockTargets
  NAMESPACE ssock::
  FILE ssockTargets.cmake
  DESTINATION ${SSOCK_INSTALL_CMAKEDIR} COMPONENT dev)

# What a static link needs besides libssock.a. cmake/tls.cmake may set
#   SSOCK_PC_REQUIRES_PRIVATE  pkg-config modules (e.g. "openssl")
#   SSOCK_PC_LIBS_PRIVATE      extra flags (e.g. "-lmbedtls -lmbedx509")
#   SSOCK_PACKAGE_DEPENDENCIES CMake code for ssockConfig.cmake, e.g.
#                              "find_dependency(OpenSSL)", needed when
#                              SSOCK_TLS_LIBS holds imported targets
# Plain library names and flags in SSOCK_TLS_LIBS are added by themselves.
if(NOT DEFINED SSOCK_PC_LIBS_PRIVATE)
  set(SSOCK_PC_LIBS_PRIVATE "")
  foreach(_lib IN LISTS SSOCK_TLS_LIBS)
    if(TARGET "${_lib}")
      continue()
    elseif(_lib MATCHES "^-" OR IS_ABSOLUTE "${_lib}")
      string(APPEND SSOCK_PC_LIBS_PRIVATE " ${_lib}")
    else()
      string(APPEND SSOCK_PC_LIBS_PRIVATE " -l${_lib}")
    endif()
  endforeach()
endif()
string(STRIP "${SSOCK_PC_LIBS_PRIVATE} -pthread" SSOCK_PC_LIBS_PRIVATE)
set(SSOCK_PC_REQUIRES_LINE "")
if(SSOCK_PC_REQUIRES_PRIVATE)
  set(SSOCK_PC_REQUIRES_LINE "Requires.private: ${SSOCK_PC_REQUIRES_PRIVATE}")
endif()

configure_package_config_file(
  ${CMAKE_CURRENT_LIST_DIR}/ssockConfig.cmake.in
  ${PROJECT_BINARY_DIR}/ssockConfig.cmake
  INSTALL_DESTINATION ${SSOCK_INSTALL_CMAKEDIR})
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/ssockConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)
install(FILES
  ${PROJECT_BINARY_DIR}/ssockConfig.cmake
  ${PROJECT_BINARY_DIR}/ssockConfigVersion.cmake
  DESTINATION ${SSOCK_INSTALL_CMAKEDIR} COMPONENT dev)

# ssock.pc finds its prefix from its own location (${pcfiledir}), so the
# same file works for `cmake --install --prefix X` and for DESTDIR staging.
set(SSOCK_PC_DIR "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(SSOCK_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(SSOCK_PC_LIBDIR "${CMAKE_INSTALL_FULL_LIBDIR}")
  set(SSOCK_PC_INCLUDEDIR "${CMAKE_INSTALL_FULL_INCLUDEDIR}")
else()
  file(RELATIVE_PATH _ssock_pc_up "/prefix/${SSOCK_PC_DIR}" "/prefix")
  string(REGEX REPLACE "/$" "" _ssock_pc_up "${_ssock_pc_up}")
  set(SSOCK_PC_PREFIX "\${pcfiledir}/${_ssock_pc_up}")
  set(SSOCK_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
  set(SSOCK_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file(${CMAKE_CURRENT_LIST_DIR}/ssock.pc.in
  ${PROJECT_BINARY_DIR}/ssock.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/ssock.pc
  DESTINATION ${SSOCK_PC_DIR} COMPONENT dev)

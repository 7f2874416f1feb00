# `cmake --install` (and `make install PREFIX=...`): the programs, asya_runtime.py beside them,
# and the C++ handler SDK (asya::runtime with the libraries it links, their headers and a CMake
# package), so that a handler builds out of tree with
#   find_package(asya REQUIRED)
#   target_link_libraries(my_handler PRIVATE asya::runtime)
# (examples/cpp does exactly that; tests/install checks it against a temporary prefix).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS asya asya-sidecar asya-crew asya-gateway asya-operator
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# `asya up` looks for the Python runtime next to its own binary.
install(PROGRAMS ${PROJECT_SOURCE_DIR}/src/runtime/python/asya_runtime.py
        DESTINATION ${CMAKE_INSTALL_BINDIR})

# The handler SDK and the libraries it links (static), with their public headers.
set(ASYA_SDK_LIBRARIES base protocol runtime)
foreach(lib IN LISTS ASYA_SDK_LIBRARIES)
  install(TARGETS asya_${lib} EXPORT asyaTargets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
          INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/src/${lib}/include/
          DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
endforeach()
install(EXPORT asyaTargets NAMESPACE asya::
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/asya)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/asyaConfig.cmake.in
  ${CMAKE_BINARY_DIR}/asyaConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/asya)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/asyaConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/asyaConfig.cmake ${CMAKE_BINARY_DIR}/asyaConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/asya)

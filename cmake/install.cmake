# `cmake --install build --prefix DIR` installs the library, its headers, the program and a CMake package, so that
# another project links brainspade with
#   find_package(brainspade REQUIRED)   # -DCMAKE_PREFIX_PATH=DIR
#   target_link_libraries(app PRIVATE brainspade::core)
# (tests/consumer/ is such a project; ctest's Install.ConsumerFindsAndLinksThePackage builds it.)
include(CMakePackageConfigHelpers)
install(TARGETS brainspade_core EXPORT brainspadeTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS brainspade RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/brainspade DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT brainspadeTargets NAMESPACE brainspade:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/brainspade)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/brainspadeConfig.cmake.in
  ${PROJECT_BINARY_DIR}/brainspadeConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/brainspade)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/brainspadeConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/brainspadeConfig.cmake ${PROJECT_BINARY_DIR}/brainspadeConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/brainspade)

# -DBRAINSPADE_FUZZ=ON (clang only): the libFuzzer executables fuzz_config, fuzz_nifti, fuzz_png and fuzz_checkpoint.
# Only the code under test is compiled here, with coverage and AddressSanitizer: the target bodies
# (tests/fuzz/fuzz_targets.cpp), the config loader (src/core/config.cpp), the image readers (src/io/image_io.cpp) and
# the checkpoint reader with its ZIP check (src/core/checkpoint.cpp, zip_check.cpp).
# Everything else they call (the config roots' visit() functions, atomic files, ...) comes from the ordinary gcc build's
# static library, BRAINSPADE_FUZZ_CORE_LIB, so a fuzz build compiles five files instead of the whole project.
if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "BRAINSPADE_FUZZ needs clang (libFuzzer): configure with -DCMAKE_CXX_COMPILER=clang++")
endif()
set(BRAINSPADE_FUZZ_CORE_LIB "${PROJECT_SOURCE_DIR}/build/libbrainspade_core.a" CACHE FILEPATH
    "libbrainspade_core.a of an ordinary build (supplies the code that is not fuzzed)")
if(NOT EXISTS "${BRAINSPADE_FUZZ_CORE_LIB}")
  message(FATAL_ERROR "${BRAINSPADE_FUZZ_CORE_LIB} not found: run the ordinary build first (cmake --build build)")
endif()
set(BRAINSPADE_FUZZ_FLAGS -fsanitize=fuzzer-no-link,address -fno-omit-frame-pointer -g)
add_library(brainspade_fuzz_code OBJECT
  ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_targets.cpp
  ${PROJECT_SOURCE_DIR}/src/core/config.cpp
  ${PROJECT_SOURCE_DIR}/src/io/image_io.cpp
  ${PROJECT_SOURCE_DIR}/src/io/input_guards.cpp
  ${PROJECT_SOURCE_DIR}/src/core/checkpoint.cpp
  ${PROJECT_SOURCE_DIR}/src/core/zip_check.cpp
  ${PROJECT_SOURCE_DIR}/src/core/pickle_check.cpp
  ${PROJECT_SOURCE_DIR}/src/core/csv.cpp)
target_include_directories(brainspade_fuzz_code PUBLIC ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/tests
  ${PROJECT_SOURCE_DIR}/src)
target_compile_definitions(brainspade_fuzz_code PUBLIC
  BRAINSPADE_VERSION="${PROJECT_VERSION}" BRAINSPADE_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
target_compile_options(brainspade_fuzz_code PRIVATE ${BRAINSPADE_FUZZ_FLAGS})
target_link_libraries(brainspade_fuzz_code PUBLIC ${TORCH_LIBRARIES} yaml-cpp spdlog::spdlog ${ITK_LIBRARIES} ZLIB::ZLIB)
foreach(target config nifti png checkpoint csv)
  add_executable(fuzz_${target} ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_main.cpp)
  target_compile_definitions(fuzz_${target} PRIVATE BRAINSPADE_FUZZ_TARGET=fuzz_${target})
  if(target STREQUAL "checkpoint")
    target_compile_definitions(fuzz_${target} PRIVATE BRAINSPADE_FUZZ_CHECKPOINT=1)  # the CRC-fixing mutator
  endif()
  target_compile_options(fuzz_${target} PRIVATE ${BRAINSPADE_FUZZ_FLAGS})
  target_link_options(fuzz_${target} PRIVATE -fsanitize=fuzzer,address)
  target_link_libraries(fuzz_${target} PRIVATE brainspade_fuzz_code "${BRAINSPADE_FUZZ_CORE_LIB}"
    ${TORCH_LIBRARIES} yaml-cpp spdlog::spdlog ${ITK_LIBRARIES} ZLIB::ZLIB PkgConfig::CAIRO Threads::Threads)
endforeach()

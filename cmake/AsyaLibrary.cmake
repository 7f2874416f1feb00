# Helpers that give every target the same warnings, include paths and labels.
set(ASYA_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wformat=2 -Wimplicit-fallthrough
    -Wnon-virtual-dtor -Wpointer-arith -Wvla -Wwrite-strings -Wno-missing-field-initializers)

# asya_library(NAME <name> SRCS ... DEPS ...) -> target asya_<name>, alias asya::<name>
function(asya_library)
  cmake_parse_arguments(A "" "NAME" "SRCS;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(asya_${A_NAME} STATIC ${A_SRCS})
  add_library(asya::${A_NAME} ALIAS asya_${A_NAME})
  target_include_directories(asya_${A_NAME} PUBLIC ${PROJECT_SOURCE_DIR}/include
                             PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_compile_options(asya_${A_NAME} PRIVATE ${ASYA_WARNINGS})
  target_link_libraries(asya_${A_NAME} PUBLIC ${A_DEPS} PRIVATE ${A_PRIVATE_DEPS})
endfunction()

# Sanitizer builds (-fsanitize=... in CMAKE_CXX_FLAGS, e.g. the `asan` preset): every test runs
# under tools/sanitizer_run.py, which sends each process's sanitizer reports (children included) to
# build/<preset>/sanitizer/<test>/ and fails the test when there is any.
if(CMAKE_CXX_FLAGS MATCHES "-fsanitize=")
  set(ASYA_SANITIZE ON)
endif()

# asya_add_test(NAME <name> [WORKING_DIRECTORY <dir>] TIMEOUT <s> LABELS ... ENVIRONMENT ...
#               COMMAND ...) -> add_test + properties, through the sanitizer wrapper when needed.
function(asya_add_test)
  cmake_parse_arguments(A "" "NAME;WORKING_DIRECTORY;TIMEOUT" "LABELS;ENVIRONMENT;COMMAND" ${ARGN})
  set(cmd ${A_COMMAND})
  if(ASYA_SANITIZE)
    set(cmd ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tools/sanitizer_run.py
        ${CMAKE_BINARY_DIR}/sanitizer/${A_NAME} -- ${cmd})
  endif()
  if(A_WORKING_DIRECTORY)
    add_test(NAME ${A_NAME} COMMAND ${cmd} WORKING_DIRECTORY ${A_WORKING_DIRECTORY})
  else()
    add_test(NAME ${A_NAME} COMMAND ${cmd})
  endif()
  set_tests_properties(${A_NAME} PROPERTIES LABELS "${A_LABELS}" TIMEOUT ${A_TIMEOUT}
    ENVIRONMENT "${A_ENVIRONMENT}")
endfunction()

# asya_test(NAME <name> SRCS ... DEPS ... LABELS ...) -> gtest executable registered with CTest
function(asya_test)
  cmake_parse_arguments(A "" "NAME;TIMEOUT" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${A_NAME} ${A_SRCS})
  target_include_directories(${A_NAME} PRIVATE ${PROJECT_SOURCE_DIR}/include
                             ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/tests)
  target_compile_options(${A_NAME} PRIVATE ${ASYA_WARNINGS})
  target_link_libraries(${A_NAME} PRIVATE ${A_DEPS} asya_test_support GTest::gtest GTest::gtest_main
                        Threads::Threads)
  set_target_properties(${A_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  if(NOT A_TIMEOUT)
    set(A_TIMEOUT 300)
  endif()
  asya_add_test(NAME ${A_NAME} COMMAND $<TARGET_FILE:${A_NAME}> LABELS ${A_LABELS}
    TIMEOUT ${A_TIMEOUT}
    ENVIRONMENT "ASYA_BUILD_DIR=${CMAKE_BINARY_DIR}" "ASYA_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
endfunction()

# asya_py_test(NAME <name> DIR <dir relative to tests/> LABELS ...) -> python unittest run from CTest
function(asya_py_test)
  cmake_parse_arguments(A "" "NAME;DIR;TIMEOUT" "LABELS" ${ARGN})
  if(NOT A_TIMEOUT)
    set(A_TIMEOUT 600)
  endif()
  asya_add_test(NAME ${A_NAME}
    COMMAND ${Python3_EXECUTABLE} -m unittest discover -v -s ${PROJECT_SOURCE_DIR}/tests/${A_DIR}
            -t ${PROJECT_SOURCE_DIR}/tests/${A_DIR}
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR} LABELS ${A_LABELS} TIMEOUT ${A_TIMEOUT}
    ENVIRONMENT "ASYA_BUILD_DIR=${CMAKE_BINARY_DIR}" "ASYA_SOURCE_DIR=${PROJECT_SOURCE_DIR}"
                "PYTHONDONTWRITEBYTECODE=1")
endfunction()

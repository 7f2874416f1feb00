# Helpers that give every target the same warnings, include paths and labels.
set(ASYA_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wformat=2 -Wimplicit-fallthrough
    -Wnon-virtual-dtor -Wpointer-arith -Wvla -Wwrite-strings -Wno-missing-field-initializers)

# The layers, lowest first (DESIGN §5, docs/architecture.md). A library may depend only on
# libraries listed before it; asya_library() refuses anything else at configure time, and
# tools/check_layers.py (a test) checks that every #include names a header of the library itself
# or of a library it declares.
set(ASYA_LAYERS
  base http aws envelope protocol runtime
  transport transport_sqlite transport_rabbitmq transport_sqs transport_all
  router sidecar crew store gateway actor k8s operator local check)

# asya_library(NAME <name> [SRCS ...] DEPS ... PRIVATE_DEPS ...) -> target asya_<name>, alias
# asya::<name>. Without SRCS the library is header-only (an INTERFACE target). Its public headers
# live in <its dir>/include/asya/..., and that directory is all it exports: a target sees the
# headers of the libraries it links, not the whole tree. Private headers stay beside the sources
# and are included from src/ ("envelope/json_util.h"); tools/check_layers.py keeps other
# libraries out of them.
function(asya_library)
  cmake_parse_arguments(A "" "NAME" "SRCS;DEPS;PRIVATE_DEPS" ${ARGN})
  list(FIND ASYA_LAYERS ${A_NAME} self_index)
  if(self_index EQUAL -1)
    message(FATAL_ERROR "asya_library(${A_NAME}): not in ASYA_LAYERS (cmake/AsyaLibrary.cmake)")
  endif()
  set(asya_deps "")
  foreach(dep IN LISTS A_DEPS A_PRIVATE_DEPS)
    if(dep MATCHES "^asya::(.+)$")
      set(dep_name ${CMAKE_MATCH_1})
      list(FIND ASYA_LAYERS ${dep_name} dep_index)
      if(dep_index EQUAL -1 OR NOT dep_index LESS self_index)
        message(FATAL_ERROR "asya_library(${A_NAME}): may not depend on ${dep} "
                            "(a layer above it or unknown; see ASYA_LAYERS)")
      endif()
      list(APPEND asya_deps ${dep_name})
    endif()
  endforeach()
  string(REPLACE ";" " " deps_text "${asya_deps}")
  set_property(GLOBAL APPEND PROPERTY ASYA_LIBRARY_RECORDS
    "{\"name\": \"${A_NAME}\", \"dir\": \"${CMAKE_CURRENT_SOURCE_DIR}\", \"deps\": \"${deps_text}\"}")
  if(A_SRCS)
    add_library(asya_${A_NAME} STATIC ${A_SRCS})
    # Installed headers sit under <prefix>/include (cmake/AsyaInstall.cmake).
    target_include_directories(asya_${A_NAME}
                               PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
                                      $<INSTALL_INTERFACE:include>
                               PRIVATE ${PROJECT_SOURCE_DIR}/src)
    target_compile_options(asya_${A_NAME} PRIVATE ${ASYA_WARNINGS})
    target_link_libraries(asya_${A_NAME} PUBLIC ${A_DEPS} PRIVATE ${A_PRIVATE_DEPS})
  else()
    add_library(asya_${A_NAME} INTERFACE)
    target_include_directories(asya_${A_NAME}
                               INTERFACE $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
                                         $<INSTALL_INTERFACE:include>)
    target_link_libraries(asya_${A_NAME} INTERFACE ${A_DEPS})
  endif()
  add_library(asya::${A_NAME} ALIAS asya_${A_NAME})
  # Exported (find_package(asya)) under the same name: asya::<name>.
  set_target_properties(asya_${A_NAME} PROPERTIES EXPORT_NAME ${A_NAME})
endfunction()

# Writes <build>/asya_libraries.json (name, source dir, declared asya deps of every library) for
# tools/check_layers.py. Called once, at the end of the top-level CMakeLists.txt.
function(asya_write_library_records)
  get_property(records GLOBAL PROPERTY ASYA_LIBRARY_RECORDS)
  list(JOIN records ",\n  " body)
  file(WRITE ${CMAKE_BINARY_DIR}/asya_libraries.json "[\n  ${body}\n]\n")
endfunction()

# Sanitizer builds (-fsanitize=... in CMAKE_CXX_FLAGS, e.g. the `asan` preset): every test runs
# under tools/sanitizer_run.py, which sends each process's sanitizer reports (children included) to
# build/<preset>/sanitizer/<test>/ and fails the test when there is any.
if(CMAKE_CXX_FLAGS MATCHES "-fsanitize=")
  set(ASYA_SANITIZE ON)
endif()

# asya_add_test(NAME <name> [WORKING_DIRECTORY <dir>] TIMEOUT <s> LABELS ... ENVIRONMENT ...
#               [NEEDS <target>...] COMMAND ...) -> add_test + properties, through the sanitizer
# wrapper when needed. NEEDS names the targets the test runs; without it the test needs every
# program (target asya-programs: src/bin and the tests' helper programs), which is what the
# Python suites start. Per label, target tests-<label> builds what the tests of that label need
# (asya_write_test_targets), so a sanitizer build compiles only the suites it runs.
function(asya_add_test)
  cmake_parse_arguments(A "" "NAME;WORKING_DIRECTORY;TIMEOUT" "LABELS;ENVIRONMENT;COMMAND;NEEDS"
                        ${ARGN})
  if(NOT A_NEEDS)
    set(A_NEEDS asya-programs)
  endif()
  foreach(label IN LISTS A_LABELS)
    set_property(GLOBAL APPEND PROPERTY ASYA_LABELS ${label})
    set_property(GLOBAL APPEND PROPERTY ASYA_TEST_NEEDS_${label} ${A_NEEDS})
  endforeach()
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
  target_include_directories(${A_NAME} PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/tests)
  target_compile_options(${A_NAME} PRIVATE ${ASYA_WARNINGS})
  target_link_libraries(${A_NAME} PRIVATE ${A_DEPS} asya_test_support GTest::gtest GTest::gtest_main
                        Threads::Threads)
  set_target_properties(${A_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  if(NOT A_TIMEOUT)
    set(A_TIMEOUT 300)
  endif()
  set_property(GLOBAL APPEND PROPERTY ASYA_TEST_EXECUTABLES ${A_NAME})
  asya_add_test(NAME ${A_NAME} COMMAND $<TARGET_FILE:${A_NAME}> LABELS ${A_LABELS}
    TIMEOUT ${A_TIMEOUT} NEEDS ${A_NAME}
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

# Called once, at the end of the top-level CMakeLists.txt. Target asya-programs: every executable
# under src/bin, plus the helper programs under tests/ (asya-component-queue, rmq_fault_tool:
# executables that are not gtest suites). Targets tests-<label> (tests-unit, tests-contract,
# tests-component, ...): what the tests of that label need (their NEEDS).
function(asya_write_test_targets)
  get_property(test_exes GLOBAL PROPERTY ASYA_TEST_EXECUTABLES)
  set(programs "")
  set(dirs ${PROJECT_SOURCE_DIR}/src/bin ${PROJECT_SOURCE_DIR}/tests)
  while(dirs)
    list(POP_FRONT dirs dir)
    get_property(subdirs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
    list(APPEND dirs ${subdirs})
    get_property(targets DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
    foreach(t IN LISTS targets)
      get_target_property(type ${t} TYPE)
      if(type STREQUAL "EXECUTABLE" AND NOT t IN_LIST test_exes)
        list(APPEND programs ${t})
      endif()
    endforeach()
  endwhile()
  add_custom_target(asya-programs)
  if(programs)
    add_dependencies(asya-programs ${programs})
  endif()
  get_property(labels GLOBAL PROPERTY ASYA_LABELS)
  list(REMOVE_DUPLICATES labels)
  foreach(label IN LISTS labels)
    get_property(needs GLOBAL PROPERTY ASYA_TEST_NEEDS_${label})
    list(REMOVE_DUPLICATES needs)
    add_custom_target(tests-${label})
    add_dependencies(tests-${label} ${needs})
  endforeach()
endfunction()

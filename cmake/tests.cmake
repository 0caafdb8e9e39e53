# Tests, registered with ctest: every spec file under the host, under stock
# lua5.4 with the C module, and (when ASYNCHOST_ASAN_BIN names an ASan+UBSan
# build of the host) under that build too.
find_program(BUSTED busted REQUIRED)
find_program(LUA54 lua5.4 REQUIRED)
set(ASYNCHOST_ASAN_BIN "" CACHE FILEPATH
    "asynchost built with ASYNCHOST_ASAN=ON, to run the specs under")
set(ASYNCHOST_FUZZ_BIN "" CACHE FILEPATH
    "fuzz_http built with ASYNCHOST_FUZZ=ON (clang), to run briefly")
if(ASYNCHOST_FUZZ_BIN)
  # 20 s of fuzzing the HTTP request path, on a copy of the seed corpus
  add_test(NAME fuzz:http COMMAND sh -c
    "d=$(mktemp -d) && cp ${PROJECT_SOURCE_DIR}/tests/fuzz/http/* \"$d\" && ${ASYNCHOST_FUZZ_BIN} -max_total_time=20 -print_final_stats=1 \"$d\"; rc=$?; rm -rf \"$d\"; exit $rc")
  set_tests_properties(fuzz:http PROPERTIES TIMEOUT 120)
endif()

file(GLOB AH_SPECS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/spec/*_spec.lua
     ${PROJECT_SOURCE_DIR}/spec/labs/*_spec.lua)
set(AH_SRC_LUA_PATH "${PROJECT_SOURCE_DIR}/lua/?.lua;${PROJECT_SOURCE_DIR}/lua/?/init.lua;${PROJECT_SOURCE_DIR}/?.lua")

foreach(spec IN LISTS AH_SPECS)
  get_filename_component(name ${spec} NAME_WE)
  string(REGEX REPLACE "_spec$" "" name ${name})
  if(spec MATCHES "/spec/labs/")
    set(name "labs/${name}")  # the labs' specs: host:labs/lab1...
  endif()
  add_test(NAME host:${name}
    COMMAND ${BUSTED} --lua=$<TARGET_FILE:asynchost> -o plainTerminal ${spec}
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  add_test(NAME lua5.4:${name}
    COMMAND ${BUSTED} --lua=${LUA54} -o plainTerminal ${spec}
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(host:${name} PROPERTIES TIMEOUT 300
    ENVIRONMENT "ASYNCHOST_BIN=$<TARGET_FILE:asynchost>")
  # ';' separates ENVIRONMENT entries: escape the ones of the paths
  string(REPLACE ";" "\\;" lpath "${AH_SRC_LUA_PATH};;")
  set_tests_properties(lua5.4:${name} PROPERTIES TIMEOUT 300
    ENVIRONMENT "LUA_PATH=${lpath};LUA_CPATH=${PROJECT_BINARY_DIR}/lua/?.so\\;\\;;ASYNCHOST_BIN=$<TARGET_FILE:asynchost>")
  if(ASYNCHOST_ASAN_BIN)
    add_test(NAME asan:${name}
      COMMAND ${BUSTED} --lua=${ASYNCHOST_ASAN_BIN} -o plainTerminal ${spec}
      WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
    set_tests_properties(asan:${name} PROPERTIES TIMEOUT 600
      ENVIRONMENT "ASAN_OPTIONS=detect_leaks=1:abort_on_error=0;UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1;ASYNCHOST_BIN=${ASYNCHOST_ASAN_BIN}")
  endif()
endforeach()

# The C API: each case of tests/embed_test.c is a test, here and under the
# ASan build; and the embedding example runs to its end.
set(AH_EMBED_CASES version borrowed thread cancel twohosts churn errors
    closepending ownloop)
get_filename_component(AH_ASAN_DIR "${ASYNCHOST_ASAN_BIN}" DIRECTORY)
if(NOT TARGET embed_test OR NOT TARGET embed_example)
  return()
endif()
foreach(case IN LISTS AH_EMBED_CASES)
  add_test(NAME c:embed:${case} COMMAND embed_test ${case})
  set_tests_properties(c:embed:${case} PROPERTIES TIMEOUT 120)
  if(ASYNCHOST_ASAN_BIN)
    add_test(NAME asan:embed:${case} COMMAND ${AH_ASAN_DIR}/embed_test ${case})
    set_tests_properties(asan:embed:${case} PROPERTIES TIMEOUT 300
      ENVIRONMENT "ASAN_OPTIONS=detect_leaks=1;UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
  endif()
endforeach()
add_test(NAME c:example:embed COMMAND embed_example
         ${PROJECT_SOURCE_DIR}/examples/embed/script.lua)
set_tests_properties(c:example:embed PROPERTIES TIMEOUT 60
  PASS_REGULAR_EXPRESSION "shut down cleanly")

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
  # 15 s of fuzzing the value marshalling of to_thread, built beside it
  get_filename_component(AH_FUZZ_DIR "${ASYNCHOST_FUZZ_BIN}" DIRECTORY)
  if(EXISTS ${AH_FUZZ_DIR}/fuzz_marshal)
    add_test(NAME fuzz:marshal COMMAND sh -c
      "d=$(mktemp -d) && cp ${PROJECT_SOURCE_DIR}/tests/fuzz/marshal/* \"$d\" && ${AH_FUZZ_DIR}/fuzz_marshal -max_total_time=15 -print_final_stats=1 \"$d\"; rc=$?; rm -rf \"$d\"; exit $rc")
    set_tests_properties(fuzz:marshal PROPERTIES TIMEOUT 120)
  endif()
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

# Specs that measure overlap on both cores (to_thread's CPU loops) run alone:
# with another test beside them on a 2-core machine they cannot overlap
foreach(kind IN ITEMS host lua5.4 asan)
  if(TEST ${kind}:thread)
    set_tests_properties(${kind}:thread PROPERTIES RUN_SERIAL TRUE)
  endif()
endforeach()

# The REPL's specs drive it on a pseudo-terminal with tests/ptyrun
if(TARGET ptyrun)
  foreach(kind IN ITEMS host lua5.4 asan)
    if(TEST ${kind}:repl)
      set_property(TEST ${kind}:repl APPEND PROPERTY
                   ENVIRONMENT "ASYNCHOST_PTYRUN=$<TARGET_FILE:ptyrun>")
    endif()
  endforeach()
endif()

# valgrind memcheck on three lab solutions (about 15 s; every solution:
# bash scripts/valgrind.sh, about 70 s), on this build's executable
find_program(VALGRIND valgrind)
set(AH_VALGRIND_LABS "")
foreach(lab IN ITEMS solutions/lab1/basic_async_await.lua
                     solutions/lab3/main.lua solutions/lab4/web_scraper.lua)
  if(EXISTS ${PROJECT_SOURCE_DIR}/${lab})
    list(APPEND AH_VALGRIND_LABS ${lab})
  endif()
endforeach()
if(VALGRIND AND AH_VALGRIND_LABS)
  add_test(NAME valgrind:labs
    COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/valgrind.sh ${AH_VALGRIND_LABS}
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(valgrind:labs PROPERTIES TIMEOUT 300
    ENVIRONMENT "ASYNCHOST_VALGRIND_BIN=$<TARGET_FILE:asynchost>")
endif()

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

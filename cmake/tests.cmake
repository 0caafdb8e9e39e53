# Tests, registered with ctest: every spec file under the host, under stock
# lua5.4 with the C module, and (when ASYNCHOST_ASAN_BIN names an ASan+UBSan
# build of the host) under that build too.
find_program(BUSTED busted REQUIRED)
find_program(LUA54 lua5.4 REQUIRED)
set(ASYNCHOST_ASAN_BIN "" CACHE FILEPATH
    "asynchost built with ASYNCHOST_ASAN=ON, to run the specs under")

file(GLOB AH_SPECS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/spec/*_spec.lua)
set(AH_SRC_LUA_PATH "${PROJECT_SOURCE_DIR}/lua/?.lua;${PROJECT_SOURCE_DIR}/lua/?/init.lua;${PROJECT_SOURCE_DIR}/?.lua")

foreach(spec IN LISTS AH_SPECS)
  get_filename_component(name ${spec} NAME_WE)
  string(REGEX REPLACE "_spec$" "" name ${name})
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

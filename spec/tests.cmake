# The specs run twice: under the luaio command, and under a stock lua5.4
# that loads the luaio module from the build tree.
find_program(BUSTED busted REQUIRED)
find_program(LUA54 lua5.4 REQUIRED)
file(GLOB LUAIO_SPECS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/spec/*_spec.lua)
foreach(spec ${LUAIO_SPECS})
  get_filename_component(name ${spec} NAME_WE)
  add_test(NAME host:${name} COMMAND ${CMAKE_SOURCE_DIR}/spec/run.sh
    ${CMAKE_BINARY_DIR} $<TARGET_FILE:luaio> ${spec})
  add_test(NAME lua:${name} COMMAND ${CMAKE_SOURCE_DIR}/spec/run.sh
    ${CMAKE_BINARY_DIR} ${LUA54} ${spec})
  add_test(NAME gc:${name} COMMAND ${CMAKE_SOURCE_DIR}/spec/run.sh
    ${CMAKE_BINARY_DIR} $<TARGET_FILE:luaio> ${spec} gc)
  set_tests_properties(host:${name} lua:${name} gc:${name} PROPERTIES
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR} TIMEOUT 300)
endforeach()

# C tests of the embedding API, linked against the static library.
file(GLOB LUAIO_CTESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/spec/c/*.c)
foreach(src ${LUAIO_CTESTS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(ctest_${name} ${src})
  target_link_libraries(ctest_${name} PRIVATE luaio_static)
  add_test(NAME c:${name} COMMAND ctest_${name})
endforeach()

# The C tests again under valgrind: no invalid access, nothing leaked.
find_program(VALGRIND valgrind)
if(VALGRIND)
  foreach(src ${LUAIO_CTESTS})
    get_filename_component(name ${src} NAME_WE)
    add_test(NAME valgrind:${name} COMMAND ${VALGRIND} --error-exitcode=3
      --leak-check=full --errors-for-leak-kinds=definite,indirect
      $<TARGET_FILE:ctest_${name}>)
  endforeach()
endif()

# The embedding examples run, and again under valgrind.
if(LUAIO_EXAMPLES)
  add_test(NAME example:game COMMAND ${CMAKE_SOURCE_DIR}/examples/check.sh
    game $<TARGET_FILE:example_game>)
  add_test(NAME example:tool COMMAND ${CMAKE_SOURCE_DIR}/examples/check.sh
    tool $<TARGET_FILE:example_tool>)
  add_test(NAME example:threads COMMAND $<TARGET_FILE:example_threads>)
  if(VALGRIND)
    set(VG ${VALGRIND} --error-exitcode=3 --leak-check=full
        --errors-for-leak-kinds=definite,indirect)
    add_test(NAME valgrind:game COMMAND ${CMAKE_SOURCE_DIR}/examples/check.sh
      game ${VG} $<TARGET_FILE:example_game>)
    add_test(NAME valgrind:tool COMMAND ${CMAKE_SOURCE_DIR}/examples/check.sh
      tool ${VG} $<TARGET_FILE:example_tool>)
  endif()
  add_test(NAME install:pkgconfig COMMAND ${CMAKE_SOURCE_DIR}/examples/install_check.sh
    ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR})
endif()

# Thousands of connections: under the ASan tree's leak checker (host:) and
# under valgrind, nothing leaks and nothing freed is touched.
add_test(NAME host:connections COMMAND $<TARGET_FILE:luaio>
  ${CMAKE_SOURCE_DIR}/spec/leak/connections.lua 2000)
set(connections_ok "2000 echoes of 2000, refused: ECONNREFUSED")
set_tests_properties(host:connections PROPERTIES
  PASS_REGULAR_EXPRESSION "${connections_ok}"
  FAIL_REGULAR_EXPRESSION "Sanitizer|runtime error")
if(VALGRIND)
  # The luaio command links mimalloc: valgrind must replace its malloc too.
  add_test(NAME valgrind:connections COMMAND ${VALGRIND} --error-exitcode=3
    --soname-synonyms=somalloc=libmimalloc.so*
    --leak-check=full --errors-for-leak-kinds=definite,indirect
    $<TARGET_FILE:luaio> ${CMAKE_SOURCE_DIR}/spec/leak/connections.lua 2000)
  set_tests_properties(valgrind:connections PROPERTIES
    PASS_REGULAR_EXPRESSION "${connections_ok}"
    FAIL_REGULAR_EXPRESSION "ERROR SUMMARY: [1-9]|definitely lost: [1-9]")
endif()

# The libraries' own tests and fixtures (servers started for the specs):
# spec/<name>.cmake, one per library.
file(GLOB LUAIO_SPEC_CMAKE CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/spec/*.cmake)
list(REMOVE_ITEM LUAIO_SPEC_CMAKE ${CMAKE_SOURCE_DIR}/spec/tests.cmake)
list(SORT LUAIO_SPEC_CMAKE)
foreach(f ${LUAIO_SPEC_CMAKE})
  include(${f})
endforeach()

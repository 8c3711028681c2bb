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

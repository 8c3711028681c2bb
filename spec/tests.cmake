# The specs run twice: under the luaio command, and under a stock lua5.4
# that loads the luaio module from the build tree.
find_program(BUSTED busted REQUIRED)
find_program(LUA54 lua5.4 REQUIRED)
file(GLOB LUAIO_SPECS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/spec/*_spec.lua)
set(SPEC_ENV "LUA_CPATH=${CMAKE_BINARY_DIR}/lua/?.so\;;"
             "LUA_PATH=${CMAKE_SOURCE_DIR}/spec/?.lua\;;"
             "LUAIO=$<TARGET_FILE:luaio>")
foreach(spec ${LUAIO_SPECS})
  get_filename_component(name ${spec} NAME_WE)
  add_test(NAME host:${name}
    COMMAND $<TARGET_FILE:luaio> ${BUSTED} --output=TAP ${spec})
  add_test(NAME lua:${name}
    COMMAND ${LUA54} ${BUSTED} --output=TAP ${spec})
  set_tests_properties(host:${name} lua:${name} PROPERTIES
    ENVIRONMENT "${SPEC_ENV}" WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
endforeach()

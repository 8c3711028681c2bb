# A selection of the Lua 5.4.4 test suite under the luaio command
# (spec/lua-tests/): a compatibility check with lua5.4.
add_test(NAME host:lua-tests COMMAND ${CMAKE_SOURCE_DIR}/spec/lua-tests/run.sh
  $<TARGET_FILE:luaio>)
set_tests_properties(host:lua-tests PROPERTIES TIMEOUT 300)

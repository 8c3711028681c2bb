# PostgreSQL: a server for the pg specs (spec/pg_server.sh), started before
# and stopped after them, on 127.0.0.1 and a Unix socket in its directory;
# the specs read that directory from LUAIO_PG_DIR.  Without the server
# binaries the fixture writes DIR/skip and the specs report themselves
# skipped.
set(pg_dir ${CMAKE_BINARY_DIR}/pg-fixture)
add_test(NAME pg:start COMMAND ${CMAKE_SOURCE_DIR}/spec/pg_server.sh
  start ${pg_dir})
add_test(NAME pg:stop COMMAND ${CMAKE_SOURCE_DIR}/spec/pg_server.sh
  stop ${pg_dir})
set_tests_properties(pg:start PROPERTIES FIXTURES_SETUP pg)
set_tests_properties(pg:stop PROPERTIES FIXTURES_CLEANUP pg)
file(GLOB pg_specs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/spec/pg_*_spec.lua)
foreach(spec ${pg_specs})
  get_filename_component(name ${spec} NAME_WE)
  set_tests_properties(host:${name} lua:${name} gc:${name} PROPERTIES
    FIXTURES_REQUIRED pg RESOURCE_LOCK pg
    ENVIRONMENT "LUAIO_PG_DIR=${pg_dir}")
endforeach()

# Every path once under the ASan tree's leak checker (host:) and valgrind.
add_test(NAME host:pg_leak COMMAND $<TARGET_FILE:luaio>
  ${CMAKE_SOURCE_DIR}/spec/pg_leak.lua)
set_tests_properties(host:pg_leak PROPERTIES PASS_REGULAR_EXPRESSION "pg ok"
  FAIL_REGULAR_EXPRESSION "Sanitizer|runtime error"
  FIXTURES_REQUIRED pg RESOURCE_LOCK pg ENVIRONMENT "LUAIO_PG_DIR=${pg_dir}")
if(VALGRIND)
  add_test(NAME valgrind:pg_leak COMMAND ${VALGRIND} --error-exitcode=3
    --soname-synonyms=somalloc=libmimalloc.so*
    --leak-check=full --errors-for-leak-kinds=definite,indirect
    $<TARGET_FILE:luaio> ${CMAKE_SOURCE_DIR}/spec/pg_leak.lua)
  set_tests_properties(valgrind:pg_leak PROPERTIES
    PASS_REGULAR_EXPRESSION "pg ok"
    FAIL_REGULAR_EXPRESSION "ERROR SUMMARY: [1-9]|definitely lost: [1-9]"
    FIXTURES_REQUIRED pg RESOURCE_LOCK pg ENVIRONMENT "LUAIO_PG_DIR=${pg_dir}")
endif()

# The HTTP server under load: thousands of requests, pipelined, chunked,
# bad and abandoned, with the leak checker of the ASan tree (host:) and
# under valgrind.
add_test(NAME host:http_server_load COMMAND $<TARGET_FILE:luaio>
  ${CMAKE_SOURCE_DIR}/spec/http_server_load.lua 10000)
set(http_load_ok "9800 answers 200, 100 bad input answers, 900 clients")
set_tests_properties(host:http_server_load PROPERTIES
  PASS_REGULAR_EXPRESSION "${http_load_ok}"
  FAIL_REGULAR_EXPRESSION "Sanitizer|runtime error" TIMEOUT 300)
if(VALGRIND)
  add_test(NAME valgrind:http_server_load COMMAND ${VALGRIND} --error-exitcode=3
    --soname-synonyms=somalloc=libmimalloc.so*
    --leak-check=full --errors-for-leak-kinds=definite,indirect
    $<TARGET_FILE:luaio> ${CMAKE_SOURCE_DIR}/spec/http_server_load.lua 2000)
  set_tests_properties(valgrind:http_server_load PROPERTIES
    PASS_REGULAR_EXPRESSION "1960 answers 200, 20 bad input answers, 180 clients"
    FAIL_REGULAR_EXPRESSION "ERROR SUMMARY: [1-9]|definitely lost: [1-9]"
    TIMEOUT 300)
endif()

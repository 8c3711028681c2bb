# TLS under load (spec/leak/tls.lua): in the ASan tree (host:) with its
# leak checker, and under valgrind.
add_test(NAME host:tls_load COMMAND $<TARGET_FILE:luaio>
  ${CMAKE_SOURCE_DIR}/spec/leak/tls.lua 1000)
set_tests_properties(host:tls_load PROPERTIES
  PASS_REGULAR_EXPRESSION "500 echoes, 250 https, 250 wss of 1000; 20 untrusted"
  FAIL_REGULAR_EXPRESSION "Sanitizer|runtime error" TIMEOUT 300)
if(VALGRIND)
  add_test(NAME valgrind:tls_load COMMAND ${VALGRIND} --error-exitcode=3
    --soname-synonyms=somalloc=libmimalloc.so*
    --leak-check=full --errors-for-leak-kinds=definite,indirect
    $<TARGET_FILE:luaio> ${CMAKE_SOURCE_DIR}/spec/leak/tls.lua 200)
  set_tests_properties(valgrind:tls_load PROPERTIES
    PASS_REGULAR_EXPRESSION "100 echoes, 50 https, 50 wss of 200; 20 untrusted"
    FAIL_REGULAR_EXPRESSION "ERROR SUMMARY: [1-9]|definitely lost: [1-9]"
    TIMEOUT 600)
endif()

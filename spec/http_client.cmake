# The HTTP client's specs talk to spec/http_test_server.py (HTTP and three
# HTTPS servers with a test CA made at test time), started once for them
# by a fixture.
find_program(PYTHON3 python3)
find_program(OPENSSL openssl)
if(PYTHON3 AND OPENSSL)
  set(http_dir ${CMAKE_BINARY_DIR}/http_client_peer)
  add_test(NAME http_client:start COMMAND
    ${CMAKE_SOURCE_DIR}/spec/http_client_fixture.sh start ${http_dir})
  add_test(NAME http_client:stop COMMAND
    ${CMAKE_SOURCE_DIR}/spec/http_client_fixture.sh stop ${http_dir})
  set_tests_properties(http_client:start PROPERTIES
    FIXTURES_SETUP http_peer)
  set_tests_properties(http_client:stop PROPERTIES
    FIXTURES_CLEANUP http_peer)
  foreach(spec http_client_spec http_client_scripts_spec)
    foreach(kind host lua gc)
      if(TEST ${kind}:${spec})
        set_tests_properties(${kind}:${spec} PROPERTIES
          FIXTURES_REQUIRED http_peer
          ENVIRONMENT "LUAIO_HTTP_PEER=${http_dir}")
      endif()
    endforeach()
  endforeach()
endif()

# Shutdown with transfers in flight: nothing leaks, nothing freed is used.
if(PYTHON3 AND OPENSSL)
  set(http_leak_ok "5 requests, leaving transfers in flight")
  add_test(NAME host:http_client_leak COMMAND $<TARGET_FILE:luaio>
    ${CMAKE_SOURCE_DIR}/spec/leak/http_client.lua)
  set(http_leak_tests host:http_client_leak)
  if(VALGRIND)
    add_test(NAME valgrind:http_client_leak COMMAND ${VALGRIND}
      --error-exitcode=3 --soname-synonyms=somalloc=libmimalloc.so*
      --leak-check=full --errors-for-leak-kinds=definite,indirect
      $<TARGET_FILE:luaio> ${CMAKE_SOURCE_DIR}/spec/leak/http_client.lua)
    list(APPEND http_leak_tests valgrind:http_client_leak)
  endif()
  set_tests_properties(${http_leak_tests} PROPERTIES
    FIXTURES_REQUIRED http_peer
    ENVIRONMENT "LUAIO_HTTP_PEER=${http_dir}"
    PASS_REGULAR_EXPRESSION "${http_leak_ok}"
    FAIL_REGULAR_EXPRESSION "Sanitizer|runtime error|ERROR SUMMARY: [1-9]|definitely lost: [1-9]|indirectly lost: [1-9]")
endif()

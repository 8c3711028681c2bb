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

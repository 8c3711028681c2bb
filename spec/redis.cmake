# Redis: a redis-server for the specs (spec/redis_server.sh), started before
# and stopped after them; the specs read its directory from LUAIO_REDIS_DIR.
find_program(REDIS_SERVER redis-server)
if(REDIS_SERVER)
  set(redis_dir ${CMAKE_BINARY_DIR}/redis-fixture)
  add_test(NAME redis:start COMMAND ${CMAKE_SOURCE_DIR}/spec/redis_server.sh
    start ${redis_dir})
  add_test(NAME redis:stop COMMAND ${CMAKE_SOURCE_DIR}/spec/redis_server.sh
    stop ${redis_dir})
  set_tests_properties(redis:start PROPERTIES FIXTURES_SETUP redis)
  set_tests_properties(redis:stop PROPERTIES FIXTURES_CLEANUP redis)
  file(GLOB redis_specs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/spec/redis_*_spec.lua)
  foreach(spec ${redis_specs})
    get_filename_component(name ${spec} NAME_WE)
    set_tests_properties(host:${name} lua:${name} gc:${name} PROPERTIES
      FIXTURES_REQUIRED redis RESOURCE_LOCK redis
      ENVIRONMENT "LUAIO_REDIS_DIR=${redis_dir}")
  endforeach()
endif()

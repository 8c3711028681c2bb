# The module under a plain Lua state is unloaded by lua_close, while a
# thread it let go may still run (spec/unload/module_unload.c).
pkg_check_modules(LUA54 REQUIRED IMPORTED_TARGET lua5.4)
add_executable(module_unload ${CMAKE_SOURCE_DIR}/spec/unload/module_unload.c)
target_link_libraries(module_unload PRIVATE PkgConfig::LUA54)
add_dependencies(module_unload luaio_module)
add_test(NAME lua:module_unload
  COMMAND module_unload $<TARGET_FILE_DIR:luaio_module>)

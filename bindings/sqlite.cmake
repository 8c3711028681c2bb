# SQLite (libsqlite3-dev): luaio._sqlite, the C half of luaio.sqlite.
pkg_check_modules(SQLITE3 REQUIRED IMPORTED_TARGET sqlite3)
list(APPEND LUAIO_DEPS PkgConfig::SQLITE3)
list(APPEND LUAIO_C_MODULES sqlite)
# A static libluaio.a needs it too (luaio.pc's Requires.private).
string(APPEND LUAIO_PC_REQUIRES_PRIVATE " sqlite3")

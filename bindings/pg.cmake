# PostgreSQL (libpq-dev, libpq 15): luaio._pg, the C half of luaio.pg
# (bindings/pg.c, bindings/pg_values.c).
pkg_check_modules(LIBPQ REQUIRED IMPORTED_TARGET libpq)
list(APPEND LUAIO_DEPS PkgConfig::LIBPQ)
list(APPEND LUAIO_C_MODULES pg)
# A static libluaio.a needs it too (luaio.pc's Requires.private).
string(APPEND LUAIO_PC_REQUIRES_PRIVATE " libpq")

# PostgreSQL (libpq-dev, libpq 15): luaio._pg, the C half of luaio.pg
# (bindings/pg.c, bindings/pg_values.c).
pkg_check_modules(LIBPQ REQUIRED IMPORTED_TARGET libpq)
list(APPEND LUAIO_DEPS PkgConfig::LIBPQ)
list(APPEND LUAIO_C_MODULES pg)
# A static link of libluaio.a needs libpq too (luaio.pc's Libs.private, as
# -lpq: libpq.pc's own private libraries, -lpgcommon -lpgport, come with
# the server's development files only; the shared libpq brings what it
# needs).
string(APPEND LUAIO_PC_LIBS_PRIVATE " -lpq")

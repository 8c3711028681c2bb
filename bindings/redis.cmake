# Redis (libhiredis-dev, hiredis 0.14): luaio._redis, the C half of
# luaio.redis.
pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)
list(APPEND LUAIO_DEPS PkgConfig::HIREDIS)
list(APPEND LUAIO_C_MODULES redis)
# A static libluaio.a needs it too (luaio.pc's Requires.private).
string(APPEND LUAIO_PC_REQUIRES_PRIVATE " hiredis")

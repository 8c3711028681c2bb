# libcurl: the HTTP client (bindings/curl.c, luaio._curl; the policy is
# lua/luaio/http/client.lua).
pkg_check_modules(CURL REQUIRED IMPORTED_TARGET libcurl)
find_package(Threads REQUIRED)
list(APPEND LUAIO_DEPS PkgConfig::CURL Threads::Threads)
list(APPEND LUAIO_C_MODULES curl)
# A static link of libluaio.a needs libcurl too (luaio.pc's Libs.private;
# the shared libcurl brings its own dependencies).
string(APPEND LUAIO_PC_LIBS_PRIVATE " -lcurl -lpthread")

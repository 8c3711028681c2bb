# WebSocket framing (bindings/ws.c) on wslay; the accept key's SHA-1 from
# OpenSSL's libcrypto.
find_package(wslay REQUIRED)
find_package(OpenSSL REQUIRED)
list(APPEND LUAIO_DEPS wslay OpenSSL::Crypto)
list(APPEND LUAIO_C_MODULES ws)
string(APPEND LUAIO_PC_LIBS_PRIVATE " -lwslay -lcrypto")

# TLS streams (bindings/tls.c): a layer of the stream object on OpenSSL 3's
# libssl, over memory BIOs.
find_package(OpenSSL 3 REQUIRED)
list(APPEND LUAIO_DEPS OpenSSL::SSL OpenSSL::Crypto)
string(APPEND LUAIO_PC_LIBS_PRIVATE " -lssl -lcrypto")

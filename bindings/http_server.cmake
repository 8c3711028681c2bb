# The HTTP/1.1 server's framing (bindings/http_server.c) on http_parser,
# which Debian ships without a pkg-config file.
find_path(HTTP_PARSER_INCLUDE_DIR http_parser.h REQUIRED)
find_library(HTTP_PARSER_LIBRARY http_parser REQUIRED)
include_directories(${HTTP_PARSER_INCLUDE_DIR})
list(APPEND LUAIO_DEPS ${HTTP_PARSER_LIBRARY})
list(APPEND LUAIO_C_MODULES http_server)
string(APPEND LUAIO_PC_LIBS_PRIVATE " -lhttp_parser")

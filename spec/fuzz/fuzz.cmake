# The libFuzzer harness of the HTTP server's request parsing
# (spec/fuzz/http_request_fuzz.c), built with clang when LUAIO_FUZZ is on:
#   CC=clang cmake -S . -B build-fuzz -DLUAIO_FUZZ=ON
#   cmake --build build-fuzz --target http_request_fuzz
#   build-fuzz/http_request_fuzz spec/fuzz/corpus/http_request
# (.ci/stages/40-http-fuzz.sh runs it for 60 s).
if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "LUAIO_FUZZ needs clang (CC=clang)")
endif()
add_executable(http_request_fuzz ${CMAKE_SOURCE_DIR}/spec/fuzz/http_request_fuzz.c)
target_include_directories(http_request_fuzz PRIVATE ${CMAKE_SOURCE_DIR}/host
  ${CMAKE_SOURCE_DIR}/bindings ${HTTP_PARSER_INCLUDE_DIR})
target_compile_options(http_request_fuzz PRIVATE -g -O1
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
  -fno-omit-frame-pointer)
target_link_options(http_request_fuzz PRIVATE
  -fsanitize=fuzzer,address,undefined)
target_link_libraries(http_request_fuzz PRIVATE PkgConfig::LUA PkgConfig::UV
  ${HTTP_PARSER_LIBRARY})

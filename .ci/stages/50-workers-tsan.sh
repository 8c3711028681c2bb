#!/usr/bin/env bash
# The worker specs under ThreadSanitizer.  Specs tagged #spin are left out:
# ThreadSanitizer delays a signal until the thread calls an intercepted
# function, so a pure Lua loop in the (uninstrumented) Lua library never
# sees the cancellation signal there.
set -euo pipefail
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DLUAIO_MIMALLOC=OFF \
  -DLUAIO_EXAMPLES=OFF -DLUAIO_TESTS=OFF "-DCMAKE_C_FLAGS=-fsanitize=thread -O1" \
  "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread" \
  "-DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread" \
  "-DCMAKE_MODULE_LINKER_FLAGS=-fsanitize=thread" >/dev/null
cmake --build build-tsan -j"$(nproc)" --target luaio >/dev/null
export TSAN_OPTIONS="suppressions=$PWD/.ci/tsan.supp halt_on_error=1 exitcode=66"
export LUA_CPATH="$PWD/build-tsan/lua/?.so;;" LUA_PATH="$PWD/spec/?.lua;;"
export LUAIO="$PWD/build-tsan/luaio" LUAIO_SPEC_SCALE=0.1
for spec in spec/worker_spec.lua spec/worker_*_spec.lua; do
  echo "-- $spec"
  build-tsan/luaio "$(command -v busted)" --output=TAP --exclude-tags=spin \
    "$spec"
done

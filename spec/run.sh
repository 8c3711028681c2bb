#!/bin/sh
# spec/run.sh BUILD_DIR INTERPRETER SPEC [gc]: run one busted spec file
# under the luaio command or a stock lua5.4 that loads the module from
# BUILD_DIR; with "gc", the collector runs without pause, so anything
# collected while still in use shows up.
build=$1 interp=$2 spec=$3
here=$(cd "$(dirname "$0")" && pwd)
export LUA_CPATH="$build/lua/?.so;;" LUA_PATH="$here/?.lua;;"
export LUAIO="$build/luaio"
if [ "$4" = gc ]; then
  export LUAIO_SPEC_SCALE=0.05
  exec "$interp" -e 'collectgarbage("incremental", 100, 400)' \
    "$(command -v busted)" --output=TAP "$spec"
fi
exec "$interp" "$(command -v busted)" --output=TAP "$spec"

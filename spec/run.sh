#!/bin/sh
# spec/run.sh BUILD_DIR INTERPRETER SPEC: run one busted spec file under the
# luaio command or a stock lua5.4 that loads the module from BUILD_DIR.
build=$1 interp=$2 spec=$3
here=$(cd "$(dirname "$0")" && pwd)
LUA_CPATH="$build/lua/?.so;;" LUA_PATH="$here/?.lua;;" LUAIO="$build/luaio" \
  exec "$interp" "$(command -v busted)" --output=TAP "$spec"

#!/bin/sh
# examples/install_check.sh SOURCE BUILD: install into a temporary prefix and
# build an embedding program against it with pkg-config, static and shared.
set -eu
src=$1 build=$2
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" > /dev/null
for f in bin/luaio include/luaio.h lib/libluaio.a lib/libluaio.so \
    lib/pkgconfig/luaio.pc lib/lua/5.4/luaio.so; do
  [ -e "$prefix/$f" ] || { echo "not installed: $f"; exit 1; }
done
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
# The .pc file was written for the build's prefix; point it at this one.
sed -i "s|^prefix=.*|prefix=$prefix|" "$prefix/lib/pkgconfig/luaio.pc"
cc -o "$prefix/tool-shared" "$src/examples/tool.c" \
  $(pkg-config --cflags --libs luaio)
cc -o "$prefix/tool-static" "$src/examples/tool.c" \
  $(pkg-config --cflags luaio) "$prefix/lib/libluaio.a" \
  -llua5.4-cjson $(pkg-config --libs lua5.4 libuv) -lm \
  $(sed -n 's/^Libs.private: *//p' "$PKG_CONFIG_PATH/luaio.pc")
printf 'print(checksum("%s"):await())\n' "$src/LICENSE" > "$prefix/s.lua"
a=$(LD_LIBRARY_PATH="$prefix/lib" "$prefix/tool-shared" "$prefix/s.lua")
b=$("$prefix/tool-static" "$prefix/s.lua")
[ -n "$a" ] && [ "$a" = "$b" ] || { echo "shared '$a' static '$b'"; exit 1; }
echo "installed tree builds and runs: checksum $a"

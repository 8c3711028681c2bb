#!/bin/sh
# examples/install_check.sh SOURCE BUILD: install into a temporary prefix,
# move the installed tree (luaio.pc is relocatable), and build an embedding
# program against it with pkg-config: shared (found through -Wl,-rpath and
# through LD_LIBRARY_PATH) and static.
set -eu
src=$1 build=$2
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
cmake --install "$build" --prefix "$root/first" > /dev/null
mv "$root/first" "$root/moved"
prefix=$root/moved
for f in bin/luaio include/luaio.h lib/libluaio.a lib/libluaio.so \
    lib/pkgconfig/luaio.pc lib/lua/5.4/luaio.so; do
  [ -e "$prefix/$f" ] || { echo "not installed: $f"; exit 1; }
done
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
cc -o "$prefix/tool-shared" "$src/examples/tool.c" \
  $(pkg-config --cflags --libs luaio)
cc -o "$prefix/tool-rpath" "$src/examples/tool.c" \
  $(pkg-config --cflags --libs luaio) \
  -Wl,-rpath,"$(pkg-config --variable=libdir luaio)"
cc -o "$prefix/tool-static" "$src/examples/tool.c" \
  $(pkg-config --cflags luaio) "$prefix/lib/libluaio.a" \
  $(pkg-config --static --libs luaio | sed 's/-lluaio / /')
printf 'print(checksum("%s"):await())\n' "$src/LICENSE" > "$prefix/s.lua"
a=$(LD_LIBRARY_PATH="$prefix/lib" "$prefix/tool-shared" "$prefix/s.lua")
r=$("$prefix/tool-rpath" "$prefix/s.lua")
b=$("$prefix/tool-static" "$prefix/s.lua")
[ -n "$a" ] && [ "$a" = "$b" ] && [ "$a" = "$r" ] ||
  { echo "shared '$a' rpath '$r' static '$b'"; exit 1; }
echo "installed tree builds and runs: checksum $a"

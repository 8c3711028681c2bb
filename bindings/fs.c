/*
** fs.c
*/

#include "internal.h"

void luaio__fs_open(lua_State *L, luaio *h) {
  (void)L;
  (void)h;
}

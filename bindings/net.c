/*
** net.c
*/

#include "internal.h"

void luaio__net_open(lua_State *L, luaio *h) {
  (void)L;
  (void)h;
}

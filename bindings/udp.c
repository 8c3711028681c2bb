/*
** udp.c
*/

#include "internal.h"

void luaio__udp_open(lua_State *L, luaio *h) {
  (void)L;
  (void)h;
}

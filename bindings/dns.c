/*
** dns.c
*/

#include "internal.h"

void luaio__dns_open(lua_State *L, luaio *h) {
  (void)L;
  (void)h;
}

/*
** signal.c
*/

#include "internal.h"

void luaio__signal_open(lua_State *L, luaio *h) {
  (void)L;
  (void)h;
}

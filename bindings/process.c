/*
** process.c
*/

#include "internal.h"

void luaio__process_open(lua_State *L, luaio *h) {
  (void)L;
  (void)h;
}

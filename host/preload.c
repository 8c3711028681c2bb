/*
** preload.c: the Lua modules of lua/, embedded at build time
** (lua/embed.cmake writes luaio__lua_files).  luaopen_luaio puts a loader
** for each in package.preload, so `require "luaio.patterns"` needs no Lua
** path; each also has its own luaopen_ function, which stock Lua's
** all-in-one C loader finds in luaio.so when the submodule is required
** before luaio itself.  The bindings' C modules (luaio._x, the C half of
** a library whose policy is Lua) go in package.preload the same way.
*/

#include <string.h>

#include "internal.h"

/* Compile and run embedded file i as require would: with the module name
   (and the chunk name in place of a file name); its result. */
int luaio__lua_file_open(lua_State *L, int i) {
  const luaio__lua_file *f = &luaio__lua_files[i];
  if (luaL_loadbuffer(L, f->text, f->size, f->chunkname) != LUA_OK)
    return lua_error(L);
  lua_pushstring(L, f->name);
  lua_pushstring(L, f->chunkname + 1);
  lua_call(L, 2, 1);
  return 1;
}

/* The preload loader: upvalue 1 is the file's index. */
static int load(lua_State *L) {
  int i = (int)lua_tointeger(L, lua_upvalueindex(1));
  lua_settop(L, 0);
  return luaio__lua_file_open(L, i);
}

void luaio__preload_open(lua_State *L) {
  int i;
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  for (i = 0; luaio__lua_files[i].name != NULL; i++) {
    lua_pushinteger(L, i);
    lua_pushcclosure(L, load, 1);
    lua_setfield(L, -2, luaio__lua_files[i].name);
  }
  for (i = 0; luaio__c_modules[i].name != NULL; i++) {
    lua_pushcfunction(L, luaio__c_modules[i].func);
    lua_setfield(L, -2, luaio__c_modules[i].name);
  }
  lua_pop(L, 1);
}

/*
** json.c: aio.json, lua-cjson underneath.
**
** luaio keeps its own cjson instance (cjson.new()), so its settings never
** change a script's own `require "cjson"`.  The settings are strict:
** NaN and infinities are refused on encode and on decode, hex numbers are
** refused on decode, and nesting is limited to MAX_DEPTH levels both ways,
** which also turns a table that contains itself into an error.  Errors are
** cjson's own messages, raised as strings.
*/

#include <math.h>
#include <stdarg.h>

#include "internal.h"
#include "lua-cjson.h"

#define MAX_DEPTH 256

/* Upvalues of encode and decode: the host, then cjson's function. */

/* Call cjson's setting `name` on the instance at idx with its arguments. */
static void setting(lua_State *L, int idx, const char *name, int nargs, ...) {
  va_list ap;
  int i;
  lua_getfield(L, idx, name);
  va_start(ap, nargs);
  for (i = 0; i < nargs; i++) {
    int v = va_arg(ap, int);
    if (v < 0)
      lua_pushboolean(L, v == -1);
    else
      lua_pushinteger(L, v);
  }
  va_end(ap);
  lua_call(L, nargs, 0);
}

/* Replace integral floats in the decoded tree at idx by integers: JSON
   has one kind of number, and Lua 5.4 code expects 1, not 1.0.  The tree
   is at most MAX_DEPTH deep. */
static void integers(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  luaL_checkstack(L, 4, "json.decode");
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -1) == LUA_TTABLE)
      integers(L, -1);
    else if (lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1)) {
      lua_Number n = lua_tonumber(L, -1);
      if (n == floor(n) && fabs(n) <= 9007199254740992.0) {
        lua_pushvalue(L, -2);
        lua_pushinteger(L, (lua_Integer)n);
        lua_rawset(L, idx); /* an existing key: next stays valid */
      }
    }
    lua_pop(L, 1);
  }
}

/* json.decode(s) -> value; raises cjson's message on invalid JSON */
static int json_decode(lua_State *L) {
  luaL_checkstring(L, 1);
  lua_settop(L, 1);
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_insert(L, 1);
  lua_call(L, 1, 1);
  if (lua_type(L, 1) == LUA_TTABLE)
    integers(L, 1);
  else if (lua_type(L, 1) == LUA_TNUMBER && !lua_isinteger(L, 1)) {
    lua_Number n = lua_tonumber(L, 1);
    if (n == floor(n) && fabs(n) <= 9007199254740992.0)
      lua_pushinteger(L, (lua_Integer)n);
  }
  return 1;
}

/* json.encode(v) -> string; raises on NaN, cycles, functions… */
static int json_encode(lua_State *L) {
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_insert(L, 1);
  lua_call(L, 1, 1);
  return 1;
}

void luaio__json_open(lua_State *L, luaio *h) {
  int inst;
  lua_pushcfunction(L, luaopen_cjson);
  lua_call(L, 0, 1);
  lua_getfield(L, -1, "new");
  lua_call(L, 0, 1);
  lua_remove(L, -2);
  inst = lua_gettop(L);
  setting(L, inst, "encode_invalid_numbers", 1, -2);
  setting(L, inst, "decode_invalid_numbers", 1, -2);
  setting(L, inst, "encode_max_depth", 1, MAX_DEPTH);
  setting(L, inst, "decode_max_depth", 1, MAX_DEPTH);
  lua_createtable(L, 0, 3);
  lua_pushlightuserdata(L, h);
  lua_getfield(L, inst, "encode");
  lua_pushcclosure(L, json_encode, 2);
  lua_setfield(L, -2, "encode");
  lua_pushlightuserdata(L, h);
  lua_getfield(L, inst, "decode");
  lua_pushcclosure(L, json_decode, 2);
  lua_setfield(L, -2, "decode");
  lua_getfield(L, inst, "null");
  lua_pushvalue(L, -1);
  lua_setfield(L, -5, "null"); /* aio.null: SQL NULL too (API.md) */
  lua_setfield(L, -2, "null");
  lua_setfield(L, -3, "json");
  lua_pop(L, 1);
}

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

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

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
static int marked(lua_State *L, int idx);

static void integers(lua_State *L, int idx, int rewritten) {
  idx = lua_absindex(L, idx);
  luaL_checkstack(L, 4, "json.decode");
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -1) == LUA_TTABLE)
      integers(L, -1, rewritten);
    else if (rewritten && lua_type(L, -1) == LUA_TSTRING) {
      if (marked(L, -1)) {
        lua_pushvalue(L, -3);
        lua_insert(L, -2);
        lua_rawset(L, idx); /* an existing key: next stays valid */
      }
    } else if (lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1)) {
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

/* cjson reads every number with strtod: integers past 2^53 would be
   rounded and a number past the range of a double would become inf.  So
   the number tokens are looked at first: out of range raises, and an
   integer past 2^53 that fits a Lua integer is put in as a string made
   of MARK, its digits and MARK, which `integers` turns back into it.
   Outside strings, JSON has '-' and digits only in numbers. */
#define MARK "\x01luaio-json-int\x01"
#define EXACT 9007199254740992LL /* 2^53 */

static int number_char(char c) {
  return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' ||
         c == 'e' || c == 'E';
}

/* 1 if the text at idx needs rewriting (then the rewritten text is
   pushed), 0 if cjson may read it as it is; raises on a number out of
   range. */
static int exact_numbers(lua_State *L, int idx) {
  size_t len, i = 0, from = 0;
  const char *s = lua_tolstring(L, idx, &len);
  int big = 0;
  luaL_Buffer b;
  while (i < len) {
    size_t j;
    char tok[64];
    int integral = 1;
    if (s[i] == '"') { /* skip the string */
      for (i++; i < len && s[i] != '"'; i++)
        if (s[i] == '\\') i++;
      i++;
      continue;
    }
    if (s[i] != '-' && (s[i] < '0' || s[i] > '9')) {
      i++;
      continue;
    }
    for (j = i; j < len && number_char(s[j]); j++)
      if (s[j] == '.' || s[j] == 'e' || s[j] == 'E') integral = 0;
    if (j - i >= sizeof tok) { /* long */
      char *copy;
      double d;
      if (integral)
        luaL_error(L, "integer out of range at character %d", (int)i + 1);
      if ((copy = malloc(j - i + 1)) == NULL)
        luaL_error(L, "not enough memory");
      memcpy(copy, s + i, j - i);
      copy[j - i] = '\0';
      d = strtod(copy, NULL);
      free(copy);
      if (isinf(d))
        luaL_error(L, "number out of range at character %d", (int)i + 1);
      i = j;
      continue;
    }
    memcpy(tok, s + i, j - i);
    tok[j - i] = '\0';
    if (integral) {
      char *end;
      long long v;
      errno = 0;
      v = strtoll(tok, &end, 10);
      if (*end == '\0' && errno == ERANGE)
        luaL_error(L, "integer out of range at character %d", (int)i + 1);
      if (*end == '\0' && (v > EXACT || v < -EXACT)) {
        if (!big) luaL_buffinit(L, &b);
        big = 1;
        luaL_addlstring(&b, s + from, i - from);
        luaL_addstring(&b, "\"" MARK);
        luaL_addstring(&b, tok);
        luaL_addstring(&b, MARK "\"");
        from = j;
      }
    } else {
      char *end;
      double d = strtod(tok, &end);
      if (*end == '\0' && isinf(d))
        luaL_error(L, "number out of range at character %d", (int)i + 1);
    }
    i = j;
  }
  if (!big) return 0;
  luaL_addlstring(&b, s + from, len - from);
  luaL_pushresult(&b);
  return 1;
}

/* The integer a marked string at idx stands for, pushed; 0 if it is no
   marked string. */
static int marked(lua_State *L, int idx) {
  size_t len, m = sizeof MARK - 1;
  const char *s = lua_tolstring(L, idx, &len);
  if (len <= 2 * m || memcmp(s, MARK, m) != 0 ||
      memcmp(s + len - m, MARK, m) != 0)
    return 0;
  lua_pushinteger(L, (lua_Integer)strtoll(s + m, NULL, 10));
  return 1;
}

/* json.decode(s) -> value; raises cjson's message on invalid JSON */
static int json_decode(lua_State *L) {
  int rewritten;
  luaL_checkstring(L, 1);
  lua_settop(L, 1);
  rewritten = exact_numbers(L, 1);
  if (rewritten) lua_replace(L, 1);
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_insert(L, 1);
  lua_call(L, 1, 1);
  if (rewritten && lua_type(L, 1) == LUA_TSTRING && marked(L, 1)) return 1;
  if (lua_type(L, 1) == LUA_TTABLE)
    integers(L, 1, rewritten);
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

/*
** error.c: luaio's error objects.
**
** An error made by luaio is a table {type = "TimeoutError", message = …,
** traceback = …} with a shared metatable; tostring gives "type: message".
** A CancelledError also records the scope it belongs to, so the scope that
** caused it is the one that catches it.
*/

#include <stdarg.h>
#include <string.h>

#include "internal.h"

/* The registry key of the errors' metatable. */
static const char errkey = 'e';

/* err:__tostring() -> "type: message" */
static int error_tostring(lua_State *L) {
  lua_getfield(L, 1, "type");
  lua_getfield(L, 1, "message");
  if (lua_isstring(L, -1))
    lua_pushfstring(L, "%s: %s", luaL_optstring(L, -2, "Error"),
                    lua_tostring(L, -1));
  else
    lua_pushstring(L, luaL_optstring(L, -2, "Error"));
  return 1;
}

#define LEVELS1 10 /* frames shown before the gap in a long traceback */
#define LEVELS2 11 /* and after it */

/* The name of the function of frame ar, as luaL_traceback gives it when it
   finds no global name ("function 'print'" for a global). */
static void push_funcname(lua_State *L, lua_Debug *ar) {
  if (strcmp(ar->namewhat, "global") == 0)
    lua_pushfstring(L, "function '%s'", ar->name);
  else if (*ar->namewhat != '\0')
    lua_pushfstring(L, "%s '%s'", ar->namewhat, ar->name);
  else if (*ar->what == 'm')
    lua_pushliteral(L, "main chunk");
  else if (*ar->what != 'C')
    lua_pushfstring(L, "function <%s:%d>", ar->short_src, ar->linedefined);
  else
    lua_pushliteral(L, "?");
}

/* The first level past L's stack.  lua_getstack walks the frames up to its
   level, so the levels are probed by doubling and then halving, as
   lauxlib does: a stack overflow's 200,000 frames stay cheap. */
static int past_last_level(lua_State *L) {
  lua_Debug ar;
  int known = 0, past = 1; /* level `known` exists (0: the running one) */
  while (lua_getstack(L, past, &ar)) {
    known = past;
    past *= 2;
  }
  while (past - known > 1) {
    int m = known + (past - known) / 2;
    if (lua_getstack(L, m, &ar))
      known = m;
    else
      past = m;
  }
  return past;
}

/* luaL_traceback's text for L's stack from `level`, after msg if not NULL,
   but without its search of package.loaded for a global name of every
   frame's function, which costs more than all the rest of a failing task
   (185,000 instructions with only the standard libraries loaded): a
   function is named as the calling code names it.  The bottom frame is
   left out when it is an unnamed C function (a task's task_main). */
void luaio__traceback(lua_State *L, const char *msg, int level) {
  luaio__traceback_of(L, L, msg, level);
}

/* The same for the stack of L1 (a suspended task's thread), pushed on L. */
void luaio__traceback_of(lua_State *L, lua_State *L1, const char *msg,
                         int level) {
  luaL_Buffer b;
  lua_Debug ar;
  int last = past_last_level(L1), first = level;
  if (last > first && lua_getstack(L1, last - 1, &ar) &&
      lua_getinfo(L1, "Sn", &ar) && *ar.what == 'C' && ar.name == NULL)
    last--;
  luaL_buffinit(L, &b);
  if (msg != NULL) {
    luaL_addstring(&b, msg);
    luaL_addchar(&b, '\n');
  }
  luaL_addstring(&b, "stack traceback:");
  for (; level < last && lua_getstack(L1, level, &ar); level++) {
    if (last - first > LEVELS1 + LEVELS2 + 1 && level == first + LEVELS1) {
      lua_pushfstring(L, "\n\t...\t(skipping %d levels)",
                      last - first - LEVELS1 - LEVELS2);
      luaL_addvalue(&b);
      level = last - LEVELS2 - 1;
      continue;
    }
    lua_getinfo(L1, "Slnt", &ar);
    if (ar.currentline <= 0)
      lua_pushfstring(L, "\n\t%s: in ", ar.short_src);
    else
      lua_pushfstring(L, "\n\t%s:%d: in ", ar.short_src, ar.currentline);
    luaL_addvalue(&b);
    push_funcname(L, &ar);
    luaL_addvalue(&b);
    if (ar.istailcall) luaL_addstring(&b, "\n\t(...tail calls...)");
  }
  luaL_pushresult(&b);
}

void luaio__error_push(lua_State *L, const char *type, const char *msg) {
  lua_createtable(L, 0, 4);
  lua_pushstring(L, type);
  lua_setfield(L, -2, "type");
  lua_pushstring(L, msg);
  lua_setfield(L, -2, "message");
  lua_rawgetp(L, LUA_REGISTRYINDEX, &errkey);
  lua_setmetatable(L, -2);
}

/* Raise a new error of the given type, with the traceback of L. */
int luaio__error_raise(lua_State *L, const char *type, const char *fmt, ...) {
  va_list ap;
  const char *msg;
  va_start(ap, fmt);
  luaL_where(L, 1);
  msg = lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_concat(L, 2);
  msg = lua_tostring(L, -1);
  luaio__error_push(L, type, msg);
  luaio__traceback(L, NULL, 1);
  lua_setfield(L, -2, "traceback");
  return lua_error(L);
}

int luaio__is_error(lua_State *L, int idx, const char *type) {
  int ok;
  if (!lua_istable(L, idx) || !lua_getmetatable(L, idx)) return 0;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &errkey);
  ok = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  if (ok && type != NULL) {
    lua_getfield(L, idx, "type");
    ok = lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), type) == 0;
    lua_pop(L, 1);
  }
  return ok;
}

void luaio__cancelled_push(lua_State *L, scope *s) {
  luaio__error_push(L, "CancelledError", "cancelled");
  lua_pushinteger(L, (lua_Integer)s->id);
  lua_setfield(L, -2, "scope");
  if (!s->sub && luaio__push_cancel_msg(L, luaio__scope_task(s)))
    lua_setfield(L, -2, "message");
}

/* The scope a CancelledError belongs to, 0 if idx is something else. */
uint64_t luaio__cancelled_scope_id(lua_State *L, int idx) {
  uint64_t id = 0;
  if (luaio__is_error(L, idx, "CancelledError")) {
    lua_getfield(L, idx, "scope");
    id = (uint64_t)lua_tointeger(L, -1);
    lua_pop(L, 1);
  }
  return id;
}

/* The text of the error at index 1, as lua.c's msghandler tells it; a
   table without __tostring shows its type and message fields. */
static int errmsg(lua_State *L) {
  int type = lua_type(L, 1);
  if (type == LUA_TSTRING || type == LUA_TNUMBER ||
      luaL_getmetafield(L, 1, "__tostring") != LUA_TNIL) {
    luaL_tolstring(L, 1, NULL);
    return 1;
  }
  if (type == LUA_TTABLE) {
    lua_pushliteral(L, "type");
    lua_rawget(L, 1);
    lua_pushliteral(L, "message");
    lua_rawget(L, 1);
    if (lua_type(L, -2) == LUA_TSTRING || lua_type(L, -1) == LUA_TSTRING) {
      lua_pushfstring(L, "%s: %s (error object is a table value)",
                      lua_isstring(L, -2) ? lua_tostring(L, -2) : "Error",
                      lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
      return 1;
    }
  }
  lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  return 1;
}

/* Push the text of any error value.  Protected: a __tostring that fails,
   returns a non-string or waits gives a text that says so, and the value
   itself is untouched. */
const char *luaio__push_errmsg(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) == LUA_TSTRING) {
    lua_pushvalue(L, idx);
    return lua_tostring(L, -1);
  }
  lua_pushcfunction(L, errmsg);
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    const char *why = lua_tostring(L, -1);
    lua_pushfstring(L,
                    "(error object is a %s value; its __tostring failed: %s)",
                    luaL_typename(L, idx), why ? why : "?");
    lua_remove(L, -2);
  }
  return lua_tostring(L, -1);
}

/* Raise unless every key of the options table at idx is one of `known`
   (NULL-terminated): a misspelt option is a mistake, not a default.
   Nil or none is no options. */
void luaio__check_options(lua_State *L, int idx, const char *const known[]) {
  if (lua_isnoneornil(L, idx)) return;
  luaL_checktype(L, idx, LUA_TTABLE);
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int i = 0;
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING)
      for (; known[i] != NULL; i++)
        if (strcmp(known[i], lua_tostring(L, -1)) == 0) break;
    if (lua_type(L, -1) != LUA_TSTRING || known[i] == NULL) {
      const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                     : luaL_typename(L, -1);
      luaL_argerror(L, idx, lua_pushfstring(L, "unknown option '%s'", k));
    }
  }
}

/* With a metatable at -2 and its methods at -1: the methods become its
   __index, and package.loaded[name], where Lua's error messages look for
   a function's name ("bad argument #1 to 'luaio.Queue.put'"). */
void luaio__set_methods(lua_State *L, const char *name) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, name);
  lua_pop(L, 1);
  lua_setfield(L, -2, "__index");
}

/* aio.is_error(v [, type]) -> boolean */
static int aio_is_error(lua_State *L) {
  lua_pushboolean(L, luaio__is_error(L, 1, luaL_optstring(L, 2, NULL)));
  return 1;
}

/* aio.error(type, message) -> a new error object, to raise with error() */
static int aio_error(lua_State *L) {
  const char *type = luaL_checkstring(L, 1);
  luaio__error_push(L, type, luaL_optstring(L, 2, type));
  luaio__traceback(L, NULL, 1);
  lua_setfield(L, -2, "traceback");
  return 1;
}

const luaL_Reg luaio__error_funcs[] = {
    {"is_error", aio_is_error}, {"error", aio_error}, {NULL, NULL}};

void luaio__error_open(lua_State *L) {
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, error_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, "luaio.Error");
  lua_setfield(L, -2, "__name");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &errkey);
}

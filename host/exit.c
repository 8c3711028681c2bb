/*
** exit.c: os.exit(code, true) closes the tasks' to-be-closed variables.
**
** lua.c's os.exit(code, true) closes the state, which closes the pending
** to-be-closed variables of the main thread, its main chunk's.  Under
** luaio the main chunk and every task run in threads of their own, which
** lua_close does not close: so luaio's os.exit closes the calling task's
** thread first, then every other live task's, then the state.  Their
** __close handlers cannot wait there (they run inside lua_closethread);
** an error in one does not stop the others.
*/

#include <stdlib.h>

#include "internal.h"
#include "lualib.h"

/* os.exit([code [, close]]) */
static int os_exit(lua_State *L) {
  luaio *h = lua_touserdata(L, lua_upvalueindex(1));
  lua_State *S;
  int status;
  task *self;
  if (!lua_toboolean(L, 2) || h->dead) { /* the standard one */
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 0);
    return 0;
  }
  if (lua_isboolean(L, 1))
    status = lua_toboolean(L, 1) ? EXIT_SUCCESS : EXIT_FAILURE;
  else
    status = (int)luaL_optinteger(L, 1, EXIT_SUCCESS);
  S = h->L; /* L's own stack goes with its thread */
  lua_settop(S, 0);
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_xmove(L, S, 1);
  self = h->current;
  h->current = NULL; /* no wait begins in a __close handler */
  if (self != NULL && self->co != NULL) lua_resetthread(self->co);
  lua_rawgeti(S, LUA_REGISTRYINDEX, h->tasks_ref);
  lua_pushnil(S);
  while (lua_next(S, 2)) {
    task *t = luaio__totask(S, -1);
    if (t != NULL && t != self && t->co != NULL) lua_resetthread(t->co);
    lua_pop(S, 1);
  }
  lua_pop(S, 1);
  /* The standard os.exit closes the state and exits: luaio's code may be
     unloaded with the state (a module), so it must not return here. */
  lua_pushinteger(S, status);
  lua_pushboolean(S, 1);
  lua_call(S, 2, 0);
  return 0;
}

void luaio__exit_open(lua_State *L, luaio *h) {
  if (lua_getglobal(L, LUA_OSLIBNAME) == LUA_TTABLE &&
      lua_getfield(L, -1, "exit") == LUA_TFUNCTION) {
    lua_pushvalue(L, -1);
    h->exit_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushlightuserdata(L, h);
    lua_insert(L, -2);
    lua_pushcclosure(L, os_exit, 2);
    lua_setfield(L, -2, "exit");
    lua_pop(L, 1);
  } else
    lua_pop(L, 2);
}

/* Put the standard os.exit back, if os.exit is still luaio's. */
void luaio__exit_close(lua_State *L, luaio *h) {
  int mine = 0;
  if (h->exit_ref <= 0) return;
  if (lua_getglobal(L, LUA_OSLIBNAME) == LUA_TTABLE) {
    lua_getfield(L, -1, "exit");
    if (lua_tocfunction(L, -1) == os_exit && lua_getupvalue(L, -1, 1)) {
      mine = lua_touserdata(L, -1) == h;
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    if (mine) {
      lua_rawgeti(L, LUA_REGISTRYINDEX, h->exit_ref);
      lua_setfield(L, -2, "exit");
    }
  }
  lua_pop(L, 1);
  luaL_unref(L, LUA_REGISTRYINDEX, h->exit_ref);
  h->exit_ref = LUA_NOREF;
}

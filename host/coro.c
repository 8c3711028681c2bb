/*
** coro.c: coroutines that a task makes itself keep working inside it.
**
** luaio replaces coroutine.resume, coroutine.wrap and coroutine.yield.
** When code inside a nested coroutine waits, the coroutine yields luaio's
** marker; resume and wrap pass that yield up, so the whole task waits,
** and when the task is resumed they resume the nested coroutine in place
** with what the task was woken with.  Everything else behaves as in the
** standard library.
*/

#include "internal.h"
#include "lualib.h"

#define WAITING (-2)

/* Resume co with narg values from L; the number of results moved to L,
   -1 with an error on L, or WAITING when co waits for the task. */
static int auxresume(lua_State *L, lua_State *co, int narg) {
  int status, nres;
  if (!lua_checkstack(co, narg)) {
    lua_pushliteral(L, "too many arguments to resume");
    return -1;
  }
  lua_xmove(L, co, narg);
  status = lua_resume(co, L, narg, &nres);
  if (status == LUA_YIELD && nres == 1 &&
      lua_touserdata(co, -1) == &luaio__marker) {
    lua_pop(co, 1);
    return WAITING;
  }
  if (status == LUA_OK || status == LUA_YIELD) {
    if (!lua_checkstack(L, nres + 1)) {
      lua_pop(co, nres);
      lua_pushliteral(L, "too many results to resume");
      return -1;
    }
    lua_xmove(co, L, nres);
    return nres;
  }
  lua_xmove(co, L, 1);
  return -1;
}

/* The nested coroutine waits: suspend the task too, or fail when L cannot
   yield (the wait is then abandoned). */
static int pass_up(lua_State *L, luaio *h, int keep, lua_KFunction k) {
  if (!lua_isyieldable(L)) {
    task *t = h->current;
    if (t != NULL && t->wops != NULL) { /* undo the wait, nothing more */
      if (t->state == T_READY) luaio__unready(t);
      t->wops->abandon(t, t->state == T_READY);
      luaio__list_remove(&t->w);
      t->wops = NULL;
      t->state = T_RUNNING;
    }
    lua_pushliteral(L, "cannot wait inside a coroutine whose resumer "
                       "cannot yield");
    return -1;
  }
  lua_settop(L, keep);
  lua_pushlightuserdata(L, (void *)&luaio__marker);
  return lua_yieldk(L, 1, 0, k);
}

static int k_resume(lua_State *L, int status, lua_KContext ctx);

static int resume_result(lua_State *L, lua_State *co, int r) {
  if (r == WAITING) r = pass_up(L, luaio__host(L), 1, k_resume);
  if (r < 0) {
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
  }
  lua_pushboolean(L, 1);
  lua_insert(L, -(r + 1));
  return r + 1;
}

static int k_resume(lua_State *L, int status, lua_KContext ctx) {
  lua_State *co = lua_tothread(L, 1);
  (void)status;
  (void)ctx;
  return resume_result(L, co, auxresume(L, co, lua_gettop(L) - 1));
}

/* coroutine.resume(co, ...) -> true, ... | false, err */
static int co_resume(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  luaL_argexpected(L, co, 1, "coroutine");
  return resume_result(L, co, auxresume(L, co, lua_gettop(L) - 1));
}

static int k_wrap(lua_State *L, int status, lua_KContext ctx);

static int wrap_result(lua_State *L, lua_State *co, int r) {
  if (r == WAITING)
    r = pass_up(L, lua_touserdata(L, lua_upvalueindex(2)), 0, k_wrap);
  if (r < 0) { /* as the standard library's auxwrap */
    int stat = lua_status(co);
    if (stat != LUA_OK && stat != LUA_YIELD) {
      stat = lua_resetthread(co);
      lua_xmove(co, L, 1);
    }
    if (stat != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
      luaL_where(L, 1);
      lua_insert(L, -2);
      lua_concat(L, 2);
    }
    return lua_error(L);
  }
  return r;
}

static int k_wrap(lua_State *L, int status, lua_KContext ctx) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(1));
  (void)status;
  (void)ctx;
  return wrap_result(L, co, auxresume(L, co, lua_gettop(L)));
}

static int auxwrap(lua_State *L) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(1));
  return wrap_result(L, co, auxresume(L, co, lua_gettop(L)));
}

/* coroutine.wrap(fn) -> function */
static int co_wrap(lua_State *L) {
  lua_State *co;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  co = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushcclosure(L, auxwrap, 2);
  return 1;
}

/* coroutine.yield(...): as the standard one, but an error at a task's own
   top level, where it would suspend the task for nothing to resume. */
static int co_yield (lua_State *L) {
  luaio *h = luaio__host(L);
  if (h->current != NULL && h->current->co == L)
    return luaL_error(L, "coroutine.yield outside a coroutine of the task: "
                         "use aio.sleep(0) to let other tasks run");
  return lua_yield(L, lua_gettop(L));
}

void luaio__coro_open(lua_State *L, luaio *h) {
  static const luaL_Reg funcs[] = {{"resume", co_resume},
                                   {"wrap", co_wrap},
                                   {"yield", co_yield },
                                   {NULL, NULL}};
  lua_getglobal(L, LUA_COLIBNAME);
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  lua_pushlightuserdata(L, h);
  luaL_setfuncs(L, funcs, 1);
  lua_pop(L, 1);
}

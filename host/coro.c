/*
** coro.c: coroutines that a task makes itself keep working inside it.
**
** luaio replaces coroutine.resume, wrap, yield, close and running.  When
** code inside a nested coroutine waits, the coroutine yields luaio's
** marker; resume and wrap pass that yield up, so the whole task waits,
** and when the task is resumed they resume the nested coroutine in place
** with what the task was woken with.  Everything else behaves as in the
** standard library.
**
** A thread suspended inside a luaio wait keeps the marker on top of its
** stack (a nested coroutine: the task's userdata under it), so resuming or
** closing it from elsewhere is refused at once.  The host records the
** coroutine its resume runs in the running task (h->nested) and whether
** every resumer on the way can yield: a wait anywhere else is refused before it begins
** (wait.c), so no wait is ever left half-done.  luaio__coro_close puts
** the standard functions back.
*/

#include "internal.h"
#include "lualib.h"

#define WAITING (-2)

/* The names replaced, in the order of the upvalues that keep the
   originals (the registry table of h->coro_ref). */
static const char *const replaced[] = {"resume", "wrap", "yield", "close",
                                       "running", NULL};

/* Is co suspended inside a luaio wait? */
static int parked(lua_State *co) {
  return lua_status(co) == LUA_YIELD && lua_gettop(co) > 0 &&
         lua_touserdata(co, -1) == &luaio__marker;
}

/* Raise: co waits in a task, found as the task whose thread co is, or
   else the one under the marker of a nested coroutine. */
static int refuse(lua_State *L, luaio *h, lua_State *co, const char *what) {
  task *t = NULL;
  luaL_checkstack(L, 4, NULL);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->tasks_ref);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    t = luaio__totask(L, -1);
    if (t != NULL && t->co == co) break;
    lua_pop(L, 1);
    t = NULL;
  }
  if (t == NULL && lua_gettop(co) > 1 && luaio__totask(co, -2) != NULL) {
    lua_pushvalue(co, -2);
    lua_xmove(co, L, 1);
    t = lua_touserdata(L, -1);
  }
  return luaL_error(L, "cannot %s a coroutine that waits inside luaio (%s)",
                    what, t != NULL ? luaL_tolstring(L, -1, NULL) : "?");
}

/* Resume co with narg values from L inside the running task (if any); the
   number of results moved to L, -1 with an error on L, or WAITING when co
   waits for the task (its task and the marker left on top of it). */
static int auxresume(lua_State *L, luaio *h, lua_State *co, int narg) {
  task *t = h->current;
  lua_State *prev = NULL;
  int status, nres, prev_ok = 0;
  if (parked(co)) refuse(L, h, co, "resume");
  if (!lua_checkstack(co, narg)) {
    lua_pushliteral(L, "too many arguments to resume");
    return -1;
  }
  lua_xmove(L, co, narg);
  if (t != NULL) {
    prev = h->nested;
    prev_ok = h->nested_ok;
    h->nested_ok = (L == t->co || (L == prev && prev_ok)) && lua_isyieldable(L);
    h->nested = co;
  }
  status = lua_resume(co, L, narg, &nres);
  if (t != NULL) {
    h->nested = prev;
    h->nested_ok = (unsigned char)prev_ok;
  }
  if (status == LUA_YIELD && nres == 1 &&
      lua_touserdata(co, -1) == &luaio__marker) {
    lua_pop(co, 1);
    luaio__pushtask(co, t);
    lua_pushlightuserdata(co, (void *)&luaio__marker);
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

/* Resume a nested coroutine in place, the task having been woken: what it
   was woken with is on L above `keep` values. */
static int resume_in_place(lua_State *L, luaio *h, lua_State *co, int keep) {
  lua_pop(co, 2); /* its task and the marker */
  return auxresume(L, h, co, lua_gettop(L) - keep);
}

/* The nested coroutine waits: suspend the task too.  The waits of wait.c
   refuse to begin where L could not yield, so L can. */
static int pass_up(lua_State *L, int keep, lua_KFunction k) {
  lua_settop(L, keep);
  lua_pushlightuserdata(L, (void *)&luaio__marker);
  return lua_yieldk(L, 1, 0, k);
}

static luaio *hostof(lua_State *L) {
  return lua_touserdata(L, lua_upvalueindex(1));
}

static int k_resume(lua_State *L, int status, lua_KContext ctx);

static int resume_result(lua_State *L, int r) {
  if (r == WAITING) return pass_up(L, 1, k_resume);
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
  (void)status;
  (void)ctx;
  return resume_result(L, resume_in_place(L, hostof(L), lua_tothread(L, 1), 1));
}

/* coroutine.resume(co, ...) -> true, ... | false, err */
static int co_resume(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  luaL_argexpected(L, co, 1, "coroutine");
  return resume_result(L, auxresume(L, hostof(L), co, lua_gettop(L) - 1));
}

static int k_wrap(lua_State *L, int status, lua_KContext ctx);

static int wrap_result(lua_State *L, lua_State *co, int r) {
  if (r == WAITING) return pass_up(L, 0, k_wrap);
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
  lua_State *co = lua_tothread(L, lua_upvalueindex(2));
  (void)status;
  (void)ctx;
  return wrap_result(L, co, resume_in_place(L, hostof(L), co, 0));
}

static int auxwrap(lua_State *L) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(2));
  return wrap_result(L, co, auxresume(L, hostof(L), co, lua_gettop(L)));
}

/* coroutine.wrap(fn) -> function */
static int co_wrap(lua_State *L) {
  lua_State *co;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_pushvalue(L, lua_upvalueindex(1));
  co = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushcclosure(L, auxwrap, 2);
  return 1;
}

/* coroutine.yield(...): as the standard one, but an error at a task's own
   top level, where it would suspend the task for nothing to resume, and
   for luaio's own marker. */
static int co_yield(lua_State *L) {
  luaio *h = hostof(L);
  int n = lua_gettop(L), i;
  if (h->current != NULL && h->current->co == L)
    return luaL_error(L, "coroutine.yield outside a coroutine of the task: "
                         "use aio.sleep(0) to let other tasks run");
  for (i = 1; i <= n; i++)
    if (lua_touserdata(L, i) == &luaio__marker)
      return luaL_argerror(L, i, "luaio's private marker");
  return lua_yield(L, n);
}

/* The standard library's function `name`, kept when it was replaced. */
static void push_original(lua_State *L, luaio *h, const char *name) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->coro_ref);
  lua_getfield(L, -1, name);
  lua_remove(L, -2);
}

/* coroutine.close(co) -> true | false, err; refused while co waits */
static int co_close(lua_State *L) {
  luaio *h = hostof(L);
  lua_State *co = lua_tothread(L, 1);
  luaL_argexpected(L, co, 1, "coroutine");
  if (parked(co)) return refuse(L, h, co, "close");
  push_original(L, h, "close");
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

/* coroutine.running() -> co, ismain; a task's own thread handed out this
   way is not pooled for another task when this one ends (task.c). */
static int co_running(lua_State *L) {
  task *t = hostof(L)->current;
  if (t != NULL && t->co == L) t->escaped = 1;
  lua_pushboolean(L, lua_pushthread(L));
  return 2;
}

/* Is f luaio's coroutine.resume or a coroutine.wrap function (where a
   task waits when the wait began in a coroutine of its own)? */
int luaio__is_resumer(lua_CFunction f) { return f == co_resume || f == auxwrap; }

void luaio__coro_open(lua_State *L, luaio *h) {
  static const lua_CFunction funcs[] = {co_resume, co_wrap, co_yield, co_close,
                                        co_running};
  int i;
  lua_getglobal(L, LUA_COLIBNAME);
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  lua_newtable(L);
  for (i = 0; replaced[i] != NULL; i++) {
    lua_getfield(L, -2, replaced[i]);
    lua_setfield(L, -2, replaced[i]);
    lua_pushlightuserdata(L, h);
    lua_pushcclosure(L, funcs[i], 1);
    lua_setfield(L, -3, replaced[i]);
  }
  h->coro_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pop(L, 1);
}

/* Put back the functions luaio__coro_open replaced, where they are still
   luaio's (luaio_free leaves a borrowed state as it found it). */
void luaio__coro_close(lua_State *L, luaio *h) {
  int i;
  if (h->coro_ref <= 0) return;
  lua_getglobal(L, LUA_COLIBNAME);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->coro_ref);
  for (i = 0; lua_istable(L, -2) && replaced[i] != NULL; i++) {
    int mine = 0;
    lua_getfield(L, -2, replaced[i]);
    if (lua_iscfunction(L, -1) && lua_getupvalue(L, -1, 1) != NULL) {
      mine = lua_touserdata(L, -1) == h;
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    if (mine) {
      lua_getfield(L, -1, replaced[i]);
      lua_setfield(L, -3, replaced[i]);
    }
  }
  lua_pop(L, 2);
  luaL_unref(L, LUA_REGISTRYINDEX, h->coro_ref);
  h->coro_ref = LUA_NOREF;
}

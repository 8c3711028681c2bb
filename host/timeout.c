/*
** timeout.c: aio.timeout and aio.timeout_at, cancel scopes with a deadline.
**
** `local t <close> = aio.timeout(5)` enters a scope of the running task.
** When the deadline passes, the scope is cancelled: the code inside gets
** CancelledError at its wait (and at every later one).  When that error
** leaves the scope, __close turns it into a TimeoutError; a cancellation
** that belongs to another scope passes through untouched.
*/

#include "internal.h"

typedef struct timeout {
  subscope s;
  tnode timer;
  luaio *h;
  int ref;  /* anchors the object while its scope is open */
  int line; /* where it was made; the function is user value 1 */
  unsigned char expired;
} timeout;

/* User values: the function that made the scope, the task's traceback
   when the deadline fired. */
enum { UV_MAKER = 1, UV_STACK, UV_TIMEOUT_COUNT = UV_STACK };

static timeout *checktimeout(lua_State *L) {
  return luaL_checkudata(L, 1, "luaio.Timeout");
}

/* "the timeout scope created at x.lua:3" for the scope at ud. */
static void push_site(lua_State *L, timeout *to, int ud) {
  lua_Debug ar;
  if (lua_getiuservalue(L, ud, UV_MAKER) == LUA_TFUNCTION &&
      lua_getinfo(L, ">S", &ar))
    lua_pushfstring(L, "the timeout scope created at %s:%d", ar.short_src,
                    to->line);
  else {
    lua_pop(L, 1);
    lua_pushliteral(L, "a timeout scope");
  }
}

static void describe(lua_State *L, subscope *s) {
  timeout *to = container_of(s, timeout, s);
  lua_rawgeti(L, LUA_REGISTRYINDEX, to->ref);
  push_site(L, to, lua_gettop(L));
  lua_remove(L, -2);
}

/* Is the function that made the scope (at ud) still on co's stack?  When
   the task waits inside a coroutine of its own, its frames are not on co:
   then it is taken to be. */
static int maker_running(lua_State *L, lua_State *co, int ud) {
  lua_Debug ar;
  int level, found = 0;
  if (!lua_getstack(co, 0, &ar) || !lua_getinfo(co, "f", &ar)) return 1;
  found = luaio__is_resumer(lua_tocfunction(co, -1));
  lua_pop(co, 1);
  if (found || lua_getiuservalue(L, ud, UV_MAKER) != LUA_TFUNCTION) {
    lua_pop(L, 1);
    return 1;
  }
  lua_checkstack(co, 3);
  lua_xmove(L, co, 1);
  for (level = 1; !found && lua_getstack(co, level, &ar); level++) {
    lua_getinfo(co, "f", &ar);
    found = lua_rawequal(co, -1, -2);
    lua_pop(co, 1);
  }
  lua_pop(co, 1);
  return found;
}

/* The deadline: keep the task's stack for the TimeoutError and cancel the
   scope.  A scope whose block is over (made without <close>, by a
   function that has returned) is dropped instead, with a warning, so
   that it cannot cancel its task for good. */
static void on_deadline(tnode *n) {
  timeout *to = container_of(n, timeout, timer);
  task *t = to->s.task;
  lua_State *L = to->h->L;
  if (L != NULL && t->co != NULL && t->state != T_RUNNING &&
      lua_checkstack(L, 8)) {
    int ud;
    lua_rawgeti(L, LUA_REGISTRYINDEX, to->ref);
    ud = lua_gettop(L);
    if (!maker_running(L, t->co, ud)) {
      lua_pushliteral(L, "luaio: ");
      push_site(L, to, ud);
      lua_pushliteral(L, " expired after the function that made it had "
                         "returned without closing it: it is dropped, not "
                         "left to cancel task ");
      luaio__pushtask(L, t);
      luaL_tolstring(L, -1, NULL);
      lua_remove(L, -2);
      lua_pushliteral(L, " (create it as a <close> variable)");
      lua_concat(L, 5);
      luaio__report(to->h, lua_tostring(L, -1));
      lua_settop(L, ud - 1);
      luaio__scope_drop(L, t, &to->s);
      return;
    }
    luaio__traceback_of(L, t->co, NULL, 0);
    lua_setiuservalue(L, ud, UV_STACK);
    lua_settop(L, ud - 1);
  }
  to->expired = 1;
  luaio__scope_cancel(&to->s.s);
}

static void release(lua_State *L, timeout *to) {
  luaio__timer_remove(to->h, &to->timer);
  luaL_unref(L, LUA_REGISTRYINDEX, to->ref);
  to->ref = LUA_NOREF;
}

static void drop(lua_State *L, subscope *s) {
  release(L, container_of(s, timeout, s));
}

static const scopeops timeout_scope_ops = {drop, describe};

/* Set the deadline: `when` in seconds of aio.time(), or nil for never. */
static void schedule(lua_State *L, timeout *to, int idx, int relative) {
  uint64_t now = luaio__now(), due;
  lua_Number when;
  luaio__timer_remove(to->h, &to->timer);
  if (lua_isnoneornil(L, idx)) return;
  when = luaL_checknumber(L, idx);
  luaL_argcheck(L, when == when, idx, "not a number");
  /* A relative deadline is added in nanoseconds: through seconds of
     aio.time(), rounding could put timeout(0) a nanosecond ahead. */
  if (relative ? when <= 0 : when * 1e9 <= (lua_Number)now) { /* past */
    to->expired = 1;
    luaio__scope_cancel(&to->s.s);
    return;
  }
  if (when >= 1e12) return; /* tens of thousands of years: never */
  due = relative ? now + (uint64_t)(when * 1e9) : (uint64_t)(when * 1e9);
  luaio__timer_add(to->h, &to->timer, due);
}

static int new_timeout(lua_State *L, int relative) {
  luaio *h = luaio__host(L);
  lua_Debug ar;
  timeout *to;
  if (h->current == NULL)
    return luaL_error(L, "no running task: a timeout scope belongs to a task");
  to = lua_newuserdatauv(L, sizeof *to, UV_TIMEOUT_COUNT);
  to->h = h;
  to->expired = 0;
  to->line = 0;
  to->timer.bucket = NULL;
  to->timer.fire = on_deadline;
  to->ref = LUA_NOREF;
  luaL_setmetatable(L, "luaio.Timeout");
  if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "fl", &ar)) {
    to->line = ar.currentline;
    lua_setiuservalue(L, -2, UV_MAKER);
  }
  luaio__scope_push(h->current, &to->s);
  to->s.ops = &timeout_scope_ops;
  lua_pushvalue(L, -1);
  to->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  schedule(L, to, 1, relative);
  return 1;
}

/* aio.timeout(s) -> scope: create it as a <close> variable */
static int aio_timeout(lua_State *L) { return new_timeout(L, 1); }

/* aio.timeout_at(when) -> scope, `when` on the clock of aio.time() */
static int aio_timeout_at(lua_State *L) { return new_timeout(L, 0); }

/* scope:__close(err): leave the scope; its own expiry becomes a
   TimeoutError */
static int timeout_close(lua_State *L) {
  timeout *to = checktimeout(L);
  if (!to->s.s.active) return 0;
  if (to->s.task != to->h->current)
    return luaL_error(L, "a timeout scope must be closed by its own task");
  release(L, to);
  luaio__scope_pop(L, to->s.task, &to->s);
  if (to->expired && luaio__cancelled_scope_id(L, 2) == to->s.s.id) {
    /* The traceback is the task's where the deadline found it: the wait
       it interrupted; here, unwinding, the stack is gone. */
    lua_settop(L, 2);
    luaio__error_push(L, "TimeoutError", "timed out");
    if (lua_getiuservalue(L, 1, UV_STACK) != LUA_TSTRING) {
      lua_pop(L, 1);
      luaio__traceback(L, NULL, 1);
    }
    lua_pushliteral(L, "\n\t(");
    push_site(L, to, 1);
    lua_pushliteral(L, ")");
    lua_concat(L, 4);
    lua_setfield(L, -2, "traceback");
    return lua_error(L);
  }
  return 0;
}

/* scope:reschedule(s): the deadline moves to s seconds from now; nil:
   never */
static int timeout_reschedule(lua_State *L) {
  timeout *to = checktimeout(L);
  if (!to->s.s.active)
    return luaio__error_raise(L, "InvalidStateError",
                              "the timeout scope has been closed");
  if (to->expired)
    return luaio__error_raise(L, "InvalidStateError",
                              "the timeout has already expired");
  schedule(L, to, 2, 1);
  return 0;
}

/* scope:expired() -> boolean */
static int timeout_expired(lua_State *L) {
  lua_pushboolean(L, checktimeout(L)->expired);
  return 1;
}

/* scope:when() -> deadline on aio.time()'s clock | nil */
static int timeout_when(lua_State *L) {
  timeout *to = checktimeout(L);
  if (!luaio__timer_armed(&to->timer)) return 0;
  lua_pushnumber(L, (lua_Number)to->timer.due / 1e9);
  return 1;
}

static int timeout_tostring(lua_State *L) {
  timeout *to = checktimeout(L);
  lua_pushfstring(L, "<timeout %s>",
                  to->expired                       ? "expired"
                  : !to->s.s.active                 ? "closed"
                  : !luaio__timer_armed(&to->timer) ? "without deadline"
                                                    : "pending");
  return 1;
}

static const luaL_Reg timeout_methods[] = {{"reschedule", timeout_reschedule},
                                           {"expired", timeout_expired},
                                           {"when", timeout_when},
                                           {NULL, NULL}};

static const luaL_Reg timeout_meta[] = {{"__close", timeout_close},
                                        {"__tostring", timeout_tostring},
                                        {"__index", NULL},
                                        {NULL, NULL}};

void luaio__timeout_open(lua_State *L) {
  luaL_newmetatable(L, "luaio.Timeout");
  luaL_setfuncs(L, timeout_meta, 0);
  luaL_newlib(L, timeout_methods);
  luaio__set_methods(L, "luaio.Timeout");
  lua_pop(L, 1);
}

const luaL_Reg luaio__timeout_funcs[] = {
    {"timeout", aio_timeout}, {"timeout_at", aio_timeout_at}, {NULL, NULL}};

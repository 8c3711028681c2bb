/*
** signal.c: aio.signal and aio.on_signal.
**
** Each object owns a uv_signal_t in malloc'd memory; libuv lets several
** handles watch one signal, so the luaio command's own SIGINT and SIGTERM
** handling keeps working beside them.  aio.signal counts deliveries that
** nobody waits for, and each wait() takes one.  aio.on_signal spawns a task
** per delivery.  A handle is unreferenced unless a task waits on it, so a
** watched signal never keeps the loop alive by itself.
*/

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* The registry key of the signal metatable. */
static const char sigkey = 'S';

typedef struct sigwatch {
  resource res;
  uv_signal_t handle;
  luaio *h;
  int signum;
  int fn; /* on_signal: registry ref of the handler; LUA_NOREF for signal */
  waitlist waiters;
  size_t pending; /* deliveries nobody waited for */
  unsigned nwait; /* tasks in wait() not yet resumed: they use w */
  unsigned char closing, closed, collected;
  char name[16];
} sigwatch;

static const struct {
  const char *name;
  int signum;
} signals[] = {{"SIGHUP", SIGHUP},
               {"SIGINT", SIGINT},
               {"SIGQUIT", SIGQUIT},
               {"SIGUSR1", SIGUSR1},
               {"SIGUSR2", SIGUSR2},
               {"SIGTERM", SIGTERM},
               {"SIGPIPE", SIGPIPE},
               {"SIGALRM", SIGALRM},
               {"SIGCHLD", SIGCHLD},
               {"SIGCONT", SIGCONT},
               {"SIGTSTP", SIGTSTP},
               {"SIGTTIN", SIGTTIN},
               {"SIGTTOU", SIGTTOU},
               {"SIGWINCH", SIGWINCH},
               {"SIGXCPU", SIGXCPU},
               {"SIGXFSZ", SIGXFSZ},
               {"SIGPROF", SIGPROF},
               {"SIGVTALRM", SIGVTALRM},
               {"SIGURG", SIGURG},
               {"SIGABRT", SIGABRT},
               {"SIGSYS", SIGSYS},
               {"SIGTRAP", SIGTRAP},
               {NULL, 0}};

/* The number of the signal named at idx: "SIGUSR1" or "USR1". */
static int checksignal(lua_State *L, int idx, const char **name) {
  const char *s = luaL_checkstring(L, idx);
  int i;
  for (i = 0; signals[i].name != NULL; i++)
    if (strcmp(s, signals[i].name) == 0 || strcmp(s, signals[i].name + 3) == 0)
      break;
  if (signals[i].name == NULL)
    luaL_argerror(L, idx, lua_pushfstring(L, "unknown signal '%s'", s));
  *name = signals[i].name;
  return signals[i].signum;
}

/* Keep the loop alive only while a task waits for a delivery. */
static void update_ref(sigwatch *w) {
  if (w->closing) return;
  if (w->waiters.n > 0)
    uv_ref((uv_handle_t *)&w->handle);
  else
    uv_unref((uv_handle_t *)&w->handle);
}

/* Wake t: with true for a delivery, with false when the object closed. */
static void wake(task *t, int delivered) {
  lua_State *co = t->co;
  lua_checkstack(co, 3);
  lua_pushboolean(co, delivered);
  luaio__wake(t, co, 1);
}

/* Spawn the handler of an on_signal, under lua_pcall. */
static int spawn_handler(lua_State *L) {
  sigwatch *w = lua_touserdata(L, 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, w->fn);
  lua_pushstring(L, w->name);
  luaio__spawn(L, w->h, 1);
  return 0;
}

static void on_signal(uv_signal_t *handle, int signum) {
  sigwatch *w = handle->data;
  lua_State *L = w->h->L;
  (void)signum;
  if (w->closing) return;
  if (w->fn != LUA_NOREF) {
    if (L == NULL) return;
    lua_pushcfunction(L, spawn_handler);
    lua_pushlightuserdata(L, w);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) { /* out of memory */
      luaio__report(w->h, lua_tostring(L, -1));
      lua_pop(L, 1);
    }
    return;
  }
  if (w->waiters.n > 0) {
    wake(luaio__list_pop(&w->waiters), 1);
    update_ref(w);
  } else
    w->pending++;
}

static int wait_abandon(task *t, int woken) {
  sigwatch *w = t->wobj;
  if (!woken) {
    luaio__list_remove(&t->w);
    update_ref(w);
  } else if (lua_toboolean(t->co, -1))
    w->pending++; /* the delivery stays for the next wait */
  return 1;
}

static const waitops wait_ops = {"signal", wait_abandon, NULL};

/* Closing. */

/* Free w once it is closed, collected and no task in wait() uses it (a
   __gc called by hand may come while tasks wait). */
static void maybe_free(sigwatch *w) {
  if (w->closed && w->collected &&
      (w->nwait == 0 || w->h->freeing || w->h->dead))
    free(w);
}

static void on_close(uv_handle_t *handle) {
  sigwatch *w = handle->data;
  w->closed = 1;
  maybe_free(w);
}

static void start_close(sigwatch *w) {
  if (w->closing) return;
  w->closing = 1;
  w->h->nsigwatch[w->signum]--;
  luaio__res_remove(w->h, &w->res);
  if (w->fn != LUA_NOREF && w->h->L != NULL)
    luaL_unref(w->h->L, LUA_REGISTRYINDEX, w->fn);
  w->fn = LUA_NOREF;
  while (w->waiters.n > 0)
    wake(luaio__list_pop(&w->waiters), 0);
  uv_close((uv_handle_t *)&w->handle, on_close);
}

static void res_close(resource *r) {
  start_close(container_of(r, sigwatch, res));
}

static sigwatch *checkwatch(lua_State *L, int idx) {
  sigwatch *w = *(sigwatch **)luaL_checkudata(L, idx, "luaio.Signal");
  if (w == NULL || w->closing) luaL_error(L, "attempt to use a closed signal");
  return w;
}

static int k_wait(lua_State *L, int status, lua_KContext ctx) {
  sigwatch *w = (sigwatch *)ctx;
  char name[sizeof w->name];
  (void)status;
  memcpy(name, w->name, sizeof name);
  w->nwait--;
  maybe_free(w);
  luaio__resumed(L, luaio__host(L)->current);
  if (!lua_toboolean(L, -1))
    return luaL_error(L, "signal closed while waiting");
  lua_pushstring(L, name);
  return 1;
}

/* sig:wait() -> name: the next delivery, or one that nobody waited for */
static int signal_wait(lua_State *L) {
  sigwatch *w = checkwatch(L, 1);
  task *t;
  if (w->fn != LUA_NOREF)
    return luaL_error(L, "an on_signal handle has no wait()");
  if (w->pending > 0) {
    w->pending--;
    lua_pushstring(L, w->name);
    return 1;
  }
  t = luaio__enter_wait(L, w->h);
  lua_settop(L, 1);
  luaio__list_push(&w->waiters, &t->w);
  update_ref(w);
  w->nwait++;
  return luaio__wait(L, t, &wait_ops, w, (lua_KContext)w, k_wait);
}

/* sig:close(), sig:__close(): closing again is harmless */
static int signal_close(lua_State *L) {
  sigwatch *w = *(sigwatch **)luaL_checkudata(L, 1, "luaio.Signal");
  if (w != NULL) start_close(w);
  return 0;
}

/* sig:__gc() */
static int signal_gc(lua_State *L) {
  sigwatch **p = luaL_checkudata(L, 1, "luaio.Signal"), *w = *p;
  if (w == NULL) return 0;
  *p = NULL;
  start_close(w);
  w->collected = 1;
  maybe_free(w);
  return 0;
}

/* tostring(sig) -> "luaio.Signal (name, n pending)" */
static int signal_tostring(lua_State *L) {
  sigwatch *w = *(sigwatch **)luaL_checkudata(L, 1, "luaio.Signal");
  if (w == NULL || w->closing)
    lua_pushliteral(L, "luaio.Signal (closed)");
  else
    lua_pushfstring(L, "luaio.Signal (%s, %d pending)", w->name,
                    (int)w->pending);
  return 1;
}

/* Make the object for the signal at 1; fn is a registry ref or
   LUA_NOREF. */
static int newwatch(lua_State *L, int fn) {
  luaio *h = luaio__host(L);
  const char *name;
  int signum = checksignal(L, 1, &name), err;
  sigwatch **p = lua_newuserdatauv(L, sizeof *p, 0), *w;
  *p = NULL;
  w = calloc(1, sizeof *w);
  if (w == NULL) {
    if (fn != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, fn);
    return luaL_error(L, "not enough memory");
  }
  w->h = h;
  w->fn = fn;
  w->signum = signum;
  w->res.close = res_close;
  strcpy(w->name, name);
  err = uv_signal_init(h->loop, &w->handle);
  if (err < 0) {
    free(w);
    if (fn != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, fn);
    return luaL_error(L, "signal: %s", uv_strerror(err));
  }
  w->handle.data = w;
  *p = w;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &sigkey);
  lua_setmetatable(L, -2);
  luaio__res_add(h, &w->res);
  h->nsigwatch[signum]++; /* the script owns the signal now (main.c) */
  err = uv_signal_start(&w->handle, on_signal, signum);
  if (err < 0) {
    start_close(w);
    return luaL_error(L, "cannot watch %s: %s", name, uv_strerror(err));
  }
  update_ref(w);
  return 1;
}

/* aio.signal(name) -> sig */
static int aio_signal(lua_State *L) {
  lua_settop(L, 1);
  return newwatch(L, LUA_NOREF);
}

/* aio.on_signal(name, fn) -> handle: fn(name) runs as a new task per
   delivery */
static int aio_on_signal(lua_State *L) {
  const char *name;
  luaL_checktype(L, 2, LUA_TFUNCTION);
  checksignal(L, 1, &name);
  lua_settop(L, 2);
  return newwatch(L, luaL_ref(L, LUA_REGISTRYINDEX));
}

/* SIGINT during the top-level aio.run of a module host (a stock lua5.4
   that loaded luaio).  lua.c's own handler stops Lua code at its next
   instruction, but a run waiting in the loop runs none for as long as
   it waits; so while the run lasts SIGINT is the loop's: the first
   cancels the run's main task (every task, once it has ended), a second
   ends the process as an unhandled SIGINT would.  A script that watches
   SIGINT itself owns it.  lua.c's handler is put back after the run. */
struct runsig {
  uv_signal_t handle;
  struct sigaction old;
  luaio *h;
  task *main;
  int count;
};

static void on_runsig_closed(uv_handle_t *handle) { free(handle->data); }

static void on_run_sigint(uv_signal_t *handle, int signum) {
  struct runsig *r = handle->data;
  luaio *h = r->h;
  if (h->nsigwatch[signum] > 0 || h->L == NULL) return;
  if (r->count++ > 0) {
    signal(signum, SIG_DFL);
    raise(signum);
    return;
  }
  if (r->main->state != T_DONE)
    luaio__task_cancel_msg(h->L, r->main, "interrupted");
  else
    luaio__cancel_all(h);
}

void luaio__run_signal_start(luaio *h, task *main) {
  struct runsig *r;
  if (!h->from_module || h->runsig != NULL) return;
  if ((r = calloc(1, sizeof *r)) == NULL) return;
  sigaction(SIGINT, NULL, &r->old);
  r->h = h;
  r->main = main;
  uv_signal_init(h->loop, &r->handle);
  r->handle.data = r;
  if (uv_signal_start(&r->handle, on_run_sigint, SIGINT) < 0) {
    uv_close((uv_handle_t *)&r->handle, on_runsig_closed);
    return;
  }
  uv_unref((uv_handle_t *)&r->handle);
  h->runsig = r;
}

void luaio__run_signal_stop(luaio *h) {
  struct runsig *r = h->runsig;
  if (r == NULL) return;
  h->runsig = NULL;
  uv_close((uv_handle_t *)&r->handle, on_runsig_closed);
  sigaction(SIGINT, &r->old, NULL);
}

static const luaL_Reg signal_methods[] = {
    {"wait", signal_wait}, {"close", signal_close}, {NULL, NULL}};

static const luaL_Reg signal_meta[] = {{"__close", signal_close},
                                       {"__gc", signal_gc},
                                       {"__tostring", signal_tostring},
                                       {NULL, NULL}};

void luaio__signal_open(lua_State *L, luaio *h) {
  luaL_newmetatable(L, "luaio.Signal");
  luaL_setfuncs(L, signal_meta, 0);
  lua_createtable(L, 0, 2);
  lua_pushlightuserdata(L, h);
  luaL_setfuncs(L, signal_methods, 1);
  luaio__set_methods(L, "luaio.Signal");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &sigkey);
  lua_pushlightuserdata(L, h);
  lua_pushcclosure(L, aio_signal, 1);
  lua_setfield(L, -2, "signal");
  lua_pushlightuserdata(L, h);
  lua_pushcclosure(L, aio_on_signal, 1);
  lua_setfield(L, -2, "on_signal");
}

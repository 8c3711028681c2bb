/*
** task.c: tasks.  Spawning, resuming, finishing, awaiting, the Task methods.
**
** A task is a userdata holding a Lua thread.  The thread runs task_main,
** which calls the task's function under a yieldable pcall: errors unwind
** inside the task (so `__close` handlers may wait), and the message handler
** keeps the traceback from the point of the error.  A finished task's
** thread goes back to a pool for the next spawn.
*/

#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define POOL_KEEP 256    /* idle threads always kept for reuse */
#define POOL_TRIM_MS 500 /* how often the idle surplus over that goes */
#define EAGER_MAX 16     /* eager starts nested inside each other */
#define POOL_TASKS                                                             \
  1 /* the pool thread's stack: the tasks table, then                          \
       the idle threads */

/* The registry key of the metatable of the sentinel a failed task holds:
   its __gc reports an error nobody saw. */
static const char failedkey = 'f';

const char luaio__task_magic = 'T';

/* With its three user values a task's userdata then takes 256 bytes, one
   of mimalloc's size classes (the next is 320): see docs/performance.md. */
_Static_assert(sizeof(task) <= 168, "struct task outgrew 168 bytes");

task *luaio__totask(lua_State *L, int idx) {
  return luaio__toobj(L, idx, &luaio__task_magic, sizeof(task));
}

task *luaio__checktask(lua_State *L, int idx) {
  task *t = luaio__totask(L, idx);
  if (t == NULL) luaL_typeerror(L, idx, "luaio.Task");
  return t;
}

/* A live task is anchored at a slot of the host's tasks table; the numbers
   of freed slots wait in a C array for the next task (cheaper than
   luaL_ref's free list kept in the table).  The table also sits at the
   bottom of the pool thread's stack (POOL_TASKS), where reaching it costs
   no registry lookup; the pool keeps a free slot above its threads for
   that (see finish).  The task is on top of L. */
static int anchor(lua_State *L, luaio *h) {
  int slot = h->nfree_anchors > 0 ? h->free_anchors[--h->nfree_anchors]
                                  : ++h->nanchors;
  lua_pushvalue(L, -1);
  lua_xmove(L, h->pool, 1);
  lua_rawseti(h->pool, POOL_TASKS, slot);
  return slot;
}

static void unanchor(luaio *h, int slot) {
  lua_pushnil(h->pool);
  lua_rawseti(h->pool, POOL_TASKS, slot);
  if (h->nfree_anchors == h->cfree_anchors) {
    size_t c = h->cfree_anchors ? 2 * h->cfree_anchors : 64;
    int *a = realloc(h->free_anchors, c * sizeof *a);
    if (a == NULL) return; /* the slot is not used again: nothing is lost */
    h->free_anchors = a;
    h->cfree_anchors = c;
  }
  h->free_anchors[h->nfree_anchors++] = slot;
}

void luaio__pushtask(lua_State *L, task *t) {
  lua_State *pool = t->h->pool;
  lua_rawgeti(pool, POOL_TASKS, t->ref);
  lua_xmove(pool, L, 1);
}

/* The table of rarely used fields of the task at idx (its name, done
   callbacks, failure, cancel message), made on demand; until then the
   slot holds only the function that spawned the task. */
static void push_extra(lua_State *L, int idx) {
  int type;
  idx = lua_absindex(L, idx);
  type = lua_getiuservalue(L, idx, TUV_EXTRA);
  if (type == LUA_TTABLE) return;
  lua_createtable(L, 0, 4);
  if (type == LUA_TFUNCTION) {
    lua_insert(L, -2);
    lua_setfield(L, -2, "spawner");
  } else
    lua_remove(L, -2);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, idx, TUV_EXTRA);
}

/* Names and reports. */

static void push_name(lua_State *L, task *t, int idx) {
  int top = lua_gettop(L);
  if (lua_getiuservalue(L, idx, TUV_EXTRA) == LUA_TTABLE &&
      lua_getfield(L, -1, "name") == LUA_TSTRING) {
    lua_replace(L, top + 1);
    lua_settop(L, top + 1);
    return;
  }
  lua_settop(L, top);
  lua_pushfstring(L, "Task-%I", luaio__task_number(t));
}

/* "task 'Task-3' (spawned at script.lua:12)" for the task at idx; C code
   that spawns a task may name the site itself (extra.site: a server names
   its start_server call). */
static void push_where(lua_State *L, task *t, int idx) {
  lua_Debug ar;
  idx = lua_absindex(L, idx);
  lua_pushliteral(L, "task '");
  push_name(L, t, idx);
  push_extra(L, idx);
  if (lua_getfield(L, -1, "site") == LUA_TSTRING) {
    lua_pushfstring(L, "' (%s)", lua_tostring(L, -1));
    lua_remove(L, -2);
  } else if (lua_getfield(L, -2, "spawner") == LUA_TFUNCTION) {
    lua_getinfo(L, ">S", &ar);
    lua_pushfstring(L, "' (spawned at %s:%d)", ar.short_src, t->spawn_line);
    lua_remove(L, -2);
  } else {
    lua_pop(L, 2);
    lua_pushliteral(L, "'");
  }
  lua_remove(L, -2);
  lua_concat(L, 3);
}

/* The chain of tasks awaiting t: "\n  awaited by task 'A' (…)" lines, at
   most *left of them. */
static void push_awaiters(lua_State *L, task *t, int *left) {
  luaL_Buffer b;
  waiter *w;
  luaL_buffinit(L, &b);
  for (w = t->awaiters.head; w != NULL; w = w->next) {
    task *a = container_of(w, task, w);
    if ((*left)-- <= 0) {
      luaL_addstring(&b, "\n  (and more awaiting tasks)");
      break;
    }
    luaL_addstring(&b, "\n  awaited by ");
    luaio__pushtask(L, a);
    push_where(L, a, -1);
    lua_remove(L, -2);
    luaL_addvalue(&b);
    push_awaiters(L, a, left);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
}

/* The message handler of task_main: keeps what only the moment of failure
   knows, the traceback from where the error was raised and the tasks
   awaiting this one; the report, with the error's text, the task's name
   and spawn site, is put together when it is read.  No __tostring runs
   here, so the error keeps its identity whatever its metatable does.  An error
   re-raised from an awaited task keeps a link to that task (extra.cause, set by
   await), and the report follows the links. */
static int task_msgh(lua_State *L) {
  luaio *h;
  task *t;
  int left = 12;
  if (luaio__is_error(L, 1, "CancelledError")) return 1;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &luaio__marker);
  h = lua_touserdata(L, -1);
  lua_settop(L, 1);
  if (h == NULL || (t = h->current) == NULL) return 1;
  luaio__pushtask(L, t); /* 2 */
  push_extra(L, 2);      /* 3 */
  luaio__traceback(L, NULL, 1);
  lua_setfield(L, 3, "traceback");
  push_awaiters(L, t, &left);
  if (lua_rawlen(L, -1) > 0) lua_setfield(L, 3, "awaiters");
  lua_settop(L, 1);
  return 1;
}

/* The report of the failed task at ud: the first task's report, then each
   task that re-raised the same error by awaiting it. */
static void push_report(lua_State *L, int ud) {
  int n = 0, i, top, e, own;
  ud = lua_absindex(L, ud);
  top = lua_gettop(L);
  lua_pushvalue(L, ud);
  for (;;) { /* push the chain of causes, newest first */
    task *c;
    n++;
    luaL_checkstack(L, 6, "report");
    push_extra(L, -1);
    lua_getfield(L, -1, "cause");
    lua_remove(L, -2);
    c = luaio__totask(L, -1);
    if (c == NULL || c->end != END_ERROR || n >= 64) {
      lua_pop(L, 1);
      break;
    }
    lua_getiuservalue(L, -1, TUV_RESULT);
    lua_getiuservalue(L, ud, TUV_RESULT);
    if (!lua_rawequal(L, -1, -2)) {
      lua_pop(L, 3);
      break;
    }
    lua_pop(L, 2);
  }
  luaL_checkstack(L, 3 * n + 8, "report");
  for (i = n; i >= 1; i--) { /* oldest first; a long chain loses its middle */
    if (n > 8 && i < n - 2 && i > 3) {
      if (i == n - 3)
        lua_pushfstring(L, "\n(re-raised by %d more tasks)", n - 6);
      continue;
    }
    if (i != n) lua_pushliteral(L, "\nre-raised by:\n");
    push_extra(L, top + i);
    e = lua_gettop(L);
    lua_getiuservalue(L, top + i, TUV_RESULT);
    luaio__push_errmsg(L, -1);
    /* luaio's own errors carry the better traceback: a TimeoutError's is
       the wait its deadline interrupted */
    own = luaio__is_error(L, -2, NULL);
    if (!own || lua_getfield(L, -2, "traceback") != LUA_TSTRING) {
      if (own) lua_pop(L, 1);
      lua_getfield(L, e, "traceback");
    }
    lua_remove(L, -3);
    if (lua_type(L, -1) == LUA_TSTRING) {
      lua_pushliteral(L, "\n");
      lua_insert(L, -2);
      lua_concat(L, 3);
    } else /* failed outside task_main */
      lua_pop(L, 1);
    lua_pushliteral(L, "\nin ");
    push_where(L, lua_touserdata(L, top + i), top + i);
    if (lua_getfield(L, e, "awaiters") != LUA_TSTRING) {
      lua_pop(L, 1);
      lua_pushliteral(L, "");
    }
    lua_concat(L, 4);
    lua_remove(L, e);
  }
  lua_concat(L, lua_gettop(L) - top - n);
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);
}

static int k_task_main(lua_State *L, int status, lua_KContext ctx) {
  (void)ctx;
  lua_pushboolean(L, status == LUA_OK || status == LUA_YIELD);
  lua_replace(L, 1);
  return lua_gettop(L);
}

/* The body of every task's thread, called with the message handler, the
   task's function and its arguments: ok, results… | false, error. */
static int task_main(lua_State *L) {
  return k_task_main(
      L, lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 1, 0, k_task_main), 0);
}

/* Spawning. */

/* Start the function under its nargs arguments on L's stack as a task,
   leaving the Task in their place. */
enum { SPAWN_SITE = 1, SPAWN_EAGER = 2 };

static task *spawn(lua_State *L, luaio *h, int nargs, int how) {
  lua_Debug ar;
  task *t;
  if (!lua_checkstack(L, 6)) luaL_error(L, "stack overflow");
  t = lua_newuserdatauv(L, sizeof *t, TUV_COUNT);
  memset(t, 0, sizeof *t);
  t->magic = &luaio__task_magic;
  t->h = h;
  if (h->current != NULL) t->run = h->current->run;
  t->root.id = (uint64_t) - (int64_t)h->next_id++; /* apart from scopes' */
  t->root.active = 1;
  t->scope = &t->root;
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->task_mt_ref);
  lua_setmetatable(L, -2);
  if ((how & SPAWN_SITE) && lua_getstack(L, 1, &ar) &&
      lua_getinfo(L, "fl", &ar)) {
    t->spawn_line = ar.currentline;
    lua_setiuservalue(L, -2, TUV_EXTRA);
  }
  /* Until it starts, the task keeps its function where its thread will
     be, and its arguments (if any) where its results will be: a task
     takes a thread only when it runs, so tasks that end before the next
     ones start share one. */
  lua_insert(L, -(nargs + 2));
  t->nwake = nargs; /* one argument as it is, more in a table */
  if (nargs > 1) {
    int i;
    lua_createtable(L, nargs, 0);
    lua_insert(L, -(nargs + 1));
    for (i = nargs; i >= 1; i--)
      lua_rawseti(L, -(i + 1), i);
  }
  if (nargs > 0) lua_setiuservalue(L, -3, TUV_RESULT);
  lua_setiuservalue(L, -2, TUV_THREAD);
  t->ref = anchor(L, h);
  t->state = T_NEW;
  h->ntasks++;
  if (h->cancelling) { /* the run is ending: it starts, cancelled */
    t->run_cancelled = 1;
    luaio__task_cancel(t);
  }
  if ((h->eager || (how & SPAWN_EAGER)) && h->current != NULL &&
      h->eager_depth < EAGER_MAX) {
    task *self = h->current;
    h->eager_depth++;
    self->state = T_READY; /* not waiting, not running: cannot be woken */
    luaio__resume(h, t);
    self->state = T_RUNNING;
    h->current = self;
    h->eager_depth--;
  } else
    luaio__ready(t);
  return t;
}

/* Spawn the function below nargs arguments as a task (left in its place);
   the task records where it was spawned from. */
task *luaio__spawn(lua_State *L, luaio *h, int nargs) {
  return spawn(L, h, nargs, SPAWN_SITE);
}

/* The same for C code that runs its own work as a task and awaits it at
   once (a server's request): the task starts now, inside the caller,
   until it first waits, and records no site. */
task *luaio__spawn_now(lua_State *L, luaio *h, int nargs) {
  return spawn(L, h, nargs, SPAWN_EAGER);
}

/* Finishing. */

void luaio__watch(task *t, watch *w) {
  w->task = t;
  w->prev = NULL;
  w->next = t->watches;
  if (t->watches) t->watches->prev = w;
  t->watches = w;
}

void luaio__unwatch(watch *w) {
  if (w->task == NULL) return;
  if (w->prev)
    w->prev->next = w->next;
  else
    w->task->watches = w->next;
  if (w->next) w->next->prev = w->prev;
  w->task = NULL;
  w->prev = w->next = NULL;
}

static void run_callbacks(lua_State *L, int ud) {
  int i, n;
  push_extra(L, ud);
  if (lua_getfield(L, -1, "callbacks") != LUA_TTABLE) {
    lua_pop(L, 2);
    return;
  }
  n = (int)lua_rawlen(L, -1);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    lua_pushvalue(L, ud);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
      luaio *h = ((task *)lua_touserdata(L, ud))->h;
      lua_pushliteral(L, "error in a task's done callback: ");
      luaio__push_errmsg(L, -2);
      lua_concat(L, 2);
      luaio__report(h, lua_tostring(L, -1));
      lua_pop(L, 2);
    }
  }
  lua_pop(L, 2);
}

/* The pool of idle threads.  A task that ends gives its thread to the
   next task to start: tasks that end before the next ones start share one
   thread, and a burst of N concurrent tasks leaves N threads, each with
   its grown stack, for the next burst (a new thread costs a stack and a
   collection).  The pool grows as far as the pool thread's stack may
   (LUAI_MAXSTACK); once a period, the threads that sat idle all of it,
   beyond POOL_KEEP, go, so a burst's threads go back to the collector
   within two periods of its end.  Only the pool's stack changes here: no
   Lua code runs. */

static void on_pool_timer(uv_timer_t *timer) {
  luaio *h = timer->data;
  int drop = h->pool_low > POOL_KEEP ? h->pool_low - POOL_KEEP : 0;
  if (drop > 0) {
    h->npool -= drop;
    lua_settop(h->pool, POOL_TASKS + h->npool);
  }
  h->pool_low = h->npool;
  if (h->npool <= POOL_KEEP) uv_timer_stop(timer);
}

static void pool_trim_start(luaio *h) {
  h->pool_low = h->npool;
  uv_timer_start(&h->pool_timer, on_pool_timer, POOL_TRIM_MS, POOL_TRIM_MS);
  uv_unref((uv_handle_t *)&h->pool_timer);
}

/* End task t, whose thread has returned or failed; the task is at ud on
   the main thread's stack (0: not there yet).  Leaves L's stack below ud. */
static void finish(luaio *h, task *t, int status, int nres, int ud) {
  lua_State *L = h->L, *co = t->co;
  int ok = 0, n = 0;
  lua_checkstack(L, 12);
  if (ud == 0) {
    luaio__pushtask(L, t);
    ud = lua_gettop(L);
  }
  if (status == LUA_OK) {
    ok = lua_toboolean(co, -nres);
    n = nres - 1;
  } else { /* an error outside task_main's pcall: memory, or a bad yield */
    n = 1;
    if (status == LUA_YIELD) {
      lua_pushliteral(co, "coroutine.yield at a task's top level: use "
                          "aio.sleep(0) to let other tasks run");
    }
  }
  if (ok) {
    t->end = END_OK;
    t->nres = n;
    if (n == 1) {
      lua_xmove(co, L, 1);
      lua_setiuservalue(L, ud, TUV_RESULT);
    } else if (n > 1) {
      int i;
      lua_checkstack(L, 3);
      lua_createtable(L, n, 0);
      for (i = n; i >= 1; i--) {
        lua_xmove(co, L, 1);
        lua_rawseti(L, -2, i);
      }
      lua_setiuservalue(L, ud, TUV_RESULT);
    }
  } else {
    lua_xmove(co, L, 1);
    t->end =
        luaio__is_error(L, -1, "CancelledError") ? END_CANCELLED : END_ERROR;
    lua_setiuservalue(L, ud, TUV_RESULT);
  }
  /* The thread goes back to the pool, fit for a new task_main, unless
     coroutine.running handed it out: then it is left to the collector.
     The pool keeps one free slot above it, for reaching the tasks table. */
  if (status == LUA_OK && !t->escaped && lua_checkstack(h->pool, 2)) {
    lua_settop(co, 0);
    lua_pushthread(co);
    lua_xmove(co, h->pool, 1);
    if (++h->npool > POOL_KEEP && !uv_is_active((uv_handle_t *)&h->pool_timer))
      pool_trim_start(h);
  } else if (status != LUA_OK)
    lua_resetthread(co);
  else
    lua_settop(co, 0); /* dead, for whoever holds it */
  lua_pushnil(L);
  lua_setiuservalue(L, ud, TUV_THREAD);
  if (t->scope != &t->root) luaio__scope_drop_all(L, t);
  t->co = NULL;
  t->state = T_DONE;
  h->ntasks--;
  unanchor(h, t->ref);
  t->ref = 0;
  if (t->end == END_ERROR) {
    /* Reported when collected or at the end of the run unless retrieved.
       A new sentinel object carries the finalizer: giving the old task
       one would make Lua search its list of every object. */
    push_extra(L, ud);
    lua_newuserdatauv(L, 0, 1);
    lua_pushvalue(L, ud);
    lua_setiuservalue(L, -2, 1);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &failedkey);
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, "sentinel");
    lua_pop(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->failed_ref);
    lua_pushvalue(L, ud);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
  }
  while (t->awaiters.head != NULL)
    luaio__wake(luaio__list_pop(&t->awaiters), NULL, 0);
  while (t->watches != NULL) {
    watch *w = t->watches;
    luaio__unwatch(w);
    w->done(w);
  }
  if (t->has_callbacks) run_callbacks(L, ud);
  lua_settop(L, ud - 1);
}

/* Give a task that starts a thread (from the pool when one is there),
   with task_main, the function and its arguments on it; their number.
   Leaves the task on top of the main thread's stack. */
static int start(luaio *h, task *t) {
  lua_State *L = h->L, *co;
  int nargs = t->nwake, i;
  t->nwake = 0;
  lua_checkstack(L, 8);
  luaio__pushtask(L, t);
  if (h->npool > 0) {
    lua_xmove(h->pool, L, 1);
    if (--h->npool < h->pool_low) h->pool_low = h->npool;
    co = lua_tothread(L, -1);
  } else
    co = lua_newthread(L);
  luaL_checkstack(co, nargs + 3, "too many arguments");
  lua_pushcfunction(co, task_main);
  lua_pushcfunction(co, task_msgh);
  lua_getiuservalue(L, -2, TUV_THREAD); /* the function */
  lua_xmove(L, co, 1);
  lua_setiuservalue(L, -2, TUV_THREAD);
  if (nargs > 0) {
    lua_getiuservalue(L, -1, TUV_RESULT);
    if (nargs == 1)
      lua_xmove(L, co, 1);
    else {
      for (i = 1; i <= nargs; i++) {
        lua_rawgeti(L, -1, i);
        lua_xmove(L, co, 1);
      }
      lua_pop(L, 1);
    }
    lua_pushnil(L);
    lua_setiuservalue(L, -2, TUV_RESULT);
  }
  t->co = co;
  return nargs + 2;
}

/* Resume a ready task with what it was woken with, from the scheduler. */
void luaio__resume(luaio *h, task *t) {
  lua_State *co, *pnested;
  unsigned char pnested_ok;
  task *prev = h->current;
  int nargs, nres, status, ud = 0;
  if (t->state == T_NEW) { /* the task stays at ud while it first runs */
    nargs = start(h, t);
    ud = lua_gettop(h->L);
    co = t->co;
    if (t->root.cancelled && !t->run_cancelled) { /* never started */
      lua_settop(co, 0);
      lua_pushboolean(co, 0);
      luaio__cancelled_push(co, &t->root);
      finish(h, t, LUA_OK, 2, ud);
      return;
    }
  } else {
    co = t->co;
    nargs = t->nwake;
    t->nwake = 0;
    lua_remove(co, -(nargs + 1)); /* the marker of its wait */
  }
  t->state = T_RUNNING;
  t->wops = NULL;
  h->current = t;
  pnested = h->nested; /* an eager start inside another task's coroutine */
  pnested_ok = h->nested_ok;
  h->nested = NULL;
  status = lua_resume(co, h->L, nargs, &nres);
  h->nested = pnested;
  h->nested_ok = pnested_ok;
  h->current = prev;
  if (status == LUA_YIELD && nres == 1 &&
      lua_touserdata(co, -1) == &luaio__marker) {
    if (ud != 0) lua_settop(h->L, ud - 1);
    return;
  }
  if (status == LUA_YIELD) lua_pop(co, nres); /* a stray coroutine.yield */
  finish(h, t, status, status == LUA_OK ? nres : 1, ud);
}

/* Push the results of a finished task, or raise (or push) its error. */
int luaio__pushresults(lua_State *L, task *t, int raise) {
  int ud = lua_gettop(L), i;
  if (t->end == END_OK) {
    if (t->nres == 0) return 0;
    lua_getiuservalue(L, ud, TUV_RESULT);
    if (t->nres == 1) return 1;
    luaL_checkstack(L, t->nres, "too many results");
    for (i = 1; i <= t->nres; i++)
      lua_rawgeti(L, ud + 1, i);
    return t->nres;
  }
  t->retrieved = 1;
  lua_getiuservalue(L, ud, TUV_RESULT);
  if (raise) return lua_error(L);
  return 1;
}

/* Awaiting. */

/* Cancelling the waiter cancels the awaited task, and the waiter goes on
   waiting, shielded, until that task has finished cancelling (its cleanup
   may wait), as asyncio's Task.cancel does for a task in `await other`.
   A waiter already woken keeps what it was woken for. */
static int await_abandon(task *self, int woken) {
  if (!woken) luaio__task_cancel(self->wobj);
  return 0;
}

static const waitops await_ops = {"await", await_abandon, NULL};
static const waitops shield_ops = {"shield", luaio__abandon_list, NULL};

/* The results of the finished task at index 1 for the running task: its
   values, or its error (linked as the cause of the caller's report); a
   task that ended cancelled while the caller's own cancellation is due
   gives the caller's CancelledError, so the caller's scopes catch it. */
int luaio__await_results(lua_State *L, task *t) {
  task *self = t->h->current;
  if (lua_gettop(L) != 1) lua_settop(L, 1);
  if (t->end == END_CANCELLED && self != NULL) {
    scope *s = luaio__cancelled_scope(self);
    if (s != NULL) {
      luaio__cancelled_push(L, s);
      return lua_error(L);
    }
  }
  if (t->end != END_OK && self != NULL) {
    luaio__pushtask(L, self);
    push_extra(L, -1);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "cause");
    lua_settop(L, 1);
  }
  return luaio__pushresults(L, t, 1);
}

static int k_await(lua_State *L, int status, lua_KContext ctx) {
  task *t = lua_touserdata(L, 1);
  (void)ctx;
  if (status == LUA_YIELD) luaio__resumed(L, t->h->current);
  return luaio__await_results(L, t);
}

/* Wait until the task at index 1 has finished, then k runs; `shielded`:
   the caller's cancellation does not reach the task, and interrupts the
   wait at once. */
int luaio__await_k(lua_State *L, int shielded, lua_KFunction k) {
  task *t = luaio__checktask(L, 1), *self;
  if (lua_gettop(L) != 1) lua_settop(L, 1);
  if (t->state == T_DONE) return k(L, LUA_OK, 0);
  self = luaio__enter_wait(L, t->h);
  if (self == t)
    return luaio__error_raise(L, "InvalidStateError",
                              "a task cannot await itself");
  luaio__list_push(&t->awaiters, &self->w);
  return luaio__wait(L, self, shielded ? &shield_ops : &await_ops, t, 0, k);
}

/* Wait for the task at index 1 and return its results. */
int luaio__await(lua_State *L, int shielded) {
  return luaio__await_k(L, shielded, k_await);
}

/* The Task methods. */

/* t:await() -> ... */
static int task_await(lua_State *L) { return luaio__await(L, 0); }

/* Cancel t; its CancelledError says msg. */
void luaio__task_cancel_msg(lua_State *L, task *t, const char *msg) {
  if (t->state != T_DONE && !t->has_cancel_msg && lua_checkstack(L, 4)) {
    luaio__pushtask(L, t);
    push_extra(L, -1);
    lua_pushstring(L, msg);
    lua_setfield(L, -2, "cancel_msg");
    lua_pop(L, 2);
    t->has_cancel_msg = 1;
  }
  luaio__task_cancel(t);
}

/* Push the message t:cancel(msg) gave, if any; 1 if it did. */
int luaio__push_cancel_msg(lua_State *L, task *t) {
  if (!t->has_cancel_msg || t->ref == 0) return 0;
  luaio__pushtask(L, t);
  push_extra(L, -1);
  lua_getfield(L, -1, "cancel_msg");
  lua_replace(L, -3);
  lua_pop(L, 1);
  return 1;
}

/* t:cancel([msg]) -> boolean: false if the task is already done */
static int task_cancel(lua_State *L) {
  task *t = luaio__checktask(L, 1);
  int pending = t->state != T_DONE;
  if (lua_isnoneornil(L, 2))
    luaio__task_cancel(t);
  else
    luaio__task_cancel_msg(L, t, luaL_tolstring(L, 2, NULL));
  lua_pushboolean(L, pending);
  return 1;
}

/* t:done() -> boolean */
static int task_done(lua_State *L) {
  lua_pushboolean(L, luaio__checktask(L, 1)->state == T_DONE);
  return 1;
}

/* t:cancelled() -> boolean */
static int task_cancelled(lua_State *L) {
  lua_pushboolean(L, luaio__checktask(L, 1)->end == END_CANCELLED);
  return 1;
}

/* t:result() -> ... (raises the task's error; InvalidStateError if
   not done) */
static int task_result(lua_State *L) {
  task *t = luaio__checktask(L, 1);
  lua_settop(L, 1);
  if (t->state != T_DONE)
    return luaio__error_raise(L, "InvalidStateError", "result is not set");
  return luaio__pushresults(L, t, 1);
}

/* t:error() -> error | nil */
static int task_error(lua_State *L) {
  task *t = luaio__checktask(L, 1);
  lua_settop(L, 1);
  if (t->state != T_DONE)
    return luaio__error_raise(L, "InvalidStateError", "task is not done");
  if (t->end == END_OK) return 0;
  return luaio__pushresults(L, t, 0);
}

/* t:add_done_callback(fn): fn(t) once the task is done (at once if it is) */
static int task_add_done_callback(lua_State *L) {
  task *t = luaio__checktask(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (t->state == T_DONE) {
    lua_pushvalue(L, 1);
    lua_call(L, 1, 0);
    return 0;
  }
  push_extra(L, 1);
  if (lua_getfield(L, -1, "callbacks") != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "callbacks");
  }
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  t->has_callbacks = 1;
  return 0;
}

/* t:name() -> string */
static int task_name(lua_State *L) {
  push_name(L, luaio__checktask(L, 1), 1);
  return 1;
}

/* t:set_name(s) */
static int task_set_name(lua_State *L) {
  luaio__checktask(L, 1);
  luaL_tolstring(L, 2, NULL);
  push_extra(L, 1);
  lua_insert(L, -2);
  lua_setfield(L, -2, "name");
  return 0;
}

/* t:traceback() -> string | nil: where a failed task failed */
static int task_traceback(lua_State *L) {
  task *t = luaio__checktask(L, 1);
  if (t->end != END_ERROR) return 0;
  lua_settop(L, 1);
  push_report(L, 1);
  return 1;
}

static const char *const state_names[] = {"pending", "pending", "running",
                                          "pending", "done"};

/* tostring(t) -> "<task 3 "name" pending>" */
static int task_tostring(lua_State *L) {
  task *t = luaio__checktask(L, 1);
  const char *st = state_names[t->state];
  if (t->end == END_CANCELLED) st = "cancelled";
  if (t->end == END_ERROR) st = "failed";
  push_name(L, t, 1);
  lua_pushfstring(L, "<task %I \"%s\" %s", luaio__task_number(t),
                  lua_tostring(L, -1), st);
  if (t->state == T_WAITING && t->wops != NULL)
    lua_pushfstring(L, " in %s>", t->wops->what);
  else
    lua_pushliteral(L, ">");
  lua_concat(L, 2);
  return 1;
}

/* What a failed task at ud reports: its error with the traceback of where
   it was raised, the task and the tasks awaiting it. */
void luaio__push_failure(lua_State *L, task *t, int ud) {
  (void)t;
  push_report(L, ud);
}

static void report(lua_State *L, task *t, int ud) {
  if (t->retrieved) return;
  t->retrieved = 1;
  lua_pushliteral(L, "Task exception was never retrieved\n");
  luaio__push_failure(L, t, ud);
  lua_concat(L, 2);
  luaio__report(t->h, lua_tostring(L, -1));
  lua_pop(L, 1);
}

/* __gc of a failed task's sentinel: report an error nobody retrieved. */
static int sentinel_gc(lua_State *L) {
  task *t;
  lua_getiuservalue(L, 1, 1);
  t = lua_touserdata(L, 2);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &luaio__marker);
  if (t != NULL && lua_touserdata(L, -1) == t->h && !t->h->freeing)
    report(L, t, 2);
  return 0;
}

void luaio__report_unretrieved(luaio *h) {
  lua_State *L = h->L;
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->failed_ref);
  lua_pushnil(L);
  while (lua_next(L, top + 1)) {
    lua_pop(L, 1);
    report(L, lua_touserdata(L, -1), top + 2);
  }
  lua_newtable(L); /* start afresh: the keys above are reported */
  lua_pushvalue(L, top + 1);
  lua_getmetatable(L, -1);
  lua_setmetatable(L, -3);
  lua_pop(L, 1);
  lua_rawseti(L, LUA_REGISTRYINDEX, h->failed_ref);
  lua_settop(L, top);
}

/* Cancel every live task (the end of a run, luaio_free, a deadlock). */
void luaio__cancel_all(luaio *h) {
  lua_State *L = h->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->tasks_ref);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    task *t = lua_touserdata(L, -1);
    if (t != NULL) luaio__task_cancel(t);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

static const luaL_Reg task_methods[] = {
    {"await", task_await},
    {"cancel", task_cancel},
    {"done", task_done},
    {"cancelled", task_cancelled},
    {"result", task_result},
    {"error", task_error},
    {"add_done_callback", task_add_done_callback},
    {"name", task_name},
    {"set_name", task_set_name},
    {"traceback", task_traceback},
    {NULL, NULL}};

void luaio__tasks_open(lua_State *L, luaio *h) {
  lua_createtable(L, 0, 4);
  luaL_newlib(L, task_methods);
  luaio__set_methods(L, "luaio.Task");
  lua_pushcfunction(L, task_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, "luaio.Task");
  lua_setfield(L, -2, "__name");
  h->task_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, sentinel_gc);
  lua_setfield(L, -2, "__gc");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &failedkey);
  lua_pushlightuserdata(L, h); /* for task_msgh */
  lua_rawsetp(L, LUA_REGISTRYINDEX, &luaio__marker);
}

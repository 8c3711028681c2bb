/*
** combine.c: waiting for many tasks.  aio.gather, aio.wait,
** aio.as_completed, aio.first and aio.wait_for.
**
** Each call makes one userdata, a `combo`: a watch node per task (the
** core tells the node when its task finishes), counters, a timer node for
** the timeout and, for wait_for, the shield scope of its second wait.  A
** finished task only updates the counters and, when the call's condition
** holds, wakes the waiting task; everything is read back in the
** continuation.  So a wake allocates nothing and costs O(1), and a call
** costs O(n) in all.
**
** The userdata sits on the waiting C function's stack (as_completed: in
** its iterator's upvalue) and its continuation unlinks every node before
** it returns or raises; a __gc (and, for as_completed's for loop, a
** __close) unlinks them too, so a task never points at freed memory.
*/

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"

/* The registry key of the combos' metatable. */
static const char combokey = 'c';

enum { K_GATHER, K_WAIT, K_FIRST, K_AS_COMPLETED, K_WAIT_FOR };
enum { W_ALL, W_FIRST, W_FIRST_ERROR };

struct combo;

typedef struct child {
  watch w;
  struct combo *c;
  task *t;
} child;

typedef struct combo {
  luaio *h;
  task *caller;      /* the task that waits on the combo */
  size_t n, ndone;   /* tasks, and those finished */
  size_t nerr;       /* finished with an error (not a cancellation) */
  size_t first_bad;  /* 1-based: the first to fail or be cancelled */
  size_t winner;     /* 1-based: the first to succeed */
  size_t nrec, nout; /* as_completed: finished, and handed out */
  size_t *order;     /* as_completed: indices in completion order */
  unsigned char kind, when, return_errors, waiting, timed_out, closed;
  unsigned char outer;  /* wait_for: the caller was cancelled */
  unsigned char inside; /* wait_for: the shield scope is pushed */
  tnode timer;
  subscope shield;
  child kids[];
} combo;

/* Bookkeeping, called from the scheduler. */

static void wake(combo *c) {
  if (!c->waiting) return;
  c->waiting = 0;
  luaio__wake(c->caller, NULL, 0);
}

/* Note that the i-th task (1-based) has finished. */
static void record(combo *c, task *t, size_t i) {
  c->ndone++;
  if (t->end == END_OK) {
    if (c->winner == 0) c->winner = i;
  } else {
    if (c->first_bad == 0) c->first_bad = i;
    if (t->end == END_ERROR) c->nerr++;
  }
  if (c->order != NULL) c->order[c->nrec++] = i;
}

/* Whether the waiting task has what it waits for. */
static int satisfied(const combo *c) {
  switch (c->kind) {
  case K_GATHER:
    return c->ndone == c->n || (!c->return_errors && c->first_bad != 0);
  case K_WAIT:
    if (c->when == W_FIRST) return c->ndone > 0;
    if (c->when == W_FIRST_ERROR) return c->ndone == c->n || c->nerr > 0;
    return c->ndone == c->n;
  case K_FIRST:
    return c->winner != 0 || c->ndone == c->n;
  case K_AS_COMPLETED:
    return c->nrec > c->nout;
  default:
    return c->ndone == c->n;
  }
}

static void on_child_done(watch *w) {
  child *k = container_of(w, child, w);
  combo *c = k->c;
  record(c, k->t, (size_t)(k - c->kids) + 1);
  if (satisfied(c)) wake(c);
}

/* Unlink every watch node and the timer; harmless when done before. */
static void release(combo *c) {
  size_t i;
  for (i = 0; i < c->n; i++)
    luaio__unwatch(&c->kids[i].w);
  luaio__timer_remove(c->h, &c->timer);
}

static void on_timer(tnode *n) {
  combo *c = container_of(n, combo, timer);
  c->timed_out = 1;
  if (c->kind == K_AS_COMPLETED) release(c); /* later ones do not count */
  wake(c);
}

/* Cancel every task that has not finished. */
static void cancel_pending(combo *c) {
  size_t i;
  for (i = 0; i < c->n; i++)
    if (c->kids[i].t != NULL && c->kids[i].t->state != T_DONE)
      luaio__task_cancel(c->kids[i].t);
}

/* What cancelling the waiting task does to each wait.  `woken`: the
   caller's condition held and it was woken, but has not run yet. */

static int gather_abandon(task *t, int woken) {
  combo *c = t->wobj;
  if (woken) return 0; /* done: the results stand (bpo-26923) */
  c->waiting = 0;
  cancel_pending(c);
  release(c);
  return 1;
}

static int wait_abandon(task *t, int woken) {
  combo *c = t->wobj;
  (void)woken;
  c->waiting = 0; /* nothing was handed over: raise now */
  return 1;
}

static int wait_for_abandon(task *t, int woken) {
  combo *c = t->wobj;
  c->waiting = 0;
  /* A result that arrived first is returned; the cancellation is raised
     at the caller's next wait (bpo-42130, gh-92824). */
  if (woken && c->ndone > 0) return 0;
  return 1;
}

/* The second wait of wait_for runs under a shield: it is never
   abandoned. */
static int shielded_abandon(task *t, int woken) {
  (void)t;
  (void)woken;
  return 0;
}

static const waitops gather_ops = {"gather", gather_abandon, NULL};
static const waitops first_ops = {"first", gather_abandon, NULL};
static const waitops wait_ops = {"wait", wait_abandon, NULL};
static const waitops as_completed_ops = {"as_completed", wait_abandon, NULL};
static const waitops wait_for_ops = {"wait_for", wait_for_abandon, NULL};
static const waitops cancelling_ops = {"wait_for (cancelling)",
                                       shielded_abandon, NULL};

/* The userdata. */

/* __gc and __close: unlink what the tasks and the timer heap point to,
   unless the host is gone. */
static int combo_close(lua_State *L) {
  combo *c = lua_touserdata(L, 1);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &luaio__marker);
  if (c != NULL && lua_touserdata(L, -1) == c->h && !c->h->freeing) release(c);
  if (c != NULL) c->closed = 1;
  return 0;
}

static combo *new_combo(lua_State *L, luaio *h, size_t n, int kind) {
  size_t size = offsetof(combo, kids), i;
  combo *c;
  if (n > (SIZE_MAX / 2 - size) / (sizeof(child) + sizeof(size_t)))
    luaL_error(L, "too many tasks");
  size += n * sizeof(child);
  if (kind == K_AS_COMPLETED) size += n * sizeof(size_t);
  c = lua_newuserdatauv(L, size, 0);
  memset(c, 0, size);
  c->h = h;
  c->n = n;
  c->kind = (unsigned char)kind;
  c->timer.fire = on_timer;
  if (kind == K_AS_COMPLETED) c->order = (size_t *)(void *)(c->kids + n);
  for (i = 0; i < n; i++) {
    c->kids[i].c = c;
    c->kids[i].w.done = on_child_done;
  }
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &combokey) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 3);
    lua_pushcfunction(L, combo_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, combo_close);
    lua_setfield(L, -2, "__close");
    lua_pushliteral(L, "luaio.combine");
    lua_setfield(L, -2, "__name");
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &combokey);
  }
  lua_setmetatable(L, -2);
  return c;
}

/* Watch the tasks of the array at index 2; those already finished are
   noted at once, in argument order. */
static void watch_all(lua_State *L, combo *c) {
  size_t i;
  for (i = 0; i < c->n; i++) {
    task *t;
    lua_rawgeti(L, 2, (lua_Integer)i + 1);
    t = lua_touserdata(L, -1);
    lua_pop(L, 1);
    c->kids[i].t = t;
    if (t->state == T_DONE)
      record(c, t, i + 1);
    else
      luaio__watch(t, &c->kids[i].w);
  }
}

static void start_timer(combo *c, double s) {
  if (s < 1e9) /* longer than 30 years: never */
    luaio__timer_add(c->h, &c->timer, luaio__now() + (uint64_t)(s * 1e9));
}

/* Suspend the caller until the combo is satisfied.  A task started
   eagerly may have cancelled the caller since its last checkpoint: then
   the wait is abandoned before it begins, as a cancel would abandon it. */
static int suspend(lua_State *L, combo *c, task *self, const waitops *ops,
                   lua_KFunction k) {
  scope *s = luaio__cancelled_scope(self);
  c->caller = self;
  c->waiting = 1;
  self->wobj = c;
  if (s != NULL && ops->abandon(self, 0)) {
    c->waiting = 0;
    luaio__cancelled_push(L, s);
    self->wake_err = 1;
    return k(L, LUA_YIELD, 0);
  }
  return luaio__wait(L, self, ops, c, 0, k);
}

/* Arguments. */

static int is_callable(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TFUNCTION) return 1;
  if (luaL_getmetafield(L, idx, "__call") == LUA_TNIL) return 0;
  lua_pop(L, 1);
  return 1;
}

/* A table that is an array of tasks rather than a callable object. */
static int is_list(lua_State *L, int idx) {
  return lua_type(L, idx) == LUA_TTABLE && !is_callable(L, idx);
}

static void check_item(lua_State *L, luaio *h, int idx, int arg, size_t i,
                       int spawn) {
  task *t = luaio__totask(L, idx);
  if (t != NULL) {
    if (t == h->current)
      luaio__error_raise(L, "InvalidStateError",
                         "a task cannot wait for itself");
    return;
  }
  if (spawn && is_callable(L, idx)) return;
  if (i == 0) luaL_typeerror(L, arg, spawn ? "task or function" : "task");
  luaL_argerror(L, arg,
                lua_pushfstring(L, "item %I is a %s, expected a %s",
                                (lua_Integer)i, luaL_typename(L, idx),
                                spawn ? "task or function" : "task"));
}

/* The length of the array at idx: its field n if set, else #. */
static size_t list_len(lua_State *L, int idx) {
  lua_Integer n = 0;
  if (lua_getfield(L, idx, "n") == LUA_TNIL) {
    lua_pop(L, 1);
    return lua_rawlen(L, idx);
  }
  if (!lua_isinteger(L, -1) || (n = lua_tointeger(L, -1)) < 0)
    luaL_argerror(L, idx, "field 'n' must be a non-negative integer");
  lua_pop(L, 1);
  return (size_t)n;
}

/* Check gather-like arguments: one array (with options after it when
   `opts`) or tasks and functions.  Returns how many; *list is the index
   of the array, 0 for the argument form. */
static size_t check_args(lua_State *L, luaio *h, int spawn, int *list) {
  int top = lua_gettop(L), i;
  size_t n, j;
  if (top >= 1 && is_list(L, 1)) {
    *list = 1;
    n = list_len(L, 1);
    luaL_checkstack(L, 4, NULL);
    for (j = 1; j <= n; j++) {
      lua_rawgeti(L, 1, (lua_Integer)j);
      check_item(L, h, -1, 1, j, spawn);
      lua_pop(L, 1);
    }
    return n;
  }
  *list = 0;
  for (i = 1; i <= top; i++)
    check_item(L, h, i, i, 0, spawn);
  return (size_t)top;
}

/* Push the array of tasks, spawning the functions, in argument order. */
static void push_tasks(lua_State *L, luaio *h, int list, size_t n) {
  size_t i;
  lua_createtable(L, n < INT32_MAX ? (int)n : 0, 0);
  for (i = 1; i <= n; i++) {
    if (list)
      lua_rawgeti(L, list, (lua_Integer)i);
    else
      lua_pushvalue(L, (int)i);
    if (luaio__totask(L, -1) == NULL) luaio__spawn(L, h, 0);
    lua_rawseti(L, -2, (lua_Integer)i);
  }
}

/* Leave the combo at 1 and the tasks at 2, over the arguments. */
static void settle_stack(lua_State *L) {
  lua_insert(L, 1);
  lua_copy(L, -1, 2);
  lua_settop(L, 2);
}

/* opts.timeout in seconds, or -1 when absent. */
static double opt_timeout(lua_State *L, int idx) {
  double s = -1;
  if (lua_isnoneornil(L, idx)) return s;
  if (lua_getfield(L, idx, "timeout") != LUA_TNIL) {
    if (!lua_isnumber(L, -1) || isnan(s = lua_tonumber(L, -1)))
      luaL_argerror(L, idx, "timeout must be a number of seconds");
    if (s < 0) s = 0;
  }
  lua_pop(L, 1);
  return s;
}

/* Push a new array with n set. */
static void new_array(lua_State *L, size_t n) {
  lua_createtable(L, n < INT32_MAX ? (int)n : 0, 1);
  lua_pushinteger(L, (lua_Integer)n);
  lua_setfield(L, -2, "n");
}

/* aio.gather */

static int k_gather(lua_State *L, int status, lua_KContext ctx) {
  combo *c = lua_touserdata(L, 1);
  size_t i;
  (void)ctx;
  release(c);
  if (status == LUA_YIELD) luaio__resumed(L, c->caller);
  if (!c->return_errors && c->first_bad != 0) {
    /* The first error, as it is: the other tasks keep running. */
    lua_rawgeti(L, 2, (lua_Integer)c->first_bad);
    return luaio__pushresults(L, c->kids[c->first_bad - 1].t, 1);
  }
  luaL_checkstack(L, 8, NULL);
  new_array(L, c->n);                       /* 3: results */
  if (c->return_errors) new_array(L, c->n); /* 4: errors */
  for (i = 0; i < c->n; i++) {
    task *t = c->kids[i].t;
    int top = lua_gettop(L), nr;
    lua_rawgeti(L, 2, (lua_Integer)i + 1);
    nr = luaio__pushresults(L, t, 0); /* marks an error retrieved */
    if (nr > 0) {
      /* Several results come after the table that holds them. */
      lua_pushvalue(L, top + 2 + (t->end == END_OK && t->nres > 1));
      lua_rawseti(L, t->end == END_OK ? 3 : 4, (lua_Integer)i + 1);
    }
    lua_settop(L, top);
  }
  return c->return_errors ? 2 : 1;
}

/* aio.gather(...) -> results | aio.gather(list [, opts]) -> results
   [, errors] */
static int aio_gather(lua_State *L) {
  luaio *h = luaio__host(L);
  int list, return_errors = 0;
  size_t n = check_args(L, h, 1, &list);
  task *self;
  combo *c;
  if (list) {
    static const char *const known[] = {"return_errors", NULL};
    luaio__check_options(L, 2, known);
    if (lua_istable(L, 2)) {
      lua_getfield(L, 2, "return_errors");
      return_errors = lua_toboolean(L, -1);
      lua_pop(L, 1);
    }
  }
  if (n == 0) {
    new_array(L, 0);
    if (!return_errors) return 1;
    new_array(L, 0);
    return 2;
  }
  self = luaio__enter_wait(L, h);
  push_tasks(L, h, list, n);
  c = new_combo(L, h, n, K_GATHER);
  c->return_errors = (unsigned char)return_errors;
  settle_stack(L);
  watch_all(L, c);
  if (satisfied(c)) return k_gather(L, LUA_OK, 0);
  return suspend(L, c, self, &gather_ops, k_gather);
}

/* aio.first */

static int k_first(lua_State *L, int status, lua_KContext ctx) {
  combo *c = lua_touserdata(L, 1);
  size_t i;
  (void)ctx;
  release(c);
  if (status == LUA_YIELD) luaio__resumed(L, c->caller);
  cancel_pending(c);
  for (i = 0; i < c->n; i++) /* the failures are consumed here */
    if (c->kids[i].t->end == END_ERROR) c->kids[i].t->retrieved = 1;
  if (c->winner != 0) {
    lua_rawgeti(L, 2, (lua_Integer)c->winner);
    return luaio__pushresults(L, c->kids[c->winner - 1].t, 1);
  }
  luaL_checkstack(L, 8, NULL);
  luaio__error_push(L, "ErrorGroup", NULL);
  lua_pushfstring(L, "all %I tasks failed", (lua_Integer)c->n);
  lua_setfield(L, -2, "message");
  luaio__traceback(L, NULL, 1);
  lua_setfield(L, -2, "traceback");
  new_array(L, c->n);
  for (i = 0; i < c->n; i++) {
    lua_rawgeti(L, 2, (lua_Integer)i + 1);
    luaio__pushresults(L, c->kids[i].t, 0);
    lua_rawseti(L, -3, (lua_Integer)i + 1);
    lua_pop(L, 1);
  }
  lua_setfield(L, -2, "errors");
  return lua_error(L);
}

/* aio.first(...) -> ...: the results of the first task that succeeds */
static int aio_first(lua_State *L) {
  luaio *h = luaio__host(L);
  int list;
  size_t n = check_args(L, h, 1, &list);
  task *self;
  combo *c;
  if (list && lua_gettop(L) > 1) luaL_checktype(L, 2, LUA_TNIL);
  luaL_argcheck(L, n > 0, 1, "expected at least one task or function");
  self = luaio__enter_wait(L, h);
  push_tasks(L, h, list, n);
  c = new_combo(L, h, n, K_FIRST);
  settle_stack(L);
  watch_all(L, c);
  if (satisfied(c)) return k_first(L, LUA_OK, 0);
  return suspend(L, c, self, &first_ops, k_first);
}

/* aio.wait */

static int k_wait(lua_State *L, int status, lua_KContext ctx) {
  combo *c = lua_touserdata(L, 1);
  size_t i, nd = 0, np = 0;
  (void)ctx;
  release(c);
  if (status == LUA_YIELD) luaio__resumed(L, c->caller);
  new_array(L, c->ndone);        /* 3: done */
  new_array(L, c->n - c->ndone); /* 4: pending */
  for (i = 0; i < c->n; i++) {
    int done = c->kids[i].t->state == T_DONE;
    lua_rawgeti(L, 2, (lua_Integer)i + 1);
    lua_rawseti(L, done ? 3 : 4, (lua_Integer)(done ? ++nd : ++np));
  }
  /* A task may have finished after the wake; count what is there. */
  lua_pushinteger(L, (lua_Integer)nd);
  lua_setfield(L, 3, "n");
  lua_pushinteger(L, (lua_Integer)np);
  lua_setfield(L, 4, "n");
  return 2;
}

/* aio.wait(tasks [, {timeout = s, return_when = "all" | "first" |
   "first_error"}]) -> done, pending */
static int aio_wait(lua_State *L) {
  static const char *const wait_options[] = {"timeout", "return_when", NULL};
  static const char *const whens[] = {"all", "first", "first_error", NULL};
  luaio *h = luaio__host(L);
  int list, when = W_ALL;
  size_t n;
  double s;
  task *self;
  combo *c;
  luaL_argexpected(L, is_list(L, 1), 1, "array of tasks");
  n = check_args(L, h, 0, &list);
  luaio__check_options(L, 2, wait_options);
  s = opt_timeout(L, 2);
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "return_when");
    if (!lua_isnil(L, -1)) {
      if (lua_type(L, -1) != LUA_TSTRING)
        luaL_argerror(L, 2,
                      "return_when must be \"all\", \"first\" or "
                      "\"first_error\"");
      for (when = 0; whens[when] != NULL; when++)
        if (strcmp(whens[when], lua_tostring(L, -1)) == 0) break;
      if (whens[when] == NULL)
        luaL_argerror(L, 2,
                      lua_pushfstring(L, "invalid return_when '%s'",
                                      lua_tostring(L, -1)));
    }
    lua_pop(L, 1);
  }
  if (n == 0) {
    new_array(L, 0);
    new_array(L, 0);
    return 2;
  }
  self = luaio__enter_wait(L, h);
  push_tasks(L, h, 1, n);
  c = new_combo(L, h, n, K_WAIT);
  c->when = (unsigned char)when;
  settle_stack(L);
  watch_all(L, c);
  if (satisfied(c) || s == 0) return k_wait(L, LUA_OK, 0);
  if (s > 0) start_timer(c, s);
  return suspend(L, c, self, &wait_ops, k_wait);
}

/* aio.as_completed */

static int timeout_error(lua_State *L, const char *what) {
  return luaio__error_raise(L, "TimeoutError", "%s timed out", what);
}

/* The next finished task, or nil when every one was handed out. */
static int next_done(lua_State *L, combo *c) {
  if (c->nout < c->nrec) {
    lua_rawgeti(L, lua_upvalueindex(2), (lua_Integer)c->order[c->nout++]);
    return 1;
  }
  if (c->nout == c->n || c->closed) return 0;
  if (c->timed_out) return timeout_error(L, "as_completed");
  return -1;
}

static int as_completed_next(lua_State *L);

static int k_as_completed(lua_State *L, int status, lua_KContext ctx) {
  combo *c = lua_touserdata(L, lua_upvalueindex(1));
  (void)status;
  (void)ctx;
  luaio__resumed(L, c->caller);
  return as_completed_next(L);
}

/* The iterator of aio.as_completed: () -> task | nil */
static int as_completed_next(lua_State *L) {
  combo *c = lua_touserdata(L, lua_upvalueindex(1));
  int r = next_done(L, c);
  task *self;
  if (r >= 0) return r;
  if (c->waiting)
    return luaL_error(L, "as_completed: another task waits on this "
                         "iterator");
  self = luaio__enter_wait(L, c->h);
  return suspend(L, c, self, &as_completed_ops, k_as_completed);
}

/* aio.as_completed(tasks [, {timeout = s}]) -> iterator */
static int aio_as_completed(lua_State *L) {
  static const char *const timeout_only[] = {"timeout", NULL};
  luaio *h = luaio__host(L);
  int list;
  size_t n;
  double s;
  combo *c;
  luaL_argexpected(L, is_list(L, 1), 1, "array of tasks");
  n = check_args(L, h, 1, &list);
  luaio__check_options(L, 2, timeout_only);
  s = opt_timeout(L, 2);
  if (n > 0 && h->current == NULL && !h->running)
    return luaL_error(L, "no running event loop: call as_completed from "
                         "inside a task");
  push_tasks(L, h, 1, n);
  c = new_combo(L, h, n, K_AS_COMPLETED);
  settle_stack(L);
  watch_all(L, c);
  if (s >= 0 && c->nrec < n) {
    if (s == 0)
      on_timer(&c->timer);
    else
      start_timer(c, s);
  }
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_pushcclosure(L, as_completed_next, 2);
  lua_pushnil(L);
  lua_pushnil(L);
  lua_pushvalue(L, 1); /* the for loop's closing value */
  return 4;
}

/* aio.wait_for */

/* The end of wait_for: the inner task has finished. */
static int wait_for_result(lua_State *L, combo *c) {
  task *t = c->kids[0].t;
  lua_settop(L, 3);
  if (t->end == END_OK) { /* also when it swallowed a cancellation */
    lua_rawgeti(L, 2, 1);
    return luaio__pushresults(L, t, 1);
  }
  if (c->outer) { /* the caller's own CancelledError */
    lua_pushvalue(L, 3);
    return lua_error(L);
  }
  if (c->timed_out && t->end == END_CANCELLED) {
    t->retrieved = 1;
    return timeout_error(L, "wait_for");
  }
  lua_rawgeti(L, 2, 1); /* its error replaces the TimeoutError */
  return luaio__pushresults(L, t, 1);
}

static int k_wait_for_cancelling(lua_State *L, int status, lua_KContext ctx) {
  combo *c = lua_touserdata(L, 1);
  (void)status;
  (void)ctx;
  c->inside = 0;
  release(c);
  luaio__scope_pop(L, c->caller, &c->shield);
  luaio__resumed(L, c->caller);
  return wait_for_result(L, c);
}

/* Cancel the inner task and wait until it has finished, under a shield:
   the caller's cancellation cannot interrupt this wait (bpo-32751). */
static int cancel_and_wait(lua_State *L, combo *c) {
  task *self = c->caller, *t = c->kids[0].t;
  luaio__timer_remove(c->h, &c->timer);
  luaio__task_cancel(t);
  if (t->state == T_DONE) {
    release(c);
    return wait_for_result(L, c);
  }
  luaio__scope_push(self, &c->shield);
  c->shield.s.shield = 1;
  c->inside = 1;
  self = luaio__enter_wait(L, c->h);
  return suspend(L, c, self, &cancelling_ops, k_wait_for_cancelling);
}

static int k_wait_for(lua_State *L, int status, lua_KContext ctx) {
  combo *c = lua_touserdata(L, 1);
  task *self = c->caller;
  (void)status;
  (void)ctx;
  if (self->wake_err) { /* the caller was cancelled: keep its error */
    self->wake_err = 0;
    lua_replace(L, 3);
    c->outer = 1;
  }
  lua_settop(L, 3);
  if (c->ndone > 0) {
    release(c);
    return wait_for_result(L, c);
  }
  return cancel_and_wait(L, c);
}

/* aio.wait_for(task_or_fn, s) -> ... */
static int aio_wait_for(lua_State *L) {
  luaio *h = luaio__host(L);
  double s = -1;
  task *self, *t;
  combo *c;
  check_item(L, h, 1, 1, 0, 1);
  if (!lua_isnoneornil(L, 2)) {
    s = luaL_checknumber(L, 2);
    luaL_argcheck(L, !isnan(s), 2, "not a number");
    if (s < 0) s = 0;
  }
  lua_settop(L, 2);
  t = luaio__totask(L, 1);
  self = luaio__enter_wait(L, h);
  if (s == 0 && t == NULL) /* the function never starts */
    return timeout_error(L, "wait_for");
  lua_pushvalue(L, 1);
  if (t == NULL) luaio__spawn(L, h, 0);
  lua_createtable(L, 1, 0);
  lua_insert(L, -2);
  lua_rawseti(L, -2, 1);
  c = new_combo(L, h, 1, K_WAIT_FOR);
  settle_stack(L);
  lua_pushnil(L); /* 3: the caller's CancelledError, if it comes */
  watch_all(L, c);
  c->caller = self;
  if (c->ndone > 0) return wait_for_result(L, c);
  if (s == 0) {
    c->timed_out = 1;
    return cancel_and_wait(L, c);
  }
  if (s > 0) start_timer(c, s);
  return suspend(L, c, self, &wait_for_ops, k_wait_for);
}

const luaL_Reg luaio__combine_funcs[] = {{"gather", aio_gather},
                                         {"wait", aio_wait},
                                         {"as_completed", aio_as_completed},
                                         {"first", aio_first},
                                         {"wait_for", aio_wait_for},
                                         {NULL, NULL}};

/*
** taskgroup.c: aio.taskgroup, structured concurrency (Trio's nursery under
** asyncio's name).
**
** `local tg <close> = aio.taskgroup()` opens a cancel scope in the running
** task (the body).  When a child fails, the other children and the body
** are cancelled.  At the end of the scope the owner waits for every child,
** and a cancellation that reaches it then is passed on to the children
** instead of interrupting the wait.  Then the scope raises an ErrorGroup
** of every error that is not a cancellation, or lets the owner's own
** cancellation through.
*/

#include <stdlib.h>

#include "internal.h"

enum { G_OPEN, G_CLOSING, G_CLOSED };
enum { UV_CHILDREN = 1, UV_ERRORS, UV_GROUP_COUNT = UV_ERRORS };

typedef struct child {
  watch w;
  struct group *g;
  task *task;
  struct child *prev, *next; /* the group's children not yet done */
  int index;                 /* in the UV_CHILDREN array */
} child;

typedef struct group {
  subscope body;
  luaio *h;
  task *owner;
  child *live;
  int nlive, nchildren, nerrors;
  int ref; /* anchors the group while it is open */
  unsigned char state, failed, waiting, outer_cancel, dropped;
} group;

static group *checkgroup(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, "luaio.TaskGroup");
}

static void cancel_children(group *g) {
  child *c;
  for (c = g->live; c != NULL; c = c->next)
    luaio__task_cancel(c->task);
}

/* Push the group (anchored while open) onto L. */
static void pushgroup(lua_State *L, group *g) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, g->ref);
}

/* Append the value on top of L to the group's errors; the first one
   cancels the rest of the group. */
static void add_error(lua_State *L, group *g) {
  pushgroup(L, g);
  lua_getiuservalue(L, -1, UV_ERRORS);
  lua_pushvalue(L, -3);
  lua_rawseti(L, -2, ++g->nerrors);
  lua_pop(L, 3);
  if (!g->failed) {
    g->failed = 1;
    cancel_children(g);
    luaio__scope_cancel(&g->body.s);
  }
}

/* The group lets go of its anchor once it is closed and its last child
   has ended: the children's nodes point into it until then. */
static void unanchor(lua_State *L, group *g) {
  luaL_unref(L, LUA_REGISTRYINDEX, g->ref);
  g->ref = LUA_NOREF;
}

/* A child finished: keep its error, and wake the owner if it waits for
   the last one.  After the group was dropped (its owner ended without
   closing it) nobody will read the errors: a failed child is reported
   as never retrieved. */
static void child_ended(group *g, child *c) {
  lua_State *L = g->h->L;
  task *t = c->task;
  if (t->end == END_ERROR && !g->dropped) {
    pushgroup(L, g);
    lua_getiuservalue(L, -1, UV_CHILDREN);
    lua_rawgeti(L, -1, c->index);
    t->retrieved = 1;
    lua_getiuservalue(L, -1, TUV_RESULT);
    lua_replace(L, -4);
    lua_pop(L, 2);
    add_error(L, g);
  }
  if (c->prev)
    c->prev->next = c->next;
  else
    g->live = c->next;
  if (c->next) c->next->prev = c->prev;
  g->nlive--;
  free(c);
  if (g->nlive == 0 && g->waiting) {
    g->waiting = 0;
    luaio__wake(g->owner, NULL, 0);
  }
  if (g->nlive == 0 && g->state == G_CLOSED) unanchor(L, g);
}

static void on_child_done(watch *w) {
  child *c = container_of(w, child, w);
  child_ended(c->g, c);
}

/* Is the group cancelled, by its failure or by a scope around it? */
static int cancelled(group *g) {
  scope *s;
  for (s = &g->body.s; s != NULL; s = luaio__scope_parent(s)) {
    if (s->cancelled) return 1;
    if (s->shield) break;
  }
  return 0;
}

/* tg:spawn(fn, ...) -> task */
static int group_spawn(lua_State *L) {
  group *g = checkgroup(L, 1);
  child *c;
  task *t;
  luaL_checkany(L, 2);
  if (g->state == G_CLOSED)
    return luaio__error_raise(L, "InvalidStateError",
                              "the task group has finished");
  if (g->failed)
    return luaio__error_raise(L, "InvalidStateError",
                              "the task group is shutting down");
  c = malloc(sizeof *c);
  if (c == NULL) return luaL_error(L, "not enough memory");
  t = luaio__spawn(L, g->h, lua_gettop(L) - 2);
  c->g = g;
  c->task = t;
  c->w.done = on_child_done;
  c->index = ++g->nchildren;
  lua_getiuservalue(L, 1, UV_CHILDREN);
  lua_pushvalue(L, -2);
  lua_rawseti(L, -2, c->index);
  lua_pop(L, 1);
  c->prev = NULL;
  c->next = g->live;
  if (g->live) g->live->prev = c;
  g->live = c;
  g->nlive++;
  if (t->state == T_DONE) /* an eager child that never waited */
    child_ended(g, c);
  else {
    luaio__watch(t, &c->w);
    if (cancelled(g)) { /* it starts, and its first wait raises */
      t->run_cancelled = 1;
      luaio__task_cancel(t);
    }
  }
  return 1;
}

static int exit_abandon(task *t, int woken) {
  group *g = t->wobj;
  if (!woken) { /* the owner is cancelled: its children are, instead */
    g->outer_cancel = 1;
    cancel_children(g);
  }
  return 0;
}

static const waitops exit_ops = {"task group", exit_abandon, NULL};

/* Leave the scope: raise the ErrorGroup, or let err through. */
static int finish_close(lua_State *L, group *g) {
  task *t = g->owner;
  scope *s;
  g->state = G_CLOSED;
  if (g->nlive == 0) unanchor(L, g);
  luaio__scope_pop(L, t, &g->body);
  if (g->nerrors > 0) {
    lua_pushfstring(L, "%d error%s in a task group", g->nerrors,
                    g->nerrors == 1 ? "" : "s");
    luaio__error_push(L, "ErrorGroup", lua_tostring(L, -1));
    lua_getiuservalue(L, 1, UV_ERRORS);
    lua_setfield(L, -2, "errors");
    luaio__traceback(L, NULL, 1);
    lua_setfield(L, -2, "traceback");
    return lua_error(L);
  }
  if (lua_isnil(L, 2) && g->outer_cancel &&
      (s = luaio__cancelled_scope(t)) != NULL) {
    luaio__cancelled_push(L, s);
    return lua_error(L);
  }
  return 0; /* err, if any, goes on as it was */
}

static int k_close(lua_State *L, int status, lua_KContext ctx);

/* Wait until no child is left (children may spawn children meanwhile). */
static int wait_children(lua_State *L, group *g) {
  if (g->nlive == 0) return finish_close(L, g);
  luaio__check_suspend(L, g->owner);
  g->waiting = 1;
  return luaio__wait(L, g->owner, &exit_ops, g, 0, k_close);
}

static int k_close(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return wait_children(L, checkgroup(L, 1));
}

/* tg:__close(err): wait for every child, then raise what they raised */
static int group_close(lua_State *L) {
  group *g = checkgroup(L, 1);
  if (g->state != G_OPEN) return 0;
  if (g->owner != g->h->current)
    return luaL_error(L, "a task group must be closed by its own task");
  g->state = G_CLOSING;
  lua_settop(L, 2);
  if (!lua_isnil(L, 2)) {
    uint64_t id = luaio__cancelled_scope_id(L, 2);
    if (id == 0) { /* the body failed */
      lua_pushvalue(L, 2);
      add_error(L, g);
    } else if (id != g->body.s.id) { /* the owner is cancelled */
      g->outer_cancel = 1;
      cancel_children(g);
    }
  } else if (g->nlive > 0) { /* waiting is a wait: a due cancel is seen */
    scope *s = luaio__cancelled_scope(g->owner);
    if (s != NULL && s != &g->body.s) {
      g->outer_cancel = 1;
      cancel_children(g);
    }
  }
  return wait_children(L, g);
}

static void drop(lua_State *L, subscope *s) {
  group *g = container_of(s, group, body);
  g->state = G_CLOSED;
  g->dropped = 1;
  cancel_children(g);
  if (g->nlive == 0) unanchor(L, g);
}

static void describe(lua_State *L, subscope *s) {
  (void)s;
  lua_pushliteral(L, "a task group");
}

static const scopeops group_scope_ops = {drop, describe};

static int new_group(lua_State *L) {
  luaio *h = luaio__host(L);
  group *g;
  if (h->current == NULL)
    return luaL_error(L, "no running task: a task group belongs to a task");
  g = lua_newuserdatauv(L, sizeof *g, UV_GROUP_COUNT);
  g->h = h;
  g->owner = h->current;
  g->live = NULL;
  g->nlive = g->nchildren = g->nerrors = 0;
  g->state = G_OPEN;
  g->failed = g->waiting = g->outer_cancel = g->dropped = 0;
  luaL_setmetatable(L, "luaio.TaskGroup");
  lua_newtable(L);
  lua_setiuservalue(L, -2, UV_CHILDREN);
  lua_newtable(L);
  lua_setiuservalue(L, -2, UV_ERRORS);
  luaio__scope_push(g->owner, &g->body);
  g->body.ops = &group_scope_ops;
  lua_pushvalue(L, -1);
  g->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

static int k_taskgroup(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return lua_gettop(L) - 1;
}

/* aio.taskgroup() -> group (a <close> variable) |
   aio.taskgroup(fn) -> fn(group)'s results, after every child ended */
static int aio_taskgroup(lua_State *L) {
  if (lua_isnoneornil(L, 1)) return new_group(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  new_group(L);
  lua_insert(L, 1);
  lua_toclose(L, 1);
  lua_pushvalue(L, 1);
  lua_callk(L, 1, LUA_MULTRET, 0, k_taskgroup);
  return k_taskgroup(L, LUA_OK, 0);
}

static int group_tostring(lua_State *L) {
  group *g = checkgroup(L, 1);
  static const char *const states[] = {"open", "closing", "closed"};
  lua_pushfstring(L, "<task group %s, %d running%s>", states[g->state],
                  g->nlive, g->failed ? ", failed" : "");
  return 1;
}

static const luaL_Reg group_methods[] = {{"spawn", group_spawn}, {NULL, NULL}};

static const luaL_Reg group_meta[] = {{"__close", group_close},
                                      {"__tostring", group_tostring},
                                      {"__index", NULL},
                                      {NULL, NULL}};

void luaio__taskgroup_open(lua_State *L) {
  luaL_newmetatable(L, "luaio.TaskGroup");
  luaL_setfuncs(L, group_meta, 0);
  luaL_newlib(L, group_methods);
  luaio__set_methods(L, "luaio.TaskGroup");
  lua_pop(L, 1);
}

const luaL_Reg luaio__taskgroup_funcs[] = {{"taskgroup", aio_taskgroup},
                                           {NULL, NULL}};

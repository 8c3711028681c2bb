/*
** scope.c: cancel scopes, level-triggered cancellation, aio.shield.
**
** Each task has a stack of scopes.  A wait raises CancelledError while any
** scope between the innermost one and the nearest shield is cancelled; the
** error names the outermost such scope, which is the one that catches it.
*/

#include <stdlib.h>

#include "internal.h"

/* The registry key of the shield scopes' metatable. */
static const char scopekey = 's';

void luaio__scope_push(task *t, subscope *s) {
  s->ops = NULL;
  s->parent = t->scope;
  s->task = t;
  s->s.id = t->h->next_scope++;
  s->s.cancelled = 0;
  s->s.shield = 0;
  s->s.active = 1;
  s->s.sub = 1;
  t->scope = &s->s;
}

/* Unlink s, active, from its task's stack of scopes. */
static void unlink_scope(task *t, subscope *s) {
  scope **p = &t->scope;
  while (*p != &s->s && *p != NULL && (*p)->sub)
    p = &((subscope *)(void *)*p)->parent;
  if (*p == &s->s) *p = s->parent;
  s->s.active = 0;
  if (s->s.cancelled) t->ncancelled--;
}

/* Let go of a scope that was never closed (its drop hook releases what
   it holds); a scope that outlived its block must not cancel its task
   later. */
void luaio__scope_drop(lua_State *L, task *t, subscope *s) {
  if (!s->s.active) return;
  unlink_scope(t, s);
  if (s->ops != NULL && s->ops->drop != NULL) s->ops->drop(L, s);
}

/* Leave scope s.  Out of order, the scopes inside it were never closed (a
   timeout or a task group that is not a <close> variable): their block
   is over, so they are dropped with s, and then the mistake is raised,
   naming the innermost. */
void luaio__scope_pop(lua_State *L, task *t, subscope *s) {
  subscope *in;
  if (!s->s.active) return;
  if (t->scope == &s->s) {
    unlink_scope(t, s);
    return;
  }
  luaL_checkstack(L, 4, NULL);
  in = t->scope != NULL && t->scope->sub ? (subscope *)(void *)t->scope : NULL;
  if (in != NULL && in->ops != NULL && in->ops->describe != NULL)
    in->ops->describe(L, in);
  else
    lua_pushliteral(L, "a timeout, task group or shield");
  while (t->scope != &s->s && t->scope != NULL && t->scope->sub)
    luaio__scope_drop(L, t, (subscope *)(void *)t->scope);
  unlink_scope(t, s);
  luaL_error(L,
             "scopes closed out of order: %s was still open inside the "
             "scope being closed (create each as a <close> variable)",
             lua_tostring(L, -1));
}

scope *luaio__cancelled_scope(task *t) {
  scope *s, *found = NULL;
  if (t->ncancelled == 0) return NULL;
  for (s = t->scope; s != NULL; s = luaio__scope_parent(s)) {
    if (s->cancelled) found = s;
    if (s->shield) break;
  }
  return found;
}

/* Interrupt the task's wait if a cancellation now takes effect on it. */
static void interrupt(task *t) {
  lua_State *co = t->co;
  const waitops *ops;
  void *obj;
  scope *s;
  int woken;
  if (t->state == T_WAITING)
    woken = 0;
  else if (t->state == T_READY && !t->wake_err && t->wops != NULL)
    woken = 1;
  else {
    if (t->state == T_READY && t->wake_err) { /* the outermost catches */
      s = luaio__cancelled_scope(t);
      if (s != NULL && luaio__cancelled_scope_id(co, -1) != 0) {
        lua_pushinteger(co, (lua_Integer)s->id);
        lua_setfield(co, -2, "scope");
      }
    }
    return; /* new, running: its next wait raises */
  }
  s = luaio__cancelled_scope(t);
  if (s == NULL) return;
  ops = t->wops;
  obj = t->wobj;
  if (!ops->abandon(t, woken)) return;
  t->wops = NULL;
  if (ops->propagate != NULL) ops->propagate(t, obj);
  if (woken) lua_pop(co, t->nwake);
  lua_checkstack(co, 4);
  luaio__cancelled_push(co, s);
  t->nwake = 1;
  t->wake_err = 1;
  if (!woken) luaio__ready(t);
}

/* Cancelling one task may cancel others (the task it awaits, a group's
   children): those are interrupted from a worklist, not by recursion, so
   a chain of 100,000 awaits needs no C stack. */
void luaio__scope_cancel(scope *s) {
  luaio *h;
  task *t;
  if (s->cancelled) return;
  s->cancelled = 1;
  if (!s->active) return;
  t = luaio__scope_task(s);
  t->ncancelled++;
  h = t->h;
  if (h->cascading) {
    if (h->ncascade == h->ccascade) {
      size_t n = h->ccascade ? h->ccascade * 2 : 64;
      task **q = realloc(h->cascade, n * sizeof *q);
      if (q == NULL) abort(); /* a lost cancellation would hang a task */
      h->cascade = q;
      h->ccascade = n;
    }
    h->cascade[h->ncascade++] = t;
    return;
  }
  h->cascading = 1;
  interrupt(t);
  while (h->ncascade > 0)
    interrupt(h->cascade[--h->ncascade]);
  h->cascading = 0;
}

/* A task ended inside scopes it never closed (a timeout or group object
   that was not a <close> variable): let each let go of what it holds. */
void luaio__scope_drop_all(lua_State *L, task *t) {
  while (t->scope != NULL && t->scope->sub)
    luaio__scope_drop(L, t, (subscope *)(void *)t->scope);
}

/* Ask a task to stop; 0 when it has already finished. */
int luaio__task_cancel(task *t) {
  if (t->state == T_DONE) return 0;
  luaio__scope_cancel(&t->root);
  return 1;
}

/* A shield's scope is a to-be-closed value on the C stack of aio.shield,
   anchored in the registry while it is linked: a coroutine abandoned
   inside aio.shield cannot take the scope with it. */
typedef struct shield {
  subscope s;
  int ref;
} shield;

static int scope_close(lua_State *L) {
  shield *sh = lua_touserdata(L, 1);
  if (sh->s.s.active) {
    luaL_unref(L, LUA_REGISTRYINDEX, sh->ref);
    sh->ref = LUA_NOREF;
    luaio__scope_pop(L, sh->s.task, &sh->s);
  }
  return 0;
}

/* The task ended inside the shield (its coroutine was abandoned). */
static void shield_drop(lua_State *L, subscope *s) {
  shield *sh = container_of(s, shield, s);
  luaL_unref(L, LUA_REGISTRYINDEX, sh->ref);
  sh->ref = LUA_NOREF;
}

static void shield_describe(lua_State *L, subscope *s) {
  (void)s;
  lua_pushliteral(L, "an aio.shield");
}

static const scopeops shield_ops = {shield_drop, shield_describe};

static int k_shield(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return lua_gettop(L) - 1;
}

/* aio.shield(fn, ...) -> ...: run fn in the calling task, protected from
   cancellation; a pending cancellation is delivered at the next wait. */
int luaio__shield_fn(lua_State *L, luaio *h) {
  task *t = h->current;
  shield *sh;
  if (t == NULL) {
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
  }
  sh = lua_newuserdatauv(L, sizeof *sh, 0);
  sh->ref = LUA_NOREF;
  sh->s.s.active = 0;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &scopekey);
  lua_setmetatable(L, -2);
  lua_insert(L, 1);
  lua_toclose(L, 1);
  lua_pushvalue(L, 1);
  sh->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  luaio__scope_push(t, &sh->s);
  sh->s.s.shield = 1;
  sh->s.ops = &shield_ops;
  lua_callk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, k_shield);
  return k_shield(L, LUA_OK, 0);
}

void luaio__scope_open(lua_State *L) {
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, scope_close);
  lua_setfield(L, -2, "__close");
  lua_pushliteral(L, "luaio.shield");
  lua_setfield(L, -2, "__name");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &scopekey);
}

/*
** wait.c: the one way to wait.  Waiter lists, suspending a task, waking it.
*/

#include "internal.h"

/* The light userdata a task's own suspensions yield, so the scheduler and
   the coroutine library can tell them from a user's coroutine.yield. */
const char luaio__marker = 'w';

void luaio__list_push(waitlist *l, waiter *w) {
  w->list = l;
  w->next = NULL;
  w->prev = l->tail;
  if (l->tail)
    l->tail->next = w;
  else
    l->head = w;
  l->tail = w;
  l->n++;
}

void luaio__list_remove(waiter *w) {
  waitlist *l = w->list;
  if (l == NULL) return;
  if (w->prev)
    w->prev->next = w->next;
  else
    l->head = w->next;
  if (w->next)
    w->next->prev = w->prev;
  else
    l->tail = w->prev;
  l->n--;
  w->list = NULL;
  w->prev = w->next = NULL;
}

task *luaio__list_pop(waitlist *l) {
  waiter *w = l->head;
  if (w == NULL) return NULL;
  luaio__list_remove(w);
  return container_of(w, task, w);
}

/* Raise unless L may suspend task t: L is the task's own thread, or the
   coroutine that luaio's coroutine.resume runs in it with every resumer
   on the way able to yield (coro.c keeps h->nested), and L can yield. */
void luaio__check_suspend(lua_State *L, task *t) {
  if (L != t->co) {
    if (L != t->h->nested)
      luaL_error(L, "cannot wait in a coroutine resumed by a "
                    "coroutine.resume that luaio did not replace (one saved "
                    "before require \"luaio\"?)");
    if (!t->h->nested_ok)
      luaL_error(L, "cannot wait inside a coroutine whose resumer cannot "
                    "yield (a table.sort comparator, a string.gsub callback, "
                    "a __gc metamethod or another C function)");
  }
  if (!lua_isyieldable(L))
    luaL_error(L, "cannot wait here: Lua cannot suspend a task inside this "
                  "call (a table.sort comparator, a string.gsub callback, "
                  "a __gc metamethod or another C function)");
}

/* The running task, ready to wait: raises when there is none, when L
   cannot suspend it, and when a cancellation is due (level-triggered). */
task *luaio__enter_wait(lua_State *L, luaio *h) {
  task *t = h->current;
  if (t == NULL)
    luaL_error(L, h->dead ? "luaio host is closed"
                          : "no running event loop: wait from inside a task "
                            "(aio.run, aio.spawn)");
  luaio__check_suspend(L, t);
  if (t->ncancelled > 0) {
    scope *s = luaio__cancelled_scope(t);
    if (s != NULL) {
      luaio__cancelled_push(L, s);
      lua_error(L);
    }
  }
  return t;
}

/* Suspend the task until it is woken; k runs when it is resumed.  The
   marker stays on top of the suspended thread (under the values it is
   woken with) until the scheduler resumes it: coro.c refuses to resume or
   close a thread that holds it. */
int luaio__wait(lua_State *L, task *t, const waitops *ops, void *obj,
                lua_KContext ctx, lua_KFunction k) {
  t->wops = ops;
  t->wobj = obj;
  if (t->state == T_RUNNING) {
    t->state = T_WAITING;
    t->nwake = 0;
  }
  lua_pushlightuserdata(L, (void *)&luaio__marker);
  return lua_yieldk(L, 1, ctx, k);
}

/* In a continuation: raise the error the task was woken with. */
int luaio__resumed(lua_State *L, task *t) {
  if (t->wake_err) {
    t->wake_err = 0;
    return lua_error(L);
  }
  return 0;
}

/* Wake a waiting task with n values from the top of `from`. */
void luaio__wake(task *t, lua_State *from, int n) {
  if (n > 0) {
    lua_checkstack(t->co, n + 2);
    lua_xmove(from, t->co, n);
  }
  t->nwake = n;
  t->wake_err = 0;
  luaio__ready(t);
}

/* The abandon hook of waits that hand over nothing. */
int luaio__abandon_list(task *t, int woken) {
  if (!woken) luaio__list_remove(&t->w);
  return 1;
}

/* A continuation that returns the values the task was woken with; ctx is
   the stack height before the wait's own yield. */
int luaio__k_values(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  luaio__resumed(L, luaio__host(L)->current);
  return lua_gettop(L) - (int)ctx;
}

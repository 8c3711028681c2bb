/*
** sync.c: aio.lock, aio.semaphore, aio.bounded_semaphore, aio.event,
** aio.condition and aio.barrier.
**
** Every object keeps an intrusive FIFO of the tasks waiting on it; a wait
** links the task's own waiter node, so it allocates nothing.  A release
** hands the lock or the permit straight to the first waiter (no barging):
** the woken task owns it before it runs.  When a woken waiter is cancelled
** before it runs, its abandon hook passes what it was handed on to the next
** waiter, so nothing is lost and nothing is held twice.
*/

#include <string.h>

#include "internal.h"

/* The metatables' names; an object points at its type's, which makes a
   type check a pointer comparison. */
static const char LOCK_MT[] = "luaio.Lock";
static const char SEM_MT[] = "luaio.Semaphore";
static const char BSEM_MT[] = "luaio.BoundedSemaphore";
static const char EVENT_MT[] = "luaio.Event";
static const char COND_MT[] = "luaio.Condition";
static const char BARRIER_MT[] = "luaio.Barrier";

/* Every object starts with its type and its host, so a continuation finds
   the running task from the object at index 1. */
typedef struct head {
  const void *type;
  luaio *h;
} head;

typedef struct lock {
  head o;
  waitlist waiters;
  int locked;
} lock;

typedef struct sem {
  head o;
  waitlist waiters;
  lua_Integer value, bound;
  int bounded;
} sem;

typedef struct event {
  head o;
  waitlist waiters;
  int set;
} event;

typedef struct cond {
  head o;
  waitlist waiters;
  lock *l; /* kept alive by the condition's user value */
} cond;

typedef struct barrier {
  head o;
  waitlist waiters;
  lua_Integer parties;
  int broken;
} barrier;

/* A new zeroed userdata with the metatable `name`, made on first use from
   the methods (its __index) and the metamethods. */
static void *new_object(lua_State *L, size_t size, int nuv, const char *name,
                        const luaL_Reg *methods, const luaL_Reg *meta) {
  head *p = lua_newuserdatauv(L, size, nuv);
  memset(p, 0, size);
  p->type = name;
  p->h = luaio__host(L);
  if (luaL_newmetatable(L, name)) {
    luaL_setfuncs(L, meta, 0);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    luaio__set_methods(L, name);
  }
  lua_setmetatable(L, -2);
  return p;
}

/* The object of type `type` and `size` bytes at idx, or a type error. */
static void *checkobj(lua_State *L, int idx, const char *type, size_t size) {
  void *o = luaio__toobj(L, idx, type, size);
  if (o == NULL) luaL_typeerror(L, idx, type);
  return o;
}

/* The running task, read in a continuation from the object at index 1. */
static task *current(lua_State *L) {
  return ((head *)lua_touserdata(L, 1))->h->current;
}

/* Wake up to n waiters of l with no values; how many were woken. */
static lua_Integer wake_some(waitlist *l, lua_Integer n) {
  lua_Integer i;
  for (i = 0; i < n && l->head != NULL; i++)
    luaio__wake(luaio__list_pop(l), NULL, 0);
  return i;
}

/* The continuation of a wait that was handed what it waited for: returns
   the object at index 1. */
static int k_taken(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  luaio__resumed(L, current(L));
  lua_settop(L, 1);
  return 1;
}

/* Lock. */

/* Give the lock to the first waiter, or free it. */
static void lock_handoff(lock *l) {
  if (wake_some(&l->waiters, 1) == 0) l->locked = 0;
}

static int lock_abandon(task *t, int woken) {
  if (woken)
    lock_handoff(t->wobj); /* it was handed the lock: pass it on */
  else
    luaio__list_remove(&t->w);
  return 1;
}

static const waitops lock_ops = {"lock", lock_abandon, NULL};

/* Take l for the running task, in line behind the waiters; returns the
   object at index 1 (the lock or its condition). */
static int lock_take(lua_State *L, lock *l) {
  task *t;
  lua_settop(L, 1);
  if (!l->locked) { /* no waiters either: a release hands the lock on */
    l->locked = 1;
    return 1;
  }
  t = luaio__enter_wait(L, l->o.h);
  luaio__list_push(&l->waiters, &t->w);
  return luaio__wait(L, t, &lock_ops, l, 0, k_taken);
}

static void lock_give(lua_State *L, lock *l) {
  if (!l->locked) luaio__error_raise(L, "RuntimeError", "lock is not acquired");
  lock_handoff(l);
}

static lock *checklock(lua_State *L) {
  return checkobj(L, 1, LOCK_MT, sizeof(lock));
}

/* lock:acquire() -> lock */
static int lock_acquire(lua_State *L) { return lock_take(L, checklock(L)); }

/* lock:release() */
static int lock_release(lua_State *L) {
  lock_give(L, checklock(L));
  return 0;
}

/* lock:locked() -> boolean */
static int lock_locked(lua_State *L) {
  lua_pushboolean(L, checklock(L)->locked);
  return 1;
}

/* tostring(lock) -> "<lock locked, 2 waiting>" */
static int lock_tostring(lua_State *L) {
  lock *l = checklock(L);
  lua_pushfstring(L, "<lock %s, %I waiting>", l->locked ? "locked" : "unlocked",
                  (lua_Integer)l->waiters.n);
  return 1;
}

static const luaL_Reg lock_methods[] = {{"acquire", lock_acquire},
                                        {"release", lock_release},
                                        {"locked", lock_locked},
                                        {NULL, NULL}};

static const luaL_Reg lock_meta[] = {
    {"__close", lock_release}, {"__tostring", lock_tostring}, {NULL, NULL}};

static lock *new_lock(lua_State *L) {
  return new_object(L, sizeof(lock), 0, LOCK_MT, lock_methods, lock_meta);
}

/* aio.lock() -> lock */
static int aio_lock(lua_State *L) {
  new_lock(L);
  return 1;
}

/* Semaphores. */

/* One permit back: to the first waiter, or to the count. */
static void sem_give(sem *s) {
  if (wake_some(&s->waiters, 1) == 0) s->value++;
}

static int sem_abandon(task *t, int woken) {
  if (woken)
    sem_give(t->wobj); /* it was handed a permit: pass it on */
  else
    luaio__list_remove(&t->w);
  return 1;
}

static const waitops sem_ops = {"semaphore", sem_abandon, NULL};

static sem *checksem(lua_State *L) {
  sem *s = luaio__toobj(L, 1, SEM_MT, sizeof(sem));
  if (s == NULL) s = luaio__toobj(L, 1, BSEM_MT, sizeof(sem));
  if (s == NULL) luaL_typeerror(L, 1, SEM_MT);
  return s;
}

/* sem:acquire() -> sem */
static int sem_acquire(lua_State *L) {
  sem *s = checksem(L);
  task *t;
  lua_settop(L, 1);
  if (s->value > 0) { /* then nobody waits: releases hand permits on */
    s->value--;
    return 1;
  }
  t = luaio__enter_wait(L, s->o.h);
  luaio__list_push(&s->waiters, &t->w);
  return luaio__wait(L, t, &sem_ops, s, 0, k_taken);
}

/* sem:release() */
static int sem_release(lua_State *L) {
  sem *s = checksem(L);
  if (s->bounded && s->waiters.n == 0 && s->value >= s->bound)
    return luaio__error_raise(L, "ValueError",
                              "bounded semaphore released too many times");
  if (s->waiters.n == 0 && s->value == LUA_MAXINTEGER)
    return luaio__error_raise(L, "ValueError",
                              "semaphore value would overflow");
  sem_give(s);
  return 0;
}

/* sem:value() -> integer: the permits free now */
static int sem_value(lua_State *L) {
  lua_pushinteger(L, checksem(L)->value);
  return 1;
}

/* sem:locked() -> boolean: true when acquire() would wait */
static int sem_locked(lua_State *L) {
  lua_pushboolean(L, checksem(L)->value == 0);
  return 1;
}

/* tostring(sem) -> "<semaphore value=0, 2 waiting>" */
static int sem_tostring(lua_State *L) {
  sem *s = checksem(L);
  if (s->bounded)
    lua_pushfstring(L, "<bounded_semaphore value=%I/%I, %I waiting>", s->value,
                    s->bound, (lua_Integer)s->waiters.n);
  else
    lua_pushfstring(L, "<semaphore value=%I, %I waiting>", s->value,
                    (lua_Integer)s->waiters.n);
  return 1;
}

static const luaL_Reg sem_methods[] = {{"acquire", sem_acquire},
                                       {"release", sem_release},
                                       {"value", sem_value},
                                       {"locked", sem_locked},
                                       {NULL, NULL}};

static const luaL_Reg sem_meta[] = {
    {"__close", sem_release}, {"__tostring", sem_tostring}, {NULL, NULL}};

static int new_sem(lua_State *L, int bounded) {
  lua_Integer n = luaL_optinteger(L, 1, 1);
  sem *s;
  if (n < 0)
    return luaio__error_raise(
        L, "ValueError", "semaphore initial value must be >= 0, got %I", n);
  s = new_object(L, sizeof(sem), 0, bounded ? BSEM_MT : SEM_MT, sem_methods,
                 sem_meta);
  s->value = s->bound = n;
  s->bounded = bounded;
  return 1;
}

/* aio.semaphore([n = 1]) -> semaphore */
static int aio_semaphore(lua_State *L) { return new_sem(L, 0); }

/* aio.bounded_semaphore([n = 1]) -> semaphore */
static int aio_bounded_semaphore(lua_State *L) { return new_sem(L, 1); }

/* Event. */

static const waitops event_ops = {"event", luaio__abandon_list, NULL};

static event *checkevent(lua_State *L) {
  return checkobj(L, 1, EVENT_MT, sizeof(event));
}

static int k_event(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  luaio__resumed(L, current(L));
  lua_pushboolean(L, 1);
  return 1;
}

/* event:wait() -> true, once the event is set */
static int event_wait(lua_State *L) {
  event *e = checkevent(L);
  task *t;
  lua_settop(L, 1);
  if (e->set) {
    lua_pushboolean(L, 1);
    return 1;
  }
  t = luaio__enter_wait(L, e->o.h);
  luaio__list_push(&e->waiters, &t->w);
  return luaio__wait(L, t, &event_ops, e, 0, k_event);
}

/* event:set(): wakes every waiter */
static int event_set(lua_State *L) {
  event *e = checkevent(L);
  if (!e->set) {
    e->set = 1;
    wake_some(&e->waiters, (lua_Integer)e->waiters.n);
  }
  return 0;
}

/* event:clear() */
static int event_clear(lua_State *L) {
  checkevent(L)->set = 0;
  return 0;
}

/* event:is_set() -> boolean */
static int event_is_set(lua_State *L) {
  lua_pushboolean(L, checkevent(L)->set);
  return 1;
}

/* tostring(event) -> "<event unset, 3 waiting>" */
static int event_tostring(lua_State *L) {
  event *e = checkevent(L);
  lua_pushfstring(L, "<event %s, %I waiting>", e->set ? "set" : "unset",
                  (lua_Integer)e->waiters.n);
  return 1;
}

static const luaL_Reg event_methods[] = {{"wait", event_wait},
                                         {"set", event_set},
                                         {"clear", event_clear},
                                         {"is_set", event_is_set},
                                         {NULL, NULL}};

static const luaL_Reg event_meta[] = {{"__tostring", event_tostring},
                                      {NULL, NULL}};

/* aio.event() -> event */
static int aio_event(lua_State *L) {
  new_object(L, sizeof(event), 0, EVENT_MT, event_methods, event_meta);
  return 1;
}

/* Condition.
**
** cond:wait() releases the lock and waits in the condition's list; once
** notified (or cancelled) it waits again, in the lock's list, until it
** holds the lock.  That second wait cannot be cancelled: the lock is
** always re-acquired before wait() returns or raises.  While waiting the
** stack holds 1: the condition, 2: wait_for's predicate or nil, and then
** 3: the CancelledError the first wait ended with, or nil. */

enum { COND_WAIT, COND_WAIT_FOR };

static cond *checkcond(lua_State *L) {
  return checkobj(L, 1, COND_MT, sizeof(cond));
}

static int cond_abandon(task *t, int woken) {
  cond *c = t->wobj;
  if (woken)
    wake_some(&c->waiters, 1); /* it was notified: pass it on */
  else
    luaio__list_remove(&t->w);
  return 1;
}

/* Re-acquiring the lock is shielded: the task keeps its place in line, and
   a cancellation is raised once it holds the lock. */
static int reacquire_abandon(task *t, int woken) {
  (void)t;
  (void)woken;
  return 0;
}

static const waitops cond_ops = {"condition", cond_abandon, NULL};
static const waitops reacquire_ops = {"lock (condition re-acquiring)",
                                      reacquire_abandon, NULL};

static int start_wait(lua_State *L, cond *c, lua_KContext ctx);

static int k_pred(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  if (lua_toboolean(L, 3)) return 1;
  lua_settop(L, 2);
  return start_wait(L, lua_touserdata(L, 1), COND_WAIT_FOR);
}

/* wait_for's loop: call the predicate, wait again while it is falsy. */
static int check_pred(lua_State *L) {
  lua_settop(L, 2);
  lua_pushvalue(L, 2);
  lua_callk(L, 0, 1, 0, k_pred);
  return k_pred(L, LUA_OK, 0);
}

/* The lock is held again: raise what ended the wait, or go on. */
static int cond_finish(lua_State *L, cond *c, lua_KContext ctx) {
  scope *s;
  if (!lua_isnil(L, 3)) return lua_error(L); /* the saved CancelledError */
  s = luaio__cancelled_scope(current(L));
  if (s != NULL) { /* cancelled while re-acquiring: pass the notification */
    wake_some(&c->waiters, 1);
    luaio__cancelled_push(L, s);
    return lua_error(L);
  }
  if (ctx == COND_WAIT_FOR) return check_pred(L);
  lua_pushboolean(L, 1);
  return 1;
}

static int k_reacquired(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  lua_settop(L, 3);
  return cond_finish(L, lua_touserdata(L, 1), ctx);
}

static int k_notified(lua_State *L, int status, lua_KContext ctx) {
  cond *c = lua_touserdata(L, 1);
  task *t = current(L);
  (void)status;
  if (!t->wake_err) lua_pushnil(L); /* else the CancelledError is on top */
  t->wake_err = 0;
  lua_settop(L, 3);
  if (!c->l->locked) {
    c->l->locked = 1;
    return cond_finish(L, c, ctx);
  }
  luaio__list_push(&c->l->waiters, &t->w);
  return luaio__wait(L, t, &reacquire_ops, c->l, ctx, k_reacquired);
}

/* Release the lock and wait for a notification; stack: cond, pred|nil. */
static int start_wait(lua_State *L, cond *c, lua_KContext ctx) {
  task *t;
  if (!c->l->locked)
    return luaio__error_raise(L, "RuntimeError",
                              "cannot wait on a condition whose lock is not "
                              "acquired");
  t = luaio__enter_wait(L, c->o.h);
  lock_handoff(c->l);
  luaio__list_push(&c->waiters, &t->w);
  return luaio__wait(L, t, &cond_ops, c, ctx, k_notified);
}

/* cond:acquire() -> cond */
static int cond_acquire(lua_State *L) { return lock_take(L, checkcond(L)->l); }

/* cond:release() */
static int cond_release(lua_State *L) {
  lock_give(L, checkcond(L)->l);
  return 0;
}

/* cond:locked() -> boolean */
static int cond_locked(lua_State *L) {
  lua_pushboolean(L, checkcond(L)->l->locked);
  return 1;
}

/* cond:wait() -> true, once notified and holding the lock again */
static int cond_wait(lua_State *L) {
  cond *c = checkcond(L);
  lua_settop(L, 1);
  lua_pushnil(L);
  return start_wait(L, c, COND_WAIT);
}

/* cond:wait_for(pred) -> pred's first truthy value */
static int cond_wait_for(lua_State *L) {
  checkcond(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  return check_pred(L);
}

static int notify(lua_State *L, lua_Integer n) {
  cond *c = checkcond(L);
  if (!c->l->locked)
    return luaio__error_raise(L, "RuntimeError",
                              "cannot notify on a condition whose lock is "
                              "not acquired");
  lua_pushinteger(L, wake_some(&c->waiters, n));
  return 1;
}

/* cond:notify([n = 1]) -> number of waiters woken */
static int cond_notify(lua_State *L) {
  return notify(L, luaL_optinteger(L, 2, 1));
}

/* cond:notify_all() -> number of waiters woken */
static int cond_notify_all(lua_State *L) {
  return notify(L, (lua_Integer)checkcond(L)->waiters.n);
}

/* tostring(cond) -> "<condition locked, 2 waiting>" */
static int cond_tostring(lua_State *L) {
  cond *c = checkcond(L);
  lua_pushfstring(L, "<condition %s, %I waiting>",
                  c->l->locked ? "locked" : "unlocked",
                  (lua_Integer)c->waiters.n);
  return 1;
}

static const luaL_Reg cond_methods[] = {
    {"acquire", cond_acquire},       {"release", cond_release},
    {"locked", cond_locked},         {"wait", cond_wait},
    {"wait_for", cond_wait_for},     {"notify", cond_notify},
    {"notify_all", cond_notify_all}, {NULL, NULL}};

static const luaL_Reg cond_meta[] = {
    {"__close", cond_release}, {"__tostring", cond_tostring}, {NULL, NULL}};

/* aio.condition([lock]) -> condition */
static int aio_condition(lua_State *L) {
  lock *l;
  cond *c;
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    l = new_lock(L);
  } else {
    l = checkobj(L, 1, LOCK_MT, sizeof(lock));
    lua_settop(L, 1);
  }
  c = new_object(L, sizeof(cond), 1, COND_MT, cond_methods, cond_meta);
  c->l = l;
  lua_insert(L, 1);
  lua_setiuservalue(L, 1, 1);
  return 1;
}

/* Barrier. */

static const waitops barrier_ops = {"barrier", luaio__abandon_list, NULL};

static barrier *checkbarrier(lua_State *L) {
  return checkobj(L, 1, BARRIER_MT, sizeof(barrier));
}

static int broken_error(lua_State *L) {
  return luaio__error_raise(L, "BrokenBarrierError", "the barrier is broken");
}

/* Wake every waiter with false: they raise BrokenBarrierError. */
static void break_waiters(lua_State *L, barrier *b) {
  while (b->waiters.head != NULL) {
    lua_pushboolean(L, 0);
    luaio__wake(luaio__list_pop(&b->waiters), L, 1);
  }
}

static int k_barrier(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  luaio__resumed(L, current(L));
  if (!lua_toboolean(L, -1)) return broken_error(L);
  return 1;
}

/* barrier:wait() -> arrival index, 0 .. parties - 1 */
static int barrier_wait(lua_State *L) {
  barrier *b = checkbarrier(L);
  task *t;
  lua_Integer i;
  lua_settop(L, 1);
  if (b->broken) return broken_error(L);
  if ((lua_Integer)b->waiters.n + 1 < b->parties) {
    t = luaio__enter_wait(L, b->o.h);
    luaio__list_push(&b->waiters, &t->w);
    return luaio__wait(L, t, &barrier_ops, b, 0, k_barrier);
  }
  for (i = 0; b->waiters.head != NULL; i++) { /* the last to arrive */
    lua_pushinteger(L, i);
    luaio__wake(luaio__list_pop(&b->waiters), L, 1);
  }
  lua_pushinteger(L, i);
  return 1;
}

/* barrier:reset(): the waiters raise BrokenBarrierError; it fills anew */
static int barrier_reset(lua_State *L) {
  barrier *b = checkbarrier(L);
  break_waiters(L, b);
  b->broken = 0;
  return 0;
}

/* barrier:abort(): waiters and later waits raise BrokenBarrierError */
static int barrier_abort(lua_State *L) {
  barrier *b = checkbarrier(L);
  b->broken = 1;
  break_waiters(L, b);
  return 0;
}

/* barrier:parties() -> integer */
static int barrier_parties(lua_State *L) {
  lua_pushinteger(L, checkbarrier(L)->parties);
  return 1;
}

/* barrier:n_waiting() -> integer */
static int barrier_n_waiting(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)checkbarrier(L)->waiters.n);
  return 1;
}

/* barrier:broken() -> boolean */
static int barrier_broken(lua_State *L) {
  lua_pushboolean(L, checkbarrier(L)->broken);
  return 1;
}

/* tostring(barrier) -> "<barrier 2/3 waiting>" */
static int barrier_tostring(lua_State *L) {
  barrier *b = checkbarrier(L);
  lua_pushfstring(L, "<barrier %I/%I waiting%s>", (lua_Integer)b->waiters.n,
                  b->parties, b->broken ? ", broken" : "");
  return 1;
}

static const luaL_Reg barrier_methods[] = {{"wait", barrier_wait},
                                           {"reset", barrier_reset},
                                           {"abort", barrier_abort},
                                           {"parties", barrier_parties},
                                           {"n_waiting", barrier_n_waiting},
                                           {"broken", barrier_broken},
                                           {NULL, NULL}};

static const luaL_Reg barrier_meta[] = {{"__tostring", barrier_tostring},
                                        {NULL, NULL}};

/* aio.barrier(n) -> barrier */
static int aio_barrier(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  barrier *b;
  if (n < 1)
    return luaio__error_raise(L, "ValueError",
                              "a barrier needs at least 1 party, got %I", n);
  b = new_object(L, sizeof(barrier), 0, BARRIER_MT, barrier_methods,
                 barrier_meta);
  b->parties = n;
  return 1;
}

const luaL_Reg luaio__sync_funcs[] = {
    {"lock", aio_lock},
    {"semaphore", aio_semaphore},
    {"bounded_semaphore", aio_bounded_semaphore},
    {"event", aio_event},
    {"condition", aio_condition},
    {"barrier", aio_barrier},
    {NULL, NULL}};

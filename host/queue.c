/*
** queue.c: aio.queue, aio.lifo_queue and aio.priority_queue.
**
** A queue is a userdata whose first user value is a Lua table holding the
** items: a ring buffer (FIFO), a stack (LIFO) or a binary min-heap
** (priority).  A priority queue keeps the heap's keys, a priority and an
** insertion number, in a second user value, a plain userdata array, so the
** heap compares in C.  The table is made with room for `cap` slots and
** only slots 1..cap are written, so nil items cost nothing special and the
** table is never rehashed; it is rebuilt twice as large when full and half
** as large when three quarters empty.  A bounded queue does not shrink
** below the slots its maxsize needs (up to KEEPCAP), so a queue that fills
** and drains over and over keeps one table.
**
** Waiting getters and putters are the tasks' own waiter nodes in two
** FIFO lists.  A put with getters waiting hands its item straight to the
** first getter; a get that frees a slot with putters waiting moves the
** first putter's item in and wakes it.  So getters wait only while the
** queue is empty and putters only while it is full, and a task that did
** not wait never takes an item or a slot from one that did.  A task
** waiting in get or put keeps the queue at index 1 of the thread that
** waits (the task's wobj), and a putter its item at index 2 and its
** priority at index 3.
*/

#include <math.h>
#include <string.h>

#include "internal.h"

#define MINCAP 8     /* slots of a new table; a power of 2 */
#define KEEPCAP 1024 /* most slots a bounded queue keeps when it drains */

enum { FIFO, LIFO, PRIO };
enum { UV_ITEMS = 1, UV_KEYS }; /* user values */
enum { GET_WAIT, GET_NOWAIT, GET_ITER };

static const char *const kind_names[] = {"queue", "lifo_queue",
                                         "priority_queue"};

/* The registry key of the queues' metatable, and the mark in the first
   field of every queue. */
static const char queuekey = 'q';

/* A heap key: lowest priority first, then lowest insertion number. */
typedef struct qkey {
  lua_Number prio;
  lua_Integer seq;
} qkey;

typedef struct queue {
  const void *magic; /* &queuekey: tells a queue from other userdata */
  luaio *h;
  unsigned char kind, shut, immediate;
  lua_Integer maxsize;    /* 0: unbounded */
  lua_Integer n, cap;     /* items, and slots of the items table */
  lua_Integer mincap;     /* slots the table keeps when it shrinks */
  lua_Integer head;       /* FIFO: 0-based slot of the first item */
  lua_Integer unfinished; /* items put and not yet task_done */
  lua_Integer back_seq, front_seq;
  qkey *keys; /* PRIO: keys[1..n], the array of user value UV_KEYS */
  waitlist getters, putters, joiners;
} queue;

static int isfull(const queue *q) {
  return q->maxsize > 0 && q->n >= q->maxsize;
}

static int before(const qkey *a, const qkey *b) {
  return a->prio < b->prio || (a->prio == b->prio && a->seq < b->seq);
}

/* Storage.  S is any thread of the state, qi the queue's index on it, ti
   that of its items table. */

/* Give the queue at qi a new table of cap slots holding its items in
   order; the new table replaces the one at ti. */
static void resize(lua_State *S, queue *q, int qi, int ti, lua_Integer cap) {
  lua_Integer i;
  int nt;
  luaL_checkstack(S, 4, "queue");
  lua_createtable(S, (int)cap, 0);
  nt = lua_gettop(S);
  for (i = 0; i < q->n; i++) {
    lua_Integer from = q->kind == FIFO ? ((q->head + i) & (q->cap - 1)) : i;
    lua_rawgeti(S, ti, from + 1);
    lua_rawseti(S, nt, i + 1);
  }
  if (q->kind == PRIO) {
    qkey *keys = lua_newuserdatauv(S, (size_t)(cap + 1) * sizeof *keys, 0);
    memcpy(keys + 1, q->keys + 1, (size_t)q->n * sizeof *keys);
    lua_setiuservalue(S, qi, UV_KEYS);
    q->keys = keys;
  }
  lua_pushvalue(S, nt);
  lua_setiuservalue(S, qi, UV_ITEMS);
  lua_replace(S, ti);
  q->head = 0;
  q->cap = cap;
}

/* Move the item on top of S to heap slot i or above it, as its key says;
   the heap holds n items besides the hole at i. */
static void sift_up(lua_State *S, queue *q, int ti, lua_Integer i, qkey k) {
  qkey *keys = q->keys;
  while (i > 1 && before(&k, &keys[i / 2])) {
    keys[i] = keys[i / 2];
    lua_rawgeti(S, ti, i / 2);
    lua_rawseti(S, ti, i);
    i /= 2;
  }
  keys[i] = k;
  lua_rawseti(S, ti, i);
}

/* Move the item on top of S to heap slot i or below it. */
static void sift_down(lua_State *S, queue *q, int ti, lua_Integer i, qkey k) {
  qkey *keys = q->keys;
  for (;;) {
    lua_Integer c = 2 * i;
    if (c > q->n) break;
    if (c < q->n && before(&keys[c + 1], &keys[c])) c++;
    if (!before(&keys[c], &k)) break;
    keys[i] = keys[c];
    lua_rawgeti(S, ti, c);
    lua_rawseti(S, ti, i);
    i = c;
  }
  keys[i] = k;
  lua_rawseti(S, ti, i);
}

/* Push the items table of the queue at qi and return its index. */
static int push_items(lua_State *S, int qi) {
  lua_getiuservalue(S, qi, UV_ITEMS);
  return lua_gettop(S);
}

/* Store the item on top of S (and pop it) in the table at ti: at the back,
   or at the front for an item given back by a cancelled getter. */
static void insert(lua_State *S, queue *q, int qi, int ti, lua_Number prio,
                   int front) {
  if (q->n == q->cap) resize(S, q, qi, ti, q->cap * 2);
  switch (q->kind) {
  case FIFO:
    if (front) {
      q->head = (q->head + q->cap - 1) & (q->cap - 1);
      lua_rawseti(S, ti, q->head + 1);
    } else
      lua_rawseti(S, ti, ((q->head + q->n) & (q->cap - 1)) + 1);
    q->n++;
    break;
  case LIFO: /* the front and the back of a stack are its top */
    lua_rawseti(S, ti, ++q->n);
    break;
  default: {
    qkey k;
    k.prio = prio;
    k.seq = front ? --q->front_seq : q->back_seq++;
    sift_up(S, q, ti, ++q->n, k);
  }
  }
}

/* Push the next item (the queue has one) and take it out of the table at
   ti. */
static void take(lua_State *S, queue *q, int qi, int ti) {
  switch (q->kind) {
  case FIFO:
    lua_rawgeti(S, ti, q->head + 1);
    lua_pushnil(S);
    lua_rawseti(S, ti, q->head + 1);
    q->head = (q->head + 1) & (q->cap - 1);
    q->n--;
    break;
  case LIFO:
    lua_rawgeti(S, ti, q->n);
    lua_pushnil(S);
    lua_rawseti(S, ti, q->n--);
    break;
  default:
    lua_rawgeti(S, ti, 1);
    lua_rawgeti(S, ti, q->n); /* the last item fills the hole at 1 */
    lua_pushnil(S);
    lua_rawseti(S, ti, q->n--);
    if (q->n > 0)
      sift_down(S, q, ti, 1, q->keys[q->n + 1]);
    else
      lua_pop(S, 1);
  }
  if (q->cap > q->mincap && q->n <= q->cap / 4)
    resize(S, q, qi, ti, q->cap / 2);
}

/* Drop every item, each counting as done. */
static void drop_all(lua_State *S, queue *q, int qi) {
  q->unfinished = q->unfinished > q->n ? q->unfinished - q->n : 0;
  q->n = 0;
  lua_getiuservalue(S, qi, UV_ITEMS);
  resize(S, q, qi, lua_gettop(S), MINCAP);
  lua_pop(S, 1);
}

/* Waking. */

static void wake_joiners(queue *q) {
  while (q->joiners.head != NULL)
    luaio__wake(luaio__list_pop(&q->joiners), NULL, 0);
}

/* After a get made room: move the first putter's item into the table at
   ti and wake the putter with true (its put succeeded). */
static void refill(lua_State *L, queue *q, int ti) {
  task *p;
  lua_State *pl;
  if (q->putters.head == NULL || isfull(q)) return;
  p = luaio__list_pop(&q->putters);
  pl = p->wobj;
  lua_checkstack(pl, 1);
  lua_pushvalue(pl, 2);
  lua_xmove(pl, L, 1);
  insert(L, q, 1, ti, lua_tonumber(pl, 3), 0);
  q->unfinished++;
  lua_pushboolean(L, 1);
  luaio__wake(p, L, 1);
}

/* A getter is woken with the item and its priority, or with nothing when
   the queue was shut down.  Cancelled after it was handed an item, it
   passes the item to the next getter or puts it back at the front, so
   the item is neither lost nor seen twice (bpo-23812). */
static int get_abandon(task *t, int woken) {
  lua_State *S = t->h->L, *co = t->co, *wl = t->wobj;
  queue *q;
  int qi;
  if (!woken) {
    luaio__list_remove(&t->w);
    return 1;
  }
  if (t->nwake != 2) return 1; /* woken by shutdown: nothing to give back */
  q = lua_touserdata(wl, 1);
  lua_checkstack(S, 8);
  lua_checkstack(wl, 1);
  lua_checkstack(co, 2);
  lua_pushvalue(wl, 1);
  lua_xmove(wl, S, 1);
  qi = lua_gettop(S);
  lua_pushvalue(co, -2); /* copies: the core pops the originals */
  lua_pushvalue(co, -2);
  lua_xmove(co, S, 2);
  if (q->getters.head != NULL)
    luaio__wake(luaio__list_pop(&q->getters), S, 2);
  else if (q->immediate) { /* shut down at once: the item is dropped */
    lua_pop(S, 2);
    if (q->unfinished > 0 && --q->unfinished == 0) wake_joiners(q);
  } else {
    lua_Number prio = lua_tonumber(S, -1);
    lua_pop(S, 1);
    push_items(S, qi);
    lua_insert(S, -2); /* the table at qi + 1, under the item */
    insert(S, q, qi, qi + 1, prio, 1);
  }
  lua_settop(S, qi - 1);
  return 1;
}

/* A putter is woken with true once its item is in the queue, or false
   when the queue was shut down.  Cancelled after its item went in, the
   put has happened: the task sees it succeed, and its next wait raises. */
static int put_abandon(task *t, int woken) {
  if (!woken) {
    luaio__list_remove(&t->w);
    return 1;
  }
  return !lua_toboolean(t->co, -1);
}

static const waitops get_ops = {"queue get", get_abandon, NULL};
static const waitops put_ops = {"queue put", put_abandon, NULL};
static const waitops join_ops = {"queue join", luaio__abandon_list, NULL};

/* The methods. */

static queue *checkqueue(lua_State *L) {
  queue *q = luaio__toobj(L, 1, &queuekey, sizeof(queue));
  if (q == NULL) luaL_typeerror(L, 1, "luaio.Queue");
  return q;
}

static int raise_shutdown(lua_State *L) {
  return luaio__error_raise(L, "QueueShutDown", "the queue is shut down");
}

static int k_put(lua_State *L, int status, lua_KContext ctx) {
  queue *q = lua_touserdata(L, 1);
  (void)status;
  luaio__resumed(L, q->h->current);
  if (lua_toboolean(L, (int)ctx + 1)) return 0;
  return raise_shutdown(L);
}

static int put(lua_State *L, int wait) {
  queue *q = checkqueue(L);
  int top = lua_gettop(L);
  lua_Number prio = 0;
  task *t;
  if (top < 2) luaL_checkany(L, 2);
  if (q->kind == PRIO) {
    prio = luaL_optnumber(L, 3, 0);
    luaL_argcheck(L, !isnan(prio), 3, "priority is NaN");
  } else if (top > 2)
    luaL_argcheck(L, lua_isnil(L, 3), 3,
                  "only a priority queue takes a priority");
  if (top > 2) lua_settop(L, 2);
  if (q->shut) return raise_shutdown(L);
  if (q->getters.head != NULL) { /* the queue is empty: hand it over */
    q->unfinished++;
    lua_pushnumber(L, prio);
    luaio__wake(luaio__list_pop(&q->getters), L, 2);
    return 0;
  }
  if (!isfull(q)) {
    int ti = push_items(L, 1);
    lua_pushvalue(L, 2);
    insert(L, q, 1, ti, prio, 0);
    q->unfinished++;
    return 0;
  }
  if (!wait)
    return luaio__error_raise(L, "QueueFull", "the queue is full (%I items)",
                              q->maxsize);
  t = luaio__enter_wait(L, q->h);
  lua_pushnumber(L, prio);
  luaio__list_push(&q->putters, &t->w);
  return luaio__wait(L, t, &put_ops, L, 3, k_put);
}

/* q:put(item [, priority]): waits while the queue is full */
static int queue_put(lua_State *L) { return put(L, 1); }

/* q:put_nowait(item [, priority]): raises QueueFull when full */
static int queue_put_nowait(lua_State *L) { return put(L, 0); }

static int k_get(lua_State *L, int status, lua_KContext ctx) {
  queue *q = lua_touserdata(L, 1);
  (void)status;
  luaio__resumed(L, q->h->current);
  if (lua_gettop(L) == 1) { /* woken by shutdown */
    if (ctx == GET_ITER) return 0;
    return raise_shutdown(L);
  }
  lua_settop(L, 2);
  return 1;
}

static int get(lua_State *L, int mode) {
  queue *q = checkqueue(L);
  task *t;
  if (lua_gettop(L) > 1) lua_settop(L, 1);
  if (q->n > 0) {
    int ti = push_items(L, 1);
    take(L, q, 1, ti);
    refill(L, q, ti);
    return 1;
  }
  if (q->shut) return mode == GET_ITER ? 0 : raise_shutdown(L);
  if (mode == GET_NOWAIT)
    return luaio__error_raise(L, "QueueEmpty", "the queue is empty");
  t = luaio__enter_wait(L, q->h);
  luaio__list_push(&q->getters, &t->w);
  return luaio__wait(L, t, &get_ops, L, mode, k_get);
}

/* q:get() -> item: waits while the queue is empty */
static int queue_get(lua_State *L) { return get(L, GET_WAIT); }

/* q:get_nowait() -> item: raises QueueEmpty when empty */
static int queue_get_nowait(lua_State *L) { return get(L, GET_NOWAIT); }

/* The iterator of q:iter(): the next item, nothing once shut down. */
static int iter_next(lua_State *L) { return get(L, GET_ITER); }

/* q:iter() -> iterator: `for item in q:iter()` until shut down, drained */
static int queue_iter(lua_State *L) {
  checkqueue(L);
  lua_pushcfunction(L, iter_next);
  lua_pushvalue(L, 1);
  return 2;
}

/* q:qsize() -> integer */
static int queue_qsize(lua_State *L) {
  lua_pushinteger(L, checkqueue(L)->n);
  return 1;
}

/* q:empty() -> boolean */
static int queue_empty(lua_State *L) {
  lua_pushboolean(L, checkqueue(L)->n == 0);
  return 1;
}

/* q:full() -> boolean */
static int queue_full(lua_State *L) {
  lua_pushboolean(L, isfull(checkqueue(L)));
  return 1;
}

/* q:task_done(): one item put earlier is processed */
static int queue_task_done(lua_State *L) {
  queue *q = checkqueue(L);
  if (q->unfinished <= 0)
    return luaio__error_raise(L, "ValueError",
                              "task_done() called more times than items "
                              "were put");
  if (--q->unfinished == 0) wake_joiners(q);
  return 0;
}

static int k_join(lua_State *L, int status, lua_KContext ctx) {
  queue *q = lua_touserdata(L, 1);
  (void)status;
  (void)ctx;
  luaio__resumed(L, q->h->current);
  return 0;
}

/* q:join(): waits until every item put got its task_done() */
static int queue_join(lua_State *L) {
  queue *q = checkqueue(L);
  task *t;
  lua_settop(L, 1);
  if (q->unfinished == 0) return 0;
  t = luaio__enter_wait(L, q->h);
  luaio__list_push(&q->joiners, &t->w);
  return luaio__wait(L, t, &join_ops, q, 1, k_join);
}

/* q:shutdown([immediate]): put raises from now on, get once drained;
   immediate: drop the items now */
static int queue_shutdown(lua_State *L) {
  queue *q = checkqueue(L);
  int immediate = lua_toboolean(L, 2);
  lua_settop(L, 1);
  q->shut = 1;
  if (immediate) {
    q->immediate = 1;
    drop_all(L, q, 1);
    if (q->unfinished == 0) wake_joiners(q);
  }
  while (q->getters.head != NULL)
    luaio__wake(luaio__list_pop(&q->getters), NULL, 0);
  while (q->putters.head != NULL) {
    lua_pushboolean(L, 0);
    luaio__wake(luaio__list_pop(&q->putters), L, 1);
  }
  return 0;
}

static void add_waiting(luaL_Buffer *b, size_t n, const char *what) {
  if (n == 0) return;
  lua_pushfstring(b->L, ", %I %s%s waiting", (lua_Integer)n, what,
                  n == 1 ? "" : "s");
  luaL_addvalue(b);
}

/* tostring(q) -> "<queue 3/10, 1 getter waiting>" */
static int queue_tostring(lua_State *L) {
  queue *q = checkqueue(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  lua_pushfstring(L, "<%s %I", kind_names[q->kind], q->n);
  luaL_addvalue(&b);
  if (q->maxsize > 0) {
    lua_pushfstring(L, "/%I", q->maxsize);
    luaL_addvalue(&b);
  }
  add_waiting(&b, q->getters.n, "getter");
  add_waiting(&b, q->putters.n, "putter");
  add_waiting(&b, q->joiners.n, "joiner");
  if (q->shut) luaL_addstring(&b, ", shut down");
  luaL_addchar(&b, '>');
  luaL_pushresult(&b);
  return 1;
}

/* q:maxsize() -> n (0: unbounded).  A method, not a field, so that
   __index is a plain table and method calls cost no C call. */
static int queue_maxsize(lua_State *L) {
  lua_pushinteger(L, checkqueue(L)->maxsize);
  return 1;
}

static const luaL_Reg queue_methods[] = {{"put", queue_put},
                                         {"put_nowait", queue_put_nowait},
                                         {"get", queue_get},
                                         {"get_nowait", queue_get_nowait},
                                         {"iter", queue_iter},
                                         {"qsize", queue_qsize},
                                         {"empty", queue_empty},
                                         {"full", queue_full},
                                         {"task_done", queue_task_done},
                                         {"join", queue_join},
                                         {"shutdown", queue_shutdown},
                                         {"maxsize", queue_maxsize},
                                         {NULL, NULL}};

/* Push the queues' metatable of this state, made on first use. */
static void push_metatable(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &queuekey) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_createtable(L, 0, 4);
  lua_createtable(L, 0, 12);
  luaL_setfuncs(L, queue_methods, 0);
  luaio__set_methods(L, "luaio.Queue");
  lua_pushcfunction(L, queue_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, "luaio.Queue");
  lua_setfield(L, -2, "__name");
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &queuekey);
}

static int new_queue(lua_State *L, int kind) {
  lua_Integer maxsize = luaL_optinteger(L, 1, 0);
  queue *q;
  luaL_argcheck(L, maxsize >= 0, 1, "maxsize must not be negative");
  q = lua_newuserdatauv(L, sizeof *q, kind == PRIO ? 2 : 1);
  memset(q, 0, sizeof *q);
  q->magic = &queuekey;
  q->h = luaio__host(L);
  q->kind = (unsigned char)kind;
  q->maxsize = maxsize;
  q->cap = MINCAP;
  q->mincap = MINCAP;
  while (q->mincap < maxsize && q->mincap < KEEPCAP)
    q->mincap *= 2;
  lua_createtable(L, MINCAP, 0);
  lua_setiuservalue(L, -2, UV_ITEMS);
  if (kind == PRIO) {
    q->keys = lua_newuserdatauv(L, (MINCAP + 1) * sizeof *q->keys, 0);
    lua_setiuservalue(L, -2, UV_KEYS);
  }
  push_metatable(L);
  lua_setmetatable(L, -2);
  return 1;
}

/* aio.queue([maxsize]) -> queue: first in, first out */
static int aio_queue(lua_State *L) { return new_queue(L, FIFO); }

/* aio.lifo_queue([maxsize]) -> queue: last in, first out */
static int aio_lifo_queue(lua_State *L) { return new_queue(L, LIFO); }

/* aio.priority_queue([maxsize]) -> queue: lowest priority first */
static int aio_priority_queue(lua_State *L) { return new_queue(L, PRIO); }

const luaL_Reg luaio__queue_funcs[] = {{"queue", aio_queue},
                                       {"lifo_queue", aio_lifo_queue},
                                       {"priority_queue", aio_priority_queue},
                                       {NULL, NULL}};

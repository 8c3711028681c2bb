/*
** channel.c: aio.channel, a queue of copied values between hosts.
**
** A channel is malloc'd, shared by every host that holds it and freed with
** its last reference; its mutex guards the queue of messages, the closed
** flag and the list of links.  A link joins a channel to one host that has
** tasks waiting on it: the tasks are in the link's two waiter lists (only
** that host touches them), and the link's counts, which other hosts read,
** change under the channel's mutex.
**
** Each host has one port: a uv_async_t.  A sender that queues a message
** wakes the port of every host with receivers waiting (libuv folds many
** wake-ups into one); the port's callback drains, for each of its links,
** as many messages as the link has receivers, and lets as many senders
** in as there is room.  Nothing is handed over directly: a receiver takes
** its message from the queue, so a task that is cancelled after it was
** woken gives its message back to the front, for the next receiver.
**
** A waiting task keeps, on the thread that waits (its wobj): the object
** at 1, the link at 2 (a light userdata), and a sender its message at 3.
*/

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "worker.h"

typedef struct port port;

typedef struct chlink {
  struct chlink *cprev, *cnext; /* in the channel's list (its mutex) */
  struct chlink *pprev, *pnext; /* in the port's list (its host) */
  channel *ch;                  /* a reference while linked */
  port *p;
  waitlist recv, send; /* the host's own */
  size_t nrecv, nsend; /* their lengths, under the channel's mutex */
} chlink;

struct channel {
  pthread_mutex_t mu;
  atomic_size_t refs;
  msg *head, *tail;
  size_t n, cap; /* cap 0: unbounded */
  unsigned char closed;
  chlink *links;
};

struct port {
  resource res;
  uv_async_t async;
  luaio *h;
  chlink *links;
  size_t waiting; /* tasks waiting on its links: the async is ref'd */
  unsigned char closing;
};

/* The channel's life. */

channel *luaio__channel_new(size_t capacity) {
  channel *c = calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  if (pthread_mutex_init(&c->mu, NULL) != 0) {
    free(c);
    return NULL;
  }
  atomic_init(&c->refs, 1);
  c->cap = capacity;
  return c;
}

void luaio__channel_retain(channel *c) {
  atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

void luaio__channel_release(channel *c) {
  msg *m;
  if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1) return;
  m = c->head;
  while (m != NULL) {
    msg *next = m->next;
    luaio__msg_free(m);
    m = next;
  }
  pthread_mutex_destroy(&c->mu);
  free(c);
}

/* Wake the port of every link with receivers (recv) or senders waiting,
   but for `self`, whose host does the work itself.  Under c->mu. */
static chlink *notify(channel *c, int recv, port *self) {
  chlink *l, *mine = NULL;
  for (l = c->links; l != NULL; l = l->cnext)
    if ((recv ? l->nrecv : l->nsend) > 0) {
      if (l->p != self)
        uv_async_send(&l->p->async);
      else
        mine = l;
    }
  return mine;
}

/* Under c->mu. */
static void enqueue(channel *c, msg *m, int front) {
  m->next = NULL;
  if (front) {
    m->next = c->head;
    c->head = m;
    if (c->tail == NULL) c->tail = m;
  } else {
    if (c->tail)
      c->tail->next = m;
    else
      c->head = m;
    c->tail = m;
  }
  c->n++;
}

static msg *dequeue(channel *c) {
  msg *m = c->head;
  if (m == NULL) return NULL;
  c->head = m->next;
  if (c->head == NULL) c->tail = NULL;
  c->n--;
  m->next = NULL;
  return m;
}

static int has_room(channel *c) { return c->cap == 0 || c->n < c->cap; }

int luaio__channel_put(channel *c, msg *m) {
  pthread_mutex_lock(&c->mu);
  if (c->closed) {
    pthread_mutex_unlock(&c->mu);
    luaio__msg_free(m);
    return 0;
  }
  enqueue(c, m, 0);
  notify(c, 1, NULL);
  pthread_mutex_unlock(&c->mu);
  return 1;
}

msg *luaio__channel_take(channel *c, int *closed) {
  msg *m;
  pthread_mutex_lock(&c->mu);
  m = dequeue(c);
  *closed = c->closed;
  if (m != NULL) notify(c, 0, NULL);
  pthread_mutex_unlock(&c->mu);
  return m;
}

void luaio__channel_close(channel *c) {
  pthread_mutex_lock(&c->mu);
  if (!c->closed) {
    c->closed = 1;
    notify(c, 1, NULL);
    notify(c, 0, NULL);
  }
  pthread_mutex_unlock(&c->mu);
}

/* Ports and links. */

static void update_ref(port *p) {
  if (p->closing) return;
  if (p->waiting > 0)
    uv_ref((uv_handle_t *)&p->async);
  else
    uv_unref((uv_handle_t *)&p->async);
}

static void wake_ptr(task *t, void *m) {
  lua_State *co = t->co;
  lua_checkstack(co, 3);
  lua_pushlightuserdata(co, m);
  luaio__wake(t, co, 1);
}

static void wake_bool(task *t, int b) {
  lua_State *co = t->co;
  lua_checkstack(co, 3);
  lua_pushboolean(co, b);
  luaio__wake(t, co, 1);
}

/* The message a sending task waits to put (index 3 of its thread). */
static msg *sender_msg(task *t) {
  return lua_touserdata((lua_State *)t->wobj, 3);
}

/* Unlink l from its channel and port, once no task waits on it. */
static void drop_link(chlink *l) {
  channel *c = l->ch;
  port *p = l->p;
  pthread_mutex_lock(&c->mu);
  if (l->cprev)
    l->cprev->cnext = l->cnext;
  else
    c->links = l->cnext;
  if (l->cnext) l->cnext->cprev = l->cprev;
  pthread_mutex_unlock(&c->mu);
  if (l->pprev)
    l->pprev->pnext = l->pnext;
  else
    p->links = l->pnext;
  if (l->pnext) l->pnext->pprev = l->pprev;
  luaio__channel_release(c);
  free(l);
}

static void maybe_drop(chlink *l) {
  if (l->recv.n == 0 && l->send.n == 0) drop_link(l);
}

/* Serve l's waiting tasks from its channel: receivers take messages,
   senders put theirs while there is room; a closed channel wakes everyone
   once drained (senders at once). */
static void serve_link(chlink *l) {
  channel *c = l->ch;
  port *p = l->p;
  int took = 0, put = 0;
  pthread_mutex_lock(&c->mu);
  for (;;) {
    int progress = 0;
    while (l->recv.n > 0 && c->head != NULL) {
      task *t = luaio__list_pop(&l->recv);
      l->nrecv--;
      p->waiting--;
      wake_ptr(t, dequeue(c));
      took = progress = 1;
    }
    while (l->send.n > 0 && (c->closed || has_room(c))) {
      task *t = luaio__list_pop(&l->send);
      l->nsend--;
      p->waiting--;
      if (!c->closed) {
        enqueue(c, sender_msg(t), 0);
        put = progress = 1;
      }
      wake_bool(t, !c->closed);
    }
    if (!progress) break;
  }
  if (c->closed && c->head == NULL)
    while (l->recv.n > 0) {
      l->nrecv--;
      p->waiting--;
      wake_ptr(luaio__list_pop(&l->recv), NULL);
    }
  if (took) notify(c, 0, p);
  if (put) notify(c, 1, p);
  pthread_mutex_unlock(&c->mu);
  update_ref(p);
  maybe_drop(l);
}

static void on_async(uv_async_t *a) {
  port *p = a->data;
  chlink *l = p->links;
  while (l != NULL) {
    chlink *next = l->pnext; /* l may go */
    serve_link(l);
    l = next;
  }
}

static void on_port_closed(uv_handle_t *handle) { free(handle->data); }

static void port_close(resource *r) {
  port *p = container_of(r, port, res);
  luaio *h = p->h;
  p->closing = 1;
  luaio__res_remove(h, r);
  while (p->links != NULL) {
    chlink *l = p->links;
    while (l->recv.n > 0)
      wake_ptr(luaio__list_pop(&l->recv), NULL);
    while (l->send.n > 0)
      wake_bool(luaio__list_pop(&l->send), 0);
    drop_link(l);
  }
  h->chport = NULL;
  uv_close((uv_handle_t *)&p->async, on_port_closed);
}

static port *get_port(lua_State *L, luaio *h) {
  port *p = h->chport;
  if (p != NULL) return p;
  if ((p = calloc(1, sizeof *p)) == NULL) luaL_error(L, "not enough memory");
  if (uv_async_init(h->loop, &p->async, on_async) != 0) {
    free(p);
    luaL_error(L, "cannot create a wake-up handle");
  }
  p->async.data = p;
  p->h = h;
  p->res.close = port_close;
  luaio__res_add(h, &p->res);
  uv_unref((uv_handle_t *)&p->async);
  h->chport = p;
  return p;
}

/* The link of c to h's port, made if there is none. */
static chlink *get_link(lua_State *L, luaio *h, channel *c) {
  port *p = get_port(L, h);
  chlink *l;
  for (l = p->links; l != NULL; l = l->pnext)
    if (l->ch == c) return l;
  if ((l = calloc(1, sizeof *l)) == NULL) luaL_error(L, "not enough memory");
  l->ch = c;
  l->p = p;
  luaio__channel_retain(c);
  l->pnext = p->links;
  if (p->links) p->links->pprev = l;
  p->links = l;
  pthread_mutex_lock(&c->mu);
  l->cnext = c->links;
  if (c->links) c->links->cprev = l;
  c->links = l;
  pthread_mutex_unlock(&c->mu);
  return l;
}

/* Waiting.  The thread that waits holds the object at 1 and the link at
   2; a sender its message at 3. */

static void leave(task *t, chlink *l, int recv) {
  channel *c = l->ch;
  luaio__list_remove(&t->w);
  pthread_mutex_lock(&c->mu);
  if (recv)
    l->nrecv--;
  else
    l->nsend--;
  pthread_mutex_unlock(&c->mu);
  l->p->waiting--;
  update_ref(l->p);
  maybe_drop(l);
}

void luaio__channel_abandon_recv(task *t, int woken) {
  lua_State *wl = t->wobj;
  chlink *l = lua_touserdata(wl, 2);
  if (!woken) {
    leave(t, l, 1);
    return;
  }
  {
    msg *m = lua_touserdata(t->co, -1);
    channel *c;
    if (m == NULL) return; /* closed: nothing to give back */
    lua_pop(t->co, 1);
    lua_pushlightuserdata(t->co, NULL);
    c = l->ch;
    pthread_mutex_lock(&c->mu);
    enqueue(c, m, 1);
    notify(c, 1, NULL);
    pthread_mutex_unlock(&c->mu);
  }
}

static int recv_abandon(task *t, int woken) {
  luaio__channel_abandon_recv(t, woken);
  return 1;
}

static int send_abandon(task *t, int woken) {
  lua_State *wl = t->wobj;
  if (!woken) {
    leave(t, lua_touserdata(wl, 2), 0);
    luaio__msg_free(lua_touserdata(wl, 3));
    return 1;
  }
  if (lua_toboolean(t->co, -1)) return 0; /* sent: the task sees it */
  luaio__msg_free(lua_touserdata(wl, 3)); /* closed: k_send will not run */
  return 1;
}

static const waitops recv_ops = {"channel recv", recv_abandon, NULL};
static const waitops send_ops = {"channel send", send_abandon, NULL};

int luaio__channel_wait_recv(lua_State *L, luaio *h, channel *c,
                             const waitops *ops, lua_KFunction k) {
  task *t = luaio__enter_wait(L, h);
  chlink *l;
  lua_settop(L, 1);
  l = get_link(L, h, c);
  lua_pushlightuserdata(L, l);
  luaio__list_push(&l->recv, &t->w);
  pthread_mutex_lock(&c->mu);
  l->nrecv++;
  pthread_mutex_unlock(&c->mu);
  l->p->waiting++;
  update_ref(l->p);
  /* a message may have come between the caller's look and now */
  uv_async_send(&l->p->async);
  return luaio__wait(L, t, ops ? ops : &recv_ops, L, 0, k);
}

/* The Lua objects. */

typedef struct chbox {
  channel *c; /* NULL once collected */
} chbox;

channel *luaio__tochannel(lua_State *L, int idx) {
  chbox *b = luaL_testudata(L, idx, "luaio.Channel");
  return b ? b->c : NULL;
}

/* The channel at 1 of a method, whose upvalue 2 is the metatable. */
static channel *checkchan(lua_State *L) {
  chbox *b = lua_touserdata(L, 1);
  if (b == NULL || !lua_getmetatable(L, 1) ||
      !lua_rawequal(L, -1, lua_upvalueindex(2)))
    b = luaL_checkudata(L, 1, "luaio.Channel"); /* raises */
  lua_pop(L, 1);
  return b->c;
}

void luaio__channel_push(lua_State *L, channel *c) {
  chbox *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->c = c;
  luaL_setmetatable(L, "luaio.Channel");
}

static void shared_retain(void *p) { luaio__channel_retain(p); }
static void shared_release(void *p) { luaio__channel_release(p); }
static void shared_push(lua_State *L, void *p) { luaio__channel_push(L, p); }

static const sharedops chan_shared = {"channel", shared_retain, shared_release,
                                      shared_push};

static int raise_closed(lua_State *L) {
  return luaio__error_raise(L, "ChannelClosed", "the channel is closed");
}

static int k_send(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  luaio__resumed(L, luaio__host(L)->current);
  if (!lua_toboolean(L, -1)) {
    luaio__msg_free(lua_touserdata(L, 3));
    return raise_closed(L);
  }
  return 0;
}

/* ch:send(v): waits while the channel is full */
static int chan_send(lua_State *L) {
  luaio *h = luaio__host(L);
  channel *c = checkchan(L);
  port *self = h->chport;
  chlink *l;
  task *t;
  msg *m;
  luaL_checkany(L, 2);
  if (lua_isnil(L, 2))
    return luaL_argerror(L, 2, "nil cannot be sent (use aio.null)");
  m = luaio__copy_encode(L, 2, 1, "value", -1);
  pthread_mutex_lock(&c->mu);
  if (c->closed) {
    pthread_mutex_unlock(&c->mu);
    luaio__msg_free(m);
    return raise_closed(L);
  }
  if (has_room(c)) {
    enqueue(c, m, 0);
    l = notify(c, 1, self);
    pthread_mutex_unlock(&c->mu);
    if (l != NULL) serve_link(l);
    return 0;
  }
  pthread_mutex_unlock(&c->mu);
  /* Full: wait.  The copy is made again once nothing can raise before
     the wait holds it. */
  luaio__msg_free(m);
  t = luaio__enter_wait(L, h);
  m = luaio__copy_encode(L, 2, 1, "value", -1);
  lua_settop(L, 1);
  l = get_link(L, h, c);
  lua_pushlightuserdata(L, l);
  lua_pushlightuserdata(L, m);
  luaio__list_push(&l->send, &t->w);
  pthread_mutex_lock(&c->mu);
  l->nsend++;
  pthread_mutex_unlock(&c->mu);
  l->p->waiting++;
  update_ref(l->p);
  uv_async_send(&l->p->async); /* room may have come meanwhile */
  return luaio__wait(L, t, &send_ops, L, 0, k_send);
}

static int k_recv(lua_State *L, int status, lua_KContext ctx) {
  msg *m;
  (void)status;
  (void)ctx;
  luaio__resumed(L, luaio__host(L)->current);
  m = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (m == NULL) {
    lua_pushnil(L);
    return 1;
  }
  return luaio__copy_decode(L, m);
}

/* ch:recv() -> v | nil once closed and drained; waits while empty */
static int chan_recv(lua_State *L) {
  luaio *h = luaio__host(L);
  channel *c = checkchan(L);
  port *self = h->chport;
  chlink *l = NULL;
  msg *m;
  int closed;
  pthread_mutex_lock(&c->mu);
  m = dequeue(c);
  closed = c->closed;
  if (m != NULL) l = notify(c, 0, self);
  pthread_mutex_unlock(&c->mu);
  if (l != NULL) serve_link(l);
  if (m != NULL) return luaio__copy_decode(L, m);
  if (closed) {
    lua_pushnil(L);
    return 1;
  }
  return luaio__channel_wait_recv(L, h, c, NULL, k_recv);
}

/* ch:close(): later sends raise; receivers get what is queued, then nil */
static int chan_close(lua_State *L) {
  luaio__channel_close(checkchan(L));
  return 0;
}

/* ch:iter() -> iterator over the values until closed and drained */
static int chan_iter(lua_State *L) {
  checkchan(L);
  lua_getfield(L, 1, "recv");
  lua_pushvalue(L, 1);
  return 2;
}

/* #ch, ch:len() -> messages queued */
static int chan_len(lua_State *L) {
  channel *c = checkchan(L);
  size_t n;
  pthread_mutex_lock(&c->mu);
  n = c->n;
  pthread_mutex_unlock(&c->mu);
  lua_pushinteger(L, (lua_Integer)n);
  return 1;
}

static int chan_closed(lua_State *L) {
  channel *c = checkchan(L);
  int closed;
  pthread_mutex_lock(&c->mu);
  closed = c->closed;
  pthread_mutex_unlock(&c->mu);
  lua_pushboolean(L, closed);
  return 1;
}

static int chan_tostring(lua_State *L) {
  channel *c = checkchan(L);
  size_t n, cap;
  int closed;
  pthread_mutex_lock(&c->mu);
  n = c->n;
  cap = c->cap;
  closed = c->closed;
  pthread_mutex_unlock(&c->mu);
  if (cap > 0)
    lua_pushfstring(L, "luaio.Channel (%I of %I queued%s): %p", (lua_Integer)n,
                    (lua_Integer)cap, closed ? ", closed" : "", (void *)c);
  else
    lua_pushfstring(L, "luaio.Channel (%I queued%s): %p", (lua_Integer)n,
                    closed ? ", closed" : "", (void *)c);
  return 1;
}

static int chan_eq(lua_State *L) {
  lua_pushboolean(L, luaio__tochannel(L, 1) == luaio__tochannel(L, 2));
  return 1;
}

static int chan_gc(lua_State *L) {
  chbox *b = lua_touserdata(L, 1);
  if (b->c != NULL) luaio__channel_release(b->c);
  b->c = NULL;
  return 0;
}

/* aio.channel([capacity]) -> channel */
static int aio_channel(lua_State *L) {
  lua_Integer cap = luaL_optinteger(L, 1, 0);
  channel *c;
  luaL_argcheck(L, cap >= 0, 1, "capacity must not be negative");
  if ((c = luaio__channel_new((size_t)cap)) == NULL)
    return luaL_error(L, "not enough memory");
  luaio__channel_push(L, c);
  return 1;
}

static const luaL_Reg chan_methods[] = {
    {"send", chan_send}, {"recv", chan_recv}, {"close", chan_close},
    {"iter", chan_iter}, {"len", chan_len},   {"closed", chan_closed},
    {NULL, NULL}};

void luaio__channel_open(lua_State *L, luaio *h) {
  if (luaL_newmetatable(L, "luaio.Channel")) {
    lua_createtable(L, 0, 8);
    lua_pushlightuserdata(L, h);
    lua_pushvalue(L, -3);
    luaL_setfuncs(L, chan_methods, 2);
    luaio__set_methods(L, "luaio.Channel");
    lua_pushcfunction(L, chan_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, chan_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, chan_eq);
    lua_setfield(L, -2, "__eq");
    lua_pushlightuserdata(L, h);
    lua_pushcclosure(L, chan_len, 1);
    lua_setfield(L, -2, "__len");
    lua_pushlightuserdata(L, (void *)&chan_shared);
    lua_setfield(L, -2, "__luaio_shared");
  }
  lua_pop(L, 1);
  lua_pushlightuserdata(L, h);
  lua_pushcclosure(L, aio_channel, 1);
  lua_setfield(L, -2, "channel");
}

/*
** udp.c: aio.udp.bind, UDP sockets.
**
** A socket is a malloc'd udpsock holding the uv_udp_t; the userdata only
** points at it.  It receives from the moment it is bound: a datagram goes
** to the first task waiting in recv_from, or into a queue of at most
** QUEUE_MAX datagrams, where the oldest is dropped to make room.  A waiting
** task is handed its datagram as a light userdata on its thread, so a
** cancelled receiver can put it back at the front of the queue.
**
** The handle is unreferenced while no task waits on it, so an idle socket
** does not keep the loop alive.  Closing (close, __close, __gc or luaio_free
** through the resource list) starts uv_close; the memory goes in the close
** callback, or in __gc if that comes later.
*/

#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "uvfail.h"

#define QUEUE_MAX 1024  /* datagrams kept while nobody receives */
#define DGRAM_MAX 65536 /* the largest datagram */

/* The registry key of the socket metatable. */
static const char udpkey = 'U';

typedef struct dgram {
  struct dgram *next;
  int err; /* a receive error, 0 for a datagram */
  size_t len;
  struct sockaddr_storage from;
  char data[];
} dgram;

typedef struct udpsock {
  resource res;
  uv_udp_t handle;
  luaio *h;
  waitlist readers;   /* tasks in recv_from */
  dgram *head, *tail; /* the queue */
  size_t nqueued, dropped;
  unsigned nwait; /* tasks in a recv_from not yet resumed: they use s */
  unsigned char closing, closed, collected;
  char rbuf[DGRAM_MAX];
} udpsock;

typedef struct sendreq {
  uv_udp_send_t req;
  task *t; /* the waiting task; NULL once it gave up */
  int status;
  char data[];
} sendreq;

/* Parse a numeric address ("localhost" is 127.0.0.1); 0 or an error. */
static int parse_addr(const char *host, int port, struct sockaddr_storage *a) {
  if (strcmp(host, "localhost") == 0) host = "127.0.0.1";
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)a) == 0) return 0;
  return uv_ip6_addr(host, port, (struct sockaddr_in6 *)a);
}

/* Push host, port of a socket address. */
static int push_addr(lua_State *L, const struct sockaddr *a) {
  char ip[64] = "";
  int port = 0;
  if (a->sa_family == AF_INET) {
    uv_ip4_name((const struct sockaddr_in *)a, ip, sizeof ip);
    port = ntohs(((const struct sockaddr_in *)a)->sin_port);
  } else if (a->sa_family == AF_INET6) {
    uv_ip6_name((const struct sockaddr_in6 *)a, ip, sizeof ip);
    port = ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
  }
  lua_pushstring(L, ip);
  lua_pushinteger(L, port);
  return 2;
}

/* Keep the loop alive only while a task waits for a datagram. */
static void update_ref(udpsock *s) {
  if (s->closing) return;
  if (s->readers.n > 0)
    uv_ref((uv_handle_t *)&s->handle);
  else
    uv_unref((uv_handle_t *)&s->handle);
}

/* Hand d (NULL: the socket closed) to the waiting task t. */
static void hand(task *t, dgram *d) {
  lua_State *co = t->co;
  lua_checkstack(co, 3);
  lua_pushlightuserdata(co, d);
  luaio__wake(t, co, 1);
}

static void free_queue(udpsock *s) {
  while (s->head != NULL) {
    dgram *d = s->head;
    s->head = d->next;
    free(d);
  }
  s->tail = NULL;
  s->nqueued = 0;
}

/* Receiving. */

static void on_alloc(uv_handle_t *handle, size_t size, uv_buf_t *buf) {
  udpsock *s = handle->data;
  (void)size;
  *buf = uv_buf_init(s->rbuf, sizeof s->rbuf);
}

static void on_recv(uv_udp_t *handle, ssize_t nread, const uv_buf_t *buf,
                    const struct sockaddr *addr, unsigned flags) {
  udpsock *s = handle->data;
  size_t len = nread > 0 ? (size_t)nread : 0;
  dgram *d;
  (void)buf;
  (void)flags;
  if (nread == 0 && addr == NULL) return; /* nothing more to read */
  if (nread < 0 && s->readers.n == 0) return;
  d = malloc(sizeof *d + len);
  if (d == NULL) return; /* dropped, as the network may drop it */
  d->next = NULL;
  d->err = nread < 0 ? (int)nread : 0;
  d->len = len;
  memset(&d->from, 0, sizeof d->from);
  if (addr != NULL)
    memcpy(&d->from, addr,
           addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                       : sizeof(struct sockaddr_in));
  memcpy(d->data, s->rbuf, len);
  if (s->readers.n > 0) {
    hand(luaio__list_pop(&s->readers), d);
    update_ref(s);
    return;
  }
  if (s->tail)
    s->tail->next = d;
  else
    s->head = d;
  s->tail = d;
  if (++s->nqueued > QUEUE_MAX) { /* drop the oldest */
    dgram *old = s->head;
    s->head = old->next;
    free(old);
    s->nqueued--;
    s->dropped++;
  }
}

static int recv_abandon(task *t, int woken) {
  udpsock *s = t->wobj;
  dgram *d;
  if (!woken) {
    luaio__list_remove(&t->w);
    update_ref(s);
    return 1;
  }
  d = lua_touserdata(t->co, -1);
  if (d == NULL) return 1;
  if (s->closing || d->err) {
    free(d);
    return 1;
  }
  d->next = s->head; /* back at the front, for the next receiver */
  s->head = d;
  if (s->tail == NULL) s->tail = d;
  s->nqueued++;
  return 1;
}

static const waitops recv_ops = {"udp recv_from", recv_abandon, NULL};

/* Closing. */

/* Free s once it is closed, collected and no task in recv_from uses it
   (a __gc called by hand may come while tasks wait). */
static void maybe_free(udpsock *s) {
  if (s->closed && s->collected &&
      (s->nwait == 0 || s->h->freeing || s->h->dead))
    free(s);
}

static void on_close(uv_handle_t *handle) {
  udpsock *s = handle->data;
  s->closed = 1;
  maybe_free(s);
}

static void start_close(udpsock *s) {
  if (s->closing) return;
  s->closing = 1;
  luaio__res_remove(s->h, &s->res);
  free_queue(s);
  while (s->readers.n > 0)
    hand(luaio__list_pop(&s->readers), NULL);
  uv_close((uv_handle_t *)&s->handle, on_close);
}

static void res_close(resource *r) {
  start_close(container_of(r, udpsock, res));
}

static udpsock *checksock(lua_State *L, int idx) {
  udpsock *s = *(udpsock **)luaL_checkudata(L, idx, "luaio.UDP");
  if (s == NULL || s->closing) luaL_error(L, "attempt to use a closed socket");
  return s;
}

/* Push the results of a datagram and free it. */
static int push_dgram(lua_State *L, dgram *d) {
  int err;
  if (d == NULL) return uvfail(L, UV_ECANCELED, "socket closed");
  if (d->err) {
    err = d->err;
    free(d);
    return uvfail(L, err, NULL);
  }
  lua_pushlstring(L, d->data, d->len);
  push_addr(L, (const struct sockaddr *)&d->from);
  free(d);
  return 3;
}

static int k_recv(lua_State *L, int status, lua_KContext ctx) {
  udpsock *s = (udpsock *)ctx;
  dgram *d;
  (void)status;
  s->nwait--;
  maybe_free(s);
  luaio__resumed(L, luaio__host(L)->current);
  d = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return push_dgram(L, d);
}

/* sock:recv_from() -> data, host, port | nil, msg, code */
static int udp_recv_from(lua_State *L) {
  udpsock *s = checksock(L, 1);
  task *t;
  if (s->head != NULL) { /* no wait: no checkpoint */
    dgram *d = s->head;
    s->head = d->next;
    if (s->head == NULL) s->tail = NULL;
    s->nqueued--;
    return push_dgram(L, d);
  }
  t = luaio__enter_wait(L, s->h);
  lua_settop(L, 1);
  luaio__list_push(&s->readers, &t->w);
  update_ref(s);
  s->nwait++;
  return luaio__wait(L, t, &recv_ops, s, (lua_KContext)s, k_recv);
}

/* Sending. */

static void on_send(uv_udp_send_t *req, int status) {
  sendreq *r = req->data;
  r->status = status;
  if (r->t != NULL)
    luaio__wake(r->t, NULL, 0);
  else
    free(r);
}

/* A send cannot be taken back: one in progress goes on and on_send frees
   it; one that completed is freed here, as k_send raises before it looks
   at the request. */
static int send_abandon(task *t, int woken) {
  sendreq *r = t->wobj;
  if (!woken)
    r->t = NULL;
  else
    free(r);
  return 1;
}

static const waitops send_ops = {"udp send_to", send_abandon, NULL};

static int k_send(lua_State *L, int status, lua_KContext ctx) {
  sendreq *r;
  int st;
  (void)status;
  luaio__resumed(L, luaio__host(L)->current);
  r = (sendreq *)ctx;
  st = r->status;
  free(r);
  if (st < 0) return uvfail(L, st, NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* sock:send_to(data, host, port) -> true | nil, msg, code */
static int udp_send_to(lua_State *L) {
  udpsock *s = checksock(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  const char *host = luaL_checkstring(L, 3);
  lua_Integer port = luaL_checkinteger(L, 4);
  struct sockaddr_storage addr;
  task *t;
  sendreq *r;
  uv_buf_t buf;
  int err;
  luaL_argcheck(L, port >= 0 && port <= 65535, 4, "port out of range");
  if (parse_addr(host, (int)port, &addr) != 0)
    luaL_argerror(L, 3, "not an IP address (resolve names first)");
  t = luaio__enter_wait(L, s->h);
  r = malloc(sizeof *r + len);
  if (r == NULL) return luaL_error(L, "not enough memory");
  r->req.data = r;
  r->t = t;
  r->status = 0;
  memcpy(r->data, data, len);
  buf = uv_buf_init(r->data, (unsigned)len);
  err = uv_udp_send(&r->req, &s->handle, &buf, 1,
                    (const struct sockaddr *)&addr, on_send);
  if (err < 0) {
    free(r);
    return uvfail(L, err, NULL);
  }
  return luaio__wait(L, t, &send_ops, r, (lua_KContext)r, k_send);
}

/* sock:sockname() -> host, port */
static int udp_sockname(lua_State *L) {
  udpsock *s = checksock(L, 1);
  struct sockaddr_storage a;
  int len = sizeof a;
  int err = uv_udp_getsockname(&s->handle, (struct sockaddr *)&a, &len);
  if (err < 0) return uvfail(L, err, NULL);
  return push_addr(L, (const struct sockaddr *)&a);
}

/* sock:close(), sock:__close(): closing again is harmless */
static int udp_close(lua_State *L) {
  udpsock *s = *(udpsock **)luaL_checkudata(L, 1, "luaio.UDP");
  if (s != NULL) start_close(s);
  return 0;
}

/* sock:__gc() */
static int udp_gc(lua_State *L) {
  udpsock **p = luaL_checkudata(L, 1, "luaio.UDP"), *s = *p;
  if (s == NULL) return 0;
  *p = NULL;
  start_close(s);
  s->collected = 1;
  maybe_free(s);
  return 0;
}

/* tostring(sock) -> "luaio.UDP (…, n queued, n dropped)" */
static int udp_tostring(lua_State *L) {
  udpsock *s = *(udpsock **)luaL_checkudata(L, 1, "luaio.UDP");
  if (s == NULL || s->closing)
    lua_pushliteral(L, "luaio.UDP (closed)");
  else
    lua_pushfstring(L, "luaio.UDP (%p, %d queued, %d dropped)", (void *)s,
                    (int)s->nqueued, (int)s->dropped);
  return 1;
}

/* aio.udp.bind(host, port) -> socket | nil, msg, code */
static int udp_bind(lua_State *L) {
  luaio *h = luaio__host(L);
  const char *host = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  struct sockaddr_storage addr;
  udpsock **p, *s;
  int err;
  luaL_argcheck(L, port >= 0 && port <= 65535, 2, "port out of range");
  if (parse_addr(host, (int)port, &addr) != 0)
    luaL_argerror(L, 1, "not an IP address (resolve names first)");
  p = lua_newuserdatauv(L, sizeof *p, 0);
  *p = NULL;
  s = calloc(1, sizeof *s);
  if (s == NULL) return luaL_error(L, "not enough memory");
  s->h = h;
  s->res.close = res_close;
  err = uv_udp_init(h->loop, &s->handle);
  if (err < 0) {
    free(s);
    return uvfail(L, err, NULL);
  }
  s->handle.data = s;
  *p = s;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &udpkey);
  lua_setmetatable(L, -2);
  luaio__res_add(h, &s->res);
  err = uv_udp_bind(&s->handle, (const struct sockaddr *)&addr, 0);
  if (err == 0) err = uv_udp_recv_start(&s->handle, on_alloc, on_recv);
  if (err < 0) {
    start_close(s);
    return uvfail(L, err, host);
  }
  update_ref(s);
  return 1;
}

static const luaL_Reg udp_methods[] = {{"send_to", udp_send_to},
                                       {"recv_from", udp_recv_from},
                                       {"sockname", udp_sockname},
                                       {"close", udp_close},
                                       {NULL, NULL}};

static const luaL_Reg udp_meta[] = {{"__close", udp_close},
                                    {"__gc", udp_gc},
                                    {"__tostring", udp_tostring},
                                    {NULL, NULL}};

void luaio__udp_open(lua_State *L, luaio *h) {
  luaL_newmetatable(L, "luaio.UDP");
  luaL_setfuncs(L, udp_meta, 0);
  lua_createtable(L, 0, 4);
  lua_pushlightuserdata(L, h);
  luaL_setfuncs(L, udp_methods, 1);
  luaio__set_methods(L, "luaio.UDP");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &udpkey);
  lua_createtable(L, 0, 1);
  lua_pushlightuserdata(L, h);
  lua_pushcclosure(L, udp_bind, 1);
  lua_setfield(L, -2, "bind");
  lua_setfield(L, -2, "udp");
}

/*
** net.c: TCP and Unix-socket connections and servers.
**
** Connecting resolves the name on libuv's thread pool (literal addresses
** skip that) and tries each address in turn.  Every request lives in a
** malloc'd `netop` that outlives a cancelled waiter: the waiter lets go
** (op->t = NULL), the socket being connected is closed, and the request's
** callback frees the op.
**
** A server accepts in its libuv callback into a queue of streams, and an
** acceptor task hands each one to a new task running the handler; that task
** closes the stream when the handler ends.  Accepting fails only for the
** connection at hand (EMFILE drops it), and the server keeps listening.
*/

#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stream.h"

#define BACKLOG 511

/* Connecting and resolving. */

typedef struct netop {
  task *t; /* NULL once the waiter let go */
  int status;
  uv_getaddrinfo_t gai;
  uv_connect_t connect;
  struct addrinfo *ai, *cur, lit; /* lit: a literal address */
  struct sockaddr_storage addr;
  stream *s;              /* the socket being connected */
  struct ssl_ctx_st *tls; /* a TLS server's context, until it listens */
  double tls_timeout;
} netop;

static void free_op(netop *op) {
  if (op->ai != NULL) uv_freeaddrinfo(op->ai);
  if (op->tls != NULL) luaio__tls_ctx_free(op->tls);
  free(op);
}

static netop *new_op(lua_State *L) {
  netop *op = calloc(1, sizeof *op);
  if (op == NULL) luaL_error(L, "not enough memory");
  return op;
}

/* Fill op->lit if host is a literal address; 1 if it is. */
static int literal(netop *op, const char *host, int port) {
  struct sockaddr_in *a4 = (struct sockaddr_in *)&op->addr;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&op->addr;
  if (host == NULL) return 0;
  if (uv_ip4_addr(host, port, a4) == 0)
    op->lit.ai_addrlen = sizeof *a4;
  else if (uv_ip6_addr(host, port, a6) == 0)
    op->lit.ai_addrlen = sizeof *a6;
  else
    return 0;
  op->lit.ai_family = op->addr.ss_family;
  op->lit.ai_socktype = SOCK_STREAM;
  op->lit.ai_addr = (struct sockaddr *)&op->addr;
  op->cur = &op->lit;
  return 1;
}

static void on_resolved(uv_getaddrinfo_t *req, int status,
                        struct addrinfo *res) {
  netop *op = container_of(req, netop, gai);
  op->ai = op->cur = res;
  if (op->t == NULL) {
    free_op(op);
    return;
  }
  op->status = status;
  luaio__wake(op->t, NULL, 0);
}

static int resolve_abandon(task *t, int woken) {
  netop *op = t->wobj;
  if (woken)
    free_op(op);
  else {
    op->t = NULL; /* on_resolved frees it */
    uv_cancel((uv_req_t *)&op->gai);
  }
  return 1;
}

static const waitops resolve_ops = {"getaddrinfo", resolve_abandon, NULL};

/* Resolve host and port (the values at 1 and 2 of the stack) into op, then
   go on with k; a literal address goes on at once. */
static int resolve(lua_State *L, netop *op, int passive, lua_KFunction k) {
  luaio *h = luaio__host(L);
  const char *host = lua_tostring(L, 1);
  const char *port = lua_tostring(L, 2);
  struct addrinfo hints;
  task *t;
  int err;
  if (literal(op, host, (int)lua_tointeger(L, 2))) return k(L, LUA_OK, 0);
  t = luaio__enter_wait(L, h);
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : AI_ADDRCONFIG;
  err = uv_getaddrinfo(h->loop, &op->gai, on_resolved, host, port, &hints);
  if (err < 0) {
    free_op(op);
    return luaio__uv_fail(L, err);
  }
  op->t = t;
  return luaio__wait(L, t, &resolve_ops, op, 0, k);
}

/* The op rides on the stack at index 4 as a light userdata. */
static netop *stack_op(lua_State *L) { return lua_touserdata(L, 4); }

static void on_connect(uv_connect_t *req, int status) {
  netop *op = container_of(req, netop, connect);
  if (op->t == NULL) {
    free_op(op);
    return;
  }
  op->status = status;
  luaio__wake(op->t, NULL, 0);
}

static int connect_abandon(task *t, int woken) {
  netop *op = t->wobj;
  luaio__stream_abort(op->s); /* a pending connect ends with ECANCELED */
  if (woken)
    free_op(op);
  else
    op->t = NULL; /* on_connect frees it */
  return 1;
}

static const waitops connect_ops = {"connect", connect_abandon, NULL};

/* The new stream, set up by the options at index 3. */
static int connected(lua_State *L, netop *op) {
  stream *s = op->s;
  free_op(op);
  if (s->kind == SK_TCP) {
    int nodelay = 1;
    if (lua_type(L, 3) == LUA_TTABLE &&
        lua_getfield(L, 3, "nodelay") != LUA_TNIL) {
      nodelay = lua_toboolean(L, -1);
      lua_pop(L, 1);
    }
    uv_tcp_nodelay(&s->u.tcp, nodelay);
  }
  luaio__stream_opts(L, 3, s);
  luaio__stream_push(L, s);
  if (lua_type(L, 3) == LUA_TTABLE) { /* opts.tls: the handshake first */
    int tls;
    lua_getfield(L, 3, "tls");
    tls = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (tls) return luaio__tls_client(L, lua_gettop(L), 3, 1);
  }
  return 1;
}

static int k_connect(lua_State *L, int status, lua_KContext ctx);

/* Connect to the next address of op; the last error when none is left. */
static int connect_next(lua_State *L, netop *op) {
  luaio *h = luaio__host(L);
  int err = op->status < 0 ? op->status : UV_EAI_NONAME;
  task *t = luaio__enter_wait(L, h);
  while (op->cur != NULL) {
    struct addrinfo *a = op->cur;
    stream *s;
    op->cur = a->ai_next;
    if ((s = luaio__stream_alloc(h, SK_TCP)) == NULL) {
      err = UV_ENOMEM;
      break;
    }
    if ((err = uv_tcp_init(h->loop, &s->u.tcp)) < 0) {
      luaio__stream_discard(s);
      continue;
    }
    luaio__stream_attach(s);
    err = uv_tcp_connect(&op->connect, &s->u.tcp, a->ai_addr, on_connect);
    if (err < 0) {
      luaio__stream_abort(s);
      continue;
    }
    op->s = s;
    op->t = t;
    return luaio__wait(L, t, &connect_ops, op, 0, k_connect);
  }
  free_op(op);
  return luaio__uv_fail(L, err);
}

static int k_connect(lua_State *L, int status, lua_KContext ctx) {
  netop *op = stack_op(L);
  (void)status;
  (void)ctx;
  luaio__resumed(L, luaio__host(L)->current);
  if (op->status == 0) return connected(L, op);
  luaio__stream_abort(op->s);
  op->s = NULL;
  return connect_next(L, op);
}

static int k_resolved_connect(lua_State *L, int status, lua_KContext ctx) {
  netop *op = stack_op(L);
  (void)ctx;
  if (status == LUA_YIELD) luaio__resumed(L, luaio__host(L)->current);
  if (op->status < 0) {
    int err = op->status;
    free_op(op);
    return luaio__uv_fail(L, err);
  }
  return connect_next(L, op);
}

/* Check the options at idx before anything is opened. */
/* The options each call knows: a misspelt key raises, naming it. */
static const char *const tcp_connect_options[] = {"nodelay", "limit",
                                                  "high_water", "tls", NULL};
static const char *const unix_connect_options[] = {"limit", "high_water", NULL};
static const char *const tcp_server_options[] = {
    "backlog", "nodelay", "limit", "high_water", "reuse_port", "tls", NULL};
static const char *const unix_server_options[] = {"backlog", "limit",
                                                  "high_water", NULL};

static void check_opts(lua_State *L, int idx, luaio *h,
                       const char *const known[]) {
  stream probe;
  memset(&probe, 0, sizeof probe);
  probe.h = h;
  luaio__check_options(L, idx, known);
  luaio__stream_opts(L, idx, &probe);
  luaio__tls_check(L, idx, 0);
}

static void check_port(lua_State *L, int idx) {
  lua_Integer port = luaL_checkinteger(L, idx);
  luaL_argcheck(L, port >= 0 && port <= 65535, idx, "port out of range");
}

/* aio.open_connection(host, port [, opts]) -> stream | nil, msg, code */
static int aio_open_connection(lua_State *L) {
  netop *op;
  luaL_checkstring(L, 1);
  check_port(L, 2);
  check_opts(L, 3, luaio__host(L), tcp_connect_options);
  lua_settop(L, 3);
  luaio__enter_wait(L, luaio__host(L));
  op = new_op(L);
  lua_pushlightuserdata(L, op); /* 4 */
  return resolve(L, op, 0, k_resolved_connect);
}

/* aio.open_unix_connection(path [, opts]) -> stream | nil, msg, code */
static int aio_open_unix_connection(lua_State *L) {
  luaio *h = luaio__host(L);
  const char *path = luaL_checkstring(L, 1);
  netop *op;
  stream *s;
  task *t;
  check_opts(L, 2, h, unix_connect_options);
  lua_settop(L, 2);
  lua_pushnil(L);
  lua_insert(L, 2); /* the options at 3, as for TCP */
  t = luaio__enter_wait(L, h);
  op = new_op(L);
  lua_pushlightuserdata(L, op); /* 4 */
  if ((s = luaio__stream_alloc(h, SK_PIPE)) == NULL) {
    free_op(op);
    return luaio__uv_fail(L, UV_ENOMEM);
  }
  uv_pipe_init(h->loop, &s->u.pipe, 0);
  luaio__stream_attach(s);
  op->s = s;
  op->t = t;
  uv_pipe_connect(&op->connect, &s->u.pipe, path, on_connect);
  return luaio__wait(L, t, &connect_ops, op, 0, k_connect);
}

/* Servers. */

typedef struct server server;

typedef struct serverud {
  server *v;
} serverud;

struct server {
  resource res;
  luaio *h;
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } u;
  serverud *ud;
  unsigned char kind, closing, handle_closed, nodelay;
  int port;
  char *path;            /* a Unix server's socket, removed at close */
  stream *qhead, *qtail; /* accepted, not yet handed to a task */
  waitlist acceptor, closed, drained;
  size_t nhandlers; /* handler tasks still running */
  size_t limit, high;
  struct ssl_ctx_st *tls; /* opts.tls: each connection's handshake first */
  double tls_timeout;
  waitlist handshaking;   /* connection tasks in their handshake */
  lua_Integer tls_errors; /* failed handshakes */
  lua_Integer accept_errors;
  lua_Integer handler_errors; /* handlers that raised (reported at once) */
};

/* The registry key of the host's live servers: a table with weak keys
   (the servers' userdata), for luaio__net_close_servers. */
static const char serverskey = 's';

typedef struct hwatch {
  watch w;
  server *v;
} hwatch;

static void maybe_free(server *v) {
  if (v->handle_closed && v->nhandlers == 0 && v->ud == NULL) {
    if (v->tls != NULL) luaio__tls_ctx_free(v->tls);
    free(v->path);
    free(v);
  }
}

static void on_server_closed(uv_handle_t *handle) {
  server *v = handle->data;
  v->handle_closed = 1;
  maybe_free(v);
}

static void wake_all(waitlist *l) {
  task *t;
  while ((t = luaio__list_pop(l)) != NULL)
    luaio__wake(t, NULL, 0);
}

static void enqueue(server *v, stream *c) {
  if (v->kind == SK_TCP && v->nodelay) uv_tcp_nodelay(&c->u.tcp, 1);
  c->limit = v->limit;
  c->high = v->high;
  c->next = NULL;
  if (v->qtail != NULL)
    v->qtail->next = c;
  else
    v->qhead = c;
  v->qtail = c;
}

/* Take every connection the kernel has queued on the listening socket
   (accept4 until EAGAIN), so that closing it resets none of them. */
static void take_backlog(server *v) {
  uv_os_fd_t fd;
  int cfd, err;
  stream *c;
  if (uv_fileno(&v->u.handle, &fd) != 0) return;
  for (;;) {
    cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0 && errno == EINTR) continue;
    if (cfd < 0) return;
    if ((c = luaio__stream_alloc(v->h, v->kind)) == NULL) {
      close(cfd);
      return;
    }
    if (v->kind == SK_TCP)
      uv_tcp_init(v->h->loop, &c->u.tcp);
    else
      uv_pipe_init(v->h->loop, &c->u.pipe, 0);
    luaio__stream_attach(c);
    err = v->kind == SK_TCP ? uv_tcp_open(&c->u.tcp, cfd)
                            : uv_pipe_open(&c->u.pipe, cfd);
    if (err < 0) {
      close(cfd);
      luaio__stream_abort(c);
      continue;
    }
    enqueue(v, c);
  }
}

static void abort_queue(server *v) {
  while (v->qhead != NULL) {
    stream *c = v->qhead;
    v->qhead = c->next;
    luaio__stream_abort(c);
  }
  v->qtail = NULL;
}

/* Stop accepting.  Gracefully (server:close(), a worker's shutdown): the
   connections the kernel queued are taken first, then the listening
   socket closes, and the acceptor hands every queued connection to a
   handler before it ends.  Otherwise (the host shuts down, the server is
   collected) the queued connections are closed. */
static void server_stop(server *v, int graceful) {
  task *t;
  if (v->closing) {
    if (!graceful) abort_queue(v);
    return;
  }
  v->closing = 1;
  luaio__res_remove(v->h, &v->res);
  if (graceful) take_backlog(v);
  uv_close(&v->u.handle, on_server_closed);
  if (!graceful) abort_queue(v);
  /* Connections still in their TLS handshake were not handed to a
     handler yet: their tasks are cancelled (closing the stream), so a
     slow client cannot hold a shutdown for the handshake's timeout. */
  while ((t = luaio__list_pop(&v->handshaking)) != NULL)
    if (!v->h->freeing) luaio__task_cancel(t);
  if (v->path != NULL) unlink(v->path);
  wake_all(&v->acceptor);
  wake_all(&v->closed);
  if (v->nhandlers == 0 && v->qhead == NULL) wake_all(&v->drained);
}

static void server_res_close(resource *r) {
  server_stop(container_of(r, server, res), 0);
}

static server *new_server(luaio *h, int kind) {
  server *v = calloc(1, sizeof *v);
  if (v == NULL) return NULL;
  v->h = h;
  v->kind = (unsigned char)kind;
  v->res.close = server_res_close;
  v->limit = v->high = STREAM_LIMIT;
  v->nodelay = 1;
  if (kind == SK_TCP)
    uv_tcp_init(h->loop, &v->u.tcp);
  else
    uv_pipe_init(h->loop, &v->u.pipe, 0);
  v->u.handle.data = v;
  luaio__res_add(h, &v->res);
  return v;
}

static void on_connection(uv_stream_t *ls, int status) {
  server *v = ls->data;
  stream *c;
  task *t;
  if (status < 0) { /* EMFILE and the like: that connection is dropped */
    v->accept_errors++;
    return;
  }
  if ((c = luaio__stream_alloc(v->h, v->kind)) == NULL) return;
  if (v->kind == SK_TCP)
    uv_tcp_init(v->h->loop, &c->u.tcp);
  else
    uv_pipe_init(v->h->loop, &c->u.pipe, 0);
  luaio__stream_attach(c);
  if (uv_accept(ls, &c->u.stream) < 0) {
    v->accept_errors++;
    luaio__stream_abort(c);
    return;
  }
  enqueue(v, c);
  if ((t = luaio__list_pop(&v->acceptor)) != NULL) luaio__wake(t, NULL, 0);
}

static void on_handler_done(watch *w) {
  hwatch *hw = container_of(w, hwatch, w);
  server *v = hw->v;
  free(hw);
  v->nhandlers--;
  if (v->nhandlers == 0 && v->closing && v->qhead == NULL)
    wake_all(&v->drained);
  maybe_free(v);
}

/* The message handler of a connection's handler: a cancellation passes
   through as it is; any other error becomes its text and traceback. */
static int handler_msgh(lua_State *L) {
  if (luaio__is_error(L, 1, "CancelledError")) return 1;
  luaL_traceback(L, L, luaio__push_errmsg(L, 1), 1);
  return 1;
}

/* After the handler: a failure is reported at once, with the peer and the
   start_server call, and counted; the server owns its handler tasks, so
   nobody else would retrieve it.  A cancellation goes on. */
static int k_handler(lua_State *L, int status, lua_KContext ctx) {
  server *v = lua_touserdata(L, 3);
  (void)ctx;
  if (status == LUA_OK || status == LUA_YIELD) return 0;
  if (lua_type(L, -1) != LUA_TSTRING) return lua_error(L);
  v->handler_errors++;
  lua_pushfstring(
      L, "connection handler failed (peer %s; server started at %s)\n%s",
      lua_tostring(L, 5), lua_tostring(L, 4), lua_tostring(L, -1));
  luaio__report(v->h, lua_tostring(L, -1));
  return 0;
}

static int k_tls_accepted(lua_State *L, int status, lua_KContext ctx);

/* The body of a connection's task: handler(stream) with the server and
   its start_server site, then the stream is closed however the handler
   ends.  A TLS server's handshake comes first. */
static int run_handler(lua_State *L) {
  server *v = lua_touserdata(L, 3);
  lua_settop(L, 4);
  lua_toclose(L, 2);
  if (v->tls != NULL && v->closing) return 0; /* closed before its turn */
  if (v->tls != NULL)
    return luaio__tls_server(L, 2, v->tls, v->tls_timeout, &v->handshaking,
                             k_tls_accepted, 0);
  return k_tls_accepted(L, LUA_OK, 1);
}

/* After the handshake (ctx 1: none): a failed one is counted, and the
   handler does not run. */
static int k_tls_accepted(lua_State *L, int status, lua_KContext ctx) {
  server *v = lua_touserdata(L, 3);
  if (status == LUA_YIELD) luaio__resumed(L, v->h->current);
  if (ctx == 0 && !luaio__tls_ok(L, 2)) {
    v->tls_errors++;
    return 0;
  }
  lua_getfield(L, 2, "peername"); /* the peer, while it is still known */
  lua_pushvalue(L, 2);
  if (lua_pcall(L, 1, 2, 0) == LUA_OK && lua_isstring(L, -2)) {
    if (lua_isinteger(L, -1))
      lua_pushfstring(L, "%s:%I", lua_tostring(L, -2), lua_tointeger(L, -1));
    else
      lua_pushvalue(L, -2);
  } else
    lua_pushliteral(L, "?");
  lua_replace(L, 5);
  lua_settop(L, 5);
  lua_pushcfunction(L, handler_msgh);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  return k_handler(L, lua_pcallk(L, 1, 0, 6, 0, k_handler), 0);
}

static int accept_abandon(task *t, int woken) {
  if (!woken) luaio__list_remove(&t->w);
  return 1;
}

static const waitops accept_ops = {"accept", accept_abandon, NULL};

static int k_accept(lua_State *L, int status, lua_KContext ctx);

/* Hand each accepted connection to a task, then wait for more. */
static int accept_step(lua_State *L) {
  serverud *u = lua_touserdata(L, 1);
  server *v = u->v;
  luaio *h = luaio__host(L);
  task *t;
  while (v->qhead != NULL) {
    stream *c = v->qhead;
    if ((v->qhead = c->next) == NULL) v->qtail = NULL;
    lua_pushcfunction(L, run_handler);
    lua_getiuservalue(L, 1, 1);
    luaio__stream_push(L, c);
    lua_pushlightuserdata(L, v);
    lua_getiuservalue(L, 1, 2);
    t = luaio__spawn(L, h, 4);
    lua_pop(L, 1);
    if (t->state != T_DONE) {
      hwatch *hw = malloc(sizeof *hw);
      if (hw != NULL) {
        hw->v = v;
        hw->w.done = on_handler_done;
        v->nhandlers++;
        luaio__watch(t, &hw->w);
      }
    }
  }
  if (v->closing) {
    if (v->nhandlers == 0) wake_all(&v->drained);
    return 0;
  }
  t = luaio__enter_wait(L, h);
  luaio__list_push(&v->acceptor, &t->w);
  return luaio__wait(L, t, &accept_ops, v, 0, k_accept);
}

static int k_accept(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  luaio__resumed(L, luaio__host(L)->current);
  return accept_step(L);
}

/* The acceptor task: the server is closed when it ends. */
static int accept_main(lua_State *L) {
  lua_settop(L, 1);
  lua_toclose(L, 1);
  return accept_step(L);
}

static server *checkserver(lua_State *L) {
  serverud *u = luaL_checkudata(L, 1, "luaio.Server");
  if (u->v == NULL) luaL_error(L, "attempt to use a collected server");
  return u->v;
}

/* Read a server's options at idx into v. */
static void server_opts(lua_State *L, int idx, server *v, int *backlog) {
  stream probe;
  memset(&probe, 0, sizeof probe);
  probe.limit = v->limit;
  probe.high = v->high;
  luaio__stream_opts(L, idx, &probe);
  v->limit = probe.limit;
  v->high = probe.high;
  if (lua_type(L, idx) != LUA_TTABLE) return;
  if (lua_getfield(L, idx, "backlog") != LUA_TNIL)
    *backlog = (int)luaL_checkinteger(L, -1);
  if (lua_getfield(L, idx, "nodelay") != LUA_TNIL)
    v->nodelay = (unsigned char)lua_toboolean(L, -1);
  lua_pop(L, 2);
}

/* opts.reuse_port at idx: the socket gets SO_REUSEPORT before it binds,
   so several hosts (workers) may listen on one port and the kernel
   spreads the connections among them. */
static int reuse_port(lua_State *L, int idx, server *v, int family) {
  int fd, on = 1, err;
  if (lua_type(L, idx) != LUA_TTABLE) return 0;
  lua_getfield(L, idx, "reuse_port");
  on = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (!on) return 0;
  if ((fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
    return uv_translate_sys_error(errno);
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0)
    err = uv_translate_sys_error(errno);
  else
    err = uv_tcp_open(&v->u.tcp, fd);
  if (err != 0) close(fd);
  return err;
}

/* Push the server's userdata (handler at index hidx) and start its
   acceptor task. */
static void push_server(lua_State *L, server *v, int hidx) {
  luaio *h = luaio__host(L);
  lua_Debug ar;
  serverud *u = lua_newuserdatauv(L, sizeof *u, 2);
  u->v = v;
  v->ud = u;
  luaL_setmetatable(L, "luaio.Server");
  /* in the host's set of live servers (luaio__net_close_servers) */
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &serverskey) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &serverskey);
  }
  lua_pushvalue(L, -2);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  lua_pushvalue(L, hidx);
  lua_setiuservalue(L, -2, 1);
  /* the start_server call, for the handlers' reports */
  if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar) &&
      ar.currentline > 0)
    lua_pushfstring(L, "%s:%d", ar.short_src, ar.currentline);
  else
    lua_pushliteral(L, "?");
  lua_setiuservalue(L, -2, 2);
  lua_pushlightuserdata(L, h);
  lua_pushcclosure(L, accept_main, 1);
  lua_pushvalue(L, -2);
  /* It starts even if cancelled at once, so that it closes the server. */
  luaio__spawn(L, h, 1)->run_cancelled = 1;
  lua_pop(L, 1);
}

/* Bind and listen on the first address of op that works. */
static int k_resolved_listen(lua_State *L, int status, lua_KContext ctx) {
  luaio *h = luaio__host(L);
  netop *op = lua_touserdata(L, 5);
  int err = UV_EAI_NONAME, backlog = BACKLOG;
  server *v = NULL;
  (void)ctx;
  if (status == LUA_YIELD) luaio__resumed(L, h->current);
  if (op->status < 0) {
    err = op->status;
    free_op(op);
    return luaio__uv_fail(L, err);
  }
  for (; op->cur != NULL; op->cur = op->cur->ai_next) {
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if ((v = new_server(h, SK_TCP)) == NULL) {
      err = UV_ENOMEM;
      break;
    }
    server_opts(L, 4, v, &backlog);
    err = reuse_port(L, 4, v, op->cur->ai_family);
    if (err == 0) err = uv_tcp_bind(&v->u.tcp, op->cur->ai_addr, 0);
    if (err == 0) err = uv_listen(&v->u.stream, backlog, on_connection);
    if (err == 0)
      err = uv_tcp_getsockname(&v->u.tcp, (struct sockaddr *)&ss, &len);
    if (err == 0) {
      v->port = ntohs(ss.ss_family == AF_INET6
                          ? ((struct sockaddr_in6 *)&ss)->sin6_port
                          : ((struct sockaddr_in *)&ss)->sin_port);
      break;
    }
    server_stop(v, 0);
    v = NULL;
  }
  if (v != NULL) {
    v->tls = op->tls;
    v->tls_timeout = op->tls_timeout;
    op->tls = NULL;
  }
  free_op(op);
  if (v == NULL) return luaio__uv_fail(L, err);
  push_server(L, v, 3);
  return 1;
}

/* aio.start_server(handler, host, port [, opts]) -> server | nil, msg,
   code */
static int aio_start_server(lua_State *L) {
  luaio *h = luaio__host(L);
  int backlog = BACKLOG;
  server probe;
  netop *op;
  if (lua_type(L, 1) != LUA_TFUNCTION) luaL_checktype(L, 1, LUA_TFUNCTION);
  if (!lua_isnil(L, 2)) luaL_checkstring(L, 2);
  check_port(L, 3);
  luaio__check_options(L, 4, tcp_server_options);
  luaio__tls_check(L, 4, 1);
  memset(&probe, 0, sizeof probe);
  server_opts(L, 4, &probe, &backlog);
  lua_settop(L, 4);
  luaio__enter_wait(L, h);
  /* resolve() reads host and port at 1 and 2: the handler goes to 3. */
  lua_rotate(L, 1, -1); /* host, port, opts, handler */
  lua_rotate(L, 3, 1);  /* host, port, handler, opts */
  op = new_op(L);
  lua_pushlightuserdata(L, op); /* 5 */
  if (lua_type(L, 4) == LUA_TTABLE && lua_getfield(L, 4, "tls") == LUA_TTABLE) {
    lua_pop(L, 1);
    if ((op->tls = luaio__tls_server_ctx(L, 4, &op->tls_timeout)) == NULL) {
      free_op(op);
      return 3; /* nil, msg, "ETLS" */
    }
  } else if (lua_type(L, 4) == LUA_TTABLE)
    lua_pop(L, 1);
  return resolve(L, op, 1, k_resolved_listen);
}

/* aio.start_unix_server(handler, path [, opts]) -> server | nil, msg,
   code */
static int aio_start_unix_server(lua_State *L) {
  luaio *h = luaio__host(L);
  const char *path = luaL_checkstring(L, 2);
  int backlog = BACKLOG, err;
  struct stat st;
  server *v;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaio__check_options(L, 3, unix_server_options);
  luaio__enter_wait(L, h);
  /* A socket left behind by an earlier server is replaced. */
  if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode)) unlink(path);
  if ((v = new_server(h, SK_PIPE)) == NULL) return luaio__uv_fail(L, UV_ENOMEM);
  server_opts(L, 3, v, &backlog);
  err = uv_pipe_bind(&v->u.pipe, path);
  if (err == 0) err = uv_listen(&v->u.stream, backlog, on_connection);
  if (err < 0) {
    server_stop(v, 0);
    return luaio__uv_fail(L, err);
  }
  v->path = strdup(path);
  push_server(L, v, 1);
  return 1;
}

/* server:close(): stops accepting; the connections go on, those queued
   included */
static int server_close(lua_State *L) {
  serverud *u = luaL_checkudata(L, 1, "luaio.Server");
  if (u->v != NULL) server_stop(u->v, 1);
  return 0;
}

void luaio__net_close_servers(lua_State *L) {
  int n = 0;
  lua_newtable(L);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &serverskey) != LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    serverud *u = lua_touserdata(L, -2);
    lua_pop(L, 1);
    if (u != NULL && u->v != NULL && !u->v->closing) {
      server_stop(u->v, 1);
      lua_pushvalue(L, -1);
      lua_rawseti(L, -4, ++n);
    }
  }
  lua_pop(L, 1);
}

/* server:__close(), and the acceptor's end: the queued connections are
   closed */
static int server_abort(lua_State *L) {
  serverud *u = luaL_checkudata(L, 1, "luaio.Server");
  if (u->v != NULL) server_stop(u->v, 0);
  return 0;
}

static int server_gc(lua_State *L) {
  serverud *u = luaL_checkudata(L, 1, "luaio.Server");
  server *v = u->v;
  if (v != NULL) {
    server_stop(v, 0);
    v->ud = NULL;
    u->v = NULL;
    maybe_free(v);
  }
  return 0;
}

static int wait_abandon(task *t, int woken) {
  if (!woken) luaio__list_remove(&t->w);
  return 1;
}

static const waitops serve_ops = {"server", wait_abandon, NULL};

static int k_serve(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  luaio__resumed(L, luaio__host(L)->current);
  return 0;
}

/* server:serve_forever(): waits until the server is closed */
static int server_serve_forever(lua_State *L) {
  server *v = checkserver(L);
  task *t;
  if (v->closing) return 0;
  t = luaio__enter_wait(L, v->h);
  luaio__list_push(&v->closed, &t->w);
  return luaio__wait(L, t, &serve_ops, v, 0, k_serve);
}

static int k_wait_closed(lua_State *L, int status, lua_KContext ctx);

/* server:wait_closed(): waits until the server is closed and every
   handler task has ended */
static int server_wait_closed(lua_State *L) {
  server *v = checkserver(L);
  task *t;
  if (v->closing && v->nhandlers == 0 && v->qhead == NULL) return 0;
  t = luaio__enter_wait(L, v->h);
  luaio__list_push(v->closing ? &v->drained : &v->closed, &t->w);
  return luaio__wait(L, t, &serve_ops, v, 0, k_wait_closed);
}

static int k_wait_closed(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  luaio__resumed(L, luaio__host(L)->current);
  return server_wait_closed(L);
}

/* server:is_serving() -> boolean */
static int server_is_serving(lua_State *L) {
  lua_pushboolean(L, !checkserver(L)->closing);
  return 1;
}

/* server:stats() -> {handlers = n, accept_errors = n, handler_errors = n,
   tls_errors = n} */
static int server_stats(lua_State *L) {
  server *v = checkserver(L);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, v->tls_errors);
  lua_setfield(L, -2, "tls_errors");
  lua_pushinteger(L, v->handler_errors);
  lua_setfield(L, -2, "handler_errors");
  lua_pushinteger(L, (lua_Integer)v->nhandlers);
  lua_setfield(L, -2, "handlers");
  lua_pushinteger(L, v->accept_errors);
  lua_setfield(L, -2, "accept_errors");
  return 1;
}

/* server.port, server.path, and the methods */
static int server_index(lua_State *L) {
  server *v = checkserver(L);
  const char *k = luaL_checkstring(L, 2);
  if (strcmp(k, "port") == 0 && v->kind == SK_TCP) {
    lua_pushinteger(L, v->port);
    return 1;
  }
  if (strcmp(k, "path") == 0 && v->path != NULL) {
    lua_pushstring(L, v->path);
    return 1;
  }
  lua_getmetatable(L, 1);
  lua_getfield(L, -1, "methods");
  lua_getfield(L, -1, k);
  return 1;
}

static int server_tostring(lua_State *L) {
  serverud *u = luaL_checkudata(L, 1, "luaio.Server");
  server *v = u->v;
  if (v == NULL)
    lua_pushliteral(L, "<server>");
  else if (v->path != NULL)
    lua_pushfstring(L, "<server %s%s>", v->path, v->closing ? " closed" : "");
  else
    lua_pushfstring(L, "<server port %d%s>", v->port,
                    v->closing ? " closed" : "");
  return 1;
}

static const luaL_Reg server_methods[] = {
    {"close", server_close},
    {"serve_forever", server_serve_forever},
    {"wait_closed", server_wait_closed},
    {"is_serving", server_is_serving},
    {"stats", server_stats},
    {NULL, NULL}};

static const luaL_Reg funcs[] = {
    {"open_connection", aio_open_connection},
    {"open_unix_connection", aio_open_unix_connection},
    {"start_server", aio_start_server},
    {"start_unix_server", aio_start_unix_server},
    {NULL, NULL}};

void luaio__net_open(lua_State *L, luaio *h) {
  struct sigaction sa;
  /* A write to a peer that has gone must fail with EPIPE, not kill the
     process: ignore SIGPIPE unless the program handles it already. */
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
    signal(SIGPIPE, SIG_IGN);
  luaio__stream_open(L, h);
  luaL_newmetatable(L, "luaio.Server");
  lua_newtable(L);
  lua_pushlightuserdata(L, h);
  luaL_setfuncs(L, server_methods, 1);
  lua_setfield(L, -2, "methods");
  lua_pushcfunction(L, server_index);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, server_abort);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, server_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, server_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  lua_pushlightuserdata(L, h);
  luaL_setfuncs(L, funcs, 1);
}

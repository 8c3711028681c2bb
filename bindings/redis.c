/*
** redis.c: luaio._redis, one Redis connection through hiredis's async API
** on the host's loop.
**
** hiredis asks for read and write interest through five hooks (addRead,
** delRead, addWrite, delWrite, cleanup); they drive a uv_poll_t of our own
** on the connection's socket.  A poll error is not dropped: it closes the
** connection, so every waiter hears of it.  `cleanup` is hiredis freeing
** its context: the poll handle is closed there, and the connection's memory
** goes in the close callback once the userdata was collected too.
**
** Commands are sent as argv; hiredis writes them in order and calls back
** in order, so the tasks sharing a connection pipeline.  The write is put
** off until the ready tasks have run (luaio__defer): the commands of one
** scheduler round go out in one write, and a round trip costs a write, a
** poll and a read, with no change of poll interest.  A callback runs
** inside hiredis (inside a libuv callback): it only takes the reply (moved
** out of hiredis's object, which hiredis then frees empty) and wakes the
** task; the continuation turns it into Lua values.  A command whose task
** was cancelled keeps its place: its reply is read and discarded.
**
** A watchdog timer closes a connection that owes replies and has heard
** nothing for `reply_timeout` seconds.  A subscription connection queues
** the messages it receives; past QUEUE_MAX messages or QUEUE_BYTES bytes it
** stops reading, so the server sees a slow consumer (and may disconnect it:
** that is a ConnectionError once the queue is drained).
*/

#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "internal.h"

#define QUEUE_MAX 1024        /* messages queued before reading stops */
#define QUEUE_BYTES (1 << 20) /* bytes queued before reading stops */
#define ARGV_SMALL 16

static const char connkey = 'R';

typedef struct rconn rconn;

/* One command waiting for its reply. */
typedef struct rcommand {
  task *t; /* NULL once its task gave up */
  rconn *rc;
  redisReply *reply;
  char *err; /* the connection failed: why */
  unsigned char done, raw;
} rcommand;

typedef struct rmsg {
  struct rmsg *next;
  redisReply *reply;
  size_t bytes;
} rmsg;

struct rconn {
  resource res;
  luaio *h;
  redisAsyncContext *ac; /* NULL once hiredis freed it */
  uv_poll_t poll;
  uv_timer_t watchdog;
  int events;  /* what hiredis wants */
  int polling; /* what the poll watches */
  unsigned char has_poll, poll_closed, timer_closed, collected, paused;
  unsigned char connected, subscribed, closing, user_closed, flushing;
  deferred flush;    /* the commands queued by the tasks that ran */
  char *err;         /* why the connection ended */
  uint64_t reply_ms; /* the watchdog; 0: none */
  uint64_t heard;    /* loop time of the last reply, or of owing one */
  size_t owed;       /* replies owed to commands */
  /* connecting */
  task *connector;
  /* subscriptions */
  rmsg *head, *tail;
  size_t nqueued, qbytes;
  task *reader;
};

static void set_err(rconn *rc, const char *msg) {
  if (rc->err == NULL) rc->err = strdup(msg ? msg : "connection closed");
}

static void free_conn_mem(rconn *rc) {
  while (rc->head != NULL) {
    rmsg *m = rc->head;
    rc->head = m->next;
    freeReplyObject(m->reply);
    free(m);
  }
  free(rc->err);
  free(rc);
}

static void maybe_free(rconn *rc) {
  if (rc->collected && rc->timer_closed && (!rc->has_poll || rc->poll_closed))
    free_conn_mem(rc);
}

static void on_poll_close(uv_handle_t *h) {
  rconn *rc = h->data;
  rc->poll_closed = 1;
  maybe_free(rc);
}

static void on_timer_close(uv_handle_t *h) {
  rconn *rc = h->data;
  rc->timer_closed = 1;
  maybe_free(rc);
}

/* The poll. */

static void on_poll(uv_poll_t *p, int status, int events);

static void update_poll(rconn *rc) {
  int want;
  if (!rc->has_poll || rc->ac == NULL) return;
  want = rc->events & (rc->paused ? ~UV_READABLE : ~0);
  if (want == rc->polling) return;
  rc->polling = want;
  if (want == 0)
    uv_poll_stop(&rc->poll);
  else
    uv_poll_start(&rc->poll, want, on_poll);
}

static void ev_add_read(void *d) {
  rconn *rc = d;
  rc->events |= UV_READABLE;
  update_poll(rc);
}
static void ev_del_read(void *d) {
  rconn *rc = d;
  rc->events &= ~UV_READABLE;
  update_poll(rc);
}
/* A command was queued: the write waits until the tasks ready now have
   run, so what they all queued goes in one write, and the poll watches for
   writability only when the socket took less (or while connecting). */
static void ev_add_write(void *d) {
  rconn *rc = d;
  if (rc->connected && !rc->flushing) {
    luaio__defer(rc->h, &rc->flush);
    return;
  }
  rc->events |= UV_WRITABLE;
  update_poll(rc);
}

static void run_flush(deferred *d) {
  rconn *rc = container_of(d, rconn, flush);
  if (rc->ac == NULL) return;
  rc->flushing = 1;
  redisAsyncHandleWrite(rc->ac); /* may free the context */
  rc->flushing = 0;
}
static void ev_del_write(void *d) {
  rconn *rc = d;
  rc->events &= ~UV_WRITABLE;
  update_poll(rc);
}

/* hiredis frees its context: no more hooks, no more callbacks. */
static void ev_cleanup(void *d) {
  rconn *rc = d;
  luaio__undefer(rc->h, &rc->flush);
  if (rc->ac != NULL && rc->ac->errstr != NULL && rc->ac->err)
    set_err(rc, rc->ac->errstr);
  rc->ac = NULL;
  if (!rc->closing) {
    rc->closing = 1;
    luaio__res_remove(rc->h, &rc->res);
  }
  if (rc->has_poll && !uv_is_closing((uv_handle_t *)&rc->poll)) {
    uv_poll_stop(&rc->poll);
    uv_close((uv_handle_t *)&rc->poll, on_poll_close);
  }
  uv_timer_stop(&rc->watchdog);
  if (rc->reader != NULL) { /* the subscriber hears of it */
    task *t = rc->reader;
    rc->reader = NULL;
    luaio__wake(t, NULL, 0);
  }
  if (rc->connector != NULL) {
    task *t = rc->connector;
    rc->connector = NULL;
    luaio__wake(t, NULL, 0);
  }
}

/* Close now: hiredis calls every pending callback with no reply. */
static void drop(rconn *rc, const char *why) {
  set_err(rc, why);
  if (rc->ac != NULL) redisAsyncFree(rc->ac); /* cleanup runs inside */
}

static void on_poll(uv_poll_t *p, int status, int events) {
  rconn *rc = p->data;
  if (status < 0) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s: %s", uv_err_name(status),
             uv_strerror(status));
    drop(rc, msg);
    return;
  }
  if ((events & UV_READABLE) && rc->ac != NULL) redisAsyncHandleRead(rc->ac);
  if ((events & UV_WRITABLE) && rc->ac != NULL) redisAsyncHandleWrite(rc->ac);
}

/* The watchdog. */

/* The timer is not moved at every reply (a heap operation each): a reply
   notes the time, and the timer, when it fires early, waits out the rest
   of reply_ms from the last reply. */
static void on_watchdog(uv_timer_t *tm) {
  rconn *rc = tm->data;
  uint64_t quiet;
  if (rc->owed == 0 || rc->ac == NULL) return;
  quiet = uv_now(rc->h->loop) - rc->heard;
  if (quiet >= rc->reply_ms)
    drop(rc, "no reply from the server in time");
  else
    uv_timer_start(&rc->watchdog, on_watchdog, rc->reply_ms - quiet, 0);
}

/* Replies are owed from now (started) or none are (stopped). */
static void arm(rconn *rc) {
  if (rc->reply_ms == 0 || rc->ac == NULL) return;
  if (rc->owed > 0) {
    rc->heard = uv_now(rc->h->loop);
    if (!uv_is_active((uv_handle_t *)&rc->watchdog))
      uv_timer_start(&rc->watchdog, on_watchdog, rc->reply_ms, 0);
  } else
    uv_timer_stop(&rc->watchdog);
}

/* The connection userdata at idx (luaL_checkudata without looking the
   metatable up by name: the methods hold it as upvalue 2). */
static rconn **toconn(lua_State *L, int idx) {
  void *p = lua_touserdata(L, idx);
  if (p == NULL || !lua_getmetatable(L, idx) ||
      !lua_rawequal(L, -1, lua_upvalueindex(2)))
    luaL_typeerror(L, idx, "luaio.redis");
  lua_pop(L, 1);
  return p;
}

/* Replies. */

/* Move r's contents into a reply of our own; hiredis frees the husk. */
static redisReply *take(redisReply *r) {
  redisReply *mine = malloc(sizeof *mine);
  if (mine == NULL) return NULL;
  *mine = *r;
  r->str = NULL;
  r->element = NULL;
  r->elements = 0;
  r->len = 0;
  r->type = REDIS_REPLY_NIL;
  return mine;
}

static void free_cmd(rcommand *c) {
  if (c->reply) freeReplyObject(c->reply);
  free(c->err);
  free(c);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv) {
  rcommand *c = priv;
  rconn *rc = c->rc;
  c->done = 1;
  if (reply != NULL) c->reply = take(reply);
  if (c->reply == NULL)
    c->err = strdup(ac->errstr != NULL && ac->err ? ac->errstr
                    : rc->err                     ? rc->err
                                                  : "connection closed");
  if (rc->owed > 0 && --rc->owed > 0)
    rc->heard = uv_now(rc->h->loop);
  else
    arm(rc);
  if (c->t != NULL)
    luaio__wake(c->t, NULL, 0);
  else
    free_cmd(c);
}

static int cmd_abandon(task *t, int woken) {
  rcommand *c = t->wobj;
  if (woken) {
    free_cmd(c); /* read and discarded */
    return 1;
  }
  c->t = NULL; /* on_reply discards it */
  return 1;
}

static const waitops cmd_ops = {"a redis reply", cmd_abandon, NULL};

static void push_error(lua_State *L, const char *kind, const char *msg,
                       size_t len) {
  const char *sp;
  luaio__error_push(L, kind, "");
  lua_pushlstring(L, msg, len);
  lua_setfield(L, -2, "message");
  if (strcmp(kind, "RedisError") == 0) {
    sp = memchr(msg, ' ', len);
    lua_pushlstring(L, msg, sp ? (size_t)(sp - msg) : len);
    lua_setfield(L, -2, "code");
  }
}

static void push_reply(lua_State *L, const redisReply *r, int top) {
  size_t i;
  luaL_checkstack(L, 4, "reply nested too deeply");
  switch (r->type) {
  case REDIS_REPLY_STRING:
  case REDIS_REPLY_STATUS:
    lua_pushlstring(L, r->str, r->len);
    break;
  case REDIS_REPLY_INTEGER:
    lua_pushinteger(L, (lua_Integer)r->integer);
    break;
  case REDIS_REPLY_ARRAY:
    lua_createtable(L, (int)r->elements, 0);
    for (i = 0; i < r->elements; i++) {
      push_reply(L, r->element[i], 0);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    break;
  case REDIS_REPLY_ERROR:
    push_error(L, "RedisError", r->str, r->len);
    break;
  default:
    if (top)
      lua_pushnil(L);
    else
      lua_pushlightuserdata(L, NULL); /* aio.null */
  }
}

static int k_call(lua_State *L, int status, lua_KContext ctx) {
  rcommand *c = (rcommand *)ctx;
  (void)status;
  luaio__resumed(L, luaio__host(L)->current);
  if (c->reply == NULL) {
    push_error(L, "ConnectionError", c->err ? c->err : "connection closed",
               strlen(c->err ? c->err : "connection closed"));
    free_cmd(c);
    return lua_error(L);
  }
  if (c->reply->type == REDIS_REPLY_ERROR && !c->raw) {
    push_error(L, "RedisError", c->reply->str, c->reply->len);
    free_cmd(c);
    return lua_error(L);
  }
  push_reply(L, c->reply, 1);
  free_cmd(c);
  return 1;
}

static rconn *checkconn(lua_State *L, int idx) {
  rconn *rc = *toconn(L, idx);
  if (rc == NULL) luaL_error(L, "attempt to use a closed connection");
  return rc;
}

/* Raise ConnectionError if rc cannot take a command. */
static void check_alive(lua_State *L, rconn *rc) {
  if (rc->ac == NULL || rc->closing) {
    const char *msg = rc->err ? rc->err : "connection closed";
    push_error(L, "ConnectionError", msg, strlen(msg));
    lua_error(L);
  }
}

/* The decimal digits of v in buf (room for 21), as Lua writes them. */
static size_t format_int(char *buf, lua_Integer v) {
  char tmp[24];
  size_t n = 0, len = 0;
  lua_Unsigned u = v < 0 ? 0u - (lua_Unsigned)v : (lua_Unsigned)v;
  do {
    tmp[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u != 0);
  if (v < 0) buf[len++] = '-';
  while (n > 0)
    buf[len++] = tmp[--n];
  return len;
}

/* A command's arguments as hiredis takes them. */
typedef struct cmdargs {
  int n;
  const char **argv;
  size_t *lens;
  const char *small[ARGV_SMALL];
  size_t smalllen[ARGV_SMALL];
  char digits[ARGV_SMALL][24]; /* integers, written without a Lua string */
} cmdargs;

/* The arguments from index `first` into a (raises on a bad one). */
static void get_args(lua_State *L, int first, cmdargs *a) {
  int n = lua_gettop(L) - first + 1, i;
  luaL_argcheck(L, n >= 1, first, "a command expected");
  a->n = n;
  a->argv = a->small;
  a->lens = a->smalllen;
  if (n > ARGV_SMALL) {
    a->argv = lua_newuserdatauv(L, (size_t)n * sizeof *a->argv, 0);
    a->lens = lua_newuserdatauv(L, (size_t)n * sizeof *a->lens, 0);
  }
  for (i = 0; i < n; i++) {
    int idx = first + i, t = lua_type(L, idx);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
      luaL_argerror(L, idx, "string or number expected");
    if (i < ARGV_SMALL && lua_isinteger(L, idx)) {
      a->lens[i] = format_int(a->digits[i], lua_tointeger(L, idx));
      a->argv[i] = a->digits[i];
    } else
      a->argv[i] = lua_tolstring(L, idx, &a->lens[i]);
  }
}

static int send_args(rconn *rc, cmdargs *a, redisCallbackFn *fn, void *priv) {
  return redisAsyncCommandArgv(rc->ac, fn, priv, a->n, a->argv, a->lens);
}

/* conn:call(cmd, ...) -> reply (raises RedisError, ConnectionError) */
static int redis_call(lua_State *L) {
  rconn *rc = checkconn(L, 1);
  task *t;
  rcommand *c;
  cmdargs a;
  check_alive(L, rc);
  if (rc->subscribed) return luaL_error(L, "a subscription connection");
  t = luaio__enter_wait(L, rc->h);
  get_args(L, 2, &a);
  c = calloc(1, sizeof *c);
  if (c == NULL) return luaL_error(L, "not enough memory");
  c->rc = rc;
  c->t = t;
  if (send_args(rc, &a, on_reply, c) != REDIS_OK) {
    free(c);
    return luaL_error(L, "redis: cannot send the command");
  }
  rc->owed++;
  if (rc->owed == 1) arm(rc);
  lua_settop(L, 1);
  return luaio__wait(L, t, &cmd_ops, c, (lua_KContext)c, k_call);
}

/* Subscriptions. */

static void resume_reading(rconn *rc) {
  if (rc->paused && rc->nqueued <= QUEUE_MAX / 2 &&
      rc->qbytes <= QUEUE_BYTES / 2) {
    rc->paused = 0;
    update_poll(rc);
  }
}

static void on_message(redisAsyncContext *ac, void *reply, void *priv) {
  rconn *rc = priv;
  rmsg *m;
  size_t i;
  (void)ac;
  if (reply == NULL) return; /* closing: cleanup wakes the reader */
  m = malloc(sizeof *m);
  if (m == NULL) return;
  if ((m->reply = take(reply)) == NULL) {
    free(m);
    return;
  }
  m->next = NULL;
  m->bytes = 64;
  if (m->reply->type == REDIS_REPLY_ARRAY)
    for (i = 0; i < m->reply->elements; i++)
      m->bytes += m->reply->element[i]->len;
  if (rc->tail)
    rc->tail->next = m;
  else
    rc->head = m;
  rc->tail = m;
  rc->nqueued++;
  rc->qbytes += m->bytes;
  if (rc->nqueued > QUEUE_MAX || rc->qbytes > QUEUE_BYTES) {
    rc->paused = 1;
    update_poll(rc);
  }
  if (rc->reader != NULL) {
    task *t = rc->reader;
    rc->reader = NULL;
    luaio__wake(t, NULL, 0);
  }
}

/* conn:_subscribe(cmd, channel, ...): sends (P)SUBSCRIBE */
static int redis_subscribe(lua_State *L) {
  rconn *rc = checkconn(L, 1);
  cmdargs a;
  check_alive(L, rc);
  luaL_checkstring(L, 2);
  get_args(L, 2, &a);
  if (send_args(rc, &a, on_message, rc) != REDIS_OK)
    return luaL_error(L, "redis: cannot send the command");
  rc->subscribed = 1;
  return 0;
}

/* Push the kind and fields of message m: "message", channel, data |
   "pmessage", pattern, channel, data | "subscribe", channel, count … */
static int push_message(lua_State *L, rmsg *m) {
  redisReply *r = m->reply;
  int n = 0;
  size_t i;
  if (r->type == REDIS_REPLY_ARRAY) {
    luaL_checkstack(L, (int)r->elements + 2, NULL);
    for (i = 0; i < r->elements; i++, n++)
      push_reply(L, r->element[i], 1);
  } else {
    push_reply(L, r, 1);
    n = 1;
  }
  return n;
}

static int pop_message(lua_State *L, rconn *rc) {
  rmsg *m = rc->head;
  int n;
  rc->head = m->next;
  if (rc->head == NULL) rc->tail = NULL;
  rc->nqueued--;
  rc->qbytes -= m->bytes;
  resume_reading(rc);
  lua_settop(L, 1);
  n = push_message(L, m);
  freeReplyObject(m->reply);
  free(m);
  return n;
}

static int reader_abandon(task *t, int woken) {
  rconn *rc = t->wobj;
  if (!woken && rc->reader == t) rc->reader = NULL;
  return 1; /* nothing was handed over: the message stays queued */
}

static const waitops reader_ops = {"a redis message", reader_abandon, NULL};

static int k_next(lua_State *L, int status, lua_KContext ctx);

/* conn:_next() -> kind, ... | nil when closed by us; raises
   ConnectionError when the server closed it */
static int redis_next(lua_State *L) {
  rconn *rc = checkconn(L, 1);
  task *t;
  if (rc->head != NULL) return pop_message(L, rc);
  if (rc->ac == NULL || rc->closing) {
    const char *msg;
    if (rc->err == NULL || rc->user_closed) return 0;
    msg = rc->err;
    push_error(L, "ConnectionError", msg, strlen(msg));
    return lua_error(L);
  }
  if (rc->reader != NULL) return luaL_error(L, "another task is reading");
  t = luaio__enter_wait(L, rc->h);
  rc->reader = t;
  lua_settop(L, 1);
  return luaio__wait(L, t, &reader_ops, rc, 0, k_next);
}

static int k_next(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  luaio__resumed(L, luaio__host(L)->current);
  return redis_next(L);
}

/* Connecting. */

static void on_connect(const redisAsyncContext *ac, int status) {
  rconn *rc = ac->data;
  task *t = rc->connector;
  if (status == REDIS_OK) {
    rc->connected = 1;
  } else
    set_err(rc, ac->errstr);
  if (t != NULL) {
    rc->connector = NULL;
    luaio__wake(t, NULL, 0);
  }
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  rconn *rc = ac->data;
  if (status != REDIS_OK)
    set_err(rc, ac->errstr);
  else
    set_err(rc, "connection closed");
}

static int connect_abandon(task *t, int woken) {
  rconn *rc = t->wobj;
  if (!woken) rc->connector = NULL;
  return 1; /* the userdata is dropped: __gc closes it */
}

static const waitops connect_ops = {"a redis connection", connect_abandon,
                                    NULL};

static int k_connect(lua_State *L, int status, lua_KContext ctx) {
  rconn *rc = (rconn *)ctx;
  (void)status;
  luaio__resumed(L, luaio__host(L)->current);
  if (!rc->connected || rc->ac == NULL) {
    lua_pushnil(L);
    lua_pushstring(L, rc->err ? rc->err : "cannot connect");
    drop(rc, NULL);
    return 2;
  }
  lua_settop(L, 1);
  return 1;
}

static void res_close(resource *r) { drop(container_of(r, rconn, res), NULL); }

/* _redis.connect(ip, port, reply_ms) | _redis.connect(path, nil, reply_ms)
   -> conn | nil, msg */
static int redis_connect(lua_State *L) {
  luaio *h = luaio__host(L);
  const char *where = luaL_checkstring(L, 1);
  int unix_path = lua_isnoneornil(L, 2);
  lua_Integer port = unix_path ? 0 : luaL_checkinteger(L, 2);
  lua_Integer ms = luaL_optinteger(L, 3, 30000);
  redisAsyncContext *ac;
  rconn **p, *rc;
  task *t;
  luaL_argcheck(L, port >= 0 && port <= 65535, 2, "port out of range");
  luaL_argcheck(L, ms >= 0, 3, "out of range");
  t = luaio__enter_wait(L, h);
  p = lua_newuserdatauv(L, sizeof *p, 0);
  *p = NULL;
  lua_replace(L, 1);
  lua_settop(L, 1);
  rc = calloc(1, sizeof *rc);
  if (rc == NULL) return luaL_error(L, "not enough memory");
  ac = unix_path ? redisAsyncConnectUnix(where)
                 : redisAsyncConnect(where, (int)port);
  if (ac == NULL || ac->err) {
    lua_pushnil(L);
    lua_pushstring(L, ac ? ac->errstr : "cannot connect");
    if (ac) redisAsyncFree(ac);
    free(rc);
    return 2;
  }
  rc->h = h;
  rc->ac = ac;
  rc->reply_ms = (uint64_t)ms;
  rc->res.close = res_close;
  rc->flush.run = run_flush;
  uv_timer_init(h->loop, &rc->watchdog);
  rc->watchdog.data = rc;
  uv_unref((uv_handle_t *)&rc->watchdog);
  if (uv_poll_init(h->loop, &rc->poll, ac->c.fd) == 0) {
    rc->has_poll = 1;
    rc->poll.data = rc;
  }
  *p = rc;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &connkey);
  lua_setmetatable(L, 1);
  luaio__res_add(h, &rc->res);
  ac->data = rc;
  ac->ev.data = rc;
  ac->ev.addRead = ev_add_read;
  ac->ev.delRead = ev_del_read;
  ac->ev.addWrite = ev_add_write;
  ac->ev.delWrite = ev_del_write;
  ac->ev.cleanup = ev_cleanup;
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  if (!rc->has_poll) {
    lua_pushnil(L);
    lua_pushliteral(L, "cannot watch the socket");
    drop(rc, "cannot watch the socket");
    return 2;
  }
  rc->connector = t;
  redisAsyncSetConnectCallback(ac, on_connect); /* adds write interest */
  return luaio__wait(L, t, &connect_ops, rc, (lua_KContext)rc, k_connect);
}

/* conn:alive() -> boolean */
static int redis_alive(lua_State *L) {
  rconn *rc = *toconn(L, 1);
  lua_pushboolean(L, rc != NULL && rc->ac != NULL && !rc->closing);
  return 1;
}

/* conn:close(): pending commands get ConnectionError; closing again is
   harmless */
static int redis_close(lua_State *L) {
  rconn *rc = *toconn(L, 1);
  if (rc != NULL) {
    if (rc->ac != NULL) rc->user_closed = 1;
    drop(rc, "connection closed");
  }
  return 0;
}

static int redis_gc(lua_State *L) {
  rconn **p = toconn(L, 1), *rc = *p;
  if (rc == NULL) return 0;
  *p = NULL;
  drop(rc, "connection closed");
  if (!uv_is_closing((uv_handle_t *)&rc->watchdog))
    uv_close((uv_handle_t *)&rc->watchdog, on_timer_close);
  rc->collected = 1;
  maybe_free(rc);
  return 0;
}

/* tostring(conn) -> "luaio.redis (…, n owed)" */
static int redis_tostring(lua_State *L) {
  rconn *rc = *toconn(L, 1);
  if (rc == NULL || rc->ac == NULL)
    lua_pushliteral(L, "luaio.redis (closed)");
  else
    lua_pushfstring(L, "luaio.redis (%p, %d owed, %d queued)", (void *)rc,
                    (int)rc->owed, (int)rc->nqueued);
  return 1;
}

static const luaL_Reg conn_methods[] = {{"call", redis_call},
                                        {"_subscribe", redis_subscribe},
                                        {"_next", redis_next},
                                        {"alive", redis_alive},
                                        {"close", redis_close},
                                        {"__close", redis_close},
                                        {"__gc", redis_gc},
                                        {"__tostring", redis_tostring},
                                        {NULL, NULL}};

LUAIO_API int luaopen_luaio__redis(lua_State *L) {
  luaio *h = luaio__open_host(L);
  luaL_newmetatable(L, "luaio.redis");
  lua_pushlightuserdata(L, h);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, conn_methods, 2);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__index");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &connkey);
  lua_createtable(L, 0, 3);
  lua_pushlightuserdata(L, h);
  lua_pushcclosure(L, redis_connect, 1);
  lua_setfield(L, -2, "connect");
  /* conn:call and conn:alive as plain functions too, for r:call's fast
     path (no method lookup through the metatable) */
  lua_rawgetp(L, LUA_REGISTRYINDEX, &connkey);
  lua_getfield(L, -1, "call");
  lua_setfield(L, -3, "call");
  lua_getfield(L, -1, "alive");
  lua_setfield(L, -3, "alive");
  lua_pop(L, 1);
  return 1;
}

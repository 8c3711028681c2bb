/*
** pg.c: luaio._pg, one PostgreSQL connection on libpq's non-blocking API
** on the host's loop.
**
** Connecting is PQconnectStartParams and then PQconnectPoll at every
** readiness of the socket it asks for; Lua resolves host names first and
** passes `hostaddr`, so libpq never resolves.  Once connected, a uv_poll_t
** watches a dup of libpq's socket (libpq closing its descriptor then
** cannot leave the loop watching a number that was reused): readable
** always, so a server going away or a notification is seen at once, and
** writable while PQflush has output left.
**
** One operation runs at a time: a statement (PQsendQueryPrepared), a
** prepare (PQsendPrepare and PQsendDescribePrepared in one pipeline), a
** script (PQsendQuery), or a batch (pipeline mode, one sync).  Its task
** waits; results are read with PQconsumeInput/PQisBusy/PQgetResult up to
** the end of the operation (ReadyForQuery) and handed to the task, whose
** continuation turns them into Lua values.  A task cancelled while its
** operation runs raises at once; the connection sends a cancel request
** (PQcancel, which blocks, on the thread pool) and goes on reading and
** discarding to the end, and nothing else runs on it until both are over,
** so a late cancel cannot hit the next statement.
**
** Notifications (LISTEN) are queued; past NOTIFY_MAX queued an idle
** connection stops reading, so a slow consumer makes the server wait.
*/

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pg.h"

#define NOTIFY_MAX 1024

static const char connkey = 'P';

typedef struct pgcancel {
  uv_work_t w;
  PGcancel *c;
  pgconn *pc;
} pgcancel;

static void on_poll(uv_poll_t *p, int status, int events);

static void free_conn(pgconn *pc) {
  while (pc->nhead != NULL) {
    pgnote *n = pc->nhead;
    pc->nhead = n->next;
    PQfreemem(n->n);
    free(n);
  }
  free(pc->connerr);
  free(pc);
}

static void on_poll_close(uv_handle_t *h) {
  pgpoll *pp = h->data;
  close(pp->fd);
  free(pp);
}

static void close_poll(pgconn *pc) {
  if (pc->poll == NULL) return;
  uv_poll_stop(&pc->poll->p);
  uv_close((uv_handle_t *)&pc->poll->p, on_poll_close);
  pc->poll = NULL;
  pc->polling = 0;
}

/* A poll on a dup of libpq's socket; 0 or a libuv error. */
static int open_poll(pgconn *pc) {
  int fd = PQsocket(pc->pq), mine, rv;
  pgpoll *pp;
  close_poll(pc);
  if (fd < 0) return UV_EBADF;
  mine = dup(fd);
  if (mine < 0) return UV_EMFILE;
  pp = malloc(sizeof *pp);
  if (pp == NULL) {
    close(mine);
    return UV_ENOMEM;
  }
  rv = uv_poll_init(pc->h->loop, &pp->p, mine);
  if (rv < 0) {
    close(mine);
    free(pp);
    return rv;
  }
  pp->p.data = pp;
  pp->pc = pc;
  pp->fd = mine;
  pc->poll = pp;
  return 0;
}

static void set_events(pgconn *pc, int events) {
  if (pc->poll == NULL || events == pc->polling) return;
  pc->polling = events;
  if (events == 0)
    uv_poll_stop(&pc->poll->p);
  else
    uv_poll_start(&pc->poll->p, events, on_poll);
}

/* Read while busy or not paused; write while output is left. */
void luaio__pg_update_poll(pgconn *pc) {
  int ev = 0;
  if (pc->pq == NULL || pc->state == S_CONNECTING) return;
  if (pc->state == S_BUSY) {
    /* Not while a row or COPY data waits for its consumer: flat memory. */
    if (!(pc->kind == K_ROWS && pc->row != NULL) &&
        !(pc->copy == 2 && pc->owned && pc->t == NULL))
      ev |= UV_READABLE;
  } else if (!pc->paused)
    ev |= UV_READABLE;
  if (pc->flushing) ev |= UV_WRITABLE;
  set_events(pc, ev);
}

void luaio__pg_wake(task **tp) {
  task *t = *tp;
  if (t == NULL) return;
  *tp = NULL;
  luaio__wake(t, NULL, 0);
}

static int ready(pgconn *pc) {
  return pc->pq != NULL && pc->state == S_IDLE && pc->cancels == 0;
}

void luaio__pg_clear(pgconn *pc) {
  PQclear(pc->out);
  PQclear(pc->err);
  PQclear(pc->row);
  pc->out = pc->err = pc->row = NULL;
}

/* The connection is over: every waiter hears of it. */
static void fail(pgconn *pc, const char *why) {
  if (pc->connerr == NULL)
    pc->connerr = strdup(why && *why ? why : "connection closed");
  if (pc->pq == NULL) return;
  close_poll(pc);
  PQfinish(pc->pq);
  pc->pq = NULL;
  luaio__res_remove(pc->h, &pc->res);
  if (pc->state == S_BUSY) {
    pc->lost = 1;
    pc->copy = 0;
    if (pc->t != NULL || pc->owned) {
      pc->state = S_DONE;
      luaio__pg_wake(&pc->t);
    } else {
      luaio__pg_clear(pc);
      pc->state = S_IDLE;
    }
  } else if (pc->state == S_CONNECTING)
    pc->state = S_IDLE;
  luaio__pg_wake(&pc->idler);
  luaio__pg_wake(&pc->reader);
  luaio__pg_wake(&pc->connector);
}

void luaio__pg_fail(pgconn *pc) {
  char buf[1024];
  const char *m = pc->pq ? PQerrorMessage(pc->pq) : "";
  size_t n = strlen(m);
  while (n > 0 && (m[n - 1] == '\n' || m[n - 1] == ' '))
    n--;
  if (n == 0) {
    fail(pc, "connection closed");
    return;
  }
  if (n >= sizeof buf) n = sizeof buf - 1;
  memcpy(buf, m, n);
  buf[n] = '\0';
  fail(pc, buf);
}

static void collect_notifies(pgconn *pc) {
  PGnotify *n;
  int got = 0;
  while (pc->pq != NULL && (n = PQnotifies(pc->pq)) != NULL) {
    pgnote *node = malloc(sizeof *node);
    if (node == NULL) {
      PQfreemem(n);
      continue;
    }
    node->n = n;
    node->next = NULL;
    if (pc->ntail)
      pc->ntail->next = node;
    else
      pc->nhead = node;
    pc->ntail = node;
    pc->nqueued++;
    got = 1;
  }
  if (pc->nqueued > NOTIFY_MAX) pc->paused = 1;
  if (got) luaio__pg_wake(&pc->reader);
}

/* The operation reached its end (ReadyForQuery). */
static void op_done(pgconn *pc) {
  if (pc->t != NULL || pc->owned) {
    pc->state = S_DONE;
    luaio__pg_wake(&pc->t);
  } else {
    luaio__pg_clear(pc);
    pc->state = S_IDLE;
    if (ready(pc)) luaio__pg_wake(&pc->idler);
  }
}

void luaio__pg_flush(pgconn *pc) {
  int r = PQflush(pc->pq);
  if (r < 0)
    luaio__pg_fail(pc);
  else
    pc->flushing = r;
}

static void keep(pgconn *pc, PGresult *r) {
  switch (PQresultStatus(r)) {
  case PGRES_FATAL_ERROR:
    if (pc->err == NULL) {
      pc->err = r;
      return;
    }
    break;
  case PGRES_COMMAND_OK:
  case PGRES_TUPLES_OK:
    pc->affected += (lua_Integer)strtoll(PQcmdTuples(r), NULL, 10);
    /* fall through */
  case PGRES_EMPTY_QUERY:
    PQclear(pc->out);
    pc->out = r;
    return;
  case PGRES_COPY_IN: /* COPY FROM STDIN outside copy_in: refused */
    PQputCopyEnd(pc->pq, "COPY FROM STDIN needs conn:copy_in()");
    luaio__pg_flush(pc);
    break;
  case PGRES_COPY_OUT: /* outside copy_out: discarded */
    pc->copy = 2;
    break;
  default:
    break;
  }
  PQclear(r);
}

/* Read every result that is complete. */
void luaio__pg_progress(pgconn *pc) {
  while (pc->pq != NULL && pc->state == S_BUSY) {
    PGresult *r;
    if (pc->copy == 2) {
      char *buf;
      int n;
      if (pc->owned) { /* the consumer reads it */
        luaio__pg_wake(&pc->t);
        break;
      }
      while ((n = PQgetCopyData(pc->pq, &buf, 1)) > 0)
        PQfreemem(buf);
      if (n == 0) break; /* more to come */
      pc->copy = 0;
    }
    if (pc->copy == 1) {
      if (pc->owned) { /* the producer writes */
        luaio__pg_wake(&pc->t);
        break;
      }
      PQputCopyEnd(pc->pq, "COPY abandoned");
      pc->copy = 0;
      luaio__pg_flush(pc);
      continue;
    }
    if (pc->kind == K_ROWS && pc->row != NULL) break;
    if (PQisBusy(pc->pq)) break;
    r = PQgetResult(pc->pq);
    if (pc->kind == K_PIPE) {
      if (r == NULL) continue; /* the end of one statement's results */
      if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
        PQclear(r);
        PQexitPipelineMode(pc->pq);
        op_done(pc);
        break;
      }
      keep(pc, r);
      continue;
    }
    if (r == NULL) {
      op_done(pc);
      break;
    }
    if (pc->kind == K_ROWS && PQresultStatus(r) == PGRES_SINGLE_TUPLE) {
      if (pc->owned) {
        pc->row = r;
        luaio__pg_wake(&pc->t);
      } else
        PQclear(r);
      continue;
    }
    if (pc->kind == K_COPY && (PQresultStatus(r) == PGRES_COPY_IN ||
                               PQresultStatus(r) == PGRES_COPY_OUT)) {
      pc->copy = PQresultStatus(r) == PGRES_COPY_IN ? 1 : 2;
      PQclear(r);
      continue;
    }
    keep(pc, r);
  }
  if (pc->pq != NULL && PQstatus(pc->pq) == CONNECTION_BAD) luaio__pg_fail(pc);
}

/* Connecting. */

/* Notices (RAISE NOTICE, a FATAL before the server hangs up) are not
   written to stderr as libpq would: errors reach the caller as errors. */
static void on_notice(void *arg, const char *message) {
  (void)arg;
  (void)message;
}

static void connect_step(pgconn *pc, int first) {
  PostgresPollingStatusType st =
      first ? PGRES_POLLING_WRITING : PQconnectPoll(pc->pq);
  int rv, tries = 0;
  /* Between two addresses libpq may be without a socket: go on. */
  while ((st == PGRES_POLLING_READING || st == PGRES_POLLING_WRITING) &&
         PQsocket(pc->pq) < 0 && tries++ < 64)
    st = PQconnectPoll(pc->pq);
  switch (st) {
  case PGRES_POLLING_READING:
  case PGRES_POLLING_WRITING:
    /* libpq may have moved to another socket: a new poll each step. */
    rv = open_poll(pc);
    if (rv < 0) {
      fail(pc, uv_strerror(rv));
      return;
    }
    pc->polling = -1;
    set_events(pc, st == PGRES_POLLING_READING ? UV_READABLE : UV_WRITABLE);
    return;
  case PGRES_POLLING_OK:
    if (PQsetnonblocking(pc->pq, 1) != 0 || open_poll(pc) < 0) {
      luaio__pg_fail(pc);
      return;
    }
    pc->state = S_IDLE;
    luaio__pg_update_poll(pc);
    luaio__pg_wake(&pc->connector);
    return;
  default:
    luaio__pg_fail(pc);
  }
}

static void on_poll(uv_poll_t *p, int status, int events) {
  pgconn *pc = ((pgpoll *)p->data)->pc;
  if (pc->state == S_CONNECTING) { /* an error too: libpq tells why */
    connect_step(pc, 0);
    return;
  }
  if (status < 0) { /* libuv reports POLLERR so: libpq tells why */
    if (!PQconsumeInput(pc->pq))
      luaio__pg_fail(pc);
    else
      fail(pc, uv_strerror(status));
    return;
  }
  if ((events & UV_READABLE) && !PQconsumeInput(pc->pq)) {
    luaio__pg_fail(pc);
    return;
  }
  if (pc->flushing || (events & UV_WRITABLE)) luaio__pg_flush(pc);
  if (pc->pq == NULL) return;
  luaio__pg_progress(pc);
  if (pc->pq == NULL) return;
  collect_notifies(pc);
  luaio__pg_update_poll(pc);
}

/* Cancel requests, on the thread pool. */

static void cancel_work(uv_work_t *w) {
  pgcancel *c = container_of(w, pgcancel, w);
  char errbuf[256];
  PQcancel(c->c, errbuf, sizeof errbuf); /* a failure: the drain decides */
}

static void cancel_after(uv_work_t *w, int status) {
  pgcancel *c = container_of(w, pgcancel, w);
  pgconn *pc = c->pc;
  (void)status;
  PQfreeCancel(c->c);
  free(c);
  pc->cancels--;
  if (pc->collected && pc->cancels == 0 && pc->poll == NULL) {
    free_conn(pc);
    return;
  }
  if (ready(pc)) luaio__pg_wake(&pc->idler);
}

void luaio__pg_cancel(pgconn *pc) {
  pgcancel *c;
  if (pc->pq == NULL) return;
  c = malloc(sizeof *c);
  if (c == NULL) return;
  c->c = PQgetCancel(pc->pq);
  c->pc = pc;
  if (c->c == NULL ||
      uv_queue_work(pc->h->loop, &c->w, cancel_work, cancel_after) != 0) {
    PQfreeCancel(c->c);
    free(c);
    return;
  }
  pc->cancels++;
}

/* Waits. */

static int op_abandon(task *t, int woken) {
  pgconn *pc = t->wobj;
  if (!woken) { /* still running: cancel it, drain it */
    pc->t = NULL;
    if (!pc->owned) luaio__pg_cancel(pc); /* else the owner's close does */
    return 1;
  }
  if (pc->state == S_DONE && !pc->owned) { /* the results are dropped */
    luaio__pg_clear(pc);
    pc->state = S_IDLE;
    if (ready(pc)) luaio__pg_wake(&pc->idler);
  }
  return 1;
}

const waitops luaio__pg_op_ops = {"a PostgreSQL statement", op_abandon, NULL};

static int idle_abandon(task *t, int woken) {
  pgconn *pc = t->wobj;
  if (!woken && pc->idler == t) pc->idler = NULL;
  return 1;
}

static const waitops idle_ops = {"a PostgreSQL connection to be free",
                                 idle_abandon, NULL};

pgconn *luaio__pg_checkconn(lua_State *L) {
  pgconn *pc = *(pgconn **)luaL_checkudata(L, 1, "luaio.pg");
  if (pc == NULL) luaL_error(L, "attempt to use a closed connection");
  return pc;
}

int luaio__pg_raise_lost(lua_State *L, pgconn *pc) {
  luaio__pg_push_error(L, "ConnectionError", NULL,
                       pc->connerr ? pc->connerr : "connection closed");
  return lua_error(L);
}

static int k_retry(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  luaio__resumed(L, luaio__host(L)->current);
  return ((lua_CFunction)ctx)(L);
}

/* Start an operation on pc for the calling task, or wait until pc is
   free again after a cancelled one (then f is called again); NULL when
   it waits: return what luaio__wait returned, stored in *rv. */
task *luaio__pg_begin(lua_State *L, pgconn *pc, lua_CFunction f, int *rv) {
  task *t = luaio__enter_wait(L, pc->h);
  if (pc->pq == NULL) luaio__pg_raise_lost(L, pc);
  if (pc->state == S_CONNECTING) luaL_error(L, "connection not open yet");
  if (!ready(pc)) {
    int draining = (pc->state == S_BUSY && pc->t == NULL && !pc->owned) ||
                   (pc->state == S_IDLE && pc->cancels > 0);
    if (!draining || pc->idler != NULL)
      luaL_error(L, "another operation is in progress on this connection");
    pc->idler = t;
    *rv = luaio__wait(L, t, &idle_ops, pc, (lua_KContext)f, k_retry);
    return NULL;
  }
  return t;
}

int luaio__pg_k_op(lua_State *L, int status, lua_KContext ctx);
int luaio__pg_collect(lua_State *L, pgconn *pc, int mode);

/* The operation was sent: wait for its end. */

static int wait_op(lua_State *L, pgconn *pc, task *t, int kind, int mode) {
  luaio__pg_flush(pc);
  if (pc->pq == NULL) return luaio__pg_raise_lost(L, pc);
  pc->state = S_BUSY;
  pc->kind = kind;
  pc->t = t;
  pc->lost = 0;
  pc->copy = 0;
  pc->affected = 0;
  luaio__pg_update_poll(pc);
  return luaio__wait(L, t, &luaio__pg_op_ops, pc, (lua_KContext)mode,
                     luaio__pg_k_op);
}

int luaio__pg_send_failed(lua_State *L, pgconn *pc) {
  if (PQstatus(pc->pq) == CONNECTION_BAD) {
    luaio__pg_fail(pc);
    return luaio__pg_raise_lost(L, pc);
  }
  return luaL_error(L, "PostgreSQL: %s", PQerrorMessage(pc->pq));
}

void luaio__pg_unbox(PGresult **b) {
  PQclear(*b);
  *b = NULL;
}

static int box_gc(lua_State *L) {
  luaio__pg_unbox(lua_touserdata(L, 1));
  return 0;
}

/* The connection's result holder (its user value): it frees r if a
   conversion raises (then at the next use, or with the connection).  The
   connection is at index 1. */
PGresult **luaio__pg_box(lua_State *L, PGresult *r) {
  PGresult **b;
  lua_getiuservalue(L, 1, 1);
  b = lua_touserdata(L, -1);
  PQclear(*b);
  *b = r;
  return b;
}

/* Modes: 0 rows affected, 1 all rows, 2 the first row, 3 the first value,
   4 a prepared statement's parameter types and column count. */
int luaio__pg_collect(lua_State *L, pgconn *pc, int mode) {
  int i, top;
  PGresult **b, *r;
  lua_Integer affected;
  r = pc->out;
  affected = pc->affected;
  pc->out = NULL;
  pc->state = S_IDLE;
  top = lua_gettop(L);
  if (pc->err != NULL) {
    PGresult *e = pc->err;
    pc->err = NULL;
    b = luaio__pg_box(L, e);
    luaio__pg_push_error(
        L, pc->lost || pc->pq == NULL ? "ConnectionError" : "DatabaseError", e,
        NULL);
    luaio__pg_unbox(b);
    PQclear(r);
    return lua_error(L);
  }
  if (r == NULL) {
    if (pc->lost || pc->pq == NULL) return luaio__pg_raise_lost(L, pc);
    lua_pushinteger(L, affected);
    return 1;
  }
  b = luaio__pg_box(L, r);
  switch (mode) {
  case 0:
    lua_pushinteger(L, affected);
    break;
  case 4:
    lua_createtable(L, PQnparams(r), 0);
    for (i = 0; i < PQnparams(r); i++) {
      lua_pushinteger(L, (lua_Integer)PQparamtype(r, i));
      lua_rawseti(L, -2, i + 1);
    }
    lua_pushinteger(L, PQnfields(r));
    luaio__pg_unbox(b);
    return 2;
  default:
    luaio__pg_push_rows(L, r, mode);
  }
  luaio__pg_unbox(b);
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);
  return 1;
}

int luaio__pg_k_op(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  luaio__resumed(L, luaio__host(L)->current);
  return luaio__pg_collect(L, *(pgconn **)lua_touserdata(L, 1), (int)ctx);
}

/* conn:_query(mode, name, ptypes, ...) -> rows | row | value | affected:
   runs the prepared statement `name` */
static int pg_query(lua_State *L) {
  pgconn *pc = luaio__pg_checkconn(L);
  int mode = (int)luaL_checkinteger(L, 2), rv;
  const char *name = luaL_checkstring(L, 3);
  int n = lua_gettop(L) - 4, np;
  pgparams p;
  task *t;
  luaL_checktype(L, 4, LUA_TTABLE);
  luaL_argcheck(L, mode >= 0 && mode <= 3, 2, "bad mode");
  np = (int)luaL_len(L, 4);
  if (n < 0) n = 0;
  if (n != np)
    return luaL_error(L, "the statement takes %d parameters, %d given", np, n);
  if ((t = luaio__pg_begin(L, pc, pg_query, &rv)) == NULL) return rv;
  luaio__pg_params(L, 5, n, 4, &p);
  if (!PQsendQueryPrepared(pc->pq, name, n, p.values, p.lengths, p.formats, 0))
    return luaio__pg_send_failed(L, pc);
  lua_settop(L, 1);
  return wait_op(L, pc, t, K_QUERY, mode);
}

/* conn:_prepare(name, sql) -> ptypes, ncolumns (one round trip) */
static int pg_prepare(lua_State *L) {
  pgconn *pc = luaio__pg_checkconn(L);
  const char *name = luaL_checkstring(L, 2), *sql = luaL_checkstring(L, 3);
  task *t;
  int rv;
  if ((t = luaio__pg_begin(L, pc, pg_prepare, &rv)) == NULL) return rv;
  if (!PQenterPipelineMode(pc->pq)) return luaio__pg_send_failed(L, pc);
  if (!PQsendPrepare(pc->pq, name, sql, 0, NULL) ||
      !PQsendDescribePrepared(pc->pq, name) || !PQpipelineSync(pc->pq))
    return luaio__pg_send_failed(L, pc);
  lua_settop(L, 1);
  return wait_op(L, pc, t, K_PIPE, 4);
}

/* conn:_script(sql) -> affected of the last statement: parameterless,
   several statements */
static int pg_script(lua_State *L) {
  pgconn *pc = luaio__pg_checkconn(L);
  const char *sql = luaL_checkstring(L, 2);
  task *t;
  int rv;
  if ((t = luaio__pg_begin(L, pc, pg_script, &rv)) == NULL) return rv;
  if (!PQsendQuery(pc->pq, sql)) return luaio__pg_send_failed(L, pc);
  lua_settop(L, 1);
  return wait_op(L, pc, t, K_SCRIPT, 0);
}

/* conn:_many(name, ptypes, list) -> rows affected in all: every array of
   parameters of list in one pipeline, one round trip */
static int pg_many(lua_State *L) {
  pgconn *pc = luaio__pg_checkconn(L);
  const char *name = luaL_checkstring(L, 2);
  lua_Integer i, n;
  int np, j, rv;
  task *t;
  luaL_checktype(L, 3, LUA_TTABLE);
  luaL_checktype(L, 4, LUA_TTABLE);
  np = (int)luaL_len(L, 3);
  n = luaL_len(L, 4);
  /* Check everything before anything is sent. */
  for (i = 1; i <= n; i++) {
    pgparams p;
    int top = lua_gettop(L);
    if (lua_geti(L, 4, i) != LUA_TTABLE)
      return luaL_error(L, "executemany: item %d is not a table", (int)i);
    if (luaL_len(L, -1) != np)
      return luaL_error(L,
                        "executemany: item %d has %d parameters, the "
                        "statement takes %d",
                        (int)i, (int)luaL_len(L, -1), np);
    luaL_checkstack(L, np + 4, "too many parameters");
    for (j = 1; j <= np; j++)
      lua_geti(L, top + 1, j);
    luaio__pg_params(L, top + 2, np, 3, &p);
    lua_settop(L, top);
  }
  if ((t = luaio__pg_begin(L, pc, pg_many, &rv)) == NULL) return rv;
  if (n == 0) {
    lua_pushinteger(L, 0);
    return 1;
  }
  if (!PQenterPipelineMode(pc->pq)) return luaio__pg_send_failed(L, pc);
  for (i = 1; i <= n; i++) {
    pgparams p;
    int top = lua_gettop(L);
    lua_geti(L, 4, i);
    for (j = 1; j <= np; j++)
      lua_geti(L, top + 1, j);
    luaio__pg_params(L, top + 2, np, 3, &p);
    if (!PQsendQueryPrepared(pc->pq, name, np, p.values, p.lengths, p.formats,
                             0))
      return luaio__pg_send_failed(L, pc);
    lua_settop(L, top);
  }
  if (!PQpipelineSync(pc->pq)) return luaio__pg_send_failed(L, pc);
  lua_settop(L, 1);
  return wait_op(L, pc, t, K_PIPE, 0);
}

/* conn:_drain(): waits until the connection is free after a cancelled
   operation; returns at once when it is free */
static int pg_drain(lua_State *L) {
  pgconn *pc = luaio__pg_checkconn(L);
  int rv = 0;
  if (pc->pq == NULL) return 0;
  if (luaio__pg_begin(L, pc, pg_drain, &rv) == NULL) return rv;
  return 0;
}

/* conn:_status() -> "idle" | "intrans" | "inerror" | "active" | "closed",
   busy (an operation runs or drains) */
static int pg_status(lua_State *L) {
  pgconn *pc = luaio__pg_checkconn(L);
  static const char *const names[] = {"idle", "active", "intrans", "inerror",
                                      "unknown"};
  if (pc->pq == NULL) {
    lua_pushliteral(L, "closed");
    lua_pushboolean(L, 0);
    return 2;
  }
  lua_pushstring(L, names[PQtransactionStatus(pc->pq)]);
  lua_pushboolean(L, !ready(pc));
  return 2;
}

/* conn:_pid() -> the server process id */
static int pg_pid(lua_State *L) {
  pgconn *pc = luaio__pg_checkconn(L);
  if (pc->pq == NULL) return luaio__pg_raise_lost(L, pc);
  lua_pushinteger(L, PQbackendPID(pc->pq));
  return 1;
}

/* conn:_quote_ident(s) -> "s" quoted as an identifier */
static int pg_quote_ident(lua_State *L) {
  pgconn *pc = luaio__pg_checkconn(L);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  char *q;
  if (pc->pq == NULL) return luaio__pg_raise_lost(L, pc);
  q = PQescapeIdentifier(pc->pq, s, len);
  if (q == NULL) return luaL_error(L, "%s", PQerrorMessage(pc->pq));
  lua_pushstring(L, q);
  PQfreemem(q);
  return 1;
}

/* Notifications. */

static int reader_abandon(task *t, int woken) {
  pgconn *pc = t->wobj;
  if (!woken && pc->reader == t) pc->reader = NULL;
  return 1;
}

static const waitops reader_ops = {"a PostgreSQL notification", reader_abandon,
                                   NULL};

static int k_notify(lua_State *L, int status, lua_KContext ctx);

/* conn:_notify() -> channel, payload, pid; raises ConnectionError when the
   connection is lost */
static int pg_notify(lua_State *L) {
  pgconn *pc = luaio__pg_checkconn(L);
  task *t;
  pgnote *n = pc->nhead;
  if (n != NULL) {
    pc->nhead = n->next;
    if (pc->nhead == NULL) pc->ntail = NULL;
    pc->nqueued--;
    lua_settop(L, 1);
    lua_pushstring(L, n->n->relname);
    lua_pushstring(L, n->n->extra);
    lua_pushinteger(L, n->n->be_pid);
    PQfreemem(n->n);
    free(n);
    if (pc->paused && pc->nqueued <= NOTIFY_MAX / 2) {
      pc->paused = 0;
      collect_notifies(pc); /* what libpq has buffered already */
      luaio__pg_update_poll(pc);
    }
    return 3;
  }
  if (pc->pq == NULL) return luaio__pg_raise_lost(L, pc);
  if (pc->reader != NULL) return luaL_error(L, "another task is listening");
  t = luaio__enter_wait(L, pc->h);
  pc->reader = t;
  lua_settop(L, 1);
  return luaio__wait(L, t, &reader_ops, pc, 0, k_notify);
}

static int k_notify(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  luaio__resumed(L, luaio__host(L)->current);
  return pg_notify(L);
}

/* Connecting, closing. */

static int connect_abandon(task *t, int woken) {
  pgconn *pc = t->wobj;
  if (!woken) pc->connector = NULL;
  fail(pc, "connection cancelled");
  return 1;
}

static const waitops connect_ops = {"a PostgreSQL connection", connect_abandon,
                                    NULL};

static int k_connect(lua_State *L, int status, lua_KContext ctx) {
  pgconn *pc = (pgconn *)ctx;
  (void)status;
  luaio__resumed(L, luaio__host(L)->current);
  if (pc->pq == NULL || pc->state != S_IDLE) {
    lua_pushnil(L);
    lua_pushstring(L, pc->connerr ? pc->connerr : "cannot connect");
    return 2;
  }
  lua_settop(L, 1);
  return 1;
}

static void res_close(resource *r) {
  fail(container_of(r, pgconn, res), "connection closed");
}

/* _pg.connect(keywords, values) -> conn | nil, msg */
static int pg_connect(lua_State *L) {
  luaio *h = luaio__host(L);
  int n, i;
  const char **kw, **vals;
  pgconn **ud, *pc;
  task *t;
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  n = (int)luaL_len(L, 1);
  luaL_argcheck(L, n == (int)luaL_len(L, 2) && n < 1000, 2,
                "as many values as keywords expected");
  t = luaio__enter_wait(L, h);
  kw = lua_newuserdatauv(L, sizeof(char *) * 2 * (size_t)(n + 1), 0);
  vals = kw + n + 1;
  for (i = 0; i < n; i++) {
    lua_geti(L, 1, i + 1);
    lua_geti(L, 2, i + 1);
    kw[i] = lua_tostring(L, -2);
    vals[i] = lua_tostring(L, -1);
    if (kw[i] == NULL || vals[i] == NULL)
      return luaL_error(L, "connection keywords and values are strings");
    lua_rawseti(L, 2, i + 1); /* keep them anchored as strings */
    lua_rawseti(L, 1, i + 1);
  }
  kw[n] = vals[n] = NULL;
  pc = calloc(1, sizeof *pc);
  if (pc == NULL) return luaL_error(L, "not enough memory");
  pc->h = h;
  pc->state = S_CONNECTING;
  pc->res.close = res_close;
  pc->pq = PQconnectStartParams(kw, vals, 0);
  ud = lua_newuserdatauv(L, sizeof *ud, 1);
  *ud = pc;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &connkey);
  lua_setmetatable(L, -2);
  *(PGresult **)lua_newuserdatauv(L, sizeof(PGresult *), 0) = NULL;
  if (luaL_newmetatable(L, "luaio.pg.result")) {
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  lua_setiuservalue(L, -2, 1);
  lua_replace(L, 1);
  lua_settop(L, 1);
  if (pc->pq == NULL) {
    pc->connerr = strdup("not enough memory");
    lua_pushnil(L);
    lua_pushstring(L, "not enough memory");
    return 2;
  }
  luaio__res_add(h, &pc->res);
  PQsetNoticeProcessor(pc->pq, on_notice, NULL);
  if (PQstatus(pc->pq) == CONNECTION_BAD) {
    luaio__pg_fail(pc);
    lua_pushnil(L);
    lua_pushstring(L, pc->connerr);
    return 2;
  }
  connect_step(pc, 1);
  if (pc->pq == NULL) {
    lua_pushnil(L);
    lua_pushstring(L, pc->connerr);
    return 2;
  }
  pc->connector = t;
  return luaio__wait(L, t, &connect_ops, pc, (lua_KContext)pc, k_connect);
}

/* conn:close(): a running operation's task gets ConnectionError; closing
   again is harmless */
static int pg_close(lua_State *L) {
  pgconn *pc = *(pgconn **)luaL_checkudata(L, 1, "luaio.pg");
  if (pc != NULL) fail(pc, "connection closed");
  return 0;
}

/* __gc: closes the connection; its memory waits for cancel requests. */
static int pg_gc(lua_State *L) {
  pgconn **ud = luaL_checkudata(L, 1, "luaio.pg"), *pc = *ud;
  if (pc == NULL) return 0;
  *ud = NULL;
  fail(pc, "connection closed");
  luaio__pg_clear(pc);
  pc->collected = 1;
  if (pc->cancels == 0) free_conn(pc);
  return 0;
}

/* conn:_alive() -> boolean */
static int pg_alive(lua_State *L) {
  pgconn *pc = *(pgconn **)luaL_checkudata(L, 1, "luaio.pg");
  lua_pushboolean(L, pc != NULL && pc->pq != NULL);
  return 1;
}

/* tostring(conn) -> "luaio.pg (pid n, idle | busy)" */
static int pg_tostring(lua_State *L) {
  pgconn *pc = *(pgconn **)luaL_checkudata(L, 1, "luaio.pg");
  if (pc == NULL || pc->pq == NULL)
    lua_pushliteral(L, "luaio.pg (closed)");
  else
    lua_pushfstring(L, "luaio.pg (pid %d, %s)", PQbackendPID(pc->pq),
                    ready(pc) ? "idle" : "busy");
  return 1;
}

/* _pg.parse(dsn) -> {keyword = value} | nil, msg: a connection string or
   URI taken apart by libpq */
static int pg_parse(lua_State *L) {
  const char *dsn = luaL_checkstring(L, 1);
  char *err = NULL;
  PQconninfoOption *o = PQconninfoParse(dsn, &err), *i;
  if (o == NULL) {
    lua_pushnil(L);
    if (err != NULL) {
      size_t n = strlen(err);
      while (n > 0 && err[n - 1] == '\n')
        n--;
      lua_pushlstring(L, err, n);
      PQfreemem(err);
    } else
      lua_pushliteral(L, "not enough memory");
    return 2;
  }
  lua_newtable(L);
  for (i = o; i->keyword != NULL; i++)
    if (i->val != NULL) {
      lua_pushstring(L, i->val);
      lua_setfield(L, -2, i->keyword);
    }
  PQconninfoFree(o);
  return 1;
}

static const luaL_Reg conn_methods[] = {{"_query", pg_query},
                                        {"_prepare", pg_prepare},
                                        {"_script", pg_script},
                                        {"_many", pg_many},
                                        {"_drain", pg_drain},
                                        {"_status", pg_status},
                                        {"_pid", pg_pid},
                                        {"_quote_ident", pg_quote_ident},
                                        {"_notify", pg_notify},
                                        {"_alive", pg_alive},
                                        {"close", pg_close},
                                        {"__close", pg_close},
                                        {"__gc", pg_gc},
                                        {"__tostring", pg_tostring},
                                        {NULL, NULL}};

LUAIO_API int luaopen_luaio__pg(lua_State *L) {
  luaio *h = luaio__open_host(L);
  luaL_newmetatable(L, "luaio.pg");
  lua_pushlightuserdata(L, h);
  luaL_setfuncs(L, conn_methods, 1);
  lua_pushlightuserdata(L, h);
  luaL_setfuncs(L, luaio__pg_stream_methods, 1);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__index");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &connkey);
  lua_createtable(L, 0, 3);
  lua_pushlightuserdata(L, h);
  lua_pushcclosure(L, pg_connect, 1);
  lua_setfield(L, -2, "connect");
  lua_pushcfunction(L, luaio__pg_setup);
  lua_setfield(L, -2, "setup");
  lua_pushcfunction(L, pg_parse);
  lua_setfield(L, -2, "parse");
  lua_pushinteger(L, PQlibVersion());
  lua_setfield(L, -2, "libpq_version");
  return 1;
}

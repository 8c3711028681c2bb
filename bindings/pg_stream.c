/*
** pg_stream.c: the operations of luaio._pg that Lua code holds between
** calls: row iterators in single-row mode (conn:rows) and COPY (copy_in,
** copy_out).  Each call waits for the next row, the next COPY data, or
** room to write; while a row or COPY data waits for its consumer the
** connection stops reading, so memory stays flat.  An owner that gives up
** (_abandon) leaves the rest to be cancelled and drained as a cancelled
** statement is (pg.c).
*/

#include <string.h>

#include "pg.h"

static void start_owned(pgconn *pc, int kind) {
  pc->state = S_BUSY;
  pc->kind = kind;
  pc->owned = 1;
  pc->t = NULL;
  pc->lost = 0;
  pc->copy = 0;
  pc->affected = 0;
}

static int owned_wait(lua_State *L, pgconn *pc, lua_KFunction k) {
  task *t = luaio__enter_wait(L, pc->h);
  pc->t = t;
  luaio__pg_update_poll(pc);
  return luaio__wait(L, t, &luaio__pg_op_ops, pc, 0, k);
}

static void check_owned(lua_State *L, pgconn *pc, int kind) {
  if (!pc->owned || pc->kind != kind)
    luaL_error(L, kind == K_ROWS ? "the row iteration is over"
                                 : "no COPY in progress");
  if (pc->t != NULL) luaL_error(L, "another task is waiting on it");
}

/* The owner is done (or the connection is): the end of the results. */
static int finish_owned(lua_State *L, pgconn *pc) {
  pc->owned = 0;
  if (pc->state != S_DONE) return luaio__pg_raise_lost(L, pc);
  return luaio__pg_collect(L, pc, 0);
}

/* conn:_rows_start(name, ptypes, ...): sends the statement in single-row
   mode; rows then come from _rows_next */
static int pg_rows_start(lua_State *L) {
  pgconn *pc = luaio__pg_checkconn(L);
  const char *name = luaL_checkstring(L, 2);
  int n = lua_gettop(L) - 3, rv;
  pgparams p;
  task *t;
  luaL_checktype(L, 3, LUA_TTABLE);
  if (n < 0) n = 0;
  if (n != (int)luaL_len(L, 3))
    return luaL_error(L, "the statement takes %d parameters, %d given",
                      (int)luaL_len(L, 3), n);
  if ((t = luaio__pg_begin(L, pc, pg_rows_start, &rv)) == NULL) return rv;
  luaio__pg_params(L, 4, n, 3, &p);
  if (!PQsendQueryPrepared(pc->pq, name, n, p.values, p.lengths, p.formats, 0))
    return luaio__pg_send_failed(L, pc);
  PQsetSingleRowMode(pc->pq);
  luaio__pg_flush(pc);
  if (pc->pq == NULL) return luaio__pg_raise_lost(L, pc);
  start_owned(pc, K_ROWS);
  luaio__pg_update_poll(pc);
  return 0;
}

static int k_rows_next(lua_State *L, int status, lua_KContext ctx);

/* conn:_rows_next() -> row | nil at the end (raises its error) */
static int pg_rows_next(lua_State *L) {
  pgconn *pc = luaio__pg_checkconn(L);
  check_owned(L, pc, K_ROWS);
  if (pc->row == NULL && pc->state == S_BUSY && pc->pq != NULL)
    luaio__pg_progress(pc); /* the rows libpq has read already */
  if (pc->row != NULL) {
    PGresult **b = luaio__pg_box(L, pc->row);
    pc->row = NULL;
    luaio__pg_push_rows(L, *b, 2);
    luaio__pg_unbox(b);
    luaio__pg_update_poll(pc); /* read on */
    return 1;
  }
  if (pc->state != S_BUSY || pc->pq == NULL) {
    finish_owned(L, pc);
    lua_pushnil(L);
    return 1;
  }
  return owned_wait(L, pc, k_rows_next);
}

static int k_rows_next(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  luaio__resumed(L, luaio__host(L)->current);
  return pg_rows_next(L);
}

/* conn:_abandon(): the owner of a row iteration or a COPY gives up: the
   rest is cancelled and drained */
static int pg_abandon(lua_State *L) {
  pgconn *pc = luaio__pg_checkconn(L);
  if (!pc->owned) return 0;
  pc->owned = 0;
  PQclear(pc->row);
  pc->row = NULL;
  if (pc->state == S_DONE) {
    luaio__pg_clear(pc);
    pc->state = S_IDLE;
    return 0;
  }
  if (pc->pq == NULL || pc->state != S_BUSY) return 0;
  if (pc->copy != 1) luaio__pg_cancel(pc); /* COPY FROM ends with an error */
  luaio__pg_progress(pc);                  /* discards what it can */
  if (pc->pq != NULL) luaio__pg_update_poll(pc);
  return 0;
}

static int k_copy_start(lua_State *L, int status, lua_KContext ctx);

/* conn:_copy_start(sql) -> "in" | "out" | rows affected (not a COPY) */
static int pg_copy_start(lua_State *L) {
  pgconn *pc = luaio__pg_checkconn(L);
  const char *sql = luaL_checkstring(L, 2);
  task *t;
  int rv;
  if ((t = luaio__pg_begin(L, pc, pg_copy_start, &rv)) == NULL) return rv;
  if (!PQsendQuery(pc->pq, sql)) return luaio__pg_send_failed(L, pc);
  luaio__pg_flush(pc);
  if (pc->pq == NULL) return luaio__pg_raise_lost(L, pc);
  start_owned(pc, K_COPY);
  return owned_wait(L, pc, k_copy_start);
}

static int k_copy_start(lua_State *L, int status, lua_KContext ctx) {
  pgconn *pc = *(pgconn **)lua_touserdata(L, 1);
  (void)status;
  (void)ctx;
  luaio__resumed(L, luaio__host(L)->current);
  if (pc->copy == 1 || pc->copy == 2) {
    lua_pushstring(L, pc->copy == 1 ? "in" : "out");
    return 1;
  }
  if (pc->state == S_BUSY && pc->pq != NULL)
    return owned_wait(L, pc, k_copy_start); /* woken early */
  return finish_owned(L, pc);
}

static int pg_copy_put(lua_State *L);

static int k_retry_put(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  luaio__resumed(L, luaio__host(L)->current);
  return pg_copy_put(L);
}

static int k_copy_put(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  luaio__resumed(L, luaio__host(L)->current);
  return 0;
}

/* conn:_copy_put(data): queues data; waits while the socket is full */
static int pg_copy_put(lua_State *L) {
  pgconn *pc = luaio__pg_checkconn(L);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  int r;
  check_owned(L, pc, K_COPY);
  if (pc->pq == NULL) return luaio__pg_raise_lost(L, pc);
  if (pc->copy != 1) {
    if (pc->state == S_DONE) return finish_owned(L, pc); /* its error */
    return luaL_error(L, "not a COPY FROM STDIN");
  }
  luaL_argcheck(L, len <= 0x3fffffff, 2, "chunk too long");
  r = PQputCopyData(pc->pq, data, (int)len);
  if (r < 0) return luaio__pg_send_failed(L, pc);
  luaio__pg_flush(pc);
  if (pc->pq == NULL) return luaio__pg_raise_lost(L, pc);
  if (r == 0 || pc->flushing) { /* back-pressure */
    if (r == 0) pc->flushing = 1;
    if (r != 0) lua_settop(L, 1); /* queued: no retry */
    return owned_wait(L, pc, r == 0 ? k_retry_put : k_copy_put);
  }
  return 0;
}

/* conn:_copy_end([error]) -> rows copied (raises the server's error) */
static int pg_copy_end(lua_State *L) {
  pgconn *pc = luaio__pg_checkconn(L);
  const char *err = luaL_optstring(L, 2, NULL);
  task *t;
  check_owned(L, pc, K_COPY);
  if (pc->pq == NULL) return luaio__pg_raise_lost(L, pc);
  if (pc->copy == 1) {
    if (PQputCopyEnd(pc->pq, err) < 0) return luaio__pg_send_failed(L, pc);
    pc->copy = 0;
  }
  t = luaio__enter_wait(L, pc->h);
  pc->owned = 0;
  if (pc->state == S_DONE) return luaio__pg_collect(L, pc, 0);
  luaio__pg_flush(pc);
  if (pc->pq == NULL) return luaio__pg_raise_lost(L, pc);
  pc->t = t;
  luaio__pg_update_poll(pc);
  lua_settop(L, 1);
  return luaio__wait(L, t, &luaio__pg_op_ops, pc, 0, luaio__pg_k_op);
}

static int k_copy_get(lua_State *L, int status, lua_KContext ctx);

/* conn:_copy_get() -> data | rows copied at the end */
static int pg_copy_get(lua_State *L) {
  pgconn *pc = luaio__pg_checkconn(L);
  luaL_Buffer b;
  char *buf;
  int n = 0, got = 0;
  check_owned(L, pc, K_COPY);
  if (pc->pq == NULL) return luaio__pg_raise_lost(L, pc);
  if (pc->copy == 3) { /* the data was over at the last call */
    n = -1;
    goto over;
  }
  if (pc->copy != 2) {
    if (pc->state == S_DONE) return finish_owned(L, pc);
    return luaL_error(L, "not a COPY TO STDOUT");
  }
  luaL_buffinit(L, &b);
  while (b.n < 65536 && (n = PQgetCopyData(pc->pq, &buf, 1)) > 0) {
    luaL_addlstring(&b, buf, (size_t)n);
    PQfreemem(buf);
    got = 1;
  }
  if (got) {
    if (n == -1) pc->copy = 3;
    luaL_pushresult(&b);
    return 1;
  }
over:
  if (n == 0) return owned_wait(L, pc, k_copy_get);
  if (n == -2) {
    luaio__pg_fail(pc);
    return luaio__pg_raise_lost(L, pc);
  }
  /* -1: the data is over; the command's result follows. */
  pc->copy = 0;
  luaio__pg_progress(pc); /* still owned: a result is kept, nobody woken */
  pc->owned = 0;
  if (pc->state == S_DONE) return luaio__pg_collect(L, pc, 0);
  if (pc->pq == NULL) return luaio__pg_raise_lost(L, pc);
  pc->t = luaio__enter_wait(L, pc->h);
  luaio__pg_update_poll(pc);
  lua_settop(L, 1);
  return luaio__wait(L, pc->t, &luaio__pg_op_ops, pc, 0, luaio__pg_k_op);
}

static int k_copy_get(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  luaio__resumed(L, luaio__host(L)->current);
  return pg_copy_get(L);
}

const luaL_Reg luaio__pg_stream_methods[] = {
    {"_rows_start", pg_rows_start}, {"_rows_next", pg_rows_next},
    {"_abandon", pg_abandon},       {"_copy_start", pg_copy_start},
    {"_copy_put", pg_copy_put},     {"_copy_end", pg_copy_end},
    {"_copy_get", pg_copy_get},     {NULL, NULL}};

/*
** pg.h: what the files of luaio._pg share (pg.c: the connection on the
** loop; pg_stream.c: row iterators and COPY; pg_values.c: PostgreSQL
** values to and from Lua).
*/
#ifndef LUAIO_PG_H
#define LUAIO_PG_H

#include <libpq-fe.h>

#include "internal.h"

#define PG_SMALL 16 /* parameters encoded without allocating */
#define PG_NUMLEN 32

/* Parameters of one statement, ready for PQsendQueryPrepared. */
typedef struct pgparams {
  int n;
  const char **values;
  int *lengths, *formats;
  char *nums;
  const char *small_values[PG_SMALL];
  int small_lengths[PG_SMALL], small_formats[PG_SMALL];
  char small_nums[PG_SMALL * PG_NUMLEN];
} pgparams;

enum { S_CONNECTING, S_IDLE, S_BUSY, S_DONE };
enum { K_QUERY, K_PIPE, K_SCRIPT, K_ROWS, K_COPY };

typedef struct pgpoll {
  uv_poll_t p;
  struct pgconn *pc;
  int fd; /* ours, closed with the handle */
} pgpoll;

typedef struct pgnote {
  struct pgnote *next;
  PGnotify *n;
} pgnote;

typedef struct pgconn {
  resource res;
  luaio *h;
  PGconn *pq;    /* NULL once finished */
  pgpoll *poll;  /* on a dup of the socket */
  int polling;   /* the events it watches */
  int state;     /* S_* */
  int kind;      /* of the operation */
  int flushing;  /* PQflush has output left */
  int cancels;   /* cancel requests on the thread pool */
  int collected; /* the userdata is gone */
  int lost;      /* the operation ended with the connection */
  int copy;      /* 1 in COPY FROM STDIN, 2 in COPY TO STDOUT, 3 after it */
  int owned;     /* a row iterator or a copy holds the operation */
  PGresult *row; /* the row single-row mode handed over */
  task *t;       /* the operation's task; NULL once it gave up */
  task *idler;   /* waits for the connection to be free again */
  task *connector, *reader;
  PGresult *out, *err; /* the operation's result, its first error */
  lua_Integer affected;
  char *connerr; /* why the connection ended */
  pgnote *nhead, *ntail;
  int nqueued, paused;
} pgconn;

/* pg.c: what pg_stream.c shares with it. */
extern const waitops luaio__pg_op_ops;
extern const luaL_Reg luaio__pg_stream_methods[];
pgconn *luaio__pg_checkconn(lua_State *L);
task *luaio__pg_begin(lua_State *L, pgconn *pc, lua_CFunction f, int *rv);
int luaio__pg_k_op(lua_State *L, int status, lua_KContext ctx);
int luaio__pg_collect(lua_State *L, pgconn *pc, int mode);
int luaio__pg_raise_lost(lua_State *L, pgconn *pc);
int luaio__pg_send_failed(lua_State *L, pgconn *pc);
PGresult **luaio__pg_box(lua_State *L, PGresult *r);
void luaio__pg_unbox(PGresult **b);
void luaio__pg_clear(pgconn *pc);
void luaio__pg_fail(pgconn *pc);
void luaio__pg_flush(pgconn *pc);
void luaio__pg_progress(pgconn *pc);
void luaio__pg_cancel(pgconn *pc);
void luaio__pg_update_poll(pgconn *pc);
void luaio__pg_wake(task **tp);

/* Encode the n Lua values from index first for a statement whose parameter
   types are the integers of the table at ptypes (0: none known).  Pushes a
   scratch userdata past PG_SMALL parameters, and replaces table arguments
   by their encoding, all of which must stay on the stack until the
   statement is sent.  Raises on a
   value that cannot be a parameter. */
void luaio__pg_params(lua_State *L, int first, int n, int ptypes, pgparams *p);

/* Push the value of row, col of r (aio.null for SQL NULL). */
void luaio__pg_push_value(lua_State *L, const PGresult *r, int row, int col);

/* Push the rows of r: mode 1 all (an array), 2 the first row or nil, 3
   the first value or nil. */
void luaio__pg_push_rows(lua_State *L, const PGresult *r, int mode);

/* Push a luaio error of kind with the fields of the failed result r (r
   may be NULL: then msg is the message). */
void luaio__pg_push_error(lua_State *L, const char *kind, const PGresult *r,
                          const char *msg);

/* luaio._pg.setup(json_decode, encode_table): the Lua functions the values
   need, kept in the registry. */
int luaio__pg_setup(lua_State *L);

#endif

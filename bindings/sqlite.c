/*
** sqlite.c: luaio._sqlite, SQLite connections whose statements run off the
** loop, on a thread of the connection's own.
**
** libuv's thread pool (4 threads) is shared with files and DNS: eight
** connections running long queries there would hold every thread and stall
** a file read behind them.  So each connection, as aiosqlite does, has one
** thread that runs its jobs one after another from a FIFO queue protected
** by a mutex; with nothing queued it sleeps on a semaphore, which the loop
** posts only when it sleeps (see take_sleeper).  The thread wakes the loop
** with a uv_async_t when a job finished or has a batch of rows ready.
**
** A query's rows come in batches of BATCH: the thread fills a batch, posts
** it and waits until the task on the loop has turned it into Lua tables and
** asked for more, so a huge result never sits whole in C memory.  Values
** cross in C memory (a job owns its parameters and its batch), never as Lua
** objects: the thread never touches the Lua state.
**
** Cancellation: a job still queued is dropped; a running one is stopped
** with sqlite3_interrupt while that job's statement runs (called under the
** mutex, while the thread holds the job as running, so never on a closing
** connection); the task raises at once, and the job's completion is freed
** when it comes.  The thread resets the statement, so the connection stays
** usable.
**
** Lifetime: the connection (malloc'd, the userdata points at it) goes when
** the close job has run, the thread is joined, the async handle is closed
** and the userdata was collected.  __gc of an open connection queues the
** close job with no task waiting for it.
*/

#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "internal.h"

#define BATCH 64   /* rows per batch */
#define NCACHE 128 /* cached statements per connection */

static const char connkey = 'Q';

/* The extended result codes' names (sqlite3_errstr gives only text). */
#define C(x)                                                                   \
  { x, #x }
static const struct {
  int code;
  const char *name;
} codes[] = {C(SQLITE_OK),
             C(SQLITE_ERROR),
             C(SQLITE_INTERNAL),
             C(SQLITE_PERM),
             C(SQLITE_ABORT),
             C(SQLITE_BUSY),
             C(SQLITE_LOCKED),
             C(SQLITE_NOMEM),
             C(SQLITE_READONLY),
             C(SQLITE_INTERRUPT),
             C(SQLITE_IOERR),
             C(SQLITE_CORRUPT),
             C(SQLITE_NOTFOUND),
             C(SQLITE_FULL),
             C(SQLITE_CANTOPEN),
             C(SQLITE_PROTOCOL),
             C(SQLITE_EMPTY),
             C(SQLITE_SCHEMA),
             C(SQLITE_TOOBIG),
             C(SQLITE_CONSTRAINT),
             C(SQLITE_MISMATCH),
             C(SQLITE_MISUSE),
             C(SQLITE_NOLFS),
             C(SQLITE_AUTH),
             C(SQLITE_FORMAT),
             C(SQLITE_RANGE),
             C(SQLITE_NOTADB),
             C(SQLITE_NOTICE),
             C(SQLITE_WARNING),
             C(SQLITE_ERROR_MISSING_COLLSEQ),
             C(SQLITE_ERROR_RETRY),
             C(SQLITE_ERROR_SNAPSHOT),
             C(SQLITE_IOERR_READ),
             C(SQLITE_IOERR_SHORT_READ),
             C(SQLITE_IOERR_WRITE),
             C(SQLITE_IOERR_FSYNC),
             C(SQLITE_IOERR_DIR_FSYNC),
             C(SQLITE_IOERR_TRUNCATE),
             C(SQLITE_IOERR_FSTAT),
             C(SQLITE_IOERR_UNLOCK),
             C(SQLITE_IOERR_RDLOCK),
             C(SQLITE_IOERR_DELETE),
             C(SQLITE_IOERR_BLOCKED),
             C(SQLITE_IOERR_NOMEM),
             C(SQLITE_IOERR_ACCESS),
             C(SQLITE_IOERR_CHECKRESERVEDLOCK),
             C(SQLITE_IOERR_LOCK),
             C(SQLITE_IOERR_CLOSE),
             C(SQLITE_IOERR_DIR_CLOSE),
             C(SQLITE_IOERR_SHMOPEN),
             C(SQLITE_IOERR_SHMSIZE),
             C(SQLITE_IOERR_SHMLOCK),
             C(SQLITE_IOERR_SHMMAP),
             C(SQLITE_IOERR_SEEK),
             C(SQLITE_IOERR_DELETE_NOENT),
             C(SQLITE_IOERR_MMAP),
             C(SQLITE_IOERR_GETTEMPPATH),
             C(SQLITE_IOERR_CONVPATH),
             C(SQLITE_IOERR_VNODE),
             C(SQLITE_IOERR_AUTH),
             C(SQLITE_IOERR_BEGIN_ATOMIC),
             C(SQLITE_IOERR_COMMIT_ATOMIC),
             C(SQLITE_IOERR_ROLLBACK_ATOMIC),
             C(SQLITE_IOERR_DATA),
             C(SQLITE_IOERR_CORRUPTFS),
             C(SQLITE_LOCKED_SHAREDCACHE),
             C(SQLITE_LOCKED_VTAB),
             C(SQLITE_BUSY_RECOVERY),
             C(SQLITE_BUSY_SNAPSHOT),
             C(SQLITE_BUSY_TIMEOUT),
             C(SQLITE_CANTOPEN_NOTEMPDIR),
             C(SQLITE_CANTOPEN_ISDIR),
             C(SQLITE_CANTOPEN_FULLPATH),
             C(SQLITE_CANTOPEN_CONVPATH),
             C(SQLITE_CANTOPEN_DIRTYWAL),
             C(SQLITE_CANTOPEN_SYMLINK),
             C(SQLITE_CORRUPT_VTAB),
             C(SQLITE_CORRUPT_SEQUENCE),
             C(SQLITE_CORRUPT_INDEX),
             C(SQLITE_READONLY_RECOVERY),
             C(SQLITE_READONLY_CANTLOCK),
             C(SQLITE_READONLY_ROLLBACK),
             C(SQLITE_READONLY_DBMOVED),
             C(SQLITE_READONLY_CANTINIT),
             C(SQLITE_READONLY_DIRECTORY),
             C(SQLITE_ABORT_ROLLBACK),
             C(SQLITE_CONSTRAINT_CHECK),
             C(SQLITE_CONSTRAINT_COMMITHOOK),
             C(SQLITE_CONSTRAINT_FOREIGNKEY),
             C(SQLITE_CONSTRAINT_FUNCTION),
             C(SQLITE_CONSTRAINT_NOTNULL),
             C(SQLITE_CONSTRAINT_PRIMARYKEY),
             C(SQLITE_CONSTRAINT_TRIGGER),
             C(SQLITE_CONSTRAINT_UNIQUE),
             C(SQLITE_CONSTRAINT_VTAB),
             C(SQLITE_CONSTRAINT_ROWID),
             C(SQLITE_CONSTRAINT_PINNED),
             C(SQLITE_CONSTRAINT_DATATYPE),
             C(SQLITE_NOTICE_RECOVER_WAL),
             C(SQLITE_NOTICE_RECOVER_ROLLBACK),
             C(SQLITE_WARNING_AUTOINDEX),
             C(SQLITE_AUTH_USER),
             C(SQLITE_OK_LOAD_PERMANENTLY),
             C(SQLITE_OK_SYMLINK),
             {0, NULL}};
#undef C

static const char *code_name(int rc) {
  int i;
  for (i = 0; codes[i].name != NULL; i++)
    if (codes[i].code == rc) return codes[i].name;
  for (i = 0; codes[i].name != NULL; i++) /* an unknown extended code */
    if (codes[i].code == (rc & 0xff)) return codes[i].name;
  return "SQLITE_ERROR";
}

enum { V_NULL, V_INT, V_FLOAT, V_TEXT, V_BLOB };

/* A value crossing between the loop and the thread; text and blobs live
   in the owner's buffer at `off`. */
typedef struct sqlval {
  int type;
  size_t len;
  union {
    sqlite3_int64 i;
    double d;
    size_t off;
  } u;
} sqlval;

/* A growing byte buffer. */
typedef struct sqlbuf {
  char *p;
  size_t len, cap;
} sqlbuf;

static int buf_add(sqlbuf *b, const void *data, size_t n, size_t *off) {
  if (b->cap - b->len < n) {
    size_t c = b->cap ? b->cap : 256;
    char *p;
    while (c - b->len < n) {
      if (c > ((size_t)-1) / 2) return 0;
      c *= 2;
    }
    p = realloc(b->p, c);
    if (p == NULL) return 0;
    b->p = p;
    b->cap = c;
  }
  if (n > 0) memcpy(b->p + b->len, data, n);
  *off = b->len;
  b->len += n;
  return 1;
}

enum { J_OPEN, J_QUERY, J_MANY, J_CLOSE };
enum { Q_QUEUED, Q_RUNNING, Q_BATCH, Q_DONE };
/* What a query returns; M_UNDO is M_EXEC skipped when no transaction is
   open (the ROLLBACK after an interrupted write, which SQLite has rolled
   back already: checked on the thread, after every job before it). */
enum { M_EXEC, M_ALL, M_ROW, M_VALUE, M_UNDO };

struct sqlconn;

typedef struct sqljob {
  struct sqljob *next; /* in the queue or the done list */
  struct sqlconn *conn;
  task *t;                         /* the waiting task; NULL once it gave up */
  int kind, mode;                  /* J_*, M_* */
  int state;                       /* Q_*: under the mutex */
  unsigned char cancelled, posted; /* under the mutex */
  unsigned char done;              /* the loop's: it was posted done */
  char *sql;                       /* J_OPEN: the path */
  size_t sqllen;
  int flags, busy_ms; /* J_OPEN */
  sqlval *params;     /* J_MANY: nsets sets of nparams */
  size_t nparams, nsets;
  sqlbuf pbuf;
  /* results: written by the thread, read by the loop while the thread
     waits for it (a batch) or after the job is done */
  int ncols;
  char **names;
  sqlval *rows; /* BATCH * ncols */
  size_t nrows, total;
  sqlbuf rbuf;
  int rc;
  char *errmsg;
  sqlite3_int64 changes, rowid;
  int autocommit;
} sqljob;

typedef struct cached {
  char *sql;
  size_t len;
  sqlite3_stmt *st;
  unsigned long used;
} cached;

typedef struct sqlconn {
  const void *tag;
  resource res;
  luaio *h;
  uv_async_t async;
  uv_thread_t thread;
  uv_mutex_t mu;
  uv_cond_t cond; /* a batch taken, a job cancelled */
  uv_sem_t idle;  /* posted once to wake the thread waiting for a job */
  /* under the mutex */
  sqljob *qhead, *qtail; /* to run */
  sqljob *running;
  sqljob *dhead, *dtail; /* for the loop */
  unsigned char quit;
  unsigned char asleep; /* the thread waits on idle for a job */
  /* the thread's own */
  sqlite3 *db;
  cached cache[NCACHE];
  int ncache;
  unsigned long clock;
  /* the loop's own */
  size_t pending; /* jobs submitted and not seen done */
  int autocommit; /* after the last job done */
  unsigned char closing, joined, closed, collected, thread_ok;
  char *path;
} sqlconn;

static void free_job(sqljob *j) {
  int i;
  if (j->names != NULL)
    for (i = 0; i < j->ncols; i++)
      free(j->names[i]);
  free(j->names);
  free(j->rows);
  free(j->rbuf.p);
  free(j->pbuf.p);
  free(j->params);
  free(j->sql);
  free(j->errmsg);
  free(j);
}

/* The thread. */

/* Under the mutex: hand j to the loop, which the caller wakes with
   uv_async_send once it released the mutex (woken under it, the loop
   would block at once on the mutex in on_async).  The handle stays until
   the thread is joined. */
static void post(sqlconn *c, sqljob *j) {
  if (!j->posted) {
    j->posted = 1;
    j->next = NULL;
    if (c->dtail)
      c->dtail->next = j;
    else
      c->dhead = j;
    c->dtail = j;
  }
}

static void set_error(sqlconn *c, sqljob *j, int rc) {
  if (j->rc != SQLITE_OK) return;
  j->rc = rc;
  free(j->errmsg);
  j->errmsg = strdup(c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
}

static int is_blank(const char *s, const char *end) {
  for (; s < end; s++)
    if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r' && *s != ';')
      return 0;
  return 1;
}

/* A statement for the whole of sql (cached) or for its first statement
   (not cached; *tail says where the rest starts). */
static int prepare(sqlconn *c, const char *sql, size_t len, sqlite3_stmt **st,
                   const char **tail, int *cachedp) {
  int i, rc, victim = 0;
  *cachedp = 0;
  for (i = 0; i < c->ncache; i++)
    if (c->cache[i].len == len && memcmp(c->cache[i].sql, sql, len) == 0) {
      c->cache[i].used = ++c->clock;
      *st = c->cache[i].st;
      *tail = sql + len;
      *cachedp = 1;
      return SQLITE_OK;
    }
  rc = sqlite3_prepare_v3(c->db, sql, (int)len, SQLITE_PREPARE_PERSISTENT, st,
                          tail);
  if (rc != SQLITE_OK || *st == NULL || !is_blank(*tail, sql + len)) return rc;
  /* One statement: keep it, in place of the least recently used. */
  if (c->ncache < NCACHE)
    victim = c->ncache;
  else {
    for (i = 1; i < NCACHE; i++)
      if (c->cache[i].used < c->cache[victim].used) victim = i;
  }
  {
    char *copy = malloc(len ? len : 1);
    if (copy == NULL) return SQLITE_OK; /* runs uncached */
    memcpy(copy, sql, len);
    if (victim < c->ncache) {
      sqlite3_finalize(c->cache[victim].st);
      free(c->cache[victim].sql);
    } else
      c->ncache++;
    c->cache[victim].sql = copy;
    c->cache[victim].len = len;
    c->cache[victim].st = *st;
    c->cache[victim].used = ++c->clock;
    *cachedp = 1;
  }
  return SQLITE_OK;
}

static int bind_all(sqlite3_stmt *st, const sqlval *v, size_t n,
                    const char *buf) {
  size_t i;
  int rc = SQLITE_OK;
  if (buf == NULL) buf = ""; /* only empty strings: not NULL */
  for (i = 0; i < n && rc == SQLITE_OK; i++) {
    int k = (int)i + 1;
    switch (v[i].type) {
    case V_INT:
      rc = sqlite3_bind_int64(st, k, v[i].u.i);
      break;
    case V_FLOAT:
      rc = sqlite3_bind_double(st, k, v[i].u.d);
      break;
    case V_TEXT:
      rc = sqlite3_bind_text64(st, k, buf + v[i].u.off, v[i].len, SQLITE_STATIC,
                               SQLITE_UTF8);
      break;
    case V_BLOB:
      rc =
          sqlite3_bind_blob64(st, k, buf + v[i].u.off, v[i].len, SQLITE_STATIC);
      break;
    default:
      rc = sqlite3_bind_null(st, k);
    }
  }
  return rc;
}

static int check_count(sqlconn *c, sqljob *j, sqlite3_stmt *st, size_t n) {
  int want = sqlite3_bind_parameter_count(st);
  char msg[96];
  if ((size_t)want == n) return 1;
  snprintf(msg, sizeof msg, "the statement takes %d parameters, %d given", want,
           (int)n);
  j->rc = SQLITE_RANGE;
  j->errmsg = strdup(msg);
  return 0;
}

static int cancelled(sqlconn *c, sqljob *j) {
  int yes;
  uv_mutex_lock(&c->mu);
  yes = j->cancelled || c->quit;
  uv_mutex_unlock(&c->mu);
  return yes;
}

/* Hand the batch to the loop and wait until it is taken; 1: stop. */
static int deliver(sqlconn *c, sqljob *j) {
  int stop;
  uv_mutex_lock(&c->mu);
  if (!j->cancelled && !c->quit) {
    j->state = Q_BATCH;
    post(c, j);
    uv_mutex_unlock(&c->mu);
    uv_async_send(&c->async);
    uv_mutex_lock(&c->mu);
    while (j->state == Q_BATCH && !j->cancelled && !c->quit)
      uv_cond_wait(&c->cond, &c->mu);
  }
  stop = j->cancelled || c->quit;
  uv_mutex_unlock(&c->mu);
  return stop;
}

/* Copy the current row into the batch. */
static int add_row(sqljob *j, sqlite3_stmt *st) {
  int i;
  sqlval *v = j->rows + j->nrows * (size_t)j->ncols;
  for (i = 0; i < j->ncols; i++) {
    int type = sqlite3_column_type(st, i);
    v[i].len = 0;
    if (type == SQLITE_INTEGER) {
      v[i].type = V_INT;
      v[i].u.i = sqlite3_column_int64(st, i);
    } else if (type == SQLITE_FLOAT) {
      v[i].type = V_FLOAT;
      v[i].u.d = sqlite3_column_double(st, i);
    } else if (type == SQLITE_NULL)
      v[i].type = V_NULL;
    else {
      const void *p = type == SQLITE_TEXT
                          ? (const void *)sqlite3_column_text(st, i)
                          : sqlite3_column_blob(st, i);
      v[i].type = type == SQLITE_TEXT ? V_TEXT : V_BLOB;
      v[i].len = (size_t)sqlite3_column_bytes(st, i);
      if (!buf_add(&j->rbuf, p, v[i].len, &v[i].u.off)) return 0;
    }
  }
  j->nrows++;
  j->total++;
  return 1;
}

/* The first row of the last statement: its column names and a batch. */
static int start_rows(sqljob *j, sqlite3_stmt *st) {
  int i;
  j->ncols = sqlite3_column_count(st);
  j->names = calloc((size_t)j->ncols + 1, sizeof *j->names);
  j->rows = malloc(sizeof *j->rows * BATCH * ((size_t)j->ncols + 1));
  if (j->names == NULL || j->rows == NULL) return 0;
  for (i = 0; i < j->ncols; i++) {
    const char *name = sqlite3_column_name(st, i);
    if ((j->names[i] = strdup(name ? name : "?")) == NULL) return 0;
  }
  return 1;
}

static void run_query(sqlconn *c, sqljob *j) {
  const char *sql = j->sql, *end = j->sql + j->sqllen, *tail;
  if (j->mode == M_UNDO) {
    if (sqlite3_get_autocommit(c->db)) return;
    j->mode = M_EXEC;
  }
  while (sql < end && j->rc == SQLITE_OK) {
    sqlite3_stmt *st = NULL;
    int cached, rc, last, want;
    rc = prepare(c, sql, (size_t)(end - sql), &st, &tail, &cached);
    if (rc != SQLITE_OK) {
      set_error(c, j, rc);
      break;
    }
    if (st == NULL) break; /* only blanks or comments were left */
    last = is_blank(tail, end);
    want = last && j->mode != M_EXEC;
    if (j->nparams > 0 || last) {
      if (check_count(c, j, st, j->nparams)) {
        rc = bind_all(st, j->params, j->nparams, j->pbuf.p);
        if (rc != SQLITE_OK) set_error(c, j, rc);
      }
    }
    while (j->rc == SQLITE_OK) {
      rc = sqlite3_step(st);
      if (rc == SQLITE_ROW) {
        if (!want) continue;
        if (j->names == NULL && !start_rows(j, st)) {
          set_error(c, j, SQLITE_NOMEM);
          break;
        }
        if (!add_row(j, st)) {
          set_error(c, j, SQLITE_NOMEM);
          break;
        }
        if (j->mode != M_ALL) break; /* the first row is all it needs */
        if (j->nrows == BATCH && deliver(c, j)) break;
        continue;
      }
      if (rc != SQLITE_DONE) set_error(c, j, rc);
      break;
    }
    j->changes = sqlite3_changes64(c->db);
    j->rowid = sqlite3_last_insert_rowid(c->db);
    if (cached) {
      sqlite3_reset(st);
      sqlite3_clear_bindings(st);
    } else
      sqlite3_finalize(st);
    sql = tail;
    if (cancelled(c, j)) break;
  }
}

static void run_many(sqlconn *c, sqljob *j) {
  const char *tail;
  sqlite3_stmt *st = NULL;
  size_t s;
  int cached, rc = prepare(c, j->sql, j->sqllen, &st, &tail, &cached);
  if (rc != SQLITE_OK) {
    set_error(c, j, rc);
    return;
  }
  if (st == NULL) return;
  if (!is_blank(tail, j->sql + j->sqllen)) {
    j->rc = SQLITE_MISUSE;
    j->errmsg = strdup("executemany takes one statement");
  }
  for (s = 0; s < j->nsets && j->rc == SQLITE_OK; s++) {
    if ((s & 63) == 63 && cancelled(c, j)) break;
    if (!check_count(c, j, st, j->nparams)) break;
    rc = bind_all(st, j->params + s * j->nparams, j->nparams, j->pbuf.p);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    }
    if (rc != SQLITE_DONE) set_error(c, j, rc);
    j->changes += sqlite3_changes64(c->db);
    sqlite3_reset(st);
  }
  j->rowid = sqlite3_last_insert_rowid(c->db);
  if (cached) {
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
  } else
    sqlite3_finalize(st);
}

/* The backstop of sqlite3_interrupt: an interrupt that comes before the
   statement starts is forgotten when it starts, so the running statement
   also asks every PROGRESS_OPS instructions whether its job was
   cancelled. */
#define PROGRESS_OPS 1000
static int on_progress(void *arg) {
  sqlconn *c = arg;
  int stop;
  uv_mutex_lock(&c->mu);
  stop = c->quit || (c->running != NULL && c->running->cancelled);
  uv_mutex_unlock(&c->mu);
  return stop;
}

static void close_db(sqlconn *c) {
  int i;
  for (i = 0; i < c->ncache; i++) {
    sqlite3_finalize(c->cache[i].st);
    free(c->cache[i].sql);
  }
  c->ncache = 0;
  if (c->db != NULL) sqlite3_close_v2(c->db);
  c->db = NULL;
}

static void run_job(sqlconn *c, sqljob *j) {
  switch (j->kind) {
  case J_OPEN: {
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(j->sql, &db, j->flags, NULL);
    if (rc != SQLITE_OK) {
      j->rc = db ? sqlite3_extended_errcode(db) : rc;
      j->errmsg = strdup(db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
      sqlite3_close_v2(db);
      break;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, j->busy_ms);
    sqlite3_progress_handler(db, PROGRESS_OPS, on_progress, c);
    uv_mutex_lock(&c->mu);
    c->db = db;
    uv_mutex_unlock(&c->mu);
    break;
  }
  case J_QUERY:
    if (c->db) run_query(c, j);
    break;
  case J_MANY:
    if (c->db) run_many(c, j);
    break;
  case J_CLOSE:
    close_db(c);
    break;
  }
  j->autocommit = c->db ? sqlite3_get_autocommit(c->db) : 1;
}

static void worker(void *arg) {
  sqlconn *c = arg;
  uv_mutex_lock(&c->mu);
  for (;;) {
    sqljob *j;
    int last;
    while (c->qhead == NULL && !c->quit) {
      c->asleep = 1; /* cleared by whoever posts idle */
      uv_mutex_unlock(&c->mu);
      uv_sem_wait(&c->idle);
      uv_mutex_lock(&c->mu);
    }
    if (c->quit) break;
    j = c->qhead;
    c->qhead = j->next;
    if (c->qhead == NULL) c->qtail = NULL;
    j->state = Q_RUNNING;
    c->running = j;
    uv_mutex_unlock(&c->mu);
    run_job(c, j);
    uv_mutex_lock(&c->mu);
    c->running = NULL;
    j->state = Q_DONE;
    post(c, j);
    last = j->kind == J_CLOSE; /* once posted, j is the loop's */
    uv_mutex_unlock(&c->mu);
    uv_async_send(&c->async);
    if (last) return; /* the database is closed */
    uv_mutex_lock(&c->mu);
  }
  uv_mutex_unlock(&c->mu);
  if (c->db != NULL) close_db(c); /* quit: the host is going */
}

/* The loop. */

static void update_ref(sqlconn *c) {
  if (c->closed || uv_is_closing((uv_handle_t *)&c->async)) return;
  if (c->pending > 0)
    uv_ref((uv_handle_t *)&c->async);
  else
    uv_unref((uv_handle_t *)&c->async);
}

/* The thread is joined, the handle closed and the userdata collected;
   a task woken by the last jobs may lock the mutex until then. */
static void free_conn(sqlconn *c) {
  uv_mutex_destroy(&c->mu);
  uv_cond_destroy(&c->cond);
  uv_sem_destroy(&c->idle);
  free(c->path);
  free(c);
}

static void on_close(uv_handle_t *handle) {
  sqlconn *c = handle->data;
  c->closed = 1;
  if (c->collected) free_conn(c);
}

/* The thread has ended: join it and close the handle. */
static void finish_close(sqlconn *c) {
  if (c->joined) return;
  c->joined = 1;
  if (c->thread_ok) uv_thread_join(&c->thread);
  luaio__res_remove(c->h, &c->res);
  uv_close((uv_handle_t *)&c->async, on_close);
}

static void on_async(uv_async_t *a) {
  sqlconn *c = a->data;
  sqljob *list, *j, *next;
  int closed = 0;
  uv_mutex_lock(&c->mu); /* once for the whole list */
  list = c->dhead;
  c->dhead = c->dtail = NULL;
  for (j = list; j != NULL; j = j->next) {
    j->posted = 0;
    j->done = j->state == Q_DONE; /* a posted job's state stays */
  }
  uv_mutex_unlock(&c->mu);
  for (j = list; j != NULL; j = next) {
    next = j->next;
    if (j->done) {
      c->pending--;
      c->autocommit = j->autocommit;
      if (j->kind == J_CLOSE) closed = 1;
    }
    if (j->t != NULL)
      luaio__wake(j->t, NULL, 0);
    else if (j->done)
      free_job(j);
  }
  if (closed)
    finish_close(c);
  else
    update_ref(c);
}

/* Under the mutex: 1 if the thread waits for a job, and is to be woken
   by posting idle once the mutex is released.  The thread waits on a
   semaphore, not on cond with the mutex: glibc's condition variable
   hands the mutex back marked contended, so every unlock after a wait
   was a futex call (docs/databases.md, "Latency"). */
static int take_sleeper(sqlconn *c) {
  if (!c->asleep) return 0;
  c->asleep = 0;
  return 1;
}

static void submit(sqlconn *c, sqljob *j) {
  int wake;
  uv_mutex_lock(&c->mu);
  j->state = Q_QUEUED;
  j->next = NULL;
  if (c->qtail)
    c->qtail->next = j;
  else
    c->qhead = j;
  c->qtail = j;
  wake = take_sleeper(c);
  uv_mutex_unlock(&c->mu);
  if (wake) uv_sem_post(&c->idle); /* idle lives as long as c */
  c->pending++;
  update_ref(c);
}

static void submit_close(sqlconn *c, task *t) {
  sqljob *j = calloc(1, sizeof *j);
  c->closing = 1;
  if (j == NULL) { /* the host's quit path still ends the thread */
    int wake;
    uv_mutex_lock(&c->mu);
    c->quit = 1;
    uv_cond_broadcast(&c->cond);
    wake = take_sleeper(c);
    uv_mutex_unlock(&c->mu);
    if (wake) uv_sem_post(&c->idle);
    finish_close(c);
    return;
  }
  j->kind = J_CLOSE;
  j->t = t;
  submit(c, j);
}

/* luaio_free: end the thread now (interrupting what runs), free what is
   left. */
static void res_close(resource *r) {
  sqlconn *c = container_of(r, sqlconn, res);
  sqljob *j, *next;
  int wake;
  c->closing = 1;
  uv_mutex_lock(&c->mu);
  c->quit = 1;
  if (c->running != NULL && c->db != NULL) sqlite3_interrupt(c->db);
  uv_cond_broadcast(&c->cond);
  wake = take_sleeper(c);
  uv_mutex_unlock(&c->mu);
  if (wake) uv_sem_post(&c->idle);
  if (c->thread_ok && !c->joined) {
    uv_thread_join(&c->thread);
    c->thread_ok = 0;
  }
  for (j = c->qhead; j != NULL; j = next) {
    next = j->next;
    free_job(j);
  }
  for (j = c->dhead; j != NULL; j = next) {
    next = j->next;
    if (j->t == NULL) free_job(j);
  }
  c->qhead = c->qtail = c->dhead = c->dtail = NULL;
  finish_close(c);
}

/* A cancelled task: drop its job if queued, interrupt it if running.  A
   job already done is the task's to see; opening and closing always run
   to their end. */
static int job_abandon(task *t, int woken) {
  sqljob *j = t->wobj;
  sqlconn *c = j->conn;
  uv_mutex_lock(&c->mu);
  if (woken && j->state == Q_DONE) {
    uv_mutex_unlock(&c->mu);
    return 0;
  }
  j->t = NULL;
  if (j->kind == J_OPEN || j->kind == J_CLOSE) {
    uv_mutex_unlock(&c->mu);
    return 1;
  }
  j->cancelled = 1;
  if (j->state == Q_QUEUED) {
    sqljob **pp = &c->qhead, *prev = NULL;
    while (*pp != NULL && *pp != j) {
      prev = *pp;
      pp = &(*pp)->next;
    }
    if (*pp == j) {
      *pp = j->next;
      if (c->qtail == j) c->qtail = prev;
    }
    uv_mutex_unlock(&c->mu);
    free_job(j);
    c->pending--;
    update_ref(c);
    return 1;
  }
  if (j->state == Q_RUNNING && c->running == j && c->db != NULL)
    sqlite3_interrupt(c->db);
  uv_cond_broadcast(&c->cond);
  uv_mutex_unlock(&c->mu);
  return 1;
}

static const waitops job_ops = {"a sqlite statement", job_abandon, NULL};

/* Lua. */

static void push_val(lua_State *L, const sqljob *j, const sqlval *v) {
  switch (v->type) {
  case V_INT:
    lua_pushinteger(L, (lua_Integer)v->u.i);
    break;
  case V_FLOAT:
    lua_pushnumber(L, v->u.d);
    break;
  case V_TEXT:
  case V_BLOB:
    lua_pushlstring(L, v->len ? j->rbuf.p + v->u.off : "", v->len);
    break;
  default:
    lua_pushlightuserdata(L, NULL); /* aio.null */
  }
}

/* Turn the batch into Lua: rows into the table at 2 (names at 3), or the
   first row or value at 2. */
static void take_rows(lua_State *L, sqljob *j) {
  size_t r;
  int i;
  if (j->mode == M_VALUE) {
    push_val(L, j, j->rows);
    lua_replace(L, 2);
    return;
  }
  if (lua_isnil(L, 3)) {
    lua_createtable(L, j->ncols, 0);
    for (i = 0; i < j->ncols; i++) {
      lua_pushstring(L, j->names[i]);
      lua_rawseti(L, -2, i + 1);
    }
    lua_replace(L, 3);
  }
  if (j->mode == M_ALL && lua_isnil(L, 2)) {
    lua_createtable(L, (int)j->nrows, 0);
    lua_replace(L, 2);
  }
  for (r = 0; r < j->nrows; r++) {
    const sqlval *v = j->rows + r * (size_t)j->ncols;
    lua_createtable(L, 0, j->ncols);
    for (i = 0; i < j->ncols; i++) {
      lua_rawgeti(L, 3, i + 1);
      push_val(L, j, v + i);
      lua_rawset(L, -3);
    }
    if (j->mode == M_ROW) {
      lua_replace(L, 2);
      return;
    }
    lua_rawseti(L, 2, (lua_Integer)(j->total - j->nrows + r + 1));
  }
}

/* true, results | false, msg, code; frees the job. */
static int job_result(lua_State *L, sqljob *j) {
  int n;
  if (j->rc != SQLITE_OK) {
    lua_pushboolean(L, 0);
    lua_pushstring(L, j->errmsg ? j->errmsg : sqlite3_errstr(j->rc));
    lua_pushstring(L, code_name(j->rc));
    free_job(j);
    return 3;
  }
  lua_pushboolean(L, 1);
  if (j->mode == M_EXEC) {
    lua_pushinteger(L, (lua_Integer)j->changes);
    lua_pushinteger(L, (lua_Integer)j->rowid);
    n = 3;
  } else {
    if (j->mode == M_ALL && lua_isnil(L, 2)) {
      lua_newtable(L);
      lua_replace(L, 2);
    }
    lua_pushvalue(L, 2);
    n = 2;
  }
  free_job(j);
  return n;
}

static int k_query(lua_State *L, int status, lua_KContext ctx) {
  task *t = luaio__host(L)->current;
  sqljob *j;
  sqlconn *c;
  int state;
  (void)status;
  luaio__resumed(L, t); /* cancelled: the job may be gone already */
  j = (sqljob *)ctx;
  c = j->conn;
  uv_mutex_lock(&c->mu);
  state = j->state;
  uv_mutex_unlock(&c->mu);
  if (j->nrows > 0 && j->rc == SQLITE_OK) take_rows(L, j);
  if (state == Q_BATCH) {
    j->nrows = 0;
    j->rbuf.len = 0;
    uv_mutex_lock(&c->mu);
    j->state = Q_RUNNING;
    uv_cond_broadcast(&c->cond);
    uv_mutex_unlock(&c->mu);
    return luaio__wait(L, t, &job_ops, j, ctx, k_query);
  }
  return job_result(L, j);
}

static sqlconn *checkconn(lua_State *L, int idx) {
  sqlconn *c = *(sqlconn **)luaL_checkudata(L, idx, "luaio.sqlite");
  if (c == NULL || c->closing)
    luaL_error(L, "attempt to use a closed connection");
  return c;
}

static sqljob *new_job(lua_State *L, sqlconn *c, int kind) {
  sqljob *j = calloc(1, sizeof *j);
  if (j == NULL) luaL_error(L, "not enough memory");
  j->conn = c;
  j->kind = kind;
  return j;
}

/* Copy the Lua value at idx into v; NULL or what is wrong with it. */
static const char *to_val(lua_State *L, int idx, sqlval *v, sqlbuf *b) {
  const char *s;
  size_t len;
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
    v->type = V_NULL;
    return NULL;
  case LUA_TBOOLEAN:
    v->type = V_INT;
    v->u.i = lua_toboolean(L, idx);
    return NULL;
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) {
      v->type = V_INT;
      v->u.i = (sqlite3_int64)lua_tointeger(L, idx);
    } else {
      v->type = V_FLOAT;
      v->u.d = lua_tonumber(L, idx);
    }
    return NULL;
  case LUA_TSTRING:
    s = lua_tolstring(L, idx, &len);
    v->type = V_TEXT;
    v->len = len;
    return buf_add(b, s, len, &v->u.off) ? NULL : "not enough memory";
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, idx) != NULL) break;
    v->type = V_NULL; /* aio.null */
    return NULL;
  case LUA_TTABLE: /* aio.sqlite.blob(s) */
    if (lua_getfield(L, idx, "blob") == LUA_TSTRING) {
      s = lua_tolstring(L, -1, &len);
      v->type = V_BLOB;
      v->len = len;
      lua_pop(L, 1);
      return buf_add(b, s, len, &v->u.off) ? NULL : "not enough memory";
    }
    lua_pop(L, 1);
    break;
  }
  return "cannot bind this value (numbers, strings, booleans, nil, "
         "aio.null and aio.sqlite.blob(s) can be bound)";
}

/* Copy n values from idx into the job's params at `at`; raises. */
static void copy_params(lua_State *L, sqljob *j, int idx, size_t n, size_t at) {
  size_t i;
  for (i = 0; i < n; i++) {
    const char *err = to_val(L, idx + (int)i, j->params + at + i, &j->pbuf);
    if (err != NULL) {
      free_job(j);
      luaL_error(L, "parameter %d: %s", (int)(i + 1), err);
    }
  }
}

static char *copy_sql(lua_State *L, sqljob *j, int idx) {
  size_t len;
  const char *sql = luaL_checklstring(L, idx, &len);
  j->sql = malloc(len + 1);
  if (j->sql == NULL) {
    free_job(j);
    luaL_error(L, "not enough memory");
  }
  memcpy(j->sql, sql, len + 1);
  j->sqllen = len;
  return j->sql;
}

/* Queue job j of task t on c and wait for its rows: the connection stays
   at 1, slots 2 and 3 receive what k_query reads. */
static int wait_query(lua_State *L, sqlconn *c, task *t, sqljob *j) {
  lua_settop(L, 1);
  lua_pushnil(L);
  lua_pushnil(L);
  j->t = t;
  submit(c, j);
  return luaio__wait(L, t, &job_ops, j, (lua_KContext)j, k_query);
}

/* conn:_query(mode, sql, ...) -> true, results | false, msg, code */
static int sqlite_query(lua_State *L) {
  sqlconn *c = checkconn(L, 1);
  lua_Integer mode = luaL_checkinteger(L, 2);
  size_t n = (size_t)(lua_gettop(L) - 3);
  sqljob *j;
  task *t;
  luaL_checkstring(L, 3);
  luaL_argcheck(L, mode >= M_EXEC && mode <= M_UNDO, 2, "bad mode");
  t = luaio__enter_wait(L, c->h);
  j = new_job(L, c, J_QUERY);
  j->mode = (int)mode;
  copy_sql(L, j, 3);
  j->nparams = n;
  if (n > 0 && (j->params = calloc(n, sizeof *j->params)) == NULL) {
    free_job(j);
    return luaL_error(L, "not enough memory");
  }
  copy_params(L, j, 4, n, 0);
  return wait_query(L, c, t, j);
}

/* conn:_many(sql, list) -> true, changes, rowid | false, msg, code */
static int sqlite_many(lua_State *L) {
  sqlconn *c = checkconn(L, 1);
  lua_Unsigned nsets, np = 0, s;
  sqljob *j;
  task *t;
  luaL_checkstring(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  nsets = lua_rawlen(L, 3);
  if (nsets > 0) {
    lua_rawgeti(L, 3, 1);
    luaL_argcheck(L, lua_istable(L, -1), 3, "a list of parameter arrays");
    np = lua_rawlen(L, -1);
    lua_pop(L, 1);
  }
  if (np > 0 && nsets > ((size_t)-1) / sizeof(sqlval) / np)
    return luaL_error(L, "too many parameters");
  t = luaio__enter_wait(L, c->h);
  j = new_job(L, c, J_MANY);
  j->mode = M_EXEC;
  copy_sql(L, j, 2);
  j->nparams = (size_t)np;
  j->nsets = (size_t)nsets;
  if (np * nsets > 0 &&
      (j->params = calloc((size_t)(np * nsets), sizeof *j->params)) == NULL) {
    free_job(j);
    return luaL_error(L, "not enough memory");
  }
  for (s = 0; s < nsets; s++) {
    lua_Unsigned i;
    if (lua_rawgeti(L, 3, (lua_Integer)s + 1) != LUA_TTABLE ||
        lua_rawlen(L, -1) != np) {
      free_job(j);
      return luaL_error(L, "parameter list %d: not an array of %d values",
                        (int)s + 1, (int)np);
    }
    lua_checkstack(L, (int)np + LUA_MINSTACK);
    for (i = 1; i <= np; i++)
      lua_rawgeti(L, -(int)i, (lua_Integer)i);
    copy_params(L, j, -(int)np, (size_t)np, (size_t)(s * np));
    lua_pop(L, (int)np + 1);
  }
  return wait_query(L, c, t, j);
}

/* conn:_autocommit() -> boolean: no transaction open after the last job */
static int sqlite_autocommit(lua_State *L) {
  sqlconn *c = checkconn(L, 1);
  lua_pushboolean(L, c->autocommit);
  return 1;
}

static int k_close(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  luaio__resumed(L, luaio__host(L)->current);
  free_job((sqljob *)ctx);
  return 0;
}

/* conn:close(): waits for the jobs queued before it, unless the caller
   cannot wait (then it closes behind them).  Closing again is harmless. */
static int sqlite_close(lua_State *L) {
  sqlconn *c = *(sqlconn **)luaL_checkudata(L, 1, "luaio.sqlite");
  task *t;
  sqljob *j;
  if (c == NULL || c->closing) return 0;
  t = c->h->current;
  if (t == NULL || t->ncancelled > 0 || !lua_isyieldable(L) ||
      (L != t->co && (L != c->h->nested || !c->h->nested_ok))) {
    submit_close(c, NULL);
    return 0;
  }
  j = new_job(L, c, J_CLOSE);
  c->closing = 1;
  j->t = t;
  lua_settop(L, 1);
  submit(c, j);
  return luaio__wait(L, t, &job_ops, j, (lua_KContext)j, k_close);
}

static int sqlite_gc(lua_State *L) {
  sqlconn **p = luaL_checkudata(L, 1, "luaio.sqlite"), *c = *p;
  if (c == NULL) return 0;
  *p = NULL;
  if (!c->closing) submit_close(c, NULL);
  c->collected = 1;
  if (c->closed) free_conn(c);
  return 0;
}

/* tostring(conn) -> "luaio.sqlite (path[, running][, n queued])" */
static int sqlite_tostring(lua_State *L) {
  sqlconn *c = *(sqlconn **)luaL_checkudata(L, 1, "luaio.sqlite");
  int running, queued = 0;
  sqljob *j;
  if (c == NULL || c->closing) {
    lua_pushliteral(L, "luaio.sqlite (closed)");
    return 1;
  }
  uv_mutex_lock(&c->mu);
  running = c->running != NULL;
  for (j = c->qhead; j != NULL; j = j->next)
    queued++;
  uv_mutex_unlock(&c->mu);
  lua_pushfstring(L, "luaio.sqlite (%s%s, %d queued)", c->path,
                  running ? ", running" : "", queued);
  return 1;
}

static int k_open(lua_State *L, int status, lua_KContext ctx) {
  sqljob *j;
  sqlconn *c;
  (void)status;
  luaio__resumed(L, luaio__host(L)->current);
  j = (sqljob *)ctx;
  c = j->conn;
  if (j->rc != SQLITE_OK) {
    lua_pushnil(L);
    lua_pushstring(L, j->errmsg ? j->errmsg : sqlite3_errstr(j->rc));
    lua_pushstring(L, code_name(j->rc));
    free_job(j);
    submit_close(c, NULL);
    return 3;
  }
  free_job(j);
  lua_settop(L, 1);
  return 1;
}

/* _sqlite.open(path, readonly, busy_ms) -> conn | nil, msg, code */
static int sqlite_open(lua_State *L) {
  luaio *h = luaio__host(L);
  const char *path = luaL_checkstring(L, 1);
  int readonly = lua_toboolean(L, 2);
  lua_Integer busy = luaL_optinteger(L, 3, 5000);
  sqlconn **p, *c;
  sqljob *j;
  task *t;
  luaL_argcheck(L, busy >= 0 && busy <= 0x7fffffff, 3, "out of range");
  t = luaio__enter_wait(L, h);
  lua_settop(L, 1);
  p = lua_newuserdatauv(L, sizeof *p, 0);
  *p = NULL;
  lua_replace(L, 1);
  c = calloc(1, sizeof *c);
  if (c == NULL || (c->path = strdup(path)) == NULL) {
    free(c);
    return luaL_error(L, "not enough memory");
  }
  j = calloc(1, sizeof *j);
  if (j == NULL || (j->sql = strdup(path)) == NULL) {
    free(j);
    free(c->path);
    free(c);
    return luaL_error(L, "not enough memory");
  }
  c->tag = &connkey;
  c->h = h;
  c->res.close = res_close;
  c->autocommit = 1;
  uv_mutex_init(&c->mu);
  uv_cond_init(&c->cond);
  uv_sem_init(&c->idle, 0);
  uv_async_init(h->loop, &c->async, on_async);
  c->async.data = c;
  *p = c;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &connkey);
  lua_setmetatable(L, 1);
  luaio__res_add(h, &c->res);
  update_ref(c);
  if (uv_thread_create(&c->thread, worker, c) != 0) {
    free_job(j);
    c->closing = 1;
    finish_close(c);
    lua_pushnil(L);
    lua_pushliteral(L, "cannot start the connection's thread");
    lua_pushliteral(L, "SQLITE_ERROR");
    return 3;
  }
  c->thread_ok = 1;
  j->conn = c;
  j->kind = J_OPEN;
  j->flags = (readonly ? SQLITE_OPEN_READONLY
                       : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
             SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI;
  j->busy_ms = (int)busy;
  j->t = t;
  submit(c, j);
  return luaio__wait(L, t, &job_ops, j, (lua_KContext)j, k_open);
}

static const luaL_Reg conn_methods[] = {
    {"_query", sqlite_query},           {"_many", sqlite_many},
    {"_autocommit", sqlite_autocommit}, {"close", sqlite_close},
    {"__close", sqlite_close},          {"__gc", sqlite_gc},
    {"__tostring", sqlite_tostring},    {NULL, NULL}};

LUAIO_API int luaopen_luaio__sqlite(lua_State *L) {
  luaio *h = luaio__open_host(L);
  luaL_newmetatable(L, "luaio.sqlite");
  lua_pushlightuserdata(L, h);
  luaL_setfuncs(L, conn_methods, 1);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__index");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &connkey);
  lua_createtable(L, 0, 4);
  lua_pushlightuserdata(L, h);
  lua_pushcclosure(L, sqlite_open, 1);
  lua_setfield(L, -2, "open");
  lua_pushstring(L, sqlite3_libversion());
  lua_setfield(L, -2, "version");
  lua_pushinteger(L, BATCH);
  lua_setfield(L, -2, "BATCH");
  return 1;
}

/*
** stream.c: buffered streams over libuv stream handles (TCP, pipes, TTYs)
** and over plain files (stdio redirected to a file).
**
** Reading: libuv reads into the stream's own buffer while fewer than
** `limit` bytes are buffered or a waiting reader needs more; a full buffer
** stops reading (read-side back-pressure).  Callbacks only append bytes
** and wake the reader; the reader's continuation takes what it needs, so a
** cancelled read loses nothing: the bytes stay buffered.
**
** Writing: a write first tries to write at once; the rest is queued with
** uv_write, pinning the Lua string by a registry reference until the
** request's callback.  The writer then waits while more than `high` bytes
** are queued (write-side back-pressure).
*/

#include <stdlib.h>
#include <string.h>

#include "stream.h"

#define READ_CHUNK (64 * 1024)

/* The registry key of the Stream metatable. */
static const char streamkey = 'S';

typedef struct wreq {
  uv_write_t req;
  stream *s;
  size_t len;
  int ref;   /* the Lua string being written */
  char *mem; /* or malloc'd bytes (TLS records), freed once written */
} wreq;

/* A file write keeps a copy of its bytes: a request on the thread pool
   may still run while luaio_free closes the Lua state. */
typedef struct fswrite {
  uv_fs_t req;
  stream *s;
  struct fswrite *next;
  uv_buf_t buf;
  char data[];
} fswrite;

typedef struct fsread {
  uv_fs_t req;
  stream *s;
  char data[READ_CHUNK];
} fsread;

typedef struct sreq {
  uv_shutdown_t req;
  task *t; /* NULL once the waiter let go */
  int status;
} sreq;

/* Results. */

int luaio__uv_fail(lua_State *L, int err) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", uv_err_name(err), uv_strerror(err));
  lua_pushstring(L, uv_err_name(err));
  return 3;
}

int luaio__fail(lua_State *L, const char *code, const char *msg) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", code, msg);
  lua_pushstring(L, code);
  return 3;
}

int luaio__stream_fail(lua_State *L, stream *s, int err) {
  if (err == STREAM_ETLS) return luaio__fail(L, "ETLS", luaio__tls_error(s));
  return luaio__uv_fail(L, err);
}

/* Life cycle. */

static void res_close(resource *r);

stream *luaio__stream_alloc(luaio *h, int kind) {
  stream *s = calloc(1, sizeof *s);
  if (s == NULL) return NULL;
  s->h = h;
  s->kind = (unsigned char)kind;
  s->fd = -1;
  s->limit = STREAM_LIMIT;
  s->high = STREAM_LIMIT;
  s->res.close = res_close;
  return s;
}

void luaio__stream_attach(stream *s) {
  if (s->kind != SK_FILE) s->u.handle.data = s;
  luaio__res_add(s->h, &s->res);
}

void luaio__stream_discard(stream *s) { free(s); }

static void free_stream(stream *s) {
  if (s->ud != NULL) s->ud->s = NULL;
  if (s->tls != NULL) luaio__tls_free(s);
  free(s->buf);
  free(s);
}

static void on_closed(uv_handle_t *handle) { free_stream(handle->data); }

static void detach(stream *s) {
  if (s->ud != NULL) {
    s->ud->s = NULL;
    s->ud = NULL;
  }
}

static void wake_all(waitlist *l) {
  task *t;
  while ((t = luaio__list_pop(l)) != NULL)
    luaio__wake(t, NULL, 0);
}

/* Drop the file writes not yet issued. */
static void drop_fswrites(stream *s) {
  fswrite *w = s->fs_head, *next;
  if (w != NULL && s->nreqs > 0) w = w->next; /* the one in flight */
  for (; w != NULL; w = next) {
    next = w->next;
    s->queued -= w->buf.len;
    free(w);
  }
  if (s->fs_head != NULL && s->nreqs > 0) {
    s->fs_head->next = NULL;
    s->fs_tail = s->fs_head;
  } else
    s->fs_head = s->fs_tail = NULL;
}

/* Start uv_close (or, for a file, free once no request is in flight). */
static void really_close(stream *s) {
  if (s->closing) return;
  s->closing = 1;
  luaio__res_remove(s->h, &s->res);
  if (s->tls != NULL) luaio__tls_stop(s);
  if (s->kind == SK_FILE) {
    drop_fswrites(s);
    if (s->nreqs == 0) free_stream(s);
    return;
  }
  if (s->stdio && s->kind == SK_PIPE) uv_stream_set_blocking(&s->u.stream, 1);
  uv_close(&s->u.handle, on_closed);
}

/* No more reading or writing from Lua: wake who waits. */
static void mark_closed(stream *s) {
  s->closed = 1;
  detach(s);
  s->want = 0;
  luaio__stream_update(s);
  wake_all(&s->readers);
  wake_all(&s->writers);
  if (s->tls != NULL) luaio__tls_stop(s);
}

void luaio__stream_close(stream *s) {
  if (s->closed) return;
  if (s->tls != NULL && !s->h->freeing) luaio__tls_close_notify(s);
  mark_closed(s);
  if (s->queued > 0 && s->werr == 0 && !s->h->freeing) {
    s->linger = 1; /* the last write's callback closes it */
    return;
  }
  really_close(s);
}

void luaio__stream_abort(stream *s) {
  if (s->closing) return;
  if (!s->closed) mark_closed(s);
  really_close(s);
}

static void res_close(resource *r) {
  luaio__stream_abort(container_of(r, stream, res));
}

/* Reading. */

/* Make room for n more bytes after the buffered ones; 0 if out of
   memory. */
int luaio__stream_reserve(stream *s, size_t n) {
  size_t cap;
  char *buf;
  if (s->off > 0 && s->cap - s->off - s->len < n) {
    memmove(s->buf, s->buf + s->off, s->len);
    s->off = 0;
  }
  if (s->cap - s->off - s->len >= n) return 1;
  cap = s->cap ? s->cap : 16 * 1024;
  while (cap - s->len < n)
    cap *= 2;
  buf = realloc(s->buf, cap);
  if (buf == NULL) return 0;
  s->buf = buf;
  s->cap = cap;
  return 1;
}

static void wake_reader(stream *s) {
  task *t = luaio__list_pop(&s->readers);
  if (t != NULL) {
    s->want = 0;
    luaio__wake(t, NULL, 0);
  }
}

/* After bytes, an end or an error arrived. */
void luaio__stream_arrived(stream *s) {
  if (s->len >= s->want || s->eof || s->rerr) wake_reader(s);
  luaio__stream_update(s);
  if ((s->eof || s->rerr) && s->on_end != NULL) s->on_end(s);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  stream *s = handle->data;
  (void)suggested;
  if (s->tls != NULL) {
    luaio__tls_alloc(s, buf); /* ciphertext goes to the TLS layer */
    return;
  }
  if (luaio__stream_reserve(s, READ_CHUNK)) {
    buf->base = s->buf + s->off + s->len;
    buf->len = s->cap - s->off - s->len;
  } else {
    buf->base = NULL;
    buf->len = 0;
  }
}

static void on_read(uv_stream_t *handle, ssize_t nread, const uv_buf_t *buf) {
  stream *s = handle->data;
  (void)buf;
  if (s->tls != NULL) {
    if (nread == 0) return;
    luaio__tls_input(s, nread); /* ciphertext: through the TLS layer */
    luaio__stream_arrived(s);
    /* the socket's end, before any reader decrypted up to it */
    if (nread < 0 && s->on_end != NULL) s->on_end(s);
    return;
  }
  if (nread > 0)
    s->len += (size_t)nread;
  else if (nread == UV_EOF)
    s->eof = 1;
  else if (nread < 0)
    s->rerr = (int)nread;
  else
    return;
  luaio__stream_arrived(s);
}

static void on_fs_read(uv_fs_t *req) {
  fsread *r = container_of(req, fsread, req);
  stream *s = r->s;
  ssize_t n = req->result;
  uv_fs_req_cleanup(req);
  s->nreqs--;
  s->reading = 0;
  if (s->closing) {
    free(r);
    if (s->nreqs == 0) free_stream(s);
    return;
  }
  if (n > 0) {
    if (luaio__stream_reserve(s, (size_t)n)) {
      memcpy(s->buf + s->off + s->len, r->data, (size_t)n);
      s->len += (size_t)n;
    } else
      s->rerr = UV_ENOMEM;
  } else if (n == 0)
    s->eof = 1;
  else
    s->rerr = (int)n;
  free(r);
  luaio__stream_arrived(s);
}

static void fs_read_next(stream *s) {
  fsread *r = malloc(sizeof *r);
  uv_buf_t b;
  int err;
  if (r == NULL) {
    s->rerr = UV_ENOMEM;
    wake_reader(s);
    return;
  }
  r->s = s;
  b = uv_buf_init(r->data, sizeof r->data);
  err = uv_fs_read(s->h->loop, &r->req, s->fd, &b, 1, -1, on_fs_read);
  if (err < 0) {
    free(r);
    s->rerr = err;
    wake_reader(s);
    return;
  }
  s->nreqs++;
  s->reading = 1;
}

/* Read while the buffer is below the limit or a reader needs more; a
   stream on demand only while a reader needs more. */
void luaio__stream_update(stream *s) {
  int want = !s->closed && !s->wronly && !s->eof && !s->rerr &&
             ((s->len < s->limit && !s->demand) || s->len < s->want);
  if (s->tls != NULL) {
    want = !s->closed && !s->eof && !s->rerr && luaio__tls_wants_input(s);
    luaio__tls_update(s);
  }
  if (s->kind == SK_FILE) {
    if (want && !s->reading) fs_read_next(s);
    return;
  }
  if (want && !s->reading) {
    int err = uv_read_start(&s->u.stream, on_alloc, on_read);
    if (err < 0) {
      s->rerr = err;
      wake_reader(s);
    } else
      s->reading = 1;
  } else if (!want && s->reading) {
    uv_read_stop(&s->u.stream);
    s->reading = 0;
  }
}

static void consume(stream *s, size_t n) {
  s->off += n;
  s->len -= n;
  s->scan = 0;
  if (s->len == 0) s->off = 0;
}

static void push_take(lua_State *L, stream *s, size_t n) {
  lua_pushlstring(L, s->buf + s->off, n);
  consume(s, n);
}

/* The readers: each pushes its results and returns their number, or
   returns -1 and sets *need to the bytes it waits for. */
enum { R_READ, R_EXACTLY, R_UNTIL, R_LINE, R_LINES, R_ALL };

static int rd_read(lua_State *L, stream *s, size_t *need) {
  lua_Integer n = luaL_optinteger(L, 2, -1);
  if (n == 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  if (s->len > 0) {
    push_take(L, s, n < 0 || (size_t)n > s->len ? s->len : (size_t)n);
    return 1;
  }
  if (s->rerr) return luaio__stream_fail(L, s, s->rerr);
  if (s->eof) {
    lua_pushnil(L);
    return 1;
  }
  *need = 1;
  return -1;
}

static int rd_exactly(lua_State *L, stream *s, size_t *need) {
  size_t n = (size_t)lua_tointeger(L, 2);
  if (s->len >= n) {
    push_take(L, s, n);
    return 1;
  }
  if (s->eof || s->rerr) {
    if (s->rerr)
      luaio__stream_fail(L, s, s->rerr);
    else
      luaio__fail(L, "EOF", "end of stream before the requested bytes");
    push_take(L, s, s->len);
    return 4;
  }
  *need = n;
  return -1;
}

/* Where sep starts in the buffered bytes, from s->scan; -1 if nowhere. */
static ptrdiff_t find(stream *s, const char *sep, size_t seplen) {
  const char *b = s->buf + s->off, *p = b + s->scan, *end = b + s->len;
  while (end - p >= (ptrdiff_t)seplen) {
    p = memchr(p, sep[0], (size_t)(end - p) - seplen + 1);
    if (p == NULL) break;
    if (memcmp(p, sep, seplen) == 0) return p - b;
    p++;
  }
  s->scan = s->len >= seplen ? s->len - seplen + 1 : 0;
  return -1;
}

static int overrun(lua_State *L, stream *s) {
  lua_pushnil(L);
  lua_pushfstring(L, "ENOBUFS: no separator within the limit of %I bytes",
                  (lua_Integer)s->limit);
  lua_pushliteral(L, "ENOBUFS");
  return 3;
}

static int rd_until(lua_State *L, stream *s, size_t *need, int op) {
  size_t seplen = 1;
  const char *sep = op == R_UNTIL ? lua_tolstring(L, 2, &seplen) : "\n";
  ptrdiff_t at = find(s, sep, seplen);
  if (at >= 0) {
    size_t n = (size_t)at;
    if (n > s->limit) goto over;
    if (op == R_UNTIL) {
      push_take(L, s, n + seplen);
      return 1;
    }
    if (n > 0 && s->buf[s->off + n - 1] == '\r') n--;
    lua_pushlstring(L, s->buf + s->off, n);
    consume(s, (size_t)at + 1);
    return 1;
  }
  if (s->len >= s->limit + seplen) goto over;
  if (s->eof || s->rerr) {
    if (s->len == 0) {
      if (s->rerr == 0) {
        lua_pushnil(L);
        return 1;
      }
      if (op == R_LINES) {
        /* A peer that resets ends the lines it sent, as an end would:
           a server's handler loop is not failed by a client leaving. */
        if (s->rerr == UV_ECONNRESET ||
            (s->rerr == STREAM_ETLS && luaio__tls_truncated(s))) {
          lua_pushnil(L);
          return 1;
        }
        luaio__stream_fail(L, s, s->rerr);
        return luaL_error(L, "%s", lua_tostring(L, -2));
      }
      return luaio__stream_fail(L, s, s->rerr);
    }
    if (op != R_UNTIL) {
      push_take(L, s, s->len);
      return 1;
    }
    if (s->rerr)
      luaio__stream_fail(L, s, s->rerr);
    else
      luaio__fail(L, "EOF", "end of stream before the separator");
    push_take(L, s, s->len);
    return 4;
  }
  *need = s->len + 1;
  return -1;
over:
  if (op == R_LINES)
    return luaL_error(L, "line longer than the limit of %I bytes",
                      (lua_Integer)s->limit);
  return overrun(L, s);
}

static int rd_all(lua_State *L, stream *s, size_t *need) {
  if (s->rerr) {
    luaio__stream_fail(L, s, s->rerr);
    push_take(L, s, s->len);
    return 4;
  }
  if (s->eof) {
    push_take(L, s, s->len);
    return 1;
  }
  *need = (size_t)-1;
  return -1;
}

static int try_read(lua_State *L, stream *s, int op, size_t *need) {
  switch (op) {
  case R_READ:
    return rd_read(L, s, need);
  case R_EXACTLY:
    return rd_exactly(L, s, need);
  case R_ALL:
    return rd_all(L, s, need);
  default:
    return rd_until(L, s, need, op);
  }
}

static int read_abandon(task *t, int woken) {
  stream *s = t->wobj;
  if (!woken) {
    luaio__list_remove(&t->w);
    s->want = 0;
    luaio__stream_update(s);
  }
  return 1;
}

static const waitops read_ops = {"stream read", read_abandon, NULL};

static int k_read(lua_State *L, int status, lua_KContext ctx);

/* Read with the reader `op`, waiting for bytes as long as it needs. */
static int read_step(lua_State *L, int op) {
  streamud *ud = lua_touserdata(L, 1);
  stream *s = ud->s;
  size_t need = 0;
  int n;
  task *t;
  if (s == NULL) {
    if (op == R_LINES) return luaL_error(L, "stream closed while reading");
    return luaio__uv_fail(L, UV_ECANCELED);
  }
  n = try_read(L, s, op, &need);
  if (n >= 0) {
    luaio__stream_update(s);
    return n;
  }
  if (s->tls != NULL) { /* decrypt what is there before waiting */
    int more;
    s->want = need;
    more = luaio__tls_decrypt(s);
    s->want = 0;
    if (more) return read_step(L, op);
  }
  t = luaio__enter_wait(L, s->h);
  s->want = need;
  luaio__stream_update(s);
  if (s->rerr) { /* starting to read failed */
    s->want = 0;
    return read_step(L, op);
  }
  luaio__list_push(&s->readers, &t->w);
  return luaio__wait(L, t, &read_ops, s, op, k_read);
}

static int k_read(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  luaio__resumed(L, luaio__host(L)->current);
  return read_step(L, (int)ctx);
}

stream *luaio__checkstream(lua_State *L, int idx) {
  streamud *ud = luaL_checkudata(L, idx, "luaio.Stream");
  if (ud->s == NULL) luaL_error(L, "attempt to use a closed stream");
  return ud->s;
}

static int start_read(lua_State *L, int op) {
  stream *s = luaio__checkstream(L, 1);
  if (s->readers.n > 0)
    return luaL_error(L, "another task is already reading this stream");
  if (s->wronly) return luaL_error(L, "this stream is not readable");
  s->scan = 0; /* the search offset of a read that gave up (cancelled,
                  overrun) was for its separator, not this one */
  return read_step(L, op);
}

/* stream:read([n]) -> data | nil (at the end) | nil, msg, code */
static int stream_read(lua_State *L) {
  if (!lua_isnoneornil(L, 2))
    luaL_argcheck(L, luaL_checkinteger(L, 2) >= 0, 2, "negative size");
  lua_settop(L, 2);
  return start_read(L, R_READ);
}

/* stream:read_exactly(n) -> data | nil, msg, code, partial */
static int stream_read_exactly(lua_State *L) {
  luaL_argcheck(L, luaL_checkinteger(L, 2) >= 0, 2, "negative size");
  lua_settop(L, 2);
  return start_read(L, R_EXACTLY);
}

/* stream:read_until(sep) -> record | nil | nil, msg, code [, partial] */
static int stream_read_until(lua_State *L) {
  size_t len;
  luaL_checklstring(L, 2, &len);
  luaL_argcheck(L, len > 0, 2, "empty separator");
  lua_settop(L, 2);
  return start_read(L, R_UNTIL);
}

/* stream:read_line() -> line | nil | nil, msg, code */
static int stream_read_line(lua_State *L) {
  lua_settop(L, 1);
  return start_read(L, R_LINE);
}

/* stream:read_all() -> data | nil, msg, code, partial */
int luaio__stream_read_all(lua_State *L) {
  lua_settop(L, 1);
  return start_read(L, R_ALL);
}

/* The iterator of stream:lines(): the next line, nil at the end; raises
   on a failure. */
static int lines_next(lua_State *L) {
  lua_settop(L, 0);
  lua_pushvalue(L, lua_upvalueindex(2));
  return start_read(L, R_LINES);
}

/* stream:lines() -> iterator */
static int stream_lines(lua_State *L) {
  luaio__checkstream(L, 1);
  lua_pushlightuserdata(L, luaio__host(L));
  lua_pushvalue(L, 1);
  lua_pushcclosure(L, lines_next, 2);
  return 1;
}

/* Writing. */

static void write_done(stream *s) {
  if (s->queued <= s->high || s->werr) wake_all(&s->writers);
  if (s->linger && !s->closing && (s->queued == 0 || s->werr)) really_close(s);
}

static void on_write(uv_write_t *req, int status) {
  wreq *w = container_of(req, wreq, req);
  stream *s = w->s;
  s->queued -= w->len;
  if (w->mem != NULL)
    free(w->mem);
  else if (!s->h->freeing)
    luaL_unref(s->h->L, LUA_REGISTRYINDEX, w->ref);
  free(w);
  if (status < 0 && status != UV_ECANCELED && s->werr == 0) s->werr = status;
  write_done(s);
}

static void fs_issue(stream *s);

static void on_fs_write(uv_fs_t *req) {
  fswrite *w = container_of(req, fswrite, req);
  stream *s = w->s;
  ssize_t n = req->result;
  uv_fs_req_cleanup(req);
  s->nreqs--;
  if (n >= 0 && (size_t)n < w->buf.len && !s->closing) {
    w->buf.base += n;
    w->buf.len -= (size_t)n;
    s->queued -= (size_t)n;
    fs_issue(s);
    return;
  }
  if (n < 0 && s->werr == 0) s->werr = (int)n;
  s->queued -= w->buf.len;
  s->fs_head = w->next;
  if (s->fs_head == NULL) s->fs_tail = NULL;
  free(w);
  if (s->closing || s->werr) drop_fswrites(s);
  if (s->closing) {
    if (s->nreqs == 0) free_stream(s);
    return;
  }
  if (s->fs_head != NULL) fs_issue(s);
  write_done(s);
}

static void fs_issue(stream *s) {
  fswrite *w = s->fs_head;
  int err =
      uv_fs_write(s->h->loop, &w->req, s->fd, &w->buf, 1, -1, on_fs_write);
  if (err < 0) {
    if (s->werr == 0) s->werr = err;
    drop_fswrites(s);
    s->queued -= w->buf.len;
    s->fs_head = s->fs_tail = NULL;
    free(w);
    write_done(s);
    return;
  }
  s->nreqs++;
}

/* Queue the string at index 2 (data, len) after what is queued; 0 or a
   libuv error. */
static int queue_write(lua_State *L, stream *s, const char *data, size_t len) {
  size_t off = 0;
  int ref, err;
  uv_buf_t b;
  wreq *w;
  if (s->kind == SK_FILE) {
    fswrite *f = malloc(sizeof *f + len);
    if (f == NULL) return UV_ENOMEM;
    memcpy(f->data, data, len);
    f->s = s;
    f->next = NULL;
    f->buf = uv_buf_init(f->data, (unsigned)len);
    s->queued += len;
    if (s->fs_tail != NULL) {
      s->fs_tail->next = f;
      s->fs_tail = f;
      return 0;
    }
    s->fs_head = s->fs_tail = f;
    fs_issue(s);
    return s->werr;
  }
  if (s->queued == 0 && s->u.stream.write_queue_size == 0) {
    int n;
    b = uv_buf_init((char *)data, (unsigned)len);
    n = uv_try_write(&s->u.stream, &b, 1);
    if (n >= 0)
      off = (size_t)n;
    else if (n != UV_EAGAIN && n != UV_ENOSYS)
      return n;
    if (off == len) return 0;
  }
  lua_pushvalue(L, 2);
  ref = luaL_ref(L, LUA_REGISTRYINDEX);
  if ((w = malloc(sizeof *w)) == NULL) {
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
    return UV_ENOMEM;
  }
  w->s = s;
  w->ref = ref;
  w->mem = NULL;
  w->len = len - off;
  b = uv_buf_init((char *)data + off, (unsigned)(len - off));
  err = uv_write(&w->req, &s->u.stream, &b, 1, on_write);
  if (err < 0) {
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
    free(w);
    return err;
  }
  s->queued += w->len;
  return 0;
}

int luaio__stream_send(stream *s, char *mem, size_t len) {
  size_t off = 0;
  uv_buf_t b;
  wreq *w;
  int err;
  if (s->queued == 0 && s->u.stream.write_queue_size == 0) {
    int n;
    b = uv_buf_init(mem, (unsigned)len);
    n = uv_try_write(&s->u.stream, &b, 1);
    if (n >= 0)
      off = (size_t)n;
    else if (n != UV_EAGAIN && n != UV_ENOSYS) {
      free(mem);
      return n;
    }
    if (off == len) {
      free(mem);
      return 0;
    }
  }
  if ((w = malloc(sizeof *w)) == NULL) {
    free(mem);
    return UV_ENOMEM;
  }
  w->s = s;
  w->ref = LUA_NOREF;
  w->mem = mem;
  w->len = len - off;
  b = uv_buf_init(mem + off, (unsigned)(len - off));
  err = uv_write(&w->req, &s->u.stream, &b, 1, on_write);
  if (err < 0) {
    free(mem);
    free(w);
    return err;
  }
  s->queued += w->len;
  return 0;
}

static int write_abandon(task *t, int woken) {
  if (!woken) luaio__list_remove(&t->w);
  return 1;
}

static const waitops write_ops = {"stream write", write_abandon, NULL};

static int k_write(lua_State *L, int status, lua_KContext ctx);

/* Wait until at most `mark` bytes are queued (ctx 1: the high-water mark,
   0: none); returns the stream. */
static int write_step(lua_State *L, int flush) {
  streamud *ud = lua_touserdata(L, 1);
  stream *s = ud->s;
  task *t;
  if (s == NULL) return luaio__uv_fail(L, UV_ECANCELED);
  if (s->werr) return luaio__stream_fail(L, s, s->werr);
  if (s->queued <= (flush ? 0 : s->high)) {
    lua_settop(L, 1);
    return 1;
  }
  t = luaio__enter_wait(L, s->h);
  luaio__list_push(&s->writers, &t->w);
  return luaio__wait(L, t, &write_ops, s, flush, k_write);
}

static int k_write(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  luaio__resumed(L, luaio__host(L)->current);
  return write_step(L, (int)ctx);
}

/* stream:write(data) -> stream | nil, msg, code */
static int stream_write(lua_State *L) {
  stream *s = luaio__checkstream(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  lua_settop(L, 2);
  if (s->shut) return luaL_error(L, "attempt to write after shutdown");
  if (s->werr) return luaio__stream_fail(L, s, s->werr);
  if (len > 0) {
    int err = s->tls != NULL ? luaio__tls_write(s, data, len)
                             : queue_write(L, s, data, len);
    if (err < 0) return luaio__stream_fail(L, s, err);
  }
  return write_step(L, 0);
}

/* stream:drain() -> stream | nil, msg, code: waits until no more than the
   high-water mark is queued */
static int stream_drain(lua_State *L) {
  luaio__checkstream(L, 1);
  lua_settop(L, 1);
  return write_step(L, 0);
}

/* stream:flush() -> stream | nil, msg, code: waits until nothing is
   queued */
static int stream_flush(lua_State *L) {
  luaio__checkstream(L, 1);
  lua_settop(L, 1);
  return write_step(L, 1);
}

/* Shutting down. */

static void on_shutdown(uv_shutdown_t *req, int status) {
  sreq *r = container_of(req, sreq, req);
  if (r->t == NULL) {
    free(r);
    return;
  }
  r->status = status;
  luaio__wake(r->t, NULL, 0);
}

static int shutdown_abandon(task *t, int woken) {
  sreq *r = t->wobj;
  if (woken)
    free(r);
  else
    r->t = NULL; /* on_shutdown frees it */
  return 1;
}

static const waitops shutdown_ops = {"stream shutdown", shutdown_abandon, NULL};

static int k_shutdown(lua_State *L, int status, lua_KContext ctx) {
  sreq *r = (sreq *)ctx;
  int st;
  (void)status;
  luaio__resumed(L, luaio__host(L)->current);
  st = r->status;
  free(r);
  if (st < 0) return luaio__uv_fail(L, st);
  lua_pushboolean(L, 1);
  return 1;
}

/* stream:shutdown() -> true | nil, msg, code: waits until the queued
   writes are written, then closes the writing side */
static int stream_shutdown(lua_State *L) {
  stream *s = luaio__checkstream(L, 1);
  task *t;
  sreq *r;
  int err;
  if (s->shut || s->kind == SK_FILE) {
    s->shut = 1;
    lua_pushboolean(L, 1);
    return 1;
  }
  t = luaio__enter_wait(L, s->h);
  if ((r = malloc(sizeof *r)) == NULL) return luaio__uv_fail(L, UV_ENOMEM);
  if (s->tls != NULL) luaio__tls_close_notify(s);
  r->t = t;
  r->status = 0;
  err = uv_shutdown(&r->req, &s->u.stream, on_shutdown);
  if (err < 0) {
    free(r);
    return luaio__uv_fail(L, err);
  }
  s->shut = 1;
  return luaio__wait(L, t, &shutdown_ops, r, (lua_KContext)r, k_shutdown);
}

/* stream:close(): also __close and __gc */
static int stream_close(lua_State *L) {
  streamud *ud = luaL_checkudata(L, 1, "luaio.Stream");
  stream *s = ud->s;
  if (s != NULL) {
    detach(s);
    luaio__stream_close(s);
  }
  return 0;
}

/* Addresses. */

static int push_sockaddr(lua_State *L, const struct sockaddr_storage *ss) {
  char ip[INET6_ADDRSTRLEN];
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    uv_ip4_name(a, ip, sizeof ip);
    lua_pushstring(L, ip);
    lua_pushinteger(L, ntohs(a->sin_port));
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    uv_ip6_name(a, ip, sizeof ip);
    lua_pushstring(L, ip);
    lua_pushinteger(L, ntohs(a->sin6_port));
  } else
    return luaio__uv_fail(L, UV_EAFNOSUPPORT);
  return 2;
}

static int push_name(lua_State *L, int peer) {
  stream *s = luaio__checkstream(L, 1);
  if (s->kind == SK_TCP) {
    struct sockaddr_storage ss;
    int len = sizeof ss, err;
    err = peer ? uv_tcp_getpeername(&s->u.tcp, (struct sockaddr *)&ss, &len)
               : uv_tcp_getsockname(&s->u.tcp, (struct sockaddr *)&ss, &len);
    if (err < 0) return luaio__uv_fail(L, err);
    return push_sockaddr(L, &ss);
  }
  if (s->kind == SK_PIPE) {
    char path[1024];
    size_t len = sizeof path;
    int err = peer ? uv_pipe_getpeername(&s->u.pipe, path, &len)
                   : uv_pipe_getsockname(&s->u.pipe, path, &len);
    if (err < 0) return luaio__uv_fail(L, err);
    lua_pushlstring(L, path, len);
    return 1;
  }
  return luaio__uv_fail(L, UV_ENOTSOCK);
}

/* stream:peername() -> host, port | path | nil, msg, code */
static int stream_peername(lua_State *L) { return push_name(L, 1); }

/* stream:sockname() -> host, port | path | nil, msg, code */
static int stream_sockname(lua_State *L) { return push_name(L, 0); }

/* stream:queued() -> bytes queued for writing, bytes buffered for
   reading */
static int stream_queued(lua_State *L) {
  stream *s = luaio__checkstream(L, 1);
  lua_pushinteger(L, (lua_Integer)s->queued);
  lua_pushinteger(L, (lua_Integer)s->len);
  return 2;
}

/* stream:closed() -> boolean */
static int stream_closed(lua_State *L) {
  streamud *ud = luaL_checkudata(L, 1, "luaio.Stream");
  lua_pushboolean(L, ud->s == NULL);
  return 1;
}

static const char *const kind_names[] = {"tcp", "pipe", "tty", "file"};

/* tostring(stream) -> "<stream tcp 0x…>" */
static int stream_tostring(lua_State *L) {
  streamud *ud = luaL_checkudata(L, 1, "luaio.Stream");
  if (ud->s == NULL)
    lua_pushfstring(L, "<stream closed %p>", (void *)ud);
  else
    lua_pushfstring(L, "<stream %s%s %p>", kind_names[ud->s->kind],
                    ud->s->tls != NULL ? " tls" : "", (void *)ud);
  return 1;
}

void luaio__stream_opts(lua_State *L, int idx, stream *s) {
  if (lua_type(L, idx) != LUA_TTABLE) return;
  if (lua_getfield(L, idx, "limit") != LUA_TNIL) {
    lua_Integer n = luaL_checkinteger(L, -1);
    luaL_argcheck(L, n > 0, idx, "limit must be positive");
    s->limit = (size_t)n;
  }
  if (lua_getfield(L, idx, "high_water") != LUA_TNIL) {
    lua_Integer n = luaL_checkinteger(L, -1);
    luaL_argcheck(L, n >= 0, idx, "high_water must not be negative");
    s->high = (size_t)n;
  }
  lua_pop(L, 2);
}

void luaio__stream_push(lua_State *L, stream *s) {
  streamud *ud = lua_newuserdatauv(L, sizeof *ud, 0);
  ud->s = s;
  s->ud = ud;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &streamkey);
  lua_setmetatable(L, -2);
  luaio__stream_update(s);
}

static const luaL_Reg stream_methods[] = {{"read", stream_read},
                                          {"read_exactly", stream_read_exactly},
                                          {"read_until", stream_read_until},
                                          {"read_line", stream_read_line},
                                          {"read_all", luaio__stream_read_all},
                                          {"lines", stream_lines},
                                          {"write", stream_write},
                                          {"drain", stream_drain},
                                          {"flush", stream_flush},
                                          {"shutdown", stream_shutdown},
                                          {"close", stream_close},
                                          {"closed", stream_closed},
                                          {"peername", stream_peername},
                                          {"sockname", stream_sockname},
                                          {"queued", stream_queued},
                                          {"starttls", luaio__stream_starttls},
                                          {"tls_info", luaio__stream_tls_info},
                                          {NULL, NULL}};

void luaio__stream_open(lua_State *L, luaio *h) {
  luaL_newmetatable(L, "luaio.Stream");
  lua_newtable(L);
  lua_pushlightuserdata(L, h);
  luaL_setfuncs(L, stream_methods, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, stream_close);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, stream_close);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, stream_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &streamkey);
}

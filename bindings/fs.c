/*
** fs.c: aio.fs, files through libuv's fs requests on its thread pool.
**
** Each Lua call is one operation (an fsop, malloc'd) that may chain several
** libuv requests in C: read_file opens, stats, reads chunk after chunk and
** closes before the task is woken once.  The operation keeps its own
** buffers (data to write is copied in, data read lands in malloc'd memory),
** so a request never points into Lua memory.
**
** Waking carries no values: the continuation reads the result from the
** operation and frees it.  When the waiting task is cancelled, the abandon
** hook clears op->t and asks uv_cancel to drop the request; whatever runs
** anyway finishes in the callbacks, which close what was opened and free
** the operation without touching Lua.
**
** A file object holds a malloc'd fsfile with the descriptor and a read-
** ahead buffer (for lines and short reads).  One operation at a time runs
** on a file; data read ahead is kept when a read is cancelled.  A file
** collected while an abandoned operation still runs is closed and freed by
** that operation's callback.
*/

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "uvfail.h"

#define CHUNK (256 * 1024) /* bytes per read request */

/* The registry key of the file metatable. */
static const char filekey = 'F';

enum {
  OP_READ_FILE,
  OP_WRITE_FILE,
  OP_STAT,
  OP_SCANDIR,
  OP_MKDIR,
  OP_REMOVE,
  OP_RENAME,
  OP_OPEN,
  OP_READ,
  OP_WRITE,
  OP_CLOSE
};
enum { S_START, S_OPEN, S_FSTAT, S_READ, S_WRITE, S_CLOSE, S_RMDIR };
enum { UNTIL_N, UNTIL_ALL, UNTIL_LINE };

struct fsop;

typedef struct fsfile {
  luaio *h;
  uv_file fd;           /* -1 once closed */
  unsigned char closed; /* closed by the user: the fd goes when not busy */
  unsigned char orphan; /* the userdata was collected while busy */
  struct fsop *busy;    /* the operation in progress */
  char *buf;            /* read ahead: unread bytes are buf[off, len) */
  size_t len, off, cap;
} fsfile;

typedef struct dent {
  char *name;
  const char *type;
} dent;

typedef struct fsop {
  uv_fs_t req;
  uv_loop_t *loop;
  task *t; /* the waiting task; NULL once it gave up */
  int kind, stage;
  int result; /* 0, or a negative libuv error */
  uv_file fd; /* a file the operation opened itself, -1 if none */
  char *data; /* read into / written from */
  size_t len, cap, done;
  uv_stat_t st;
  dent *ents;
  size_t nents;
  fsfile *file;
  char *path; /* remove's, for its second request */
  int until;
  size_t want, scanned;
} fsop;

/* Releasing. */

static void free_file(fsfile *f) {
  free(f->buf);
  free(f);
}

/* A file whose operation ended: close what the user closed or dropped. */
static void file_idle(fsfile *f) {
  f->busy = NULL;
  if ((f->closed || f->orphan) && f->fd >= 0) {
    close(f->fd); /* a rare path: no wait is possible here */
    f->fd = -1;
  }
  if (f->orphan) free_file(f);
}

static void release(fsop *op) {
  size_t i;
  if (op->file != NULL && op->file->busy == op) file_idle(op->file);
  for (i = 0; i < op->nents; i++)
    free(op->ents[i].name);
  free(op->ents);
  free(op->data);
  free(op->path);
  free(op);
}

static int fs_abandon(task *t, int woken) {
  fsop *op = t->wobj;
  if (woken) return 0; /* finished: the task sees the result */
  op->t = NULL;
  uv_cancel((uv_req_t *)&op->req);
  return 1;
}

static const waitops fs_ops = {"a file operation", fs_abandon, NULL};

/* The chain of requests. */

static void on_fs(uv_fs_t *req);

/* Wake the task, or free the operation nobody waits for any more. */
static void finish(fsop *op) {
  if (op->t != NULL)
    luaio__wake(op->t, NULL, 0);
  else
    release(op);
}

/* Fail with err, closing the file the operation opened. */
static void fail(fsop *op, int err) {
  if (op->result == 0) op->result = err;
  if (op->fd >= 0 && op->stage != S_CLOSE) {
    op->stage = S_CLOSE;
    if (uv_fs_close(op->loop, &op->req, op->fd, on_fs) == 0) return;
  }
  op->fd = -1;
  finish(op);
}

/* Make room for n more bytes in op->data; 0 or UV_ENOMEM. */
static int reserve(char **buf, size_t *cap, size_t len, size_t n) {
  size_t need = len + n, c = *cap ? *cap : n;
  char *p;
  if (need <= *cap) return 0;
  while (c < need)
    c *= 2;
  p = realloc(*buf, c);
  if (p == NULL) return UV_ENOMEM;
  *buf = p;
  *cap = c;
  return 0;
}

/* Issue the next read of read_file. */
static int read_chunk(fsop *op) {
  uv_buf_t b;
  int err = reserve(&op->data, &op->cap, op->len, CHUNK);
  if (err) return err;
  b = uv_buf_init(op->data + op->len, CHUNK);
  op->stage = S_READ;
  return uv_fs_read(op->loop, &op->req, op->fd, &b, 1, -1, on_fs);
}

/* Issue the next write of write_file or file:write. */
static int write_chunk(fsop *op, uv_file fd) {
  uv_buf_t b =
      uv_buf_init(op->data + op->done,
                  (unsigned)(op->len - op->done < CHUNK * 4 ? op->len - op->done
                                                            : CHUNK * 4));
  op->stage = S_WRITE;
  return uv_fs_write(op->loop, &op->req, fd, &b, 1, -1, on_fs);
}

/* A file read: has the buffer what the read asks for? */
static int satisfied(fsop *op) {
  fsfile *f = op->file;
  size_t avail = f->len - f->off;
  const char *nl;
  if (op->until == UNTIL_N) return avail >= op->want;
  if (op->until == UNTIL_ALL) return 0;
  if (op->scanned < f->off) op->scanned = f->off;
  nl = memchr(f->buf + op->scanned, '\n', f->len - op->scanned);
  op->scanned = f->len;
  return nl != NULL;
}

/* A file read: read more into the file's buffer. */
static int file_fill(fsop *op) {
  fsfile *f = op->file;
  size_t avail = f->len - f->off, n = CHUNK;
  uv_buf_t b;
  int err;
  if (f->off > 0) { /* keep the unread bytes at the front */
    memmove(f->buf, f->buf + f->off, avail);
    op->scanned -= op->scanned >= f->off ? f->off : op->scanned;
    f->len = avail;
    f->off = 0;
  }
  if (op->until == UNTIL_N && op->want - avail < n) n = op->want - avail;
  err = reserve(&f->buf, &f->cap, f->len, n);
  if (err) return err;
  b = uv_buf_init(f->buf + f->len, (unsigned)n);
  op->stage = S_READ;
  return uv_fs_read(op->loop, &op->req, f->fd, &b, 1, -1, on_fs);
}

/* One step of read_file. */
static void step_read_file(fsop *op, ssize_t r) {
  int err = 0;
  switch (op->stage) {
  case S_OPEN:
    op->fd = (uv_file)r;
    op->stage = S_FSTAT;
    if (op->t == NULL) return fail(op, UV_ECANCELED);
    err = uv_fs_fstat(op->loop, &op->req, op->fd, on_fs);
    break;
  case S_FSTAT:
    /* The size is a hint: files in /proc say 0 and still have data. */
    if (op->st.st_size > 0 && op->st.st_size < ((uint64_t)1 << 40))
      err = reserve(&op->data, &op->cap, 0, (size_t)op->st.st_size + CHUNK);
    if (!err) err = read_chunk(op);
    break;
  case S_READ:
    if (r == 0) { /* end of file */
      op->stage = S_CLOSE;
      err = uv_fs_close(op->loop, &op->req, op->fd, on_fs);
      break;
    }
    op->len += (size_t)r;
    if (op->t == NULL) return fail(op, UV_ECANCELED);
    err = read_chunk(op);
    break;
  }
  if (err) fail(op, err);
}

/* One step of write_file. */
static void step_write_file(fsop *op, ssize_t r) {
  int err = 0;
  switch (op->stage) {
  case S_OPEN:
    op->fd = (uv_file)r;
    if (op->t == NULL) return fail(op, UV_ECANCELED);
    err = write_chunk(op, op->fd);
    break;
  case S_WRITE:
    op->done += (size_t)r;
    if (op->t == NULL) return fail(op, UV_ECANCELED);
    if (op->done < op->len)
      err = write_chunk(op, op->fd);
    else {
      op->stage = S_CLOSE;
      err = uv_fs_close(op->loop, &op->req, op->fd, on_fs);
    }
    break;
  }
  if (err) fail(op, err);
}

static const char *type_of_mode(uint64_t mode) {
  switch (mode & S_IFMT) {
  case S_IFREG:
    return "file";
  case S_IFDIR:
    return "directory";
  case S_IFLNK:
    return "link";
  case S_IFIFO:
    return "fifo";
  case S_IFSOCK:
    return "socket";
  case S_IFCHR:
    return "char";
  case S_IFBLK:
    return "block";
  default:
    return "unknown";
  }
}

static const char *type_of_dirent(uv_dirent_type_t t) {
  switch (t) {
  case UV_DIRENT_FILE:
    return "file";
  case UV_DIRENT_DIR:
    return "directory";
  case UV_DIRENT_LINK:
    return "link";
  case UV_DIRENT_FIFO:
    return "fifo";
  case UV_DIRENT_SOCKET:
    return "socket";
  case UV_DIRENT_CHAR:
    return "char";
  case UV_DIRENT_BLOCK:
    return "block";
  default:
    return "unknown";
  }
}

/* Copy the entries of a scandir out of the request. */
static int take_entries(fsop *op, size_t n) {
  uv_dirent_t ent;
  int err = 0;
  op->ents = calloc(n ? n : 1, sizeof *op->ents);
  if (op->ents == NULL) err = UV_ENOMEM;
  /* Iterate to UV_EOF: libuv frees the last entry only then. */
  while (uv_fs_scandir_next(&op->req, &ent) != UV_EOF) {
    dent *d;
    if (err || op->nents == n) continue;
    d = &op->ents[op->nents];
    d->name = malloc(strlen(ent.name) + 1);
    if (d->name == NULL) {
      err = UV_ENOMEM;
      continue;
    }
    strcpy(d->name, ent.name);
    d->type = type_of_dirent(ent.type);
    op->nents++;
  }
  return err;
}

static void on_fs(uv_fs_t *req) {
  fsop *op = req->data;
  ssize_t r = req->result;
  int err = 0;
  if (r >= 0 && op->kind == OP_SCANDIR) err = take_entries(op, (size_t)r);
  if (r >= 0 && (op->stage == S_FSTAT || op->kind == OP_STAT))
    op->st = req->statbuf;
  uv_fs_req_cleanup(req);
  if (op->stage == S_CLOSE) { /* the end of a chain, or of a failure */
    op->fd = -1;
    if (r < 0 && op->result == 0) op->result = (int)r;
    return finish(op);
  }
  if (op->kind == OP_REMOVE && op->stage == S_START &&
      (r == UV_EISDIR || r == UV_EPERM) && op->t != NULL) {
    /* unlink says it is a folder: rmdir, keeping unlink's error for a
       path that is no folder after all */
    op->stage = S_RMDIR;
    op->result = (int)r;
    if (uv_fs_rmdir(op->loop, req, op->path, on_fs) == 0) return;
    return finish(op);
  }
  if (op->kind == OP_REMOVE && op->stage == S_RMDIR) {
    op->result = r >= 0 ? 0 : r == UV_ENOTDIR ? op->result : (int)r;
    return finish(op);
  }
  if (r < 0 || err) return fail(op, err ? err : (int)r);
  switch (op->kind) {
  case OP_READ_FILE:
    return step_read_file(op, r);
  case OP_WRITE_FILE:
    return step_write_file(op, r);
  case OP_OPEN:
    op->fd = (uv_file)r;
    if (op->t == NULL) return fail(op, UV_ECANCELED);
    op->fd = -1;
    op->result = (int)r; /* the descriptor */
    return finish(op);
  case OP_READ:
    /* the bytes read are kept even if nobody waits any more: the
       file's position has moved past them */
    op->file->len += (size_t)r;
    if (r == 0 || op->t == NULL) return finish(op); /* end of file */
    if (satisfied(op)) return finish(op);
    err = file_fill(op);
    break;
  case OP_WRITE:
    op->done += (size_t)r;
    if (op->done >= op->len || op->t == NULL) return finish(op);
    err = write_chunk(op, op->file->fd);
    break;
  default:
    op->result = 0;
    return finish(op);
  }
  if (err) fail(op, err);
}

/* Starting and finishing a wait. */

/* A new operation for the task t, which luaio__enter_wait returned. */
static fsop *newop(lua_State *L, luaio *h, task *t, int kind) {
  fsop *op = calloc(1, sizeof *op);
  if (op == NULL) luaL_error(L, "not enough memory");
  op->req.data = op;
  op->loop = h->loop;
  op->t = t;
  op->kind = kind;
  op->fd = -1;
  return op;
}

static int push_result(lua_State *L, fsop *op);

static int k_fs(lua_State *L, int status, lua_KContext ctx) {
  fsop *op;
  int n;
  (void)status;
  luaio__resumed(L, luaio__host(L)->current);
  op = (fsop *)ctx;
  n = push_result(L, op);
  release(op);
  return n;
}

/* Wait for op, whose first request started with err (0 or a libuv
   error); `what` names the path in messages. */
static int wait_op(lua_State *L, task *t, fsop *op, int err, const char *what) {
  if (err < 0) {
    release(op);
    return uvfail(L, err, what);
  }
  return luaio__wait(L, t, &fs_ops, op, (lua_KContext)op, k_fs);
}

/* File objects. */

static fsfile *tofile(lua_State *L, int idx) {
  return *(fsfile **)luaL_checkudata(L, idx, "luaio.File");
}

/* The file at idx, open and not in use by another task. */
static fsfile *checkfile(lua_State *L, int idx) {
  fsfile *f = tofile(L, idx);
  if (f == NULL || f->closed) luaL_error(L, "attempt to use a closed file");
  if (f->busy) luaL_error(L, "file is in use by another task");
  return f;
}

static void newfile(lua_State *L, luaio *h, uv_file fd) {
  fsfile **p = lua_newuserdatauv(L, sizeof *p, 0);
  *p = NULL;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &filekey);
  lua_setmetatable(L, -2);
  *p = calloc(1, sizeof **p);
  if (*p == NULL) {
    close(fd);
    luaL_error(L, "not enough memory");
  }
  (*p)->h = h;
  (*p)->fd = fd;
}

/* Does the buffer hold what a read asks for? */
static int buffered(fsfile *f, int until, size_t want) {
  size_t avail = f->len - f->off;
  if (until == UNTIL_N) return avail >= want;
  if (avail == 0) return 0;
  if (until == UNTIL_LINE) return memchr(f->buf + f->off, '\n', avail) != NULL;
  return 0;
}

/* Take what a read asks for from the buffer; nil at the end of file. */
static int take(lua_State *L, fsfile *f, int until, size_t want) {
  size_t avail = f->len - f->off, n = avail, skip = 0;
  const char *p = f->buf + f->off, *nl;
  if (avail == 0) {
    lua_pushnil(L);
    return 1;
  }
  if (until == UNTIL_N && want < n) n = want;
  if (until == UNTIL_LINE && (nl = memchr(p, '\n', avail)) != NULL) {
    n = (size_t)(nl - p);
    skip = 1;
  }
  lua_pushlstring(L, p, n);
  f->off += n + skip;
  if (f->off == f->len) f->off = f->len = 0;
  return 1;
}

/* Put the file's position back where the reader is, dropping the read-
   ahead; 0 or a libuv error. */
static int unread(fsfile *f) {
  off_t back = (off_t)(f->len - f->off);
  if (back > 0 && lseek(f->fd, -back, SEEK_CUR) < 0)
    return uv_translate_sys_error(errno);
  f->len = f->off = 0;
  return 0;
}

static int start_read(lua_State *L, fsfile *f, int until, size_t want) {
  task *t;
  fsop *op;
  if (buffered(f, until, want)) return take(L, f, until, want);
  t = luaio__enter_wait(L, f->h);
  op = newop(L, f->h, t, OP_READ);
  op->file = f;
  op->until = until;
  op->want = want;
  f->busy = op;
  return wait_op(L, t, op, file_fill(op), NULL);
}

/* file:read([n]) -> data | nil at the end of file | nil, msg, code */
static int file_read(lua_State *L) {
  fsfile *f = checkfile(L, 1);
  lua_Integer n;
  if (lua_isnoneornil(L, 2)) return start_read(L, f, UNTIL_ALL, 0);
  n = luaL_checkinteger(L, 2);
  luaL_argcheck(L, n >= 0, 2, "negative count");
  if (n == 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  return start_read(L, f, UNTIL_N, (size_t)n);
}

/* The iterator of file:lines() -> line | nil at the end; raises on error */
static int file_next_line(lua_State *L) {
  lua_settop(L, 0);
  lua_pushvalue(L, lua_upvalueindex(2));
  return start_read(L, checkfile(L, 1), UNTIL_LINE, 0);
}

/* file:lines() -> iterator over the lines, without their "\n" */
static int file_lines(lua_State *L) {
  checkfile(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, 1);
  lua_pushcclosure(L, file_next_line, 2);
  return 1;
}

/* file:write(data, ...) -> file | nil, msg, code */
static int file_write(lua_State *L) {
  fsfile *f = checkfile(L, 1);
  int i, n = lua_gettop(L), err;
  size_t len = 0;
  task *t;
  fsop *op;
  for (i = 2; i <= n; i++) {
    size_t l;
    luaL_checklstring(L, i, &l);
    len += l;
  }
  if (len == 0) {
    lua_settop(L, 1);
    return 1;
  }
  t = luaio__enter_wait(L, f->h);
  op = newop(L, f->h, t, OP_WRITE);
  op->data = malloc(len);
  if (op->data == NULL) {
    release(op);
    return luaL_error(L, "not enough memory");
  }
  for (i = 2; i <= n; i++) {
    size_t l;
    const char *s = lua_tolstring(L, i, &l);
    memcpy(op->data + op->len, s, l);
    op->len += l;
  }
  lua_settop(L, 1);
  op->file = f;
  err = unread(f);
  if (err == 0) {
    f->busy = op;
    err = write_chunk(op, f->fd);
  }
  return wait_op(L, t, op, err, NULL);
}

/* file:seek([whence [, offset]]) -> position | nil, msg, code */
static int file_seek(lua_State *L) {
  static const int modes[] = {SEEK_SET, SEEK_CUR, SEEK_END};
  static const char *const names[] = {"set", "cur", "end", NULL};
  fsfile *f = checkfile(L, 1);
  int whence = modes[luaL_checkoption(L, 2, "cur", names)];
  lua_Integer offset = luaL_optinteger(L, 3, 0);
  off_t pos;
  /* The kernel's position is ahead of the reader by the read-ahead. */
  if (whence == SEEK_CUR) offset -= (lua_Integer)(f->len - f->off);
  /* lseek only moves a number in the kernel: it never waits for a disk. */
  pos = lseek(f->fd, (off_t)offset, whence);
  if (pos < 0) return uvfail(L, uv_translate_sys_error(errno), NULL);
  f->len = f->off = 0;
  lua_pushinteger(L, (lua_Integer)pos);
  return 1;
}

/* file:close() -> true | nil, msg, code */
static int file_close(lua_State *L) {
  fsfile *f = checkfile(L, 1);
  luaio *h = f->h;
  uv_file fd = f->fd;
  task *t = h->current;
  fsop *op;
  f->closed = 1;
  f->fd = -1;
  /* Wait for the close where a wait is possible, else close at once: in
     __close during a cancellation, or outside any task. */
  if (t == NULL || !lua_isyieldable(L) || luaio__cancelled_scope(t) != NULL) {
    if (close(fd) != 0) return uvfail(L, uv_translate_sys_error(errno), NULL);
    lua_pushboolean(L, 1);
    return 1;
  }
  t = luaio__enter_wait(L, h);
  op = newop(L, h, t, OP_CLOSE);
  return wait_op(L, t, op, uv_fs_close(h->loop, &op->req, fd, on_fs), NULL);
}

/* file:__close(): closes the file unless it is closed already */
static int file_toclose(lua_State *L) {
  fsfile *f = tofile(L, 1);
  if (f == NULL || f->closed) return 0;
  if (f->busy) { /* an abandoned operation runs: it closes at its end */
    f->closed = 1;
    return 0;
  }
  lua_settop(L, 1);
  return file_close(L);
}

/* file:__gc() */
static int file_gc(lua_State *L) {
  fsfile **p = luaL_checkudata(L, 1, "luaio.File"), *f = *p;
  if (f == NULL) return 0;
  *p = NULL;
  if (f->busy) { /* its operation's callback closes and frees the file */
    f->orphan = 1;
    return 0;
  }
  if (f->fd >= 0) close(f->fd);
  free_file(f);
  return 0;
}

/* tostring(file) -> "luaio.File (…)" */
static int file_tostring(lua_State *L) {
  fsfile *f = tofile(L, 1);
  if (f == NULL || f->closed)
    lua_pushliteral(L, "luaio.File (closed)");
  else
    lua_pushfstring(L, "luaio.File (%p)", (void *)f);
  return 1;
}

/* Results. */

static int byname(const void *a, const void *b) {
  return strcmp(((const dent *)a)->name, ((const dent *)b)->name);
}

static int push_result(lua_State *L, fsop *op) {
  const char *path = lua_type(L, 1) == LUA_TSTRING ? lua_tostring(L, 1) : 0;
  size_t i;
  if (op->result < 0) {
    if (op->kind == OP_READ && op->until == UNTIL_LINE)
      return luaL_error(L, "%s: %s", uv_err_name(op->result),
                        uv_strerror(op->result));
    return uvfail(L, op->result, path);
  }
  switch (op->kind) {
  case OP_READ_FILE:
    lua_pushlstring(L, op->data, op->len);
    break;
  case OP_STAT:
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, (lua_Integer)op->st.st_size);
    lua_setfield(L, -2, "size");
    lua_pushnumber(L, (lua_Number)op->st.st_mtim.tv_sec +
                          (lua_Number)op->st.st_mtim.tv_nsec / 1e9);
    lua_setfield(L, -2, "mtime");
    lua_pushstring(L, type_of_mode(op->st.st_mode));
    lua_setfield(L, -2, "type");
    lua_pushinteger(L, (lua_Integer)(op->st.st_mode & 07777));
    lua_setfield(L, -2, "mode");
    break;
  case OP_SCANDIR:
    qsort(op->ents, op->nents, sizeof *op->ents, byname);
    lua_createtable(L, (int)op->nents, 0);
    for (i = 0; i < op->nents; i++) {
      lua_createtable(L, 0, 2);
      lua_pushstring(L, op->ents[i].name);
      lua_setfield(L, -2, "name");
      lua_pushstring(L, op->ents[i].type);
      lua_setfield(L, -2, "type");
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    break;
  case OP_OPEN:
    newfile(L, luaio__host(L), (uv_file)op->result);
    break;
  case OP_READ:
    return take(L, op->file, op->until, op->want);
  case OP_WRITE:
    lua_pushvalue(L, 1);
    break;
  default:
    lua_pushboolean(L, 1);
    break;
  }
  return 1;
}

/* The functions of aio.fs. */

/* fs.read_file(path) -> data | nil, msg, code */
static int fs_read_file(lua_State *L) {
  luaio *h = luaio__host(L);
  const char *path = luaL_checkstring(L, 1);
  task *t = luaio__enter_wait(L, h);
  fsop *op = newop(L, h, t, OP_READ_FILE);
  op->stage = S_OPEN;
  return wait_op(L, t, op,
                 uv_fs_open(h->loop, &op->req, path, UV_FS_O_RDONLY, 0, on_fs),
                 path);
}

/* fs.write_file(path, data) -> true | nil, msg, code */
static int fs_write_file(lua_State *L) {
  luaio *h = luaio__host(L);
  const char *path = luaL_checkstring(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  task *t = luaio__enter_wait(L, h);
  fsop *op = newop(L, h, t, OP_WRITE_FILE);
  op->data = malloc(len ? len : 1);
  if (op->data == NULL) {
    release(op);
    return luaL_error(L, "not enough memory");
  }
  memcpy(op->data, data, len);
  op->len = len;
  op->stage = S_OPEN;
  return wait_op(L, t, op,
                 uv_fs_open(h->loop, &op->req, path,
                            UV_FS_O_WRONLY | UV_FS_O_CREAT | UV_FS_O_TRUNC,
                            0666, on_fs),
                 path);
}

/* The open(2) flags of an io.open mode: [rwa]+?b*, or -1. */
static int mode_flags(const char *mode) {
  int flags;
  switch (*mode++) {
  case 'r':
    flags = 0;
    break;
  case 'w':
    flags = UV_FS_O_CREAT | UV_FS_O_TRUNC;
    break;
  case 'a':
    flags = UV_FS_O_CREAT | UV_FS_O_APPEND;
    break;
  default:
    return -1;
  }
  if (*mode == '+') {
    mode++;
    flags |= UV_FS_O_RDWR;
  } else
    flags |= flags == 0 ? UV_FS_O_RDONLY : UV_FS_O_WRONLY;
  while (*mode == 'b')
    mode++;
  return *mode == '\0' ? flags : -1;
}

/* fs.open(path [, mode]) -> file | nil, msg, code */
static int fs_open(lua_State *L) {
  luaio *h = luaio__host(L);
  const char *path = luaL_checkstring(L, 1);
  const char *mode = luaL_optstring(L, 2, "r");
  int flags = mode_flags(mode);
  task *t;
  fsop *op;
  luaL_argcheck(L, flags >= 0, 2, "invalid mode");
  t = luaio__enter_wait(L, h);
  op = newop(L, h, t, OP_OPEN);
  return wait_op(L, t, op,
                 uv_fs_open(h->loop, &op->req, path, flags, 0666, on_fs), path);
}

/* fs.stat(path) -> {size, mtime, type, mode} | nil, msg, code */
static int fs_stat(lua_State *L) {
  luaio *h = luaio__host(L);
  const char *path = luaL_checkstring(L, 1);
  task *t = luaio__enter_wait(L, h);
  fsop *op = newop(L, h, t, OP_STAT);
  return wait_op(L, t, op, uv_fs_stat(h->loop, &op->req, path, on_fs), path);
}

/* fs.scandir(path) -> {{name, type}, …} sorted by name | nil, msg, code */
static int fs_scandir(lua_State *L) {
  luaio *h = luaio__host(L);
  const char *path = luaL_checkstring(L, 1);
  task *t = luaio__enter_wait(L, h);
  fsop *op = newop(L, h, t, OP_SCANDIR);
  return wait_op(L, t, op, uv_fs_scandir(h->loop, &op->req, path, 0, on_fs),
                 path);
}

/* fs.mkdir(path) -> true | nil, msg, code */
static int fs_mkdir(lua_State *L) {
  luaio *h = luaio__host(L);
  const char *path = luaL_checkstring(L, 1);
  task *t = luaio__enter_wait(L, h);
  fsop *op = newop(L, h, t, OP_MKDIR);
  return wait_op(L, t, op, uv_fs_mkdir(h->loop, &op->req, path, 0777, on_fs),
                 path);
}

/* fs.remove(path) -> true | nil, msg, code: a file or an empty folder */
static int fs_remove(lua_State *L) {
  luaio *h = luaio__host(L);
  size_t len;
  const char *path = luaL_checklstring(L, 1, &len);
  task *t = luaio__enter_wait(L, h);
  fsop *op = newop(L, h, t, OP_REMOVE);
  op->path = malloc(len + 1);
  if (op->path == NULL) {
    release(op);
    return luaL_error(L, "not enough memory");
  }
  memcpy(op->path, path, len + 1);
  return wait_op(L, t, op, uv_fs_unlink(h->loop, &op->req, path, on_fs), path);
}

/* fs.rename(from, to) -> true | nil, msg, code */
static int fs_rename(lua_State *L) {
  luaio *h = luaio__host(L);
  const char *from = luaL_checkstring(L, 1);
  const char *to = luaL_checkstring(L, 2);
  task *t = luaio__enter_wait(L, h);
  fsop *op = newop(L, h, t, OP_RENAME);
  return wait_op(L, t, op, uv_fs_rename(h->loop, &op->req, from, to, on_fs),
                 from);
}

static const luaL_Reg fs_funcs[] = {{"read_file", fs_read_file},
                                    {"write_file", fs_write_file},
                                    {"open", fs_open},
                                    {"stat", fs_stat},
                                    {"scandir", fs_scandir},
                                    {"mkdir", fs_mkdir},
                                    {"remove", fs_remove},
                                    {"rename", fs_rename},
                                    {NULL, NULL}};

static const luaL_Reg file_methods[] = {
    {"read", file_read},   {"write", file_write}, {"seek", file_seek},
    {"lines", file_lines}, {"close", file_close}, {NULL, NULL}};

static const luaL_Reg file_meta[] = {{"__close", file_toclose},
                                     {"__gc", file_gc},
                                     {"__tostring", file_tostring},
                                     {NULL, NULL}};

void luaio__fs_open(lua_State *L, luaio *h) {
  luaL_newmetatable(L, "luaio.File");
  lua_pushlightuserdata(L, h);
  luaL_setfuncs(L, file_meta, 1);
  lua_createtable(L, 0, 5);
  lua_pushlightuserdata(L, h);
  luaL_setfuncs(L, file_methods, 1);
  luaio__set_methods(L, "luaio.File");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &filekey);
  lua_createtable(L, 0, 8);
  lua_pushlightuserdata(L, h);
  luaL_setfuncs(L, fs_funcs, 1);
  lua_setfield(L, -2, "fs");
}

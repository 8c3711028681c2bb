/*
** stream.h: what the stream bindings share (net.c, process.c, tty.c).
**
** A stream is a malloc'd struct holding a libuv stream handle (TCP, pipe,
** TTY) or a plain file descriptor, a read buffer and the count of bytes
** queued for writing.  Lua sees it through a small userdata that points at
** it; the struct is freed only in the handle's close callback, so the
** collector never frees memory that libuv points to.
*/

#ifndef LUAIO_STREAM_H
#define LUAIO_STREAM_H

#include "internal.h"

#define STREAM_LIMIT (64 * 1024) /* default read limit and write mark */

enum { SK_TCP, SK_PIPE, SK_TTY, SK_FILE };

typedef struct stream stream;

/* The Lua side of a stream: NULL once closed. */
typedef struct streamud {
  stream *s;
} streamud;

struct stream {
  resource res;
  luaio *h;
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
    uv_tty_t tty;
  } u;
  uv_file fd; /* SK_FILE */
  streamud *ud;
  stream *next; /* in a server's queue of accepted connections */
  unsigned char kind, closed, closing, reading, eof, shut, stdio, wronly;
  unsigned char linger; /* closed, flushing its queued writes first */
  unsigned char demand; /* reads only while a reader waits (a terminal) */
  int rerr, werr;       /* read and write errors (libuv codes) */
  /* reading: the buffered bytes are buf[off .. off + len) */
  char *buf;
  size_t off, len, cap;
  size_t limit; /* read while fewer bytes than this are buffered */
  size_t want;  /* what the waiting reader needs buffered */
  size_t scan;  /* where read_until resumes its search */
  waitlist readers;
  /* writing */
  size_t queued, high;
  waitlist writers;
  unsigned nreqs;          /* file requests and writes in flight */
  struct fswrite *fs_head; /* SK_FILE: writes not yet issued */
  struct fswrite *fs_tail;
  /* Told from the read callback when the end or a read error arrives
     (http_server.c's cancel_on_disconnect); NULL: nobody. */
  void (*on_end)(stream *s);
  void *end_ud;
};

/* Allocate a stream of `kind`; the caller initialises s->u (or s->fd) and
   then calls luaio__stream_attach.  NULL when out of memory. */
stream *luaio__stream_alloc(luaio *h, int kind);
void luaio__stream_attach(stream *s);
/* Free a stream whose handle was never initialised. */
void luaio__stream_discard(stream *s);
/* Push a userdata for s (started reading). */
void luaio__stream_push(lua_State *L, stream *s);
/* Close s: no more reading; queued writes are flushed first. */
void luaio__stream_close(stream *s);
/* Force s closed now, dropping queued writes. */
void luaio__stream_abort(stream *s);
void luaio__stream_update(stream *s); /* start or stop reading */
stream *luaio__checkstream(lua_State *L, int idx);
/* Read opts.limit and opts.high_water of the table at idx into s. */
void luaio__stream_opts(lua_State *L, int idx, stream *s);

/* nil, "ECODE: message", "ECODE": the result of an outside-world failure. */
int luaio__uv_fail(lua_State *L, int err);
/* nil, "CODE: message", "CODE" for errors that are not libuv's. */
int luaio__fail(lua_State *L, const char *code, const char *msg);

/* stream:read_all(), for aio.exec */
int luaio__stream_read_all(lua_State *L);

void luaio__stream_open(lua_State *L, luaio *h);

#endif

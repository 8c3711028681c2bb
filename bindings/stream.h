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

/* The error code of a TLS failure in rerr/werr (not a libuv code): its
   text is the stream's TLS layer's (luaio__stream_fail gives "ETLS"). */
#define STREAM_ETLS (-70000)

typedef struct stream stream;
struct tls;        /* bindings/tls.c */
struct ssl_ctx_st; /* OpenSSL's SSL_CTX */

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
  struct tls *tls; /* the TLS layer, NULL for a plain stream */
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

/* nil, msg, code for the read or write error err of s (a libuv code or
   STREAM_ETLS). */
int luaio__stream_fail(lua_State *L, stream *s, int err);
/* Room for n more buffered bytes; 0 when out of memory. */
int luaio__stream_reserve(stream *s, size_t n);
/* After bytes, an end or an error were buffered: wake the reader. */
void luaio__stream_arrived(stream *s);
/* Write len bytes of mem (malloc'd; freed once written): 0 or a libuv
   error. */
int luaio__stream_send(stream *s, char *mem, size_t len);

/* TLS (bindings/tls.c), a layer of the stream: ciphertext read from the
   handle goes through it into the plaintext buffer only while a reader
   wants bytes; writes are encrypted and sent with luaio__stream_send. */
/* Check opts.tls of the options at idx (server: the start_server keys). */
void luaio__tls_check(lua_State *L, int idx, int server);
/* The server context of opts.tls at idx, or NULL after pushing nil, msg,
   code; its handshake timeout in *timeout. */
struct ssl_ctx_st *luaio__tls_server_ctx(lua_State *L, int idx,
                                         double *timeout);
void luaio__tls_ctx_free(struct ssl_ctx_st *ctx);
/* open_connection: the handshake of the stream at sidx as a client, with
   the options at oidx and the host name at hidx; returns the stream or
   nil, msg, code. */
int luaio__tls_client(lua_State *L, int sidx, int oidx, int hidx);
/* A server's connection at sidx: waits for the handshake (the task is
   in `pending` meanwhile, so that closing the server can cancel it), then
   k runs (it calls luaio__resumed when status is LUA_YIELD); there
   luaio__tls_ok(L, sidx) says whether it succeeded (else the stream is
   closed). */
int luaio__tls_server(lua_State *L, int sidx, struct ssl_ctx_st *ctx,
                      double timeout, waitlist *pending, lua_KFunction k,
                      lua_KContext kctx);
int luaio__tls_ok(lua_State *L, int sidx);
/* stream:starttls(opts) -> stream | nil, msg, code */
int luaio__stream_starttls(lua_State *L);
/* stream:tls_info() -> table | nil */
int luaio__stream_tls_info(lua_State *L);
/* The hooks stream.c calls. */
void luaio__tls_alloc(stream *s, uv_buf_t *buf); /* on_alloc */
void luaio__tls_input(stream *s, ssize_t nread); /* after on_read */
int luaio__tls_wants_input(stream *s);           /* read the handle? */
int luaio__tls_decrypt(stream *s);               /* 1 if it buffered or ended */
void luaio__tls_update(stream *s);               /* a reader wants more */
int luaio__tls_write(stream *s, const char *data, size_t len);
void luaio__tls_close_notify(stream *s); /* before a close or shutdown */
void luaio__tls_stop(stream *s);         /* closed: wake, stop timers */
void luaio__tls_free(stream *s);
const char *luaio__tls_error(stream *s);
/* The peer closed without close_notify (lines() ends, as at a reset). */
int luaio__tls_truncated(stream *s);

/* nil, "ECODE: message", "ECODE": the result of an outside-world failure. */
int luaio__uv_fail(lua_State *L, int err);
/* nil, "CODE: message", "CODE" for errors that are not libuv's. */
int luaio__fail(lua_State *L, const char *code, const char *msg);

/* stream:read_all(), for aio.exec */
int luaio__stream_read_all(lua_State *L);

void luaio__stream_open(lua_State *L, luaio *h);

#endif

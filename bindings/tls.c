/*
** tls.c: TLS as a layer of a stream, on OpenSSL 3 over two memory BIOs
** (the shape of uvloop's sslproto).
**
** The handle's read callback hands the ciphertext to the layer, which
** writes it into the read BIO.  SSL_read turns it into plaintext in the
** stream's own buffer only while a reader wants bytes, so back-pressure
** holds: the handle stops reading once the read BIO holds `limit` bytes
** that nobody asked for.  After every SSL call the write BIO is drained
** into uv_write (luaio__stream_send).  Every stream method (read,
** read_line, lines, write, drain, shutdown, close …) then works unchanged
** over the plaintext buffer, and so does the HTTP server's parser.
**
** A handshake is a wait of the task that opens the stream
** (open_connection, a server's connection task before its handler,
** starttls), bounded by a timer.  A peer that closes the connection
** without close_notify has broken it: at the socket's end the read BIO
** reports EOF (BIO_set_mem_eof_return 0), and SSL_read fails with
** "unexpected eof while reading".
*/

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "stream.h"

#define CIPHER_CHUNK (64 * 1024) /* read from the handle at a time */
#define CIPHER_MIN (32 * 1024)   /* the read BIO holds a whole record */
#define PLAIN_ROOM (16 * 1024)   /* room made for one SSL_read */
#define HANDSHAKE_TIMEOUT 60.0

enum { HS_RUNNING, HS_DONE, HS_FAILED };

struct tls {
  SSL *ssl;
  BIO *rbio; /* ciphertext from the peer, for SSL */
  BIO *wbio; /* ciphertext from SSL, for the peer */
  stream *s;
  unsigned char state, server, verify;
  unsigned char sock_eof;  /* the handle read its end */
  unsigned char stalled;   /* SSL wants more ciphertext than the BIO has */
  unsigned char fatal;     /* an SSL call failed: no close_notify */
  unsigned char notified;  /* close_notify sent */
  unsigned char truncated; /* the socket ended without close_notify */
  task *waiter;            /* the task waiting for the handshake */
  tnode deadline;          /* of the handshake */
  deferred soon;           /* decrypt buffered records for a reader */
  const char *code;        /* of a failed handshake: "ETLS", "ETIMEDOUT" … */
  char err[256];
};

/* Where the handle reads ciphertext: libuv calls a stream's alloc, read
   and read callbacks in one sequence, and luaio__tls_input copies the
   bytes into the read BIO at once, so one buffer per thread serves every
   stream (an idle connection holds no 64 KiB of its own). */
static _Thread_local char cipher_in[CIPHER_CHUNK];

/* The option keys of opts.tls. */
static const char *const client_keys[] = {"verify", "cafile", "server_name",
                                          "handshake_timeout", NULL};
static const char *const server_keys[] = {"cert", "key", "handshake_timeout",
                                          NULL};
static const char *const starttls_keys[] = {
    "verify", "cafile", "server_name", "handshake_timeout",
    "cert",   "key",    NULL};

/* Errors. */

/* Keep the reason of the SSL call that failed. */
static void set_error(struct tls *x) {
  unsigned long e = ERR_peek_last_error();
  long v = SSL_get_verify_result(x->ssl);
  if (x->state == HS_RUNNING && x->verify && v != X509_V_OK)
    snprintf(x->err, sizeof x->err, "certificate verify failed: %s",
             X509_verify_cert_error_string(v));
  else if (e != 0 && ERR_reason_error_string(e) != NULL)
    snprintf(x->err, sizeof x->err, "%s", ERR_reason_error_string(e));
  else if (e != 0)
    ERR_error_string_n(e, x->err, sizeof x->err);
  else
    snprintf(x->err, sizeof x->err, "connection closed by the peer");
  ERR_clear_error();
  x->fatal = 1;
  x->code = "ETLS";
}

int luaio__tls_truncated(stream *s) {
  return s->tls != NULL && s->tls->truncated;
}

const char *luaio__tls_error(stream *s) {
  return s->tls != NULL ? s->tls->err : "TLS failure";
}

/* The reason OpenSSL gives for the last failure, for a context; a
   system error (a missing file) by its errno. */
static const char *ssl_reason(void) {
  unsigned long e = ERR_peek_error();
  const char *r;
  if (e != 0 && ERR_SYSTEM_ERROR(e)) return strerror(ERR_GET_REASON(e));
  e = ERR_peek_last_error();
  r = e != 0 ? ERR_reason_error_string(e) : NULL;
  return r != NULL ? r : "unknown error";
}

/* Moving ciphertext. */

/* Send what SSL wrote into the write BIO. */
static void flush(stream *s) {
  struct tls *x = s->tls;
  size_t n;
  while ((n = BIO_ctrl_pending(x->wbio)) > 0) {
    char *p = malloc(n);
    int err;
    if (p == NULL) {
      (void)BIO_reset(x->wbio);
      if (s->werr == 0) s->werr = UV_ENOMEM;
      return;
    }
    if (BIO_read(x->wbio, p, (int)n) != (int)n) {
      free(p);
      (void)BIO_reset(x->wbio);
      return;
    }
    if (s->closing || s->werr) {
      free(p);
      continue;
    }
    if ((err = luaio__stream_send(s, p, n)) < 0 && s->werr == 0) s->werr = err;
  }
}

/* The handshake ended (done or failed): wake its task. */
static void finish(struct tls *x) {
  task *t = x->waiter;
  luaio__timer_remove(x->s->h, &x->deadline);
  if (t != NULL) {
    x->waiter = NULL;
    luaio__list_remove(&t->w); /* from a server's handshaking list */
    luaio__wake(t, NULL, 0);
  }
}

static void fail_uv(struct tls *x, int err) {
  x->state = HS_FAILED;
  x->code = uv_err_name(err);
  snprintf(x->err, sizeof x->err, "%s", uv_strerror(err));
  finish(x);
}

static void handshake(stream *s) {
  struct tls *x = s->tls;
  int r, e;
  ERR_clear_error();
  r = SSL_do_handshake(x->ssl);
  flush(s);
  if (r == 1) {
    x->state = HS_DONE;
    finish(x);
    return;
  }
  e = SSL_get_error(x->ssl, r);
  if (e == SSL_ERROR_WANT_READ && !x->sock_eof) return;
  set_error(x);
  x->state = HS_FAILED;
  finish(x);
}

int luaio__tls_decrypt(stream *s) {
  struct tls *x = s->tls;
  int progress = 0;
  if (x->state != HS_DONE) return 0;
  while (!s->eof && !s->rerr && s->len < s->want && !x->stalled) {
    size_t room;
    int n, e;
    if (!luaio__stream_reserve(s, PLAIN_ROOM)) {
      s->rerr = UV_ENOMEM;
      return 1;
    }
    room = s->cap - s->off - s->len;
    if (room > INT_MAX) room = INT_MAX;
    ERR_clear_error();
    n = SSL_read(x->ssl, s->buf + s->off + s->len, (int)room);
    flush(s);
    if (n > 0) {
      s->len += (size_t)n;
      progress = 1;
      continue;
    }
    e = SSL_get_error(x->ssl, n);
    if (e == SSL_ERROR_WANT_READ) {
      x->stalled = 1;
      break;
    }
    if (e == SSL_ERROR_ZERO_RETURN) /* close_notify: the end */
      s->eof = 1;
    else {
      unsigned long err = ERR_peek_last_error();
      x->truncated = x->sock_eof && ERR_GET_LIB(err) == ERR_LIB_SSL &&
                     ERR_GET_REASON(err) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
      set_error(x);
      s->rerr = STREAM_ETLS;
    }
    return 1;
  }
  return progress;
}

void luaio__tls_alloc(stream *s, uv_buf_t *buf) {
  (void)s;
  *buf = uv_buf_init(cipher_in, sizeof cipher_in);
}

void luaio__tls_input(stream *s, ssize_t nread) {
  struct tls *x = s->tls;
  if (nread > 0) {
    if (BIO_write(x->rbio, cipher_in, (int)nread) != (int)nread)
      s->rerr = UV_ENOMEM;
    x->stalled = 0;
  } else if (nread == UV_EOF) {
    x->sock_eof = 1;
    x->stalled = 0;
    BIO_set_mem_eof_return(x->rbio, 0);
  } else
    s->rerr = (int)nread;
  if (x->state == HS_RUNNING) {
    if (s->rerr)
      fail_uv(x, s->rerr == STREAM_ETLS ? UV_EPROTO : s->rerr);
    else
      handshake(s);
  }
  if (x->state == HS_DONE) luaio__tls_decrypt(s);
  luaio__stream_arrived(s);
}

/* Read from the handle during the handshake, and after it while the read
   BIO holds less than the limit (or less than a reader needs). */
int luaio__tls_wants_input(stream *s) {
  struct tls *x = s->tls;
  size_t cap = s->limit > CIPHER_MIN ? s->limit : CIPHER_MIN;
  if (x->sock_eof || x->state == HS_FAILED) return 0;
  if (x->state == HS_RUNNING) return 1;
  return BIO_ctrl_pending(x->rbio) < cap || (x->stalled && s->len < s->want);
}

static void on_soon(deferred *d) {
  struct tls *x = container_of(d, struct tls, soon);
  stream *s = x->s;
  if (s->closed) return;
  luaio__tls_decrypt(s);
  luaio__stream_arrived(s);
}

/* A reader wants more than is buffered: records already received are
   decrypted once the ready tasks have run (luaio__defer; the caller links
   its task after this). */
void luaio__tls_update(stream *s) {
  struct tls *x = s->tls;
  if (x->state != HS_DONE || s->closed || s->eof || s->rerr || x->stalled ||
      s->len >= s->want || x->soon.queued)
    return;
  if (BIO_ctrl_pending(x->rbio) > 0 || SSL_pending(x->ssl) > 0 || x->sock_eof) {
    luaio__defer(s->h, &x->soon);
  }
}

int luaio__tls_write(stream *s, const char *data, size_t len) {
  struct tls *x = s->tls;
  if (x->state != HS_DONE) return UV_ENOTCONN;
  if (x->fatal) return STREAM_ETLS;
  while (len > 0) {
    int chunk = len > (1u << 30) ? 1 << 30 : (int)len, n;
    ERR_clear_error();
    n = SSL_write(x->ssl, data, chunk);
    flush(s);
    if (n <= 0) {
      set_error(x);
      if (s->werr == 0) s->werr = STREAM_ETLS;
      return STREAM_ETLS;
    }
    data += n;
    len -= (size_t)n;
  }
  return s->werr;
}

void luaio__tls_close_notify(stream *s) {
  struct tls *x = s->tls;
  if (x->state != HS_DONE || x->fatal || x->notified || s->werr || s->closing)
    return;
  x->notified = 1;
  ERR_clear_error();
  SSL_shutdown(x->ssl);
  ERR_clear_error();
  flush(s);
}

void luaio__tls_stop(stream *s) {
  struct tls *x = s->tls;
  luaio__undefer(s->h, &x->soon);
  if (x->state == HS_RUNNING) {
    x->state = HS_FAILED;
    x->code = "ECANCELED";
    snprintf(x->err, sizeof x->err, "stream closed during the TLS handshake");
    if (s->h->freeing) x->waiter = NULL;
    finish(x);
  }
  luaio__timer_remove(s->h, &x->deadline);
}

void luaio__tls_free(stream *s) {
  luaio__undefer(s->h, &s->tls->soon);
  SSL_free(s->tls->ssl); /* and its BIOs */
  free(s->tls);
  s->tls = NULL;
}

/* Contexts. */

static const char ctxkey = 'T'; /* the registry's cache of client contexts */

typedef struct ctxud {
  SSL_CTX *ctx;
} ctxud;

static int ctx_gc(lua_State *L) {
  ctxud *u = lua_touserdata(L, 1);
  if (u->ctx != NULL) SSL_CTX_free(u->ctx);
  u->ctx = NULL;
  return 0;
}

void luaio__tls_ctx_free(SSL_CTX *ctx) { SSL_CTX_free(ctx); }

static SSL_CTX *new_ctx(int server) {
  SSL_CTX *ctx =
      SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (ctx == NULL) return NULL;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  return ctx;
}

/* A client context trusting cafile (NULL: the system's store), made once
   per host and cafile; NULL with the reason in err. */
static SSL_CTX *client_ctx(lua_State *L, const char *cafile, char *err,
                           size_t errlen) {
  SSL_CTX *ctx;
  ctxud *u;
  int ok;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &ctxkey) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &ctxkey);
  }
  if (lua_getfield(L, -1, cafile ? cafile : "") == LUA_TUSERDATA) {
    ctx = ((ctxud *)lua_touserdata(L, -1))->ctx;
    lua_pop(L, 2);
    return ctx;
  }
  lua_pop(L, 1);
  ERR_clear_error();
  if ((ctx = new_ctx(0)) == NULL) {
    snprintf(err, errlen, "cannot make a TLS context: %s", ssl_reason());
    lua_pop(L, 1);
    return NULL;
  }
  ok = cafile ? SSL_CTX_load_verify_locations(ctx, cafile, NULL)
              : SSL_CTX_set_default_verify_paths(ctx);
  if (!ok) {
    snprintf(err, errlen, "cannot load the CA file %s: %s",
             cafile ? cafile : "(system)", ssl_reason());
    ERR_clear_error();
    SSL_CTX_free(ctx);
    lua_pop(L, 1);
    return NULL;
  }
  u = lua_newuserdatauv(L, sizeof *u, 0);
  u->ctx = ctx;
  if (luaL_newmetatable(L, "luaio.TLSContext")) {
    lua_pushcfunction(L, ctx_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  lua_setfield(L, -2, cafile ? cafile : "");
  lua_pop(L, 1);
  return ctx;
}

/* A server context with cert (a PEM chain) and key; NULL with the reason
   in err. */
static SSL_CTX *server_ctx(const char *cert, const char *key, char *err,
                           size_t errlen) {
  SSL_CTX *ctx;
  ERR_clear_error();
  if ((ctx = new_ctx(1)) == NULL) {
    snprintf(err, errlen, "cannot make a TLS context: %s", ssl_reason());
    return NULL;
  }
  SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
    snprintf(err, errlen, "cannot load the certificate %s: %s", cert,
             ssl_reason());
  else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
    snprintf(err, errlen, "cannot load the key %s: %s", key, ssl_reason());
  else if (SSL_CTX_check_private_key(ctx) != 1)
    snprintf(err, errlen, "the key %s does not match the certificate %s", key,
             cert);
  else {
    ERR_clear_error();
    return ctx;
  }
  ERR_clear_error();
  SSL_CTX_free(ctx);
  return NULL;
}

/* Options. */

static void check_keys(lua_State *L, int argn, int t,
                       const char *const known[]) {
  lua_pushnil(L);
  while (lua_next(L, t)) {
    int i = 0;
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING)
      for (; known[i] != NULL; i++)
        if (strcmp(known[i], lua_tostring(L, -1)) == 0) break;
    if (lua_type(L, -1) != LUA_TSTRING || known[i] == NULL)
      luaL_argerror(L, argn,
                    lua_pushfstring(L, "unknown TLS option '%s'",
                                    lua_type(L, -1) == LUA_TSTRING
                                        ? lua_tostring(L, -1)
                                        : luaL_typename(L, -1)));
  }
}

static void check_field(lua_State *L, int argn, int t, const char *k, int type,
                        int required) {
  int got = lua_getfield(L, t, k);
  if ((got == LUA_TNIL && required) || (got != LUA_TNIL && got != type))
    luaL_argerror(
        L, argn,
        lua_pushfstring(L, "tls.%s must be a %s", k, lua_typename(L, type)));
  if (type == LUA_TNUMBER && got == LUA_TNUMBER && !(lua_tonumber(L, -1) > 0))
    luaL_argerror(L, argn, lua_pushfstring(L, "tls.%s must be positive", k));
  lua_pop(L, 1);
}

/* Check the TLS table at t (argument argn) against known. */
static void check_table(lua_State *L, int argn, int t,
                        const char *const known[], int server) {
  check_keys(L, argn, t, known);
  check_field(L, argn, t, "cert", LUA_TSTRING, server);
  check_field(L, argn, t, "key", LUA_TSTRING, server);
  check_field(L, argn, t, "cafile", LUA_TSTRING, 0);
  check_field(L, argn, t, "server_name", LUA_TSTRING, 0);
  check_field(L, argn, t, "handshake_timeout", LUA_TNUMBER, 0);
  if (lua_getfield(L, t, "verify") != LUA_TNIL && !lua_isboolean(L, -1))
    luaL_argerror(L, argn, "tls.verify must be a boolean");
  lua_pop(L, 1);
}

void luaio__tls_check(lua_State *L, int idx, int server) {
  int type;
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) != LUA_TTABLE) return;
  type = lua_getfield(L, idx, "tls");
  if (type == LUA_TTABLE)
    check_table(L, idx, lua_gettop(L), server ? server_keys : client_keys,
                server);
  else if ((type != LUA_TNIL && type != LUA_TBOOLEAN) ||
           (server && lua_toboolean(L, -1))) /* false and nil: no TLS */
    luaL_argerror(L, idx,
                  server ? "tls must be a table {cert = path, key = path}"
                         : "tls must be true or a table");
  lua_pop(L, 1);
}

/* The string field k of the table at t, or NULL. */
static const char *field_str(lua_State *L, int t, const char *k) {
  const char *v;
  lua_getfield(L, t, k);
  v = lua_tostring(L, -1); /* the table keeps it alive */
  lua_pop(L, 1);
  return v;
}

static double field_timeout(lua_State *L, int t) {
  double v = HANDSHAKE_TIMEOUT;
  if (lua_getfield(L, t, "handshake_timeout") == LUA_TNUMBER)
    v = lua_tonumber(L, -1);
  lua_pop(L, 1);
  return v;
}

SSL_CTX *luaio__tls_server_ctx(lua_State *L, int idx, double *timeout) {
  char err[512];
  SSL_CTX *ctx;
  int t;
  idx = lua_absindex(L, idx);
  lua_getfield(L, idx, "tls");
  t = lua_gettop(L);
  ctx = server_ctx(field_str(L, t, "cert"), field_str(L, t, "key"), err,
                   sizeof err);
  *timeout = field_timeout(L, t);
  lua_pop(L, 1);
  if (ctx == NULL) luaio__fail(L, "ETLS", err);
  return ctx;
}

/* Handshakes. */

/* Start the layer on s with ctx; NULL when out of memory.  Bytes already
   buffered were sent by the peer after the plain protocol: ciphertext. */
static struct tls *attach(stream *s, SSL_CTX *ctx, int server) {
  struct tls *x = calloc(1, sizeof *x);
  if (x == NULL) return NULL;
  x->ssl = SSL_new(ctx);
  x->rbio = BIO_new(BIO_s_mem());
  x->wbio = BIO_new(BIO_s_mem());
  if (x->ssl == NULL || x->rbio == NULL || x->wbio == NULL) {
    BIO_free(x->rbio);
    BIO_free(x->wbio);
    SSL_free(x->ssl);
    free(x);
    return NULL;
  }
  BIO_set_mem_eof_return(x->rbio, -1); /* "retry" until the socket ends */
  SSL_set_bio(x->ssl, x->rbio, x->wbio);
  if (server)
    SSL_set_accept_state(x->ssl);
  else
    SSL_set_connect_state(x->ssl);
  x->s = s;
  x->server = (unsigned char)server;
  x->state = HS_RUNNING;
  x->code = "ETLS";
  x->deadline.fire = NULL;
  x->soon.run = on_soon;
  if (s->len > 0) {
    BIO_write(x->rbio, s->buf + s->off, (int)s->len);
    s->off = s->len = 0;
    s->scan = 0;
  }
  if (s->eof) {
    s->eof = 0;
    x->sock_eof = 1;
    BIO_set_mem_eof_return(x->rbio, 0);
  }
  s->tls = x;
  return x;
}

static void on_deadline(tnode *n) {
  struct tls *x = container_of(n, struct tls, deadline);
  if (x->state != HS_RUNNING) return;
  x->state = HS_FAILED;
  x->code = "ETIMEDOUT";
  snprintf(x->err, sizeof x->err, "TLS handshake timed out");
  finish(x);
}

/* A cancelled handshake closes its stream (at sidx: wobj is its
   userdata). */
static int hs_abandon(task *t, int woken) {
  streamud *ud = t->wobj;
  stream *s = ud->s;
  if (!woken) luaio__list_remove(&t->w);
  if (s != NULL) {
    if (!woken) s->tls->waiter = NULL;
    luaio__stream_abort(s);
  }
  return 1;
}

static const waitops hs_ops = {"TLS handshake", hs_abandon, NULL};

/* Run the handshake of the stream at sidx (its layer attached), waiting
   for it as task t (linked into `pending` if not NULL); then k. */
static int begin(lua_State *L, task *t, int sidx, double timeout,
                 waitlist *pending, lua_KFunction k, lua_KContext kctx) {
  streamud *ud = lua_touserdata(L, sidx);
  stream *s = ud->s;
  struct tls *x = s->tls;
  if (s->rerr)
    fail_uv(x, s->rerr);
  else
    handshake(s);
  if (x->state == HS_RUNNING) luaio__stream_update(s);
  if (x->state == HS_RUNNING && s->rerr) fail_uv(x, s->rerr);
  if (x->state != HS_RUNNING) return k(L, LUA_OK, kctx);
  x->deadline.fire = on_deadline;
  if (timeout > 0)
    luaio__timer_add(s->h, &x->deadline,
                     luaio__now() + (uint64_t)(timeout * 1e9));
  x->waiter = t;
  if (pending != NULL) luaio__list_push(pending, &t->w);
  return luaio__wait(L, t, &hs_ops, ud, kctx, k);
}

int luaio__tls_ok(lua_State *L, int sidx) {
  streamud *ud = lua_touserdata(L, sidx);
  stream *s = ud->s;
  if (s != NULL && s->tls->state == HS_DONE) return 1;
  if (s != NULL) luaio__stream_abort(s);
  return 0;
}

/* The stream at sidx, or nil, msg, code after closing it. */
static int client_result(lua_State *L, int sidx) {
  streamud *ud = lua_touserdata(L, sidx);
  stream *s = ud->s;
  if (s != NULL && s->tls->state == HS_DONE) {
    lua_pushvalue(L, sidx);
    return 1;
  }
  if (s == NULL) return luaio__uv_fail(L, UV_ECANCELED);
  luaio__fail(L, s->tls->code, s->tls->err);
  luaio__stream_abort(s);
  return 3;
}

static int k_client(lua_State *L, int status, lua_KContext ctx) {
  if (status == LUA_YIELD) luaio__resumed(L, luaio__find_host(L)->current);
  return client_result(L, (int)ctx);
}

/* Set up the client side of x: verification, SNI, the name checked. */
static void client_setup(struct tls *x, const char *name, int verify) {
  unsigned char ip[16];
  int literal = name != NULL && (uv_inet_pton(AF_INET, name, ip) == 0 ||
                                 uv_inet_pton(AF_INET6, name, ip) == 0);
  x->verify = (unsigned char)verify;
  SSL_set_verify(x->ssl, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
  if (name == NULL) return;
  if (!literal) SSL_set_tlsext_host_name(x->ssl, name);
  if (!verify) return;
  if (literal)
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(x->ssl), name);
  else {
    SSL_set_hostflags(x->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    SSL_set1_host(x->ssl, name);
  }
}

/* The client handshake of the stream at sidx, with the TLS table at t (0:
   the defaults) and the name to check. */
static int start_client(lua_State *L, task *t, int sidx, int tt,
                        const char *name) {
  streamud *ud = lua_touserdata(L, sidx);
  stream *s = ud->s;
  const char *cafile = NULL;
  double timeout = HANDSHAKE_TIMEOUT;
  int verify = 1;
  char err[512];
  SSL_CTX *ctx;
  struct tls *x;
  if (tt != 0) {
    const char *sn = field_str(L, tt, "server_name");
    cafile = field_str(L, tt, "cafile");
    timeout = field_timeout(L, tt);
    if (lua_getfield(L, tt, "verify") == LUA_TBOOLEAN)
      verify = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (sn != NULL) name = sn;
  }
  if ((ctx = client_ctx(L, cafile, err, sizeof err)) == NULL) {
    luaio__stream_abort(s);
    return luaio__fail(L, "ETLS", err);
  }
  if ((x = attach(s, ctx, 0)) == NULL) {
    luaio__stream_abort(s);
    return luaio__uv_fail(L, UV_ENOMEM);
  }
  client_setup(x, name, verify);
  return begin(L, t, sidx, timeout, NULL, k_client, sidx);
}

int luaio__tls_client(lua_State *L, int sidx, int oidx, int hidx) {
  streamud *ud = lua_touserdata(L, sidx);
  task *t = luaio__enter_wait(L, ud->s->h);
  const char *host = lua_tostring(L, hidx);
  int tt = 0;
  sidx = lua_absindex(L, sidx);
  if (lua_getfield(L, oidx, "tls") == LUA_TTABLE)
    tt = lua_gettop(L); /* stays on the stack, under the results */
  else
    lua_pop(L, 1);
  return start_client(L, t, sidx, tt, host);
}

int luaio__tls_server(lua_State *L, int sidx, SSL_CTX *ctx, double timeout,
                      waitlist *pending, lua_KFunction k, lua_KContext kctx) {
  streamud *ud = lua_touserdata(L, sidx);
  stream *s = ud->s;
  task *t;
  if (s == NULL) return k(L, LUA_OK, kctx);
  t = luaio__enter_wait(L, s->h);
  if (s->tls != NULL || attach(s, ctx, 1) == NULL) {
    luaio__stream_abort(s);
    return k(L, LUA_OK, kctx);
  }
  return begin(L, t, sidx, timeout, pending, k, kctx);
}

/* stream:starttls(opts) -> stream | nil, msg, code: the handshake over a
   plain stream; opts.cert and opts.key make it the server side.  A
   failure closes the stream. */
int luaio__stream_starttls(lua_State *L) {
  stream *s = luaio__checkstream(L, 1);
  int server;
  task *t;
  if (lua_isnoneornil(L, 2)) {
    lua_settop(L, 1);
    lua_newtable(L);
  }
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  lua_getfield(L, 2, "cert");
  server = !lua_isnil(L, -1);
  lua_pop(L, 1);
  check_table(L, 2, 2, starttls_keys, server);
  if (s->tls != NULL) return luaL_error(L, "the stream is already TLS");
  if (s->kind != SK_TCP && s->kind != SK_PIPE)
    return luaL_error(L, "starttls needs a socket stream");
  if (s->readers.n > 0)
    return luaL_error(L, "another task is reading this stream");
  if (!server) {
    lua_getfield(L, 2, "verify");
    if (lua_toboolean(L, -1) || lua_isnil(L, -1)) {
      lua_getfield(L, 2, "server_name");
      if (lua_isnil(L, -1))
        luaL_argerror(L, 2,
                      "server_name needed to verify the peer "
                      "(or verify = false)");
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  t = luaio__enter_wait(L, s->h);
  if (server) {
    char err[512];
    SSL_CTX *ctx = server_ctx(field_str(L, 2, "cert"), field_str(L, 2, "key"),
                              err, sizeof err);
    struct tls *x;
    if (ctx == NULL) {
      luaio__stream_abort(s);
      return luaio__fail(L, "ETLS", err);
    }
    x = attach(s, ctx, 1);
    SSL_CTX_free(ctx); /* the SSL holds its own reference */
    if (x == NULL) {
      luaio__stream_abort(s);
      return luaio__uv_fail(L, UV_ENOMEM);
    }
    return begin(L, t, 1, field_timeout(L, 2), NULL, k_client, 1);
  }
  return start_client(L, t, 1, 2, NULL);
}

/* stream:tls_info() -> {version, cipher, server_name} | nil (a plain
   stream) */
int luaio__stream_tls_info(lua_State *L) {
  stream *s = luaio__checkstream(L, 1);
  const char *sni;
  if (s->tls == NULL || s->tls->state != HS_DONE) {
    lua_pushnil(L);
    return 1;
  }
  lua_createtable(L, 0, 3);
  lua_pushstring(L, SSL_get_version(s->tls->ssl));
  lua_setfield(L, -2, "version");
  lua_pushstring(L, SSL_get_cipher_name(s->tls->ssl));
  lua_setfield(L, -2, "cipher");
  sni = SSL_get_servername(s->tls->ssl, TLSEXT_NAMETYPE_host_name);
  if (sni != NULL) {
    lua_pushstring(L, sni);
    lua_setfield(L, -2, "server_name");
  }
  return 1;
}

/*
** curl.c: luaio._curl, HTTP transfers on libcurl's multi interface,
** driven by the host's loop.  lua/luaio/http/client.lua is the policy.
**
** A multi (one per session) runs its CURLM with curl_multi_socket_action:
** curl's sockets are uv_poll handles (on_socket), its timeout one
** uv_timer (on_timerfunc).  Curl's callbacks run no Lua: they fill C
** buffers and wake the waiting task onto the ready queue; the task's
** continuation reads the state.  A transfer is a userdata holding one easy
** handle; cancelling the task that waits on it removes the handle from the
** multi at once.  With `stream`, the body is handed over one chunk at a
** time: while a chunk waits to be read, the write callback pauses the
** transfer.  An upload from a Lua iterator pauses the read callback until
** the task feeds the next chunk.  A plain request is m:fetch: start, wait
** and the response table (head parsed here) in one call.  The sockets of
** curl's connections are opened and closed through us, so a pooled
** connection keeps its uv_poll from one request to the next.
*/

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

#include "internal.h"

#define MULTI_MT "luaio.curl.Multi"
#define XFER_MT "luaio.curl.Transfer"
#define MAX_HEAD (256 * 1024) /* bytes of a response head */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_status;

/* curl_global_init once per process, whatever thread gets here first. */
static void global_init(void) {
  global_status = curl_global_init(CURL_GLOBAL_DEFAULT);
}

typedef struct buf {
  char *p;
  size_t n, cap;
} buf;

static int buf_add(buf *b, const char *s, size_t n) {
  if (b->n + n > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    char *p;
    while (cap < b->n + n)
      cap *= 2;
    if ((p = realloc(b->p, cap)) == NULL) return 0;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  return 1;
}

static void buf_free(buf *b) {
  free(b->p);
  b->p = NULL;
  b->n = b->cap = 0;
}

struct xfer;

/* One of curl's sockets.  A socket curl opened through on_opensocket
   (owned) keeps its poll from one transfer to the next while its
   connection waits in curl's pool: curl says CURL_POLL_REMOVE when a
   transfer ends and asks again when the next one reuses the connection,
   and on_closesocket tells when the socket really goes.  The interest
   libuv watches changes only when curl asks for a different one: each
   uv_poll_start costs an epoll_ctl DEL and ADD. */
typedef struct sockpoll {
  uv_poll_t poll;
  curl_socket_t fd;
  struct multi *m;
  struct sockpoll *prev, *next; /* m->polls, once the poll is initialised */
  int events;                   /* what the poll watches (UV_READABLE...) */
  unsigned char owned, inited, idle;
} sockpoll;

typedef struct multi {
  resource res;
  luaio *h;
  CURLM *cm;
  uv_timer_t timer;
  struct xfer *xfers; /* every transfer with an easy handle */
  sockpoll *polls;
  sockpoll **fds; /* by socket number, for the sockets curl opened */
  int nfds;
  int nactive; /* transfers in the multi */
  unsigned char closing, timer_closed, collected;
} multi;

typedef struct xfer {
  struct xfer *prev, *next;
  multi *m; /* NULL once released */
  CURL *easy;
  struct curl_slist *headers;
  task *waiter;
  buf head, body, up;
  size_t up_off, max_body;
  CURLcode result;
  unsigned char active, stream, done, head_done, paused, need_body, up_eof;
  unsigned char too_big, cancelled, closed;
  char errbuf[CURL_ERROR_SIZE];
} xfer;

/* Waking. */

static void wake(xfer *x) {
  task *t = x->waiter;
  if (t == NULL) return;
  x->waiter = NULL;
  luaio__wake(t, NULL, 0);
}

/* The loop stays alive for a multi's handles only while it has
   transfers: called when nactive turns from 0 to 1 or back. */
static void update_refs(multi *m) {
  sockpoll *p;
  if (m->closing) return;
  if (m->nactive > 0) {
    uv_ref((uv_handle_t *)&m->timer);
    for (p = m->polls; p; p = p->next)
      uv_ref((uv_handle_t *)&p->poll);
  } else {
    uv_unref((uv_handle_t *)&m->timer);
    for (p = m->polls; p; p = p->next)
      uv_unref((uv_handle_t *)&p->poll);
  }
}

/* Take x's easy handle out of the multi (its connection goes back to the
   pool or is closed). */
static void detach(xfer *x) {
  multi *m = x->m;
  if (!x->active) return;
  x->active = 0;
  curl_multi_remove_handle(m->cm, x->easy);
  if (--m->nactive == 0) update_refs(m);
}

/* Finished transfers: detached, and their tasks woken. */
static void check_info(multi *m) {
  CURLMsg *msg;
  int left;
  while (m->cm && (msg = curl_multi_info_read(m->cm, &left)) != NULL) {
    xfer *x = NULL;
    if (msg->msg != CURLMSG_DONE) continue;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
    if (x == NULL) continue;
    x->result = msg->data.result;
    detach(x);
    x->done = x->head_done = 1;
    wake(x);
  }
}

/* The loop's side of curl. */

static void on_poll_closed(uv_handle_t *handle) { free(handle->data); }

/* Forget p: its poll closed (now, before its socket is), p freed. */
static void close_poll(multi *m, sockpoll *p) {
  if (p->fd >= 0 && p->fd < m->nfds && m->fds[p->fd] == p) m->fds[p->fd] = NULL;
  if (!p->inited) {
    free(p);
    return;
  }
  if (p->prev)
    p->prev->next = p->next;
  else
    m->polls = p->next;
  if (p->next) p->next->prev = p->prev;
  uv_close((uv_handle_t *)&p->poll, on_poll_closed);
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  sockpoll *p = handle->data;
  multi *m = p->m;
  int flags = 0, running;
  if (p->idle) { /* a pooled connection stirs: curl looks when reusing it */
    uv_poll_stop(&p->poll);
    p->events = 0;
    return;
  }
  if (status < 0) {
    /* libuv stopped the poll (POLLERR): curl does the I/O it was waiting
       for and meets the socket's own error (ECONNRESET...) */
    flags = (p->events & UV_READABLE ? CURL_CSELECT_IN : 0) |
            (p->events & UV_WRITABLE ? CURL_CSELECT_OUT : 0);
    if (flags == 0) flags = CURL_CSELECT_ERR;
    p->events = 0;
  } else {
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  }
  curl_multi_socket_action(m->cm, p->fd, flags, &running);
  check_info(m);
}

/* The sockets of curl's connections: made here so that their close is
   known (on_closesocket), which lets a poll outlive CURL_POLL_REMOVE. */
static curl_socket_t on_opensocket(void *ud, curlsocktype purpose,
                                   struct curl_sockaddr *a) {
  multi *m = ud;
  sockpoll *p;
  curl_socket_t s;
  (void)purpose;
  if (m->closing) return CURL_SOCKET_BAD;
  s = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
  if (s < 0) return CURL_SOCKET_BAD;
  if (s >= m->nfds) {
    int n = m->nfds ? m->nfds : 64;
    sockpoll **fds;
    while (n <= s)
      n *= 2;
    if ((fds = realloc(m->fds, n * sizeof *fds)) == NULL) goto fail;
    memset(fds + m->nfds, 0, (n - m->nfds) * sizeof *fds);
    m->fds = fds;
    m->nfds = n;
  }
  if (m->fds[s] != NULL) close_poll(m, m->fds[s]); /* cannot happen */
  if ((p = calloc(1, sizeof *p)) == NULL) goto fail;
  p->fd = s;
  p->m = m;
  p->owned = 1;
  m->fds[s] = p;
  return s;
fail:
  close(s);
  return CURL_SOCKET_BAD;
}

static int on_closesocket(void *ud, curl_socket_t s) {
  multi *m = ud;
  if (s >= 0 && s < m->nfds && m->fds[s] != NULL) close_poll(m, m->fds[s]);
  return close(s);
}

static int on_socket(CURL *e, curl_socket_t s, int what, void *userp,
                     void *socketp) {
  multi *m = userp;
  sockpoll *p = socketp;
  int events = 0;
  (void)e;
  if (p == NULL && s >= 0 && s < m->nfds) p = m->fds[s];
  if (what == CURL_POLL_REMOVE) {
    if (p == NULL) return 0;
    curl_multi_assign(m->cm, s, NULL);
    if (p->owned)
      p->idle = 1; /* keeps watching until curl reuses or closes it */
    else
      close_poll(m, p);
    return 0;
  }
  if (p == NULL) { /* a socket curl did not open through us (a resolver's) */
    if (m->closing || (p = calloc(1, sizeof *p)) == NULL) return -1;
    p->fd = s;
    p->m = m;
  }
  if (!p->inited) {
    if (m->closing || uv_poll_init_socket(m->h->loop, &p->poll, s) < 0) {
      if (!p->owned) free(p);
      return -1;
    }
    p->inited = 1;
    p->poll.data = p;
    p->next = m->polls;
    if (m->polls) m->polls->prev = p;
    m->polls = p;
    if (m->nactive == 0) uv_unref((uv_handle_t *)&p->poll);
  }
  if (socketp == NULL) curl_multi_assign(m->cm, s, p);
  p->idle = 0;
  if (what & CURL_POLL_IN) events |= UV_READABLE;
  if (what & CURL_POLL_OUT) events |= UV_WRITABLE;
  if (events != p->events) {
    p->events = events;
    uv_poll_start(&p->poll, events, on_poll);
  }
  return 0;
}

static void on_timer(uv_timer_t *timer) {
  multi *m = timer->data;
  int running;
  curl_multi_socket_action(m->cm, CURL_SOCKET_TIMEOUT, 0, &running);
  check_info(m);
}

static int on_timerfunc(CURLM *cm, long ms, void *userp) {
  multi *m = userp;
  (void)cm;
  if (m->closing) return 0;
  if (ms < 0)
    uv_timer_stop(&m->timer);
  else
    uv_timer_start(&m->timer, on_timer, (uint64_t)ms, 0);
  return 0;
}

/* Curl's callbacks for one transfer: C only. */

static size_t on_header(char *s, size_t size, size_t n, void *ud) {
  xfer *x = ud;
  size_t len = size * n;
  if (x->head_done) return len;                              /* trailers */
  if (len >= 5 && memcmp(s, "HTTP/", 5) == 0) x->head.n = 0; /* a new head */
  if (x->head.n + len > MAX_HEAD || !buf_add(&x->head, s, len)) return 0;
  return len;
}

static size_t on_write(char *s, size_t size, size_t n, void *ud) {
  xfer *x = ud;
  size_t len = size * n;
  if (x->stream) {
    if (x->body.n > 0) { /* the reader has not taken the last chunk */
      x->paused = 1;
      return CURL_WRITEFUNC_PAUSE;
    }
    if (!buf_add(&x->body, s, len)) return 0;
    x->head_done = 1;
    wake(x);
    return len;
  }
  if (x->body.n + len > x->max_body) {
    x->too_big = 1;
    return 0;
  }
  if (!buf_add(&x->body, s, len)) return 0;
  return len;
}

static size_t on_read(char *dst, size_t size, size_t n, void *ud) {
  xfer *x = ud;
  size_t room = size * n, left = x->up.n - x->up_off;
  if (left > 0) {
    if (left > room) left = room;
    memcpy(dst, x->up.p + x->up_off, left);
    x->up_off += left;
    return left;
  }
  if (x->up_eof) return 0;
  x->need_body = 1;
  wake(x);
  return CURL_READFUNC_PAUSE;
}

/* Errors: curl's codes as the names API.md lists. */

static const char *code_name(xfer *x) {
  long oserr = 0;
  switch (x->result) {
  case CURLE_COULDNT_CONNECT:
    curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &oserr);
    if (oserr > 0 && oserr != ECONNREFUSED) return uv_err_name(-(int)oserr);
    return "ECONNREFUSED";
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
    return "EAI_NONAME";
  case CURLE_OPERATION_TIMEDOUT:
    return "ETIMEDOUT";
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_SSL_INVALIDCERTSTATUS:
  case CURLE_SSL_CRL_BADFILE:
  case CURLE_SSL_ENGINE_INITFAILED:
  case CURLE_SSL_CLIENTCERT:
    return "ETLS";
  case CURLE_TOO_MANY_REDIRECTS:
    return "ETOOMANYREDIRECTS";
  case CURLE_WRITE_ERROR:
    return x->too_big ? "EMSGSIZE" : "EPROTO";
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR:
    curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &oserr);
    if (oserr == ECONNRESET) return "ECONNRESET";
    return "EPROTO";
  case CURLE_URL_MALFORMAT:
    return "EINVAL";
  case CURLE_OUT_OF_MEMORY:
    return "ENOMEM";
  default:
    return "EPROTO";
  }
}

/* nil, "CODE: curl's text: detail", "CODE" for x's failure. */
static int push_failure(lua_State *L, xfer *x) {
  const char *code = code_name(x);
  lua_pushnil(L);
  if (x->too_big)
    lua_pushfstring(L,
                    "EMSGSIZE: response body larger than max_body_size "
                    "(%I bytes)",
                    (lua_Integer)x->max_body);
  else if (x->errbuf[0] != '\0')
    lua_pushfstring(L, "%s: %s: %s", code, curl_easy_strerror(x->result),
                    x->errbuf);
  else
    lua_pushfstring(L, "%s: %s", code, curl_easy_strerror(x->result));
  lua_pushstring(L, code);
  return 3;
}

/* Transfers. */

static void release(xfer *x) {
  multi *m = x->m;
  if (m == NULL) return;
  detach(x);
  if (x->prev)
    x->prev->next = x->next;
  else
    m->xfers = x->next;
  if (x->next) x->next->prev = x->prev;
  x->m = NULL;
  curl_easy_cleanup(x->easy);
  x->easy = NULL;
  curl_slist_free_all(x->headers);
  x->headers = NULL;
  buf_free(&x->head);
  buf_free(&x->body);
  buf_free(&x->up);
  x->closed = 1;
  wake(x);
}

static xfer *checkxfer(lua_State *L, int idx) {
  xfer *x = luaL_checkudata(L, idx, XFER_MT);
  if (x->closed)
    luaL_error(L, x->cancelled ? "attempt to use a cancelled request"
                               : "attempt to use a closed response");
  return x;
}

static int xfer_abandon(task *t, int woken) {
  xfer *x = t->wobj;
  (void)woken;
  x->waiter = NULL;
  x->cancelled = 1;
  release(x); /* removes the handle from the multi now */
  return 1;
}

static const waitops xfer_ops = {"HTTP request", xfer_abandon, NULL};

/* What x:wait() returns now, or NULL to wait. */
static const char *event(xfer *x) {
  if (x->need_body) return "body";
  if (x->done) return "done";
  if (x->stream && x->head_done) return "head";
  return NULL;
}

static int do_wait(lua_State *L, xfer *x);
static int do_read(lua_State *L, xfer *x);

static int do_fetch(lua_State *L, xfer *x);

enum { K_WAIT, K_READ, K_FETCH };

static int k_xfer(lua_State *L, int status, lua_KContext ctx) {
  xfer *x;
  (void)status;
  luaio__resumed(L, luaio__host(L)->current);
  x = lua_touserdata(L, 1);
  if (x->closed) return luaL_error(L, "the HTTP session was closed");
  return ctx == K_READ   ? do_read(L, x)
         : ctx == K_WAIT ? do_wait(L, x)
                         : do_fetch(L, x);
}

/* Wait on x (at index 1; what lies above it up to keep stays). */
static int suspend(lua_State *L, xfer *x, int keep, lua_KContext ctx) {
  task *t = luaio__enter_wait(L, luaio__host(L));
  lua_settop(L, keep);
  x->waiter = t;
  return luaio__wait(L, t, &xfer_ops, x, ctx, k_xfer);
}

static int do_wait(lua_State *L, xfer *x) {
  const char *ev = event(x);
  if (ev == NULL) return suspend(L, x, 1, K_WAIT);
  lua_pushstring(L, ev);
  return 1;
}

/* Let curl go on in the directions nobody holds paused. */
static void unpause(xfer *x) {
  if (x->easy == NULL) return;
  curl_easy_pause(x->easy, (x->paused ? CURLPAUSE_RECV : 0) |
                               (x->need_body ? CURLPAUSE_SEND : 0));
}

static int do_read(lua_State *L, xfer *x) {
  if (x->body.n > 0) {
    lua_pushlstring(L, x->body.p, x->body.n);
    x->body.n = 0;
    if (x->paused) {
      x->paused = 0;
      unpause(x); /* curl may hand over the next chunk at once */
    }
    return 1;
  }
  if (x->done) {
    if (x->result != CURLE_OK) return push_failure(L, x);
    lua_pushnil(L);
    return 1;
  }
  if (x->need_body) {
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "body");
    return 2;
  }
  return suspend(L, x, 1, K_READ);
}

/* x:wait() -> "head" | "done" | "body" (the upload wants a chunk) */
static int xfer_wait(lua_State *L) {
  xfer *x = checkxfer(L, 1);
  if (x->waiter != NULL) return luaL_error(L, "another task waits on this");
  return do_wait(L, x);
}

/* x:read() -> chunk | nil at the end | nil, msg, code | false, "body" */
static int xfer_read(lua_State *L) {
  xfer *x = checkxfer(L, 1);
  if (!x->stream) return luaL_error(L, "not a streamed response");
  if (x->waiter != NULL) return luaL_error(L, "another task waits on this");
  return do_read(L, x);
}

/* x:feed(chunk | nil): the upload's next chunk, or its end */
static int xfer_feed(lua_State *L) {
  xfer *x = checkxfer(L, 1);
  size_t len;
  const char *s = luaL_optlstring(L, 2, NULL, &len);
  if (!x->need_body) return luaL_error(L, "the upload did not ask for data");
  x->up.n = x->up_off = 0;
  if (s == NULL)
    x->up_eof = 1;
  else if (!buf_add(&x->up, s, len))
    return luaL_error(L, "not enough memory");
  x->need_body = 0;
  unpause(x);
  return 0;
}

/* The head's fields into the table on top: headers (names lower-cased,
   repeated fields joined with ", ") and reason. */
static void push_head(lua_State *L, xfer *x) {
  char *p = x->head.p, *end = p + x->head.n, name[256];
  int first = 1, t;
  lua_createtable(L, 0, 8);
  t = lua_gettop(L);
  while (p != NULL && p < end) {
    char *eol = memchr(p, '\n', end - p), *line = p, *colon, *v, *ve;
    size_t nlen, i;
    if (eol == NULL) eol = end;
    p = eol + 1;
    ve = eol;
    if (ve > line && ve[-1] == '\r') ve--;
    if (first) { /* HTTP/1.1 200 reason */
      char *sp = memchr(line, ' ', ve - line);
      first = 0;
      if (sp != NULL && (sp = memchr(sp + 1, ' ', ve - sp - 1)) != NULL)
        lua_pushlstring(L, sp + 1, ve - sp - 1);
      else
        lua_pushliteral(L, "");
      lua_setfield(L, t - 1, "reason");
      continue;
    }
    colon = memchr(line, ':', ve - line);
    nlen = colon ? (size_t)(colon - line) : 0;
    if (nlen == 0 || nlen >= sizeof name) continue;
    for (i = 0; i < nlen; i++) {
      unsigned char c = (unsigned char)line[i];
      if (c <= ' ') break;
      name[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    if (i < nlen) continue; /* a folded line or a bad name */
    for (v = colon + 1; v < ve && (*v == ' ' || *v == '\t'); v++)
      ;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
      ve--;
    lua_pushlstring(L, name, nlen);
    if (lua_rawget(L, t) == LUA_TSTRING) {
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, v, ve - v);
      lua_concat(L, 3);
    } else {
      lua_pop(L, 1);
      lua_pushlstring(L, v, ve - v);
    }
    lua_pushlstring(L, name, nlen);
    lua_insert(L, -2);
    lua_rawset(L, t);
  }
  lua_setfield(L, t - 1, "headers");
}

/* The response table for x (done, or streaming at its head) with metatable
   at index mt: status, reason, headers, url, ok, http_version,
   new_connections, _redirect, and body unless streaming; or
   nil, msg, code if x failed. */
static int push_response(lua_State *L, xfer *x, int mt) {
  long status = 0, version = 0, connects = 0;
  char *url = NULL, *redirect = NULL;
  if (x->done && x->result != CURLE_OK) return push_failure(L, x);
  curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(x->easy, CURLINFO_EFFECTIVE_URL, &url);
  curl_easy_getinfo(x->easy, CURLINFO_REDIRECT_URL, &redirect);
  curl_easy_getinfo(x->easy, CURLINFO_HTTP_VERSION, &version);
  curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &connects);
  lua_createtable(L, 0, 10);
  lua_pushinteger(L, status);
  lua_setfield(L, -2, "status");
  lua_pushboolean(L, status < 400);
  lua_setfield(L, -2, "ok");
  lua_pushstring(L, url);
  lua_setfield(L, -2, "url");
  if (redirect) {
    lua_pushstring(L, redirect);
    lua_setfield(L, -2, "_redirect");
  }
  lua_pushstring(L, version == CURL_HTTP_VERSION_2_0   ? "2"
                    : version == CURL_HTTP_VERSION_1_0 ? "1.0"
                                                       : "1.1");
  lua_setfield(L, -2, "http_version");
  lua_pushinteger(L, connects);
  lua_setfield(L, -2, "new_connections");
  push_head(L, x);
  if (!x->stream) {
    lua_pushlstring(L, x->body.p ? x->body.p : "", x->body.n);
    lua_setfield(L, -2, "body");
  }
  lua_pushvalue(L, mt);
  lua_setmetatable(L, -2);
  return 1;
}

/* m:fetch's end: x at 1, the metatable at 2. */
static int do_fetch(lua_State *L, xfer *x) {
  int n;
  if (!x->done) return suspend(L, x, 2, K_FETCH);
  n = push_response(L, x, 2);
  release(x); /* the easy handle goes at once, not at x's collection */
  return n;
}

/* x:response(mt) -> the response | nil, msg, code (done, or streaming at
   its head) */
static int xfer_response(lua_State *L) {
  xfer *x = checkxfer(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  if (!x->done && !(x->stream && x->head_done))
    return luaL_error(L, "the transfer has no response yet");
  return push_response(L, x, 2);
}

/* x:close(), __close, __gc: abandons the transfer; again is harmless */
static int xfer_close(lua_State *L) {
  xfer *x = luaL_checkudata(L, 1, XFER_MT);
  release(x);
  return 0;
}

/* tostring(x) */
static int xfer_tostring(lua_State *L) {
  xfer *x = luaL_checkudata(L, 1, XFER_MT);
  lua_pushfstring(L, "luaio.curl.Transfer (%s)",
                  x->closed ? "closed"
                  : x->done ? "done"
                            : "running");
  return 1;
}

/* Multis. */

static multi *checkmulti(lua_State *L, int idx) {
  multi *m = *(multi **)luaL_checkudata(L, idx, MULTI_MT);
  if (m == NULL || m->closing)
    luaL_error(L, "attempt to use a closed HTTP session");
  return m;
}

static void on_timer_closed(uv_handle_t *handle) {
  multi *m = handle->data;
  m->timer_closed = 1;
  if (m->collected) free(m);
}

/* Release every transfer, clean up the CURLM, close every handle. */
static void shutdown_multi(multi *m) {
  int i;
  if (m->closing) return;
  while (m->xfers != NULL)
    release(m->xfers);
  m->closing = 1;
  luaio__res_remove(m->h, &m->res);
  curl_multi_cleanup(m->cm); /* closes its sockets: on_closesocket */
  m->cm = NULL;
  while (m->polls != NULL)
    close_poll(m, m->polls);
  for (i = 0; i < m->nfds; i++)
    if (m->fds[i] != NULL) close_poll(m, m->fds[i]);
  free(m->fds);
  m->fds = NULL;
  m->nfds = 0;
  uv_close((uv_handle_t *)&m->timer, on_timer_closed);
}

static void res_close(resource *r) {
  shutdown_multi(container_of(r, multi, res));
}

#define OPT(x, o, v)                                                           \
  do {                                                                         \
    CURLcode rc_ = curl_easy_setopt((x)->easy, o, v);                          \
    if (rc_ != CURLE_OK)                                                       \
      return luaL_error(L, "curl option %s: %s", #o, curl_easy_strerror(rc_)); \
  } while (0)

static const char *optstring(lua_State *L, int t, const char *k, size_t *len) {
  const char *s = NULL;
  if (lua_getfield(L, t, k) != LUA_TNIL) {
    s = lua_tolstring(L, -1, len);
    if (s == NULL) luaL_error(L, "option '%s': a string expected", k);
  }
  lua_pop(L, 1);
  return s; /* the table keeps it alive */
}

/* Milliseconds of option k (seconds), or -1 if absent. */
static long optms(lua_State *L, int t, const char *k) {
  double s = -1;
  if (lua_getfield(L, t, k) != LUA_TNIL) {
    int ok;
    s = lua_tonumberx(L, -1, &ok);
    if (!ok || !(s >= 0)) luaL_error(L, "option '%s': seconds expected", k);
    if (s > 1e9) s = 1e9;
    s = s * 1e3 + 0.5;
    if (s < 1) s = 1;
  }
  lua_pop(L, 1);
  return (long)s;
}

static int optbool(lua_State *L, int t, const char *k, int def) {
  int v = def;
  if (lua_getfield(L, t, k) != LUA_TNIL) v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* m:start(opts) -> transfer: opts is checked by client.lua: url, method,
   headers (array of "Name: value"), body (string) or upload (true: chunks
   come through feed), timeout, connect_timeout, read_timeout (seconds),
   verify, cafile, proxy, trust_env, max_body_size, stream */
static int multi_start(lua_State *L) {
  multi *m = checkmulti(L, 1);
  xfer *x;
  size_t blen = 0;
  const char *url, *method, *body, *s;
  long ms;
  int upload;
  char ua[64];
  CURLMcode mc;
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  url = optstring(L, 2, "url", NULL);
  method = optstring(L, 2, "method", NULL);
  body = optstring(L, 2, "body", &blen);
  upload = optbool(L, 2, "upload", 0);
  luaL_argcheck(L, url != NULL, 2, "url expected");
  if (method == NULL) method = "GET";
  x = lua_newuserdatauv(L, sizeof *x, 1);
  memset(x, 0, sizeof *x);
  luaL_setmetatable(L, XFER_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1); /* the multi outlives its transfers */
  x->result = CURLE_OK;
  x->max_body = 64 * 1024 * 1024;
  if ((x->easy = curl_easy_init()) == NULL)
    return luaL_error(L, "not enough memory");
  x->m = m;
  x->next = m->xfers;
  if (m->xfers) m->xfers->prev = x;
  m->xfers = x;
  x->stream = (unsigned char)optbool(L, 2, "stream", 0);
  if (lua_getfield(L, 2, "max_body_size") != LUA_TNIL) {
    lua_Integer n = luaL_checkinteger(L, -1);
    luaL_argcheck(L, n >= 0, 2, "max_body_size must not be negative");
    x->max_body = (size_t)n;
  }
  lua_pop(L, 1);
  OPT(x, CURLOPT_PRIVATE, (char *)x);
  OPT(x, CURLOPT_URL, url);
  OPT(x, CURLOPT_PROTOCOLS_STR, "http,https");
  OPT(x, CURLOPT_ERRORBUFFER, x->errbuf);
  OPT(x, CURLOPT_NOSIGNAL, 1L);
  snprintf(ua, sizeof ua, "luaio/%s", LUAIO_VERSION + 6); /* "luaio x" */
  OPT(x, CURLOPT_USERAGENT, ua);
  OPT(x, CURLOPT_ACCEPT_ENCODING, "");
  OPT(x, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  OPT(x, CURLOPT_FOLLOWLOCATION, 0L); /* client.lua follows redirects */
  OPT(x, CURLOPT_HEADERFUNCTION, on_header);
  OPT(x, CURLOPT_HEADERDATA, x);
  OPT(x, CURLOPT_WRITEFUNCTION, on_write);
  OPT(x, CURLOPT_WRITEDATA, x);
  OPT(x, CURLOPT_OPENSOCKETFUNCTION, on_opensocket);
  OPT(x, CURLOPT_OPENSOCKETDATA, m);
  OPT(x, CURLOPT_CLOSESOCKETFUNCTION, on_closesocket);
  OPT(x, CURLOPT_CLOSESOCKETDATA, m);
  if (strcmp(method, "GET") == 0 && body == NULL && !upload)
    OPT(x, CURLOPT_HTTPGET, 1L);
  else if (strcmp(method, "HEAD") == 0)
    OPT(x, CURLOPT_NOBODY, 1L);
  else {
    OPT(x, CURLOPT_POST, 1L);
    if (upload) {
      OPT(x, CURLOPT_READFUNCTION, on_read);
      OPT(x, CURLOPT_READDATA, x);
      OPT(x, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1); /* chunked */
    } else {
      OPT(x, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
      OPT(x, CURLOPT_COPYPOSTFIELDS, body ? body : "");
    }
    if (strcmp(method, "POST") != 0) OPT(x, CURLOPT_CUSTOMREQUEST, method);
  }
  if (lua_getfield(L, 2, "headers") == LUA_TTABLE) {
    lua_Integer i, n = (lua_Integer)lua_rawlen(L, -1);
    for (i = 1; i <= n; i++) {
      struct curl_slist *l;
      lua_rawgeti(L, -1, i);
      if ((s = lua_tostring(L, -1)) == NULL)
        return luaL_error(L, "header lines must be strings");
      if ((l = curl_slist_append(x->headers, s)) == NULL)
        return luaL_error(L, "not enough memory");
      x->headers = l;
      lua_pop(L, 1);
    }
    OPT(x, CURLOPT_HTTPHEADER, x->headers);
  }
  lua_pop(L, 1);
  if ((ms = optms(L, 2, "timeout")) >= 0) OPT(x, CURLOPT_TIMEOUT_MS, ms);
  if ((ms = optms(L, 2, "connect_timeout")) >= 0)
    OPT(x, CURLOPT_CONNECTTIMEOUT_MS, ms);
  if ((ms = optms(L, 2, "read_timeout")) >= 0) {
    OPT(x, CURLOPT_LOW_SPEED_LIMIT, 1L); /* under a byte a second */
    OPT(x, CURLOPT_LOW_SPEED_TIME, (ms + 999) / 1000);
  }
  if (!optbool(L, 2, "verify", 1)) {
    OPT(x, CURLOPT_SSL_VERIFYPEER, 0L);
    OPT(x, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if ((s = optstring(L, 2, "cafile", NULL)) != NULL) OPT(x, CURLOPT_CAINFO, s);
  if ((s = optstring(L, 2, "proxy", NULL)) != NULL)
    OPT(x, CURLOPT_PROXY, s);
  else if (!optbool(L, 2, "trust_env", 0))
    OPT(x, CURLOPT_PROXY, ""); /* no proxy from the environment */
  if ((mc = curl_multi_add_handle(m->cm, x->easy)) != CURLM_OK)
    return luaL_error(L, "curl: %s", curl_multi_strerror(mc));
  x->active = 1;
  if (++m->nactive == 1) update_refs(m);
  return 1;
}

/* m:fetch(opts, mt) -> response | nil, msg, code: m:start(opts) (no
   stream, no upload), its wait and x:response(mt) in one call */
static int multi_fetch(lua_State *L) {
  xfer *x;
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  if (optbool(L, 2, "stream", 0) || optbool(L, 2, "upload", 0))
    return luaL_error(L, "fetch: not for a stream or an upload");
  lua_pushcfunction(L, multi_start);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_call(L, 2, 1);
  x = lua_touserdata(L, 4);
  lua_replace(L, 1); /* x, opts, mt */
  lua_remove(L, 2);  /* x, mt */
  return do_fetch(L, x);
}

/* m:close(), __close: releases every transfer and connection */
static int multi_close(lua_State *L) {
  multi *m = *(multi **)luaL_checkudata(L, 1, MULTI_MT);
  if (m != NULL) shutdown_multi(m);
  return 0;
}

static int multi_gc(lua_State *L) {
  multi **p = luaL_checkudata(L, 1, MULTI_MT), *m = *p;
  if (m == NULL) return 0;
  *p = NULL;
  shutdown_multi(m);
  m->collected = 1;
  if (m->timer_closed) free(m);
  return 0;
}

/* m:closed() -> boolean */
static int multi_closed(lua_State *L) {
  multi *m = *(multi **)luaL_checkudata(L, 1, MULTI_MT);
  lua_pushboolean(L, m == NULL || m->closing);
  return 1;
}

/* _curl.multi([limit]) -> multi */
static int curl_multi(lua_State *L) {
  luaio *h = luaio__host(L);
  lua_Integer limit = luaL_optinteger(L, 1, 100);
  multi **p, *m;
  luaL_argcheck(L, limit >= 0 && limit <= 100000, 1, "limit out of range");
  pthread_once(&global_once, global_init);
  if (global_status != CURLE_OK)
    return luaL_error(L, "curl: %s", curl_easy_strerror(global_status));
  p = lua_newuserdatauv(L, sizeof *p, 0);
  *p = NULL;
  luaL_setmetatable(L, MULTI_MT);
  if ((m = calloc(1, sizeof *m)) == NULL)
    return luaL_error(L, "not enough memory");
  if ((m->cm = curl_multi_init()) == NULL) {
    free(m);
    return luaL_error(L, "not enough memory");
  }
  m->h = h;
  uv_timer_init(h->loop, &m->timer);
  m->timer.data = m;
  uv_unref((uv_handle_t *)&m->timer);
  m->res.close = res_close;
  luaio__res_add(h, &m->res);
  *p = m;
  curl_multi_setopt(m->cm, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(m->cm, CURLMOPT_SOCKETDATA, m);
  curl_multi_setopt(m->cm, CURLMOPT_TIMERFUNCTION, on_timerfunc);
  curl_multi_setopt(m->cm, CURLMOPT_TIMERDATA, m);
  curl_multi_setopt(m->cm, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)limit);
  /* The pool keeps up to limit connections: by default its size is four
     times the transfers in the multi, which drops between a finished
     transfer and the task's next one, and closes pooled connections. */
  curl_multi_setopt(m->cm, CURLMOPT_MAXCONNECTS, (long)(limit ? limit : 100));
  curl_multi_setopt(m->cm, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
  return 1;
}

/* _curl.version() -> libcurl's version string */
static int curl_version_fn(lua_State *L) {
  lua_pushstring(L, curl_version());
  return 1;
}

static const luaL_Reg multi_methods[] = {{"start", multi_start},
                                         {"fetch", multi_fetch},
                                         {"close", multi_close},
                                         {"closed", multi_closed},
                                         {"__close", multi_close},
                                         {"__gc", multi_gc},
                                         {NULL, NULL}};

static const luaL_Reg xfer_methods[] = {
    {"wait", xfer_wait},   {"read", xfer_read},
    {"feed", xfer_feed},   {"response", xfer_response},
    {"close", xfer_close}, {"__close", xfer_close},
    {"__gc", xfer_close},  {"__tostring", xfer_tostring},
    {NULL, NULL}};

LUAIO_API int luaopen_luaio__curl(lua_State *L) {
  luaio *h = luaio__open_host(L);
  luaL_newmetatable(L, MULTI_MT);
  lua_pushlightuserdata(L, h);
  luaL_setfuncs(L, multi_methods, 1);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newmetatable(L, XFER_MT);
  lua_pushlightuserdata(L, h);
  luaL_setfuncs(L, xfer_methods, 1);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushlightuserdata(L, h);
  lua_pushcclosure(L, curl_multi, 1);
  lua_setfield(L, -2, "multi");
  lua_pushcfunction(L, curl_version_fn);
  lua_setfield(L, -2, "version");
  return 1;
}

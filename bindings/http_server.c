/*
** http_server.c: the HTTP/1.1 server's framing, luaio._http_server.
**
** A connection object reads a stream's buffered bytes in place with
** http_parser and hands Lua one request head per call: the parser pauses
** at the end of each head and of each message (pipelined requests stay
** buffered until the next call), the callbacks only copy the target and
** the fields into the object's own fixed buffer, and the head becomes one
** Lua table when it is complete.  So a request costs one call from Lua,
** not one per callback.
**
** Debian builds http_parser without HTTP_PARSER_STRICT, so the checks it
** leaves out are made here: whitespace before a field's colon, exactly one
** Host on HTTP/1.1, CRLF after chunk data, control bytes in the target,
** the version, the transfer coding, and every size limit (counted in the
** callbacks; http_parser_set_max_header_size is process-wide).
**
** Waiting: the reader links the task into the stream's own reader list,
** exactly as stream:read does, and arms one timer node for the idle,
** head or body deadline.  The node is armed lazily: a wait whose deadline
** is later than the node's leaves it where it is, and when it fires early
** it moves itself to the deadline of the wait in progress, so a
** keep-alive request costs no timer heap operation.
*/

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <http_parser.h>

#include "stream.h"

#define HEAD_MAX (16 * 1024)  /* request line and fields: 431 beyond */
#define TARGET_MAX (8 * 1024) /* 414 beyond */
#define FIELDS_MAX 100        /* 431 beyond */
#define NS 1000000000.0

enum { ST_IDLE, ST_HEAD, ST_BODY, ST_DONE, ST_UPGRADED, ST_FAILED };
enum { P_NONE, P_HEAD, P_PIECE, P_DONE };

typedef struct field {
  uint32_t name, nlen, value, vlen;
} field;

typedef struct conn {
  http_parser p;
  luaio *h;
  streamud *sud; /* the stream's userdata: user value 1 anchors it */
  task *waiter;  /* the task waiting for bytes, for the timer */
  task *watched; /* cancelled if the peer leaves (cancel_on_disconnect) */
  tnode timer;   /* in the heap at timer.due <= due, or out of it */
  uint64_t due;  /* the deadline of the wait in progress (0: none) */
  unsigned char state, paused, timed_out, stop, skipping, expect;
  unsigned char bad_crlf, in_value;
  int status; /* what a callback refused, as an HTTP status */
  uint64_t max_body, body_bytes, chunk_left;
  const char *feed_end; /* the end of the bytes being parsed */
  int crlf_left;        /* of the CRLF after a chunk's data, still to see */
  double idle_timeout, header_timeout, body_timeout;
  uint64_t deadline; /* of the head in progress */
  const char *piece; /* a body piece, in the stream's buffer */
  size_t piece_len;
  size_t head_bytes, hlen, url_len;
  int nfields, hosts, te;
  time_t date_at;
  char date[40];
  field fields[FIELDS_MAX];
  char head[HEAD_MAX];
} conn;

/* The parser callbacks. */

static int fail(conn *c, int status) {
  if (c->status == 0) c->status = status;
  return 1;
}

static int on_message_begin(http_parser *p) {
  conn *c = p->data;
  c->state = ST_HEAD;
  c->hlen = c->url_len = 0;
  c->nfields = c->hosts = 0;
  c->te = -1;
  c->in_value = 0;
  c->expect = 0;
  c->body_bytes = 0;
  c->crlf_left = 0;
  c->deadline = luaio__now() + (uint64_t)(c->header_timeout * NS);
  return 0;
}

static int append(conn *c, const char *at, size_t len, int status) {
  if (len > sizeof c->head - c->hlen) return fail(c, status);
  memcpy(c->head + c->hlen, at, len);
  c->hlen += len;
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t len) {
  conn *c = p->data;
  size_t i;
  for (i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)at[i];
    if (ch <= 0x20 || ch == 0x7f) return fail(c, 400);
  }
  if (c->url_len + len > TARGET_MAX) return fail(c, 414);
  c->url_len += len;
  return append(c, at, len, 414);
}

/* A field's name and value are complete: note the ones checked later. */
static void field_done(conn *c) {
  field *f = &c->fields[c->nfields - 1];
  const char *name = c->head + f->name;
  if (f->nlen == 4 && memcmp(name, "host", 4) == 0)
    c->hosts++;
  else if (f->nlen == 17 && memcmp(name, "transfer-encoding", 17) == 0)
    c->te = c->te == -1 ? c->nfields - 1 : -2;
  else if (f->nlen == 6 && memcmp(name, "expect", 6) == 0 && f->vlen == 12 &&
           strncasecmp(c->head + f->value, "100-continue", 12) == 0)
    c->expect = 1;
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
  conn *c = p->data;
  size_t i, start = c->hlen;
  if (c->nfields == 0 || c->in_value) {
    if (c->nfields > 0) field_done(c);
    if (c->nfields == FIELDS_MAX) return fail(c, 431);
    c->fields[c->nfields].name = (uint32_t)c->hlen;
    c->fields[c->nfields].nlen = 0;
    c->fields[c->nfields].vlen = 0;
    c->fields[c->nfields].value = 0;
    c->nfields++;
    c->in_value = 0;
  }
  for (i = 0; i < len; i++)
    if (at[i] == ' ' || at[i] == '\t') return fail(c, 400);
  if (append(c, at, len, 431)) return 1;
  for (i = start; i < c->hlen; i++)
    c->head[i] = (char)tolower((unsigned char)c->head[i]);
  c->fields[c->nfields - 1].nlen += (uint32_t)len;
  return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
  conn *c = p->data;
  field *f = &c->fields[c->nfields - 1];
  if (!c->in_value) {
    c->in_value = 1;
    f->value = (uint32_t)c->hlen;
  }
  if (append(c, at, len, 431)) return 1;
  f->vlen += (uint32_t)len;
  return 0;
}

static int on_headers_complete(http_parser *p) {
  conn *c = p->data;
  if (c->nfields > 0) {
    field *f = &c->fields[c->nfields - 1];
    if (!c->in_value) f->value = (uint32_t)c->hlen;
    field_done(c);
  }
  if (p->http_major != 1 || p->http_minor > 1) return fail(c, 505);
  if (p->http_minor == 1 ? c->hosts != 1 : c->hosts > 1) return fail(c, 400);
  if (c->te == -2) return fail(c, 501);
  if (c->te >= 0) {
    field *f = &c->fields[c->te];
    const char *v = c->head + f->value;
    size_t n = f->vlen;
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
      n--;
    if (n != 7 || strncasecmp(v, "chunked", 7) != 0) return fail(c, 501);
  }
  if ((p->flags & F_CONTENTLENGTH) && p->content_length > c->max_body)
    return fail(c, 413);
  c->state = ST_BODY;
  c->paused = P_HEAD;
  http_parser_pause(p, 1);
  return 0;
}

static int on_chunk_header(http_parser *p) {
  conn *c = p->data;
  c->chunk_left = p->content_length;
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
  conn *c = p->data;
  c->body_bytes += len;
  if (c->body_bytes > c->max_body) return fail(c, 413);
  if (p->flags & F_CHUNKED) {
    c->chunk_left -= len < c->chunk_left ? len : c->chunk_left;
    if (c->chunk_left == 0) { /* the chunk's data must end with CRLF */
      const char *q = at + len;
      int k;
      for (k = 0; k < 2 && q + k < c->feed_end; k++)
        if (q[k] != "\r\n"[k]) return fail(c, 400);
      c->crlf_left = 2 - k; /* feed() checks the rest */
    }
  }
  if (c->skipping) return 0;
  c->piece = at;
  c->piece_len = len;
  c->paused = P_PIECE;
  http_parser_pause(p, 1);
  return 0;
}

static int on_message_complete(http_parser *p) {
  conn *c = p->data;
  c->state = p->upgrade ? ST_UPGRADED : ST_DONE;
  c->paused = P_DONE;
  http_parser_pause(p, 1);
  return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_chunk_header = on_chunk_header,
};

/* Feeding the buffered bytes. */

static void consume(stream *s, size_t n) {
  s->off += n;
  s->len -= n;
  s->scan = 0;
  if (s->len == 0) s->off = 0;
}

/* The status for a parser error. */
static int error_status(conn *c) {
  enum http_errno e = HTTP_PARSER_ERRNO(&c->p);
  if (c->status) return c->status;
  switch (e) {
  case HPE_HEADER_OVERFLOW:
    return 431;
  case HPE_INVALID_VERSION:
    return 505;
  case HPE_INVALID_TRANSFER_ENCODING:
    return 501;
  default:
    return 400;
  }
}

/* Give the parser what is buffered (at least one byte).  Returns the
   pause reason (P_NONE: all taken, more needed) or -1 with c->status set.
   A body piece is left in c->piece and its bytes are consumed already:
   push it before anything can touch the stream's buffer. */
static int feed(conn *c, stream *s) {
  const char *data = s->buf + s->off;
  size_t len = s->len, n;
  enum http_errno e;
  int was_head = c->state == ST_IDLE || c->state == ST_HEAD;
  size_t i;
  c->paused = P_NONE;
  c->piece_len = 0;
  /* The end of a chunk's CRLF that the last bytes did not hold. */
  for (i = 0; c->crlf_left > 0 && i < len; i++, c->crlf_left--)
    if (data[i] != (c->crlf_left == 2 ? '\r' : '\n')) {
      c->status = 400;
      c->state = ST_FAILED;
      return -1;
    }
  c->feed_end = data + len;
  n = http_parser_execute(&c->p, &settings, data, len);
  e = HTTP_PARSER_ERRNO(&c->p);
  if (was_head) {
    c->head_bytes += n;
    if (c->head_bytes > HEAD_MAX &&
        (c->state == ST_HEAD || c->paused == P_HEAD))
      c->status = c->status ? c->status : 431;
  }
  if (c->paused == P_HEAD || c->paused == P_DONE) c->head_bytes = 0;
  consume(s, n);
  if (c->status || (e != HPE_OK && e != HPE_PAUSED)) {
    c->status = error_status(c);
    c->state = ST_FAILED;
    return -1;
  }
  if (e == HPE_PAUSED) http_parser_pause(&c->p, 0);
  return c->paused;
}

/* Waiting for bytes. */

static int conn_abandon(task *t, int woken) {
  conn *c = t->wobj;
  luaio__timer_remove(c->h, &c->timer);
  c->waiter = NULL;
  c->due = 0;
  if (!woken) {
    stream *s = c->sud->s;
    luaio__list_remove(&t->w);
    if (s != NULL) {
      s->want = 0;
      luaio__stream_update(s);
    }
  }
  return 1;
}

static const waitops conn_ops = {"http request", conn_abandon, NULL};

/* End the wait in progress as timed out. */
static void expire(conn *c) {
  task *t = c->waiter;
  stream *s = c->sud->s;
  /* Woken already (bytes, the end, a close): the continuation sees it. */
  if (t == NULL || t->w.list == NULL) return;
  c->waiter = NULL;
  c->timed_out = 1;
  luaio__list_remove(&t->w);
  if (s != NULL) {
    s->want = 0;
    luaio__stream_update(s);
  }
  luaio__wake(t, NULL, 0);
}

static void on_deadline(tnode *n) {
  conn *c = container_of(n, conn, timer);
  if (c->waiter == NULL || c->due == 0) return; /* a wait that is over */
  if (luaio__now() < c->due) {                  /* early: a later wait's */
    luaio__timer_add(c->h, &c->timer, c->due);
    return;
  }
  expire(c);
}

/* Suspend until more bytes, the end, or the deadline (ns, 0: none). */
static int wait_bytes(lua_State *L, conn *c, stream *s, uint64_t due,
                      lua_KFunction k) {
  task *t = luaio__enter_wait(L, c->h);
  c->timed_out = 0;
  s->want = s->len + 1;
  luaio__stream_update(s);
  luaio__list_push(&s->readers, &t->w);
  c->waiter = t;
  c->due = due;
  if (due && (!luaio__timer_armed(&c->timer) || c->timer.due > due))
    luaio__timer_add(c->h, &c->timer, due);
  return luaio__wait(L, t, &conn_ops, c, 0, k);
}

/* After a wait: the task is no longer linked; the timer stays in the
   heap, where the next wait is likely to want it (on_deadline ignores it
   meanwhile). */
static void waited(lua_State *L, conn *c) {
  c->waiter = NULL;
  c->due = 0;
  luaio__resumed(L, c->h->current);
}

/* The methods' upvalues: the host, the metatable (told without a lookup
   of its name) and the head's keys, interned once. */
enum { UV_HOST = 1, UV_MT, UV_KEYS };

static conn *checkconn(lua_State *L) {
  conn *c = lua_touserdata(L, 1);
  if (c == NULL || !lua_getmetatable(L, 1) ||
      !lua_rawequal(L, -1, lua_upvalueindex(UV_MT)))
    luaL_typeerror(L, 1, "luaio.HttpConn");
  lua_pop(L, 1);
  return c;
}

static int check_reader(lua_State *L, stream *s) {
  if (s->readers.n > 0)
    return luaL_error(L, "another task is already reading this stream");
  return 0;
}

/* Building the request. */

static int hexval(int ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  ch |= 0x20;
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  return -1;
}

/* Push s[0..n) percent-decoded (and '+' as a space when plus). */
static void push_decoded(lua_State *L, const char *s, size_t n, int plus) {
  luaL_Buffer b;
  size_t i;
  if (memchr(s, '%', n) == NULL && (!plus || memchr(s, '+', n) == NULL)) {
    lua_pushlstring(L, s, n);
    return;
  }
  luaL_buffinit(L, &b);
  for (i = 0; i < n; i++) {
    int hi, lo;
    if (s[i] == '%' && i + 2 < n &&
        (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
        (lo = hexval((unsigned char)s[i + 2])) >= 0) {
      luaL_addchar(&b, (char)(hi * 16 + lo));
      i += 2;
    } else if (plus && s[i] == '+')
      luaL_addchar(&b, ' ');
    else
      luaL_addchar(&b, s[i]);
  }
  luaL_pushresult(&b);
}

/* H.decode(s [, plus]) -> s percent-decoded */
static int http_decode(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  push_decoded(L, s, n, lua_toboolean(L, 2));
  return 1;
}

/* The keys of the head's table, in the table at UV_KEYS, then the
   method names (K_N + the method's number). */
enum {
  K_METHOD = 1,
  K_TARGET,
  K_RAW_PATH,
  K_PATH,
  K_QUERY_STRING,
  K_VERSION,
  K_KEEP_ALIVE,
  K_UPGRADE,
  K_EXPECT,
  K_HEADERS,
  K_V10,
  K_V11,
  K_EMPTY,
  K_PACKED,
  K_N
};

#define METHODS_N 40 /* http_parser 2.9 has 34 */

static const char *const keynames[K_N] = {
    NULL,           "method",  "target",     "raw_path", "path",
    "query_string", "version", "keep_alive", "upgrade",  "expect_continue",
    "headers",      "1.0",     "1.1",        "",         "_h"};

static void push_keys(lua_State *L) {
  int k;
  lua_createtable(L, K_N - 1 + METHODS_N, 0);
  for (k = 1; k < K_N; k++) {
    lua_pushstring(L, keynames[k]);
    lua_rawseti(L, -2, k);
  }
  for (k = 0; k < METHODS_N; k++) {
    lua_pushstring(L, http_method_str((enum http_method)k));
    lua_rawseti(L, -2, K_N + k);
  }
}

/* Push the key k of the keys at index keys. */
#define KEY(k) lua_rawgeti(L, keys, k)

/* The packed head, req._h: what the fields built on first use are made
   of, one string per request (so a request kept after its handler
   returned keeps its own).  A PK_FIXED-byte header (flags, the number of
   fields, the target's length), then per field its name's offset and
   length and its value's (trimmed), 2 bytes each, then the head buffer:
   the target and the fields' bytes. */
enum {
  PF_V10 = 1,
  PF_KEEP = 2,
  PF_UPGRADE = 4,
  PF_EXPECT = 8,
  PF_CONNECT = 16
};
#define PK_FIXED 4
#define PK_FIELD 8
/* Lua 5.4 hashes and interns strings of up to 40 bytes (LUAI_MAXSHORTLEN);
   a packed head is padded to a longer one, which is only copied. */
#define PK_MIN 41

static void put16(char *p, size_t v) {
  p[0] = (char)(v & 0xff);
  p[1] = (char)(v >> 8);
}

static size_t get16(const char *p) {
  return (size_t)(unsigned char)p[0] | (size_t)(unsigned char)p[1] << 8;
}

/* The path of the target url[0..ulen) (its absolute-form's path after
   scheme://authority) and where its query begins (NULL: none). */
static const char *target_path(const char *url, size_t *ulen, int connect,
                               const char **q) {
  const char *path = url;
  if (*ulen > 0 && url[0] != '/' && url[0] != '*') {
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (http_parser_parse_url(url, *ulen, connect, &u) == 0 &&
        (u.field_set & (1 << UF_PATH))) {
      path = url + u.field_data[UF_PATH].off;
      *ulen -= (size_t)(path - url);
    } else {
      path = "/";
      *ulen = 1;
    }
  }
  *q = memchr(path, '?', *ulen);
  return path;
}

/* Push the request head as a table: method, path and the packed head
   _h; the other fields are built from _h on first use (H.field).
   keys: the index of push_keys' table. */
static void push_head(lua_State *L, conn *c, int keys) {
  size_t ulen = c->url_len, plen, n, i;
  const char *path, *q;
  char *p;
  luaL_Buffer b;
  int flags = (c->p.http_minor == 0 ? PF_V10 : 0) |
              (http_should_keep_alive(&c->p) ? PF_KEEP : 0) |
              (c->p.upgrade ? PF_UPGRADE : 0) | (c->expect ? PF_EXPECT : 0) |
              (c->p.method == HTTP_CONNECT ? PF_CONNECT : 0);
  lua_createtable(L, 0, 4); /* room for one more: params, headers ... */
  KEY(K_METHOD);
  if (c->p.method < METHODS_N)
    KEY(K_N + c->p.method);
  else
    lua_pushstring(L, http_method_str((enum http_method)c->p.method));
  lua_rawset(L, -3);
  path = target_path(c->head, &ulen, flags & PF_CONNECT, &q);
  plen = q != NULL ? (size_t)(q - path) : ulen;
  KEY(K_PATH);
  push_decoded(L, path, plen, 0);
  lua_rawset(L, -3);
  KEY(K_PACKED);
  n = PK_FIXED + PK_FIELD * (size_t)c->nfields + c->hlen;
  p = luaL_buffinitsize(L, &b, n < PK_MIN ? PK_MIN : n);
  p[0] = (char)flags;
  p[1] = (char)c->nfields;
  put16(p + 2, c->url_len);
  for (i = 0; i < (size_t)c->nfields; i++) {
    field *f = &c->fields[i];
    char *e = p + PK_FIXED + PK_FIELD * i;
    size_t vlen = f->vlen;
    while (vlen > 0 && (c->head[f->value + vlen - 1] == ' ' ||
                        c->head[f->value + vlen - 1] == '\t'))
      vlen--;
    put16(e, f->name);
    put16(e + 2, f->nlen);
    put16(e + 4, f->value);
    put16(e + 6, vlen);
  }
  memcpy(p + PK_FIXED + PK_FIELD * (size_t)c->nfields, c->head, c->hlen);
  if (n < PK_MIN) {
    memset(p + n, 0, PK_MIN - n);
    n = PK_MIN;
  }
  luaL_pushresultsize(&b, n);
  lua_rawset(L, -3);
}

/* Push the headers of the packed head h[0..n) (checked) as a table:
   names lower-cased, repeated fields joined with ", ". */
static void push_headers(lua_State *L, const char *h, size_t nf,
                         const char *head, size_t hlen) {
  size_t i;
  lua_createtable(L, 0, (int)nf);
  for (i = 0; i < nf; i++) {
    const char *e = h + PK_FIXED + PK_FIELD * i;
    size_t no = get16(e), nl = get16(e + 2), vo = get16(e + 4),
           vl = get16(e + 6);
    if (no + nl > hlen || vo + vl > hlen) continue;
    lua_pushlstring(L, head + no, nl);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, -3) == LUA_TSTRING) { /* repeated: join with ", " */
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, head + vo, vl);
      lua_concat(L, 3);
    } else {
      lua_pop(L, 1);
      lua_pushlstring(L, head + vo, vl);
    }
    lua_rawset(L, -3);
  }
}

/* Push the field k (klen bytes) of the packed head h[0..n), or nothing
   (returns 0) when it has none. */
static int push_field(lua_State *L, const char *h, size_t n, const char *k,
                      size_t klen) {
  size_t nf, ulen, hoff, plen;
  const char *head, *path, *q;
  int flags;
  if (n < PK_FIXED) return 0;
  flags = (unsigned char)h[0];
  nf = (unsigned char)h[1];
  ulen = get16(h + 2);
  hoff = PK_FIXED + PK_FIELD * nf;
  if (hoff > n || ulen > n - hoff) return 0;
  head = h + hoff;
#define IS(s) (klen == sizeof s - 1 && memcmp(k, s, klen) == 0)
  if (IS("headers")) {
    push_headers(L, h, nf, head, n - hoff);
    return 1;
  }
  if (IS("target")) {
    lua_pushlstring(L, head, ulen);
    return 1;
  }
  if (IS("version")) {
    lua_pushstring(L, flags & PF_V10 ? "1.0" : "1.1");
    return 1;
  }
  if (IS("keep_alive")) {
    lua_pushboolean(L, flags & PF_KEEP);
    return 1;
  }
  if (IS("upgrade") || IS("expect_continue")) {
    if (!(flags & (k[0] == 'u' ? PF_UPGRADE : PF_EXPECT))) return 0;
    lua_pushboolean(L, 1);
    return 1;
  }
  path = target_path(head, &ulen, flags & PF_CONNECT, &q);
  plen = q != NULL ? (size_t)(q - path) : ulen;
  if (IS("raw_path")) {
    lua_pushlstring(L, path, plen);
    return 1;
  }
  if (IS("path")) {
    push_decoded(L, path, plen, 0);
    return 1;
  }
  if (IS("query_string")) {
    if (q != NULL)
      lua_pushlstring(L, q + 1, ulen - plen - 1);
    else
      lua_pushliteral(L, "");
    return 1;
  }
#undef IS
  return 0;
}

/* H.field(req, k) -> the field k of req built from its packed head (and
   kept in req), or nil */
static int http_field(lua_State *L) {
  size_t n, klen;
  const char *h, *k;
  luaL_checktype(L, 1, LUA_TTABLE);
  k = luaL_checklstring(L, 2, &klen);
  lua_settop(L, 2);
  lua_pushliteral(L, "_h");
  if (lua_rawget(L, 1) != LUA_TSTRING) return 0;
  h = lua_tolstring(L, 3, &n);
  if (!push_field(L, h, n, k, klen)) return 0;
  lua_pushvalue(L, 2);
  lua_pushvalue(L, -2);
  lua_rawset(L, 1);
  return 1;
}

#undef KEY

/* conn:next() and the body. */

static uint64_t after(double s) {
  return s > 0 ? luaio__now() + (uint64_t)(s * NS) : 0;
}

static int k_next(lua_State *L, int status, lua_KContext ctx);
static void unwatch(conn *c);

/* Skip what is left of a message, then parse the next head. */
static int next_step(lua_State *L, conn *c) {
  stream *s = c->sud->s;
  for (;;) {
    int r;
    if (s == NULL || c->state == ST_FAILED || c->state == ST_UPGRADED) return 0;
    if (c->state == ST_DONE) {
      if (!http_should_keep_alive(&c->p)) return 0;
      c->state = ST_IDLE;
      c->head_bytes = 0;
    }
    if (c->stop && c->state == ST_IDLE) return 0;
    c->skipping = c->state == ST_BODY;
    if (s->len > 0) {
      r = feed(c, s);
      if (r < 0) {
        if (c->skipping) return 0; /* after an answer: just close */
        lua_pushnil(L);
        lua_pushinteger(L, c->status);
        return 2;
      }
      if (r == P_HEAD) {
        push_head(L, c, lua_upvalueindex(UV_KEYS));
        if (lua_istable(L, 2)) { /* conn:next(mt) */
          lua_pushvalue(L, 2);
          lua_setmetatable(L, -2);
        }
        /* a message without a body is complete at once */
        if (!(c->p.flags & F_CHUNKED) &&
            (!(c->p.flags & F_CONTENTLENGTH) || c->p.content_length == 0))
          feed(c, s);
        return 1;
      }
      continue;
    }
    if (s->rerr || s->eof) {
      c->state = ST_FAILED;
      return 0;
    }
    if (c->timed_out) {
      c->timed_out = 0;
      if (c->state == ST_IDLE || c->skipping) return 0;
      c->state = ST_FAILED;
      lua_pushnil(L);
      lua_pushinteger(L, 408);
      return 2;
    }
    return wait_bytes(L, c, s,
                      c->state == ST_IDLE   ? after(c->idle_timeout)
                      : c->state == ST_HEAD ? c->deadline
                                            : after(c->body_timeout),
                      k_next);
  }
}

static int k_next(lua_State *L, int status, lua_KContext ctx) {
  conn *c = lua_touserdata(L, 1);
  (void)status;
  (void)ctx;
  waited(L, c);
  return next_step(L, c);
}

/* conn:next([mt]) -> head | nil (the connection is over) | nil, status;
   mt: the head's metatable */
static int conn_next(lua_State *L) {
  conn *c = checkconn(L);
  stream *s = c->sud->s;
  lua_settop(L, 2);
  if (s != NULL) check_reader(L, s);
  if (c->watched != NULL) unwatch(c);
  c->timed_out = 0;
  return next_step(L, c);
}

static int k_chunk(lua_State *L, int status, lua_KContext ctx);

static int chunk_step(lua_State *L, conn *c) {
  stream *s = c->sud->s;
  for (;;) {
    int r;
    if (c->state != ST_BODY) {
      if (c->state == ST_FAILED) {
        lua_pushnil(L);
        lua_pushinteger(L, c->status ? c->status : 400);
        return 2;
      }
      return 0; /* the end of the body */
    }
    if (s == NULL) {
      lua_pushnil(L);
      lua_pushinteger(L, 400);
      return 2;
    }
    if (s->len > 0) {
      c->skipping = 0;
      r = feed(c, s);
      if (r == P_PIECE) {
        lua_pushlstring(L, c->piece, c->piece_len);
        return 1;
      }
      continue;
    }
    if (s->rerr || s->eof || c->timed_out) {
      c->status = c->timed_out ? 408 : 400;
      c->state = ST_FAILED;
      c->timed_out = 0;
      continue;
    }
    return wait_bytes(L, c, s, after(c->body_timeout), k_chunk);
  }
}

static int k_chunk(lua_State *L, int status, lua_KContext ctx) {
  conn *c = lua_touserdata(L, 1);
  (void)status;
  (void)ctx;
  waited(L, c);
  return chunk_step(L, c);
}

/* conn:chunk() -> data | nil (the end of the body) | nil, status */
static int conn_chunk(lua_State *L) {
  conn *c = checkconn(L);
  stream *s = c->sud->s;
  lua_settop(L, 1);
  if (s != NULL) check_reader(L, s);
  c->timed_out = 0;
  return chunk_step(L, c);
}

/* conn:stop(): end the connection at its next idle moment; wakes it if it
   waits for a request that has not begun */
static int conn_stop(lua_State *L) {
  conn *c = checkconn(L);
  c->stop = 1;
  if (c->waiter != NULL && c->state == ST_IDLE) {
    c->timed_out = 1;
    expire(c);
    luaio__timer_remove(c->h, &c->timer);
  }
  return 0;
}

/* conn:idle() -> true while waiting for a request that has not begun */
static int conn_idle(lua_State *L) {
  conn *c = checkconn(L);
  lua_pushboolean(L, c->waiter != NULL && c->state == ST_IDLE);
  return 1;
}

/* cancel_on_disconnect: the stream tells the connection when the end or
   a reset arrives while the handler runs.  The stream keeps reading in
   the background only while fewer than its limit are buffered, so the
   bytes of pipelined requests and of an unread body stay where they are
   (back-pressure holds) and a full buffer hides the end until it is
   read. */

static void unwatch(conn *c) {
  stream *s = c->sud->s;
  c->watched = NULL;
  if (s != NULL && s->end_ud == c) {
    s->on_end = NULL;
    s->end_ud = NULL;
  }
}

static void on_peer_end(stream *s) {
  conn *c = s->end_ud;
  task *t = c->watched;
  unwatch(c);
  if (t != NULL) luaio__task_cancel(t);
}

/* conn:watch(): cancel the calling task when the peer closes or resets
   the connection, until the next conn:next() (not for an upgrade: the
   WebSocket sees the end itself) */
static int conn_watch(lua_State *L) {
  conn *c = checkconn(L);
  stream *s = c->sud->s;
  if (s == NULL || c->state == ST_UPGRADED || c->h->current == NULL) return 0;
  c->watched = c->h->current;
  s->on_end = on_peer_end;
  s->end_ud = c;
  if (s->eof || s->rerr) on_peer_end(s);
  return 0;
}

/* conn:serve(fn, req) -> fn(req)'s results: a request runs as a task of
   its own, started at once inside the connection's task and awaited by it
   (so cancelling the connection's task cancels the request's) */
static int conn_serve(lua_State *L) {
  conn *c = checkconn(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 3);
  luaio__spawn_now(L, c->h, 1);
  lua_replace(L, 1);
  return luaio__await(L, 0);
}

/* Responses. */

static const char *reason(int status) {
  switch (status) {
  case 100:
    return "Continue";
  case 101:
    return "Switching Protocols";
  case 200:
    return "OK";
  case 201:
    return "Created";
  case 202:
    return "Accepted";
  case 204:
    return "No Content";
  case 206:
    return "Partial Content";
  case 301:
    return "Moved Permanently";
  case 302:
    return "Found";
  case 303:
    return "See Other";
  case 304:
    return "Not Modified";
  case 307:
    return "Temporary Redirect";
  case 308:
    return "Permanent Redirect";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 408:
    return "Request Timeout";
  case 409:
    return "Conflict";
  case 411:
    return "Length Required";
  case 413:
    return "Content Too Large";
  case 414:
    return "URI Too Long";
  case 416:
    return "Range Not Satisfiable";
  case 422:
    return "Unprocessable Content";
  case 426:
    return "Upgrade Required";
  case 429:
    return "Too Many Requests";
  case 431:
    return "Request Header Fields Too Large";
  case 500:
    return "Internal Server Error";
  case 501:
    return "Not Implemented";
  case 502:
    return "Bad Gateway";
  case 503:
    return "Service Unavailable";
  case 505:
    return "HTTP Version Not Supported";
  default:
    return "Unknown";
  }
}

static int is_token(const char *s, size_t n) {
  static const char extra[] = "!#$%&'*+-.^_`|~";
  size_t i;
  if (n == 0) return 0;
  for (i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z') continue;
    if (ch >= '0' && ch <= '9') continue;
    if (ch == 0 || strchr(extra, ch) == NULL) return 0;
  }
  return 1;
}

/* The line "name: value\r\n" of the value at vidx (a string or a number):
   its length, and written at out unless out is NULL (then the value is
   checked). */
static size_t field_line(lua_State *L, const char *name, size_t nlen, int vidx,
                         char *out) {
  size_t vlen, i;
  const char *v;
  int t = lua_type(L, vidx);
  if (t == LUA_TNUMBER) {
    lua_pushvalue(L, vidx);
    v = lua_tolstring(L, -1, &vlen);
  } else if (t == LUA_TSTRING)
    v = lua_tolstring(L, vidx, &vlen);
  else
    return (size_t)luaL_error(
        L, "response header %s must be a string or a number", name);
  if (out == NULL) {
    for (i = 0; i < vlen; i++)
      if (v[i] == '\r' || v[i] == '\n' || v[i] == '\0')
        luaL_error(L, "response header %s holds CR, LF or NUL", name);
  } else {
    memcpy(out, name, nlen);
    memcpy(out + nlen, ": ", 2);
    memcpy(out + nlen + 2, v, vlen);
    memcpy(out + nlen + 2 + vlen, "\r\n", 2);
  }
  if (t == LUA_TNUMBER) lua_pop(L, 1);
  return nlen + 2 + vlen + 2;
}

/* The handler's fields of the table at hidx: their length, written at out
   unless out is NULL (then they are checked: this pass raises, the
   writing one cannot).  The server's own framing fields are left out. */
static size_t fields(lua_State *L, int hidx, char *out) {
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, hidx)) {
    size_t nlen;
    const char *name;
    if (out == NULL && lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L, "response header names must be strings");
    name = lua_tolstring(L, -2, &nlen);
    if (out == NULL && !is_token(name, nlen))
      luaL_error(L, "invalid response header name '%s'", name);
    if ((nlen == 14 && strncasecmp(name, "content-length", 14) == 0) ||
        (nlen == 17 && strncasecmp(name, "transfer-encoding", 17) == 0) ||
        (nlen == 10 && strncasecmp(name, "connection", 10) == 0) ||
        (nlen == 4 && strncasecmp(name, "date", 4) == 0)) {
      lua_pop(L, 1);
      continue;
    }
    if (lua_type(L, -1) == LUA_TTABLE) {
      lua_Integer i, k = (lua_Integer)lua_rawlen(L, -1);
      for (i = 1; i <= k; i++) {
        lua_rawgeti(L, -1, i);
        n += field_line(L, name, nlen, lua_gettop(L), out ? out + n : NULL);
        lua_pop(L, 1);
      }
    } else
      n += field_line(L, name, nlen, lua_gettop(L), out ? out + n : NULL);
    lua_pop(L, 1);
  }
  return n;
}

static const char *date_of(conn *c) {
  time_t now = time(NULL);
  if (now != c->date_at) {
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(c->date, sizeof c->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    c->date_at = now;
  }
  return c->date;
}

/* The head of a response and `extra` bytes after it, in one string of b
   (luaL_buffinitsize: nothing is added piece by piece, so the buffer's
   box never has to be on top of the stack while the fields are walked).
   hidx: the handler's fields (0: none, -1: TEXT_PLAIN alone).  length:
   >= 0 Content-Length, -1 chunked, -2 none.  Returns where the
   extra bytes go; luaL_pushresultsize(b, *total) ends it.  With b NULL
   the head is written at fixed (cap bytes) instead, or NULL returned when
   it and the extra bytes would not fit. */
#define TEXT_PLAIN "content-type: text/plain; charset=utf-8\r\n"

static char *build_head(lua_State *L, conn *c, luaL_Buffer *b, int status,
                        int hidx, lua_Integer length, int close, size_t extra,
                        size_t *total, char *fixed, size_t cap) {
  char cl[40], *clp = cl + sizeof cl, *p;
  const char *framing = NULL;
  const char *why = reason(status), *date = date_of(c), *tail;
  size_t whylen = strlen(why), datelen = strlen(date), nf = 0, cllen = 0;
  size_t n, taillen;
  if (hidx < 0) /* -1: the plain text answer's one field */
    nf = sizeof TEXT_PLAIN - 1;
  else if (hidx != 0 && lua_type(L, hidx) == LUA_TTABLE)
    nf = fields(L, hidx, NULL);
  if (length >= 0 && status >= 200 && status != 204 && status != 304) {
    uint64_t v = (uint64_t)length;
    *--clp = '\n';
    *--clp = '\r';
    do
      *--clp = (char)('0' + v % 10);
    while ((v /= 10) > 0);
    clp -= 16;
    memcpy(clp, "Content-Length: ", 16);
    framing = clp;
    cllen = (size_t)(cl + sizeof cl - clp);
  } else if (length == -1) {
    framing = "Transfer-Encoding: chunked\r\n";
    cllen = 28;
  }
  tail = close                  ? "Connection: close\r\n\r\n"
         : c->p.http_minor == 0 ? "Connection: keep-alive\r\n\r\n"
                                : "\r\n";
  taillen = strlen(tail);
  /* "HTTP/1.1 200 OK\r\nDate: ...\r\n" (status is 100..999) */
  n = 13 + whylen + 8 + datelen + 2 + nf + cllen + taillen;
  *total = n + extra;
  if (b == NULL) {
    if (*total > cap) return NULL;
    p = fixed;
  } else
    p = luaL_buffinitsize(L, b, *total);
  memcpy(p, "HTTP/1.1 ", 9);
  p[9] = (char)('0' + status / 100);
  p[10] = (char)('0' + status / 10 % 10);
  p[11] = (char)('0' + status % 10);
  p[12] = ' ';
  p += 13;
  memcpy(p, why, whylen);
  p += whylen;
  memcpy(p, "\r\nDate: ", 8);
  p += 8;
  memcpy(p, date, datelen);
  p += datelen;
  memcpy(p, "\r\n", 2);
  p += 2;
  if (hidx < 0) {
    memcpy(p, TEXT_PLAIN, nf);
    p += nf;
  } else if (nf > 0)
    p += fields(L, hidx, p);
  if (cllen > 0) memcpy(p, framing, cllen);
  p += cllen;
  memcpy(p, tail, taillen);
  return p + taillen;
}

static int check_status(lua_State *L, int idx) {
  lua_Integer st = luaL_checkinteger(L, idx);
  luaL_argcheck(L, st >= 100 && st <= 999, idx, "status out of range");
  return (int)st;
}

/* conn:response(status, headers, body, close, head_only) -> bytes;
   headers true: content-type text/plain; charset=utf-8 alone */
static int conn_response(lua_State *L) {
  conn *c = checkconn(L);
  int status = check_status(L, 2);
  size_t blen, total;
  const char *body = luaL_optlstring(L, 4, "", &blen);
  int close = lua_toboolean(L, 5), head_only = lua_toboolean(L, 6);
  size_t sent =
      !head_only && status >= 200 && status != 204 && status != 304 ? blen : 0;
  luaL_Buffer b;
  char *p;
  lua_settop(L, 6);
  p = build_head(L, c, &b, status,
                 lua_isnil(L, 3)                  ? 0
                 : lua_type(L, 3) == LUA_TBOOLEAN ? -lua_toboolean(L, 3)
                                                  : 3,
                 (lua_Integer)blen, close, sent, &total, NULL, 0);
  memcpy(p, body, sent);
  luaL_pushresultsize(&b, total);
  return 1;
}

/* Write mem[0..len) to the plain stream s now, or queue what the socket
   did not take (s->queued grows); 0 or a libuv error. */
static int send_now(stream *s, const char *mem, size_t len) {
  size_t off = 0;
  char *rest;
  if (s->queued == 0 && s->u.stream.write_queue_size == 0) {
    uv_buf_t b = uv_buf_init((char *)mem, (unsigned)len);
    int n = uv_try_write(&s->u.stream, &b, 1);
    if (n >= 0)
      off = (size_t)n;
    else if (n != UV_EAGAIN && n != UV_ENOSYS)
      return n;
    if (off == len) return 0;
  }
  if ((rest = malloc(len - off)) == NULL) return UV_ENOMEM;
  memcpy(rest, mem + off, len - off);
  return luaio__stream_send(s, rest, len - off); /* frees rest */
}

/* conn:reply(body, closing) -> sent, keep: the 200 text/plain answer body
   to the request whose head came last (no body for HEAD), with
   Connection: close when closing or when that request does not keep the
   connection alive (then keep is false).  sent: true when it was written
   to the stream (as stream:write would, without waiting: it fitted under
   the high-water mark), false when that failed, or the bytes to write
   with stream:write (a TLS stream, a large body, a full queue); nothing
   when body is not a string (then the answer is another). */
static int conn_reply(lua_State *L) {
  conn *c = checkconn(L);
  stream *s = c->sud->s;
  size_t blen, total, sent;
  const char *body;
  int close = lua_toboolean(L, 3) || !http_should_keep_alive(&c->p);
  luaL_Buffer b;
  char *p, fixed[2048];
  if (lua_type(L, 2) != LUA_TSTRING) return 0;
  body = lua_tolstring(L, 2, &blen);
  sent = c->p.method == HTTP_HEAD ? 0 : blen;
  lua_settop(L, 3);
  if (s != NULL && s->tls == NULL && !s->shut && !s->werr &&
      (s->kind == SK_TCP || s->kind == SK_PIPE) &&
      (p = build_head(L, c, NULL, 200, -1, (lua_Integer)blen, close, sent,
                      &total, fixed, sizeof fixed)) != NULL &&
      s->queued + total <= s->high) {
    memcpy(p, body, sent);
    lua_pushboolean(L, send_now(s, fixed, total) == 0);
  } else {
    p = build_head(L, c, &b, 200, -1, (lua_Integer)blen, close, sent, &total,
                   NULL, 0);
    memcpy(p, body, sent);
    luaL_pushresultsize(&b, total);
  }
  lua_pushboolean(L, !close);
  return 2;
}

/* conn:head(status, headers, length, close) -> bytes; length nil: chunked,
   false: neither length nor chunks (the end of the connection ends it) */
static int conn_head(lua_State *L) {
  conn *c = checkconn(L);
  int status = check_status(L, 2);
  lua_Integer length = lua_isnil(L, 4)       ? -1
                       : lua_isinteger(L, 4) ? lua_tointeger(L, 4)
                                             : -2;
  int close = lua_toboolean(L, 5);
  size_t total;
  luaL_Buffer b;
  lua_settop(L, 5);
  build_head(L, c, &b, status, lua_isnil(L, 3) ? 0 : 3, length, close, 0,
             &total, NULL, 0);
  luaL_pushresultsize(&b, total);
  return 1;
}

/* H.reason(status) -> phrase */
static int http_reason(lua_State *L) {
  lua_pushstring(L, reason(check_status(L, 1)));
  return 1;
}

/* conn:state() -> "idle" | "head" | "body" | "done" | "upgraded" |
   "failed" */
static int conn_state(lua_State *L) {
  static const char *const names[] = {"idle", "head",     "body",
                                      "done", "upgraded", "failed"};
  lua_pushstring(L, names[checkconn(L)->state]);
  return 1;
}

/* conn:close(): the connection is over (its timer and watch let go) */
static int conn_close(lua_State *L) {
  conn *c = checkconn(L);
  luaio__timer_remove(c->h, &c->timer);
  unwatch(c);
  return 0;
}

static int conn_gc(lua_State *L) {
  conn *c = luaL_checkudata(L, 1, "luaio.HttpConn");
  luaio__timer_remove(c->h, &c->timer);
  unwatch(c);
  return 0;
}

static double opt_seconds(lua_State *L, int idx, const char *k, double def) {
  double v = def;
  if (lua_getfield(L, idx, k) != LUA_TNIL) v = luaL_checknumber(L, -1);
  lua_pop(L, 1);
  return v;
}

/* H.conn(stream, opts) -> conn; opts: max_body_size, idle_timeout,
   header_timeout, body_timeout */
static int http_conn(lua_State *L) {
  luaio *h = luaio__host(L);
  streamud *sud = luaL_checkudata(L, 1, "luaio.Stream");
  conn *c;
  if (sud->s == NULL) luaL_error(L, "attempt to use a closed stream");
  luaL_checktype(L, 2, LUA_TTABLE);
  c = lua_newuserdatauv(L, sizeof *c, 1);
  memset(c, 0, offsetof(conn, fields));
  c->h = h;
  c->sud = sud;
  c->timer.fire = on_deadline;
  c->max_body = 1024 * 1024;
  if (lua_getfield(L, 2, "max_body_size") != LUA_TNIL) {
    lua_Integer n = luaL_checkinteger(L, -1);
    luaL_argcheck(L, n >= 0, 2, "max_body_size must not be negative");
    c->max_body = (uint64_t)n;
  }
  lua_pop(L, 1);
  c->idle_timeout = opt_seconds(L, 2, "keepalive_timeout", 75);
  c->header_timeout = opt_seconds(L, 2, "header_timeout", 60);
  c->body_timeout = opt_seconds(L, 2, "body_timeout", 60);
  http_parser_init(&c->p, HTTP_REQUEST);
  c->p.data = c;
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  luaL_setmetatable(L, "luaio.HttpConn");
  return 1;
}

static const luaL_Reg conn_methods[] = {
    {"next", conn_next},   {"chunk", conn_chunk}, {"response", conn_response},
    {"head", conn_head},   {"reply", conn_reply}, {"stop", conn_stop},
    {"idle", conn_idle},   {"state", conn_state}, {"watch", conn_watch},
    {"serve", conn_serve}, {"close", conn_close}, {NULL, NULL}};

static const luaL_Reg funcs[] = {{"conn", http_conn},
                                 {"decode", http_decode},
                                 {"field", http_field},
                                 {"reason", http_reason},
                                 {NULL, NULL}};

LUAIO_API int luaopen_luaio__http_server(lua_State *L) {
  luaio *h = luaio__open_host(L);
  if (luaL_newmetatable(L, "luaio.HttpConn")) {
    lua_newtable(L);
    lua_pushlightuserdata(L, h); /* UV_HOST */
    lua_pushvalue(L, -3);        /* UV_MT */
    push_keys(L);                /* UV_KEYS */
    luaL_setfuncs(L, conn_methods, 3);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, conn_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushlightuserdata(L, h);
  luaL_setfuncs(L, funcs, 1);
  return 1;
}

/*
** http_request_fuzz.c: a libFuzzer harness for the HTTP server's request
** parsing glue (bindings/http_server.c).
**
** The glue's functions are static, so the file is included whole and
** driven the way conn:next() and conn:chunk() drive it, without a socket
** and without a loop: the input's bytes arrive in the stream's buffer in
** pieces whose sizes come from the first bytes of the input, and after
** each piece the buffered bytes are parsed until the parser needs more.
** Each complete head is built into a Lua table (push_head); each request
** either reads its body (conn:chunk()) or leaves it to be skipped
** (conn:next()), as chosen by the input too.  The core functions the file
** calls but this never reaches (waits, timers) are stubs that abort.
**
** Checked: nothing reads or writes out of bounds (ASan), no undefined
** behaviour (UBSan), every step makes progress (a step that takes no byte
** and does not stop would spin conn:next() forever), a refusal is one of
** the statuses docs/http.md lists, and the head's fields lie inside the
** head buffer.
*/

#include "../../bindings/http_server.c"

#include <stdio.h>

#include "lualib.h"

/* The core, not linked: only luaio__now is reached while parsing. */
uint64_t luaio__now(void) { return 0; }

#define UNREACHED(decl)                                                        \
  decl { abort(); }
UNREACHED(luaio *luaio__host(lua_State *L))
UNREACHED(luaio *luaio__open_host(lua_State *L))
UNREACHED(void luaio__timer_add(luaio *h, tnode *n, uint64_t due))
UNREACHED(task *luaio__enter_wait(lua_State *L, luaio *h))
UNREACHED(int luaio__wait(lua_State *L, task *t, const waitops *ops, void *obj,
                          lua_KContext ctx, lua_KFunction k))
UNREACHED(int luaio__resumed(lua_State *L, task *t))
UNREACHED(void luaio__wake(task *t, lua_State *from, int n))
UNREACHED(void luaio__list_push(waitlist *l, waiter *w))
UNREACHED(void luaio__list_remove(waiter *w))
UNREACHED(void luaio__stream_update(stream *s))
UNREACHED(int luaio__task_cancel(task *t))
UNREACHED(int luaio__stream_send(stream *s, char *mem, size_t len))
void luaio__timer_remove(luaio *h, tnode *n) { (void)h, (void)n; }

static lua_State *L;

static void bug(const char *what) {
  fprintf(stderr, "http_request_fuzz: %s\n", what);
  abort();
}

/* The fields made on first use from the head's packed _h (on top). */
static void check_fields(conn *c) {
  static const char *const names[] = {
      "target",       "raw_path",        "path",
      "query_string", "version",         "keep_alive",
      "upgrade",      "expect_continue", "headers"};
  size_t i, n, tlen;
  const char *h;
  lua_getfield(L, -1, "_h");
  h = lua_tolstring(L, -1, &n);
  if (h == NULL) bug("no packed head");
  for (i = 0; i < sizeof names / sizeof names[0]; i++) {
    int top = lua_gettop(L);
    if (push_field(L, h, n, names[i], strlen(names[i])) && i == 0) {
      const char *t = lua_tolstring(L, -1, &tlen);
      if (tlen != c->url_len || memcmp(t, c->head, tlen) != 0)
        bug("the packed head's target differs");
    } else if (i == 0)
      bug("no target in the packed head");
    lua_settop(L, top);
  }
  lua_pop(L, 1);
}

static void check_refusal(int status) {
  switch (status) {
  case 400:
  case 408:
  case 413:
  case 414:
  case 431:
  case 501:
  case 505:
    return;
  default:
    bug("a refusal with a status docs/http.md does not list");
  }
}

static void check_head(conn *c) {
  int i;
  if (c->hlen > HEAD_MAX || c->url_len > c->hlen || c->url_len > TARGET_MAX)
    bug("head out of bounds");
  if (c->nfields < 0 || c->nfields > FIELDS_MAX) bug("too many fields");
  for (i = 0; i < c->nfields; i++) {
    field *f = &c->fields[i];
    if ((size_t)f->name + f->nlen > c->hlen ||
        (size_t)f->value + f->vlen > c->hlen)
      bug("a field outside the head");
  }
}

/* One run over the input: what the parsing gave, as a hash of events
   (heads, finished bodies, a refusal).  A body's pieces are hashed
   byte by byte and kept only when the message completes: where pieces
   end depends on how the bytes arrived, and so does whether a piece
   before a refusal is handed out first. */
typedef struct run {
  conn *c;
  stream s;
  const uint8_t *mode, *mend; /* per request: does the handler read? */
  int reading;
  uint64_t h, body;
} run;

#define FNV_INIT 14695981039346656037ull

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  size_t i;
  for (i = 0; i < n; i++)
    h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

static void event(run *r, char kind, const void *p, size_t n) {
  r->h = fnv(r->h, &kind, 1);
  r->h = fnv(r->h, &n, sizeof n);
  r->h = fnv(r->h, p, n);
}

static void head_event(run *r) {
  conn *c = r->c;
  unsigned char flags[4] = {(unsigned char)c->p.method,
                            (unsigned char)http_should_keep_alive(&c->p),
                            (unsigned char)c->p.upgrade, c->expect};
  int i;
  event(r, 'H', flags, sizeof flags);
  event(r, 'U', c->head, c->url_len);
  for (i = 0; i < c->nfields; i++) {
    event(r, 'N', c->head + c->fields[i].name, c->fields[i].nlen);
    event(r, 'V', c->head + c->fields[i].value, c->fields[i].vlen);
  }
}

/* Parse what is buffered, as next_step and chunk_step do.  Returns 0 when
   the connection is over (refused, upgraded, not kept alive). */
static int drain(run *ru) {
  conn *c = ru->c;
  stream *s = &ru->s;
  while (s->len > 0) {
    size_t before = s->len;
    int r;
    if (c->state == ST_FAILED || c->state == ST_UPGRADED) return 0;
    if (c->state == ST_DONE) {
      if (!http_should_keep_alive(&c->p)) return 0;
      c->state = ST_IDLE;
      c->head_bytes = 0;
    }
    c->skipping = c->state == ST_BODY && !ru->reading;
    r = feed(c, s);
    if (r < 0) {
      check_refusal(c->status);
      /* which refusal comes first may depend on the split (http_parser
         calls back at the end of a field, or of the bytes it has), so
         only the refusal is compared, not its status */
      event(ru, 'E', "", 0);
      return 0;
    }
    if (s->len > before) bug("feed grew the buffer");
    if (r == P_HEAD) {
      check_head(c);
      head_event(ru);
      push_head(L, c, 1); /* the keys at 1 */
      check_fields(c);
      lua_settop(L, 1);
      /* the handler reads the body, or leaves it to be skipped */
      ru->reading = ru->mode < ru->mend ? *ru->mode & 1 : 0;
      if (ru->mode < ru->mend) ru->mode++;
      ru->body = FNV_INIT;
      if (!(c->p.flags & F_CHUNKED) &&
          (!(c->p.flags & F_CONTENTLENGTH) || c->p.content_length == 0))
        r = feed(c, s);
    } else if (r == P_PIECE) {
      if (c->piece < s->buf || c->piece + c->piece_len > s->buf + s->cap)
        bug("a body piece outside the buffer");
      ru->body = fnv(ru->body, c->piece, c->piece_len);
    } else if (r == P_NONE && s->len == before) {
      /* bytes left that the parser did not take: conn:next() would feed
         them again and again */
      bug("no progress");
    }
    if (r == P_DONE) {
      ru->reading = 0;
      event(ru, 'D', &ru->body, sizeof ru->body);
    }
  }
  return 1;
}

/* Parse req in pieces of 1..maxpiece bytes (their sizes taken from the
   bytes themselves); the events' hash. */
static uint64_t parse(const uint8_t *req, size_t size, size_t maxpiece,
                      const uint8_t *mode, size_t nmode, uint64_t max_body) {
  static conn *c;
  run ru;
  if (c == NULL && (c = malloc(sizeof *c)) == NULL) abort();
  memset(c, 0, offsetof(conn, fields));
  c->max_body = max_body;
  c->idle_timeout = c->header_timeout = c->body_timeout = 60;
  http_parser_init(&c->p, HTTP_REQUEST);
  c->p.data = c;
  memset(&ru, 0, sizeof ru);
  ru.c = c;
  ru.mode = mode;
  ru.mend = mode + nmode;
  ru.h = ru.body = FNV_INIT;
  ru.s.buf = malloc(size + 1);
  ru.s.cap = size + 1;
  if (ru.s.buf == NULL) abort();
  while (size > 0) {
    size_t n = maxpiece >= size ? size : (size_t)req[0] % maxpiece + 1;
    if (n > size) n = size;
    if (ru.s.off > 0) { /* as reserve() does */
      memmove(ru.s.buf, ru.s.buf + ru.s.off, ru.s.len);
      ru.s.off = 0;
    }
    memcpy(ru.s.buf + ru.s.len, req, n);
    ru.s.len += n;
    req += n;
    size -= n;
    if (!drain(&ru)) break;
  }
  free(ru.s.buf);
  return ru.h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t nmode, maxpiece;
  uint64_t max_body;
  if (L == NULL) {
    if ((L = luaL_newstate()) == NULL) abort();
    push_keys(L);
  }
  if (size < 3) return 0;
  /* data[0]: the largest piece (1..64 bytes, or a power of two up to
     64 KiB); data[1]: how many of the next bytes choose, one per request,
     whether the handler reads its body; data[2]: the body limit */
  maxpiece =
      data[0] < 200 ? (size_t)data[0] % 64 + 1 : (size_t)1 << (data[0] % 17);
  nmode = (size_t)data[1] % 8;
  max_body = data[2] % 3 == 0 ? 1024 * 1024 : data[2] % 3 == 1 ? 64 : 0;
  data += 3;
  size -= 3;
  if (nmode > size) nmode = size;
  /* however the bytes arrive, the same requests, bodies and answer */
  if (parse(data + nmode, size - nmode, maxpiece, data, nmode, max_body) !=
      parse(data + nmode, size - nmode, size, data, nmode, max_body))
    bug("the result depends on how the bytes were split");
  return 0;
}

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
  decl {                                                                       \
    abort();                                                                   \
  }
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
void luaio__timer_remove(luaio *h, tnode *n) { (void)h, (void)n; }

static lua_State *L;

static void bug(const char *what) {
  fprintf(stderr, "http_request_fuzz: %s\n", what);
  abort();
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

/* Parse what is buffered, as next_step and chunk_step do.  Returns 0 when
   the connection is over (refused, upgraded, not kept alive). */
static int drain(conn *c, stream *s, const uint8_t **mode, const uint8_t *end,
                 int *reading) {
  while (s->len > 0) {
    size_t before = s->len;
    int r;
    if (c->state == ST_FAILED || c->state == ST_UPGRADED) return 0;
    if (c->state == ST_DONE) {
      if (!http_should_keep_alive(&c->p)) return 0;
      c->state = ST_IDLE;
      c->head_bytes = 0;
    }
    c->skipping = c->state == ST_BODY && !*reading;
    r = feed(c, s);
    if (r < 0) {
      check_refusal(c->status);
      return 0;
    }
    if (s->len > before) bug("feed grew the buffer");
    if (r == P_HEAD) {
      check_head(c);
      push_head(L, c);
      lua_settop(L, 0);
      /* the handler reads the body, or leaves it to be skipped */
      *reading = *mode < end ? **mode & 1 : 0;
      if (*mode < end) (*mode)++;
      if (!(c->p.flags & F_CHUNKED) &&
          (!(c->p.flags & F_CONTENTLENGTH) || c->p.content_length == 0))
        feed(c, s);
    } else if (r == P_PIECE) {
      volatile char sum = 0;
      size_t i;
      if (c->piece < s->buf || c->piece + c->piece_len > s->buf + s->cap)
        bug("a body piece outside the buffer");
      for (i = 0; i < c->piece_len; i++)
        sum ^= c->piece[i];
      (void)sum;
    } else if (r == P_DONE) {
      *reading = 0;
    } else if (s->len == before) {
      /* P_NONE with bytes left that the parser did not take: conn:next()
         would feed them again and again */
      bug("no progress");
    }
  }
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static stream s;
  static conn *c;
  const uint8_t *mode, *end = data + size;
  size_t nmode, maxpiece;
  int reading = 0;
  if (L == NULL) {
    L = luaL_newstate();
    c = malloc(sizeof *c);
    if (L == NULL || c == NULL) abort();
  }
  if (size < 3) return 0;
  /* data[0]: the largest piece (1..64 bytes, or a power of two up to
     64 KiB); data[1]: how many of the next bytes choose, one per request,
     whether the handler reads its body; data[2]: the body limit */
  maxpiece = data[0] < 200 ? (size_t)data[0] % 64 + 1
                           : (size_t)1 << (data[0] % 17);
  nmode = (size_t)data[1] % 8;
  memset(c, 0, offsetof(conn, fields));
  c->max_body = data[2] % 3 == 0 ? 1024 * 1024 : data[2] % 3 == 1 ? 64 : 0;
  c->idle_timeout = c->header_timeout = c->body_timeout = 60;
  http_parser_init(&c->p, HTTP_REQUEST);
  c->p.data = c;
  data += 3;
  size -= 3;
  mode = data;
  if (nmode > size) nmode = size;
  end = data + nmode;
  data += nmode;
  size -= nmode;
  s.buf = malloc(size + 1);
  s.cap = size + 1;
  s.off = s.len = 0;
  /* the pieces: sizes 1..maxpiece, from the bytes themselves */
  while (size > 0) {
    size_t n = (size_t)data[0] % maxpiece + 1;
    if (n > size) n = size;
    if (s.off > 0) { /* as reserve() does */
      memmove(s.buf, s.buf + s.off, s.len);
      s.off = 0;
    }
    memcpy(s.buf + s.len, data, n);
    s.len += n;
    data += n;
    size -= n;
    if (!drain(c, &s, &mode, end, &reading)) break;
  }
  free(s.buf);
  s.buf = NULL;
  return 0;
}

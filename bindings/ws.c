/*
** ws.c: WebSocket framing on wslay's event API, luaio._ws.
**
** The object never touches a socket: ws:feed(bytes) runs wslay over bytes
** read from the stream, and every call returns the bytes wslay wants sent
** (pongs, close replies, queued messages) for the caller to write.  Whole
** messages are collected in C while wslay runs, then handed to Lua as one
** array, so no Lua runs inside a wslay callback.
*/

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <wslay/wslay.h>

#include "internal.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

typedef struct wsmsg {
  struct wsmsg *next;
  uint8_t opcode;
  size_t len;
  char data[];
} wsmsg;

typedef struct ws {
  wslay_event_context_ptr ctx;
  const char *in; /* the bytes being fed */
  size_t inlen;
  char *out; /* what wslay wants sent */
  size_t outlen, outcap;
  wsmsg *head, *tail;
  int nomem;
  lua_Integer pongs; /* pong frames received (for the heartbeat) */
} ws;

static ssize_t on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                       int flags, void *ud) {
  ws *w = ud;
  size_t n = len < w->inlen ? len : w->inlen;
  (void)flags;
  if (n == 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  memcpy(buf, w->in, n);
  w->in += n;
  w->inlen -= n;
  return (ssize_t)n;
}

static ssize_t on_send(wslay_event_context_ptr ctx, const uint8_t *data,
                       size_t len, int flags, void *ud) {
  ws *w = ud;
  (void)flags;
  if (w->outcap - w->outlen < len) {
    size_t cap = w->outcap ? w->outcap : 4096;
    char *p;
    while (cap - w->outlen < len)
      cap *= 2;
    if ((p = realloc(w->out, cap)) == NULL) {
      wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
      return -1;
    }
    w->out = p;
    w->outcap = cap;
  }
  memcpy(w->out + w->outlen, data, len);
  w->outlen += len;
  return (ssize_t)len;
}

static void on_msg(wslay_event_context_ptr ctx,
                   const struct wslay_event_on_msg_recv_arg *arg, void *ud) {
  ws *w = ud;
  wsmsg *m;
  (void)ctx;
  if (arg->opcode == WSLAY_PONG) w->pongs++;
  if (arg->opcode != WSLAY_TEXT_FRAME && arg->opcode != WSLAY_BINARY_FRAME)
    return; /* wslay answers pings and closes itself */
  if ((m = malloc(sizeof *m + arg->msg_length)) == NULL) {
    w->nomem = 1;
    return;
  }
  m->next = NULL;
  m->opcode = arg->opcode;
  m->len = arg->msg_length;
  memcpy(m->data, arg->msg, arg->msg_length);
  if (w->tail)
    w->tail->next = m;
  else
    w->head = m;
  w->tail = m;
}

/* A 1-byte close payload is a framing error; wslay takes it as no status. */
static void on_frame_start(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_start_arg *a,
                           void *ud) {
  (void)ud;
  if (a->opcode == WSLAY_CONNECTION_CLOSE && a->payload_length == 1)
    wslay_event_queue_close(ctx, WSLAY_CODE_PROTOCOL_ERROR, NULL, 0);
}

static int on_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                      void *ud) {
  (void)ud;
  if (RAND_bytes(buf, (int)len) != 1) {
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
  }
  return 0;
}

static const struct wslay_event_callbacks callbacks = {
    on_recv, on_send, on_genmask, on_frame_start, NULL, NULL, on_msg};

static ws *checkws(lua_State *L) {
  ws *w = luaL_checkudata(L, 1, "luaio.WsFraming");
  if (w->ctx == NULL) luaL_error(L, "attempt to use a closed websocket");
  return w;
}

/* Let wslay send what it queued; push those bytes. */
static void push_out(lua_State *L, ws *w) {
  wslay_event_send(w->ctx);
  lua_pushlstring(L, w->out ? w->out : "", w->outlen);
  w->outlen = 0;
}

/* framing:feed(bytes) -> messages, out, pongs; messages: {data,
   "text"|"binary"}…; pongs: the pong frames received so far */
static int ws_feed(lua_State *L) {
  ws *w = checkws(L);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  lua_Integer i = 0;
  w->in = data;
  w->inlen = len;
  wslay_event_recv(w->ctx);
  w->in = NULL;
  w->inlen = 0;
  lua_newtable(L);
  while (w->head != NULL) {
    wsmsg *m = w->head;
    w->head = m->next;
    lua_createtable(L, 2, 0);
    lua_pushlstring(L, m->data, m->len);
    lua_rawseti(L, -2, 1);
    lua_pushstring(L, m->opcode == WSLAY_TEXT_FRAME ? "text" : "binary");
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, ++i);
    free(m);
  }
  w->tail = NULL;
  push_out(L, w);
  lua_pushinteger(L, w->pongs);
  return 3;
}

/* framing:send(data, binary) -> out */
static int ws_send(lua_State *L) {
  ws *w = checkws(L);
  struct wslay_event_msg m;
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  int err;
  m.opcode = lua_toboolean(L, 3) ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME;
  m.msg = (const uint8_t *)data;
  m.msg_length = len;
  err = wslay_event_queue_msg(w->ctx, &m);
  if (err != 0) {
    lua_pushnil(L);
    lua_pushstring(L, err == WSLAY_ERR_NO_MORE_MSG ? "closing" : "failed");
    return 2;
  }
  push_out(L, w);
  return 1;
}

/* framing:ping([data]) -> out */
static int ws_ping(lua_State *L) {
  ws *w = checkws(L);
  struct wslay_event_msg m;
  size_t len;
  const char *data = luaL_optlstring(L, 2, "", &len);
  luaL_argcheck(L, len <= 125, 2, "ping payload over 125 bytes");
  m.opcode = WSLAY_PING;
  m.msg = (const uint8_t *)data;
  m.msg_length = len;
  wslay_event_queue_msg(w->ctx, &m);
  push_out(L, w);
  return 1;
}

/* framing:close(code, reason) -> out */
static int ws_close(lua_State *L) {
  ws *w = checkws(L);
  lua_Integer code = luaL_optinteger(L, 2, 1000);
  size_t len;
  const char *reason = luaL_optlstring(L, 3, "", &len);
  luaL_argcheck(L, len <= 123, 3, "close reason over 123 bytes");
  wslay_event_queue_close(w->ctx, (uint16_t)code, (const uint8_t *)reason, len);
  push_out(L, w);
  return 1;
}

/* framing:status() -> close_received, close_sent, code_received,
   code_sent, want_read */
static int ws_status(lua_State *L) {
  ws *w = checkws(L);
  lua_pushboolean(L, wslay_event_get_close_received(w->ctx));
  lua_pushboolean(L, wslay_event_get_close_sent(w->ctx));
  lua_pushinteger(L, wslay_event_get_status_code_received(w->ctx));
  lua_pushinteger(L, wslay_event_get_status_code_sent(w->ctx));
  lua_pushboolean(L, wslay_event_want_read(w->ctx));
  return 5;
}

static int ws_gc(lua_State *L) {
  ws *w = luaL_checkudata(L, 1, "luaio.WsFraming");
  while (w->head != NULL) {
    wsmsg *m = w->head;
    w->head = m->next;
    free(m);
  }
  if (w->ctx != NULL) wslay_event_context_free(w->ctx);
  w->ctx = NULL;
  free(w->out);
  w->out = NULL;
  return 0;
}

static int new_framing(lua_State *L, int client) {
  lua_Integer max = luaL_optinteger(L, 1, 1024 * 1024);
  ws *w = lua_newuserdatauv(L, sizeof *w, 0);
  luaL_argcheck(L, max > 0, 1, "max_message_size must be positive");
  memset(w, 0, sizeof *w);
  luaL_setmetatable(L, "luaio.WsFraming");
  if ((client ? wslay_event_context_client_init(&w->ctx, &callbacks, w)
              : wslay_event_context_server_init(&w->ctx, &callbacks, w)) != 0)
    return luaL_error(L, "not enough memory");
  wslay_event_config_set_max_recv_msg_length(w->ctx, (uint64_t)max);
  return 1;
}

/* W.server([max_message_size]) -> framing */
static int ws_server(lua_State *L) { return new_framing(L, 0); }

/* W.client([max_message_size]) -> framing */
static int ws_client(lua_State *L) { return new_framing(L, 1); }

/* W.new_key() -> a random Sec-WebSocket-Key */
static int ws_new_key(lua_State *L) {
  unsigned char raw[16], out[32];
  if (RAND_bytes(raw, sizeof raw) != 1) return luaL_error(L, "no random bytes");
  lua_pushlstring(L, (char *)out, (size_t)EVP_EncodeBlock(out, raw, 16));
  return 1;
}

/* W.accept_key(key) -> base64(SHA-1(key .. GUID)) */
static int ws_accept_key(lua_State *L) {
  size_t len;
  const char *key = luaL_checklstring(L, 1, &len);
  unsigned char md[EVP_MAX_MD_SIZE], out[64];
  unsigned int mdlen = 0;
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  if (c == NULL) return luaL_error(L, "not enough memory");
  EVP_DigestInit_ex(c, EVP_sha1(), NULL);
  EVP_DigestUpdate(c, key, len);
  EVP_DigestUpdate(c, WS_GUID, sizeof WS_GUID - 1);
  EVP_DigestFinal_ex(c, md, &mdlen);
  EVP_MD_CTX_free(c);
  lua_pushlstring(L, (char *)out, (size_t)EVP_EncodeBlock(out, md, (int)mdlen));
  return 1;
}

static const luaL_Reg methods[] = {{"feed", ws_feed},     {"send", ws_send},
                                   {"ping", ws_ping},     {"close", ws_close},
                                   {"status", ws_status}, {"free", ws_gc},
                                   {NULL, NULL}};

static const luaL_Reg funcs[] = {{"server", ws_server},
                                 {"client", ws_client},
                                 {"new_key", ws_new_key},
                                 {"accept_key", ws_accept_key},
                                 {NULL, NULL}};

LUAIO_API int luaopen_luaio__ws(lua_State *L) {
  if (luaL_newmetatable(L, "luaio.WsFraming")) {
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, ws_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  return 1;
}

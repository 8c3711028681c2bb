/*
** dns.c: aio.getaddrinfo, name resolution on libuv's thread pool.
**
** The request lives in malloc'd memory.  The task is woken without values
** and the continuation turns the addrinfo list into Lua tables.  When the
** waiting task is cancelled, uv_cancel drops the request if it has not
** started; one already running finishes, and its callback frees the late
** result.
*/

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netdb.h>
#include <netinet/in.h>

#include "uvfail.h"

typedef struct dnsop {
  uv_getaddrinfo_t req;
  task *t; /* the waiting task; NULL once it gave up */
  int status;
  struct addrinfo *res;
} dnsop;

static void on_getaddrinfo(uv_getaddrinfo_t *req, int status,
                           struct addrinfo *res) {
  dnsop *op = req->data;
  op->status = status;
  op->res = res;
  if (op->t != NULL)
    luaio__wake(op->t, NULL, 0);
  else {
    if (res != NULL) uv_freeaddrinfo(res);
    free(op);
  }
}

static int dns_abandon(task *t, int woken) {
  dnsop *op = t->wobj;
  if (woken) return 0; /* resolved: the task sees the result */
  op->t = NULL;
  uv_cancel((uv_req_t *)&op->req);
  return 1;
}

static const waitops dns_ops = {"getaddrinfo", dns_abandon, NULL};

/* Push {addr, family, port} for ai, or nothing for other families. */
static int push_addr(lua_State *L, const struct addrinfo *ai) {
  char ip[64];
  int port;
  if (ai->ai_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ai->ai_addr;
    uv_ip4_name(a, ip, sizeof ip);
    port = ntohs(a->sin_port);
  } else if (ai->ai_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ai->ai_addr;
    uv_ip6_name(a, ip, sizeof ip);
    port = ntohs(a->sin6_port);
  } else
    return 0;
  lua_createtable(L, 0, 3);
  lua_pushstring(L, ip);
  lua_setfield(L, -2, "addr");
  lua_pushstring(L, ai->ai_family == AF_INET ? "inet" : "inet6");
  lua_setfield(L, -2, "family");
  lua_pushinteger(L, port);
  lua_setfield(L, -2, "port");
  return 1;
}

static int k_getaddrinfo(lua_State *L, int status, lua_KContext ctx) {
  dnsop *op;
  const struct addrinfo *ai;
  lua_Integer n = 0;
  (void)status;
  luaio__resumed(L, luaio__host(L)->current);
  op = (dnsop *)ctx;
  if (op->status < 0) {
    int err = op->status;
    free(op);
    return uvfail(L, err, lua_tostring(L, 1));
  }
  lua_newtable(L);
  for (ai = op->res; ai != NULL; ai = ai->ai_next)
    if (push_addr(L, ai)) lua_rawseti(L, -2, ++n);
  uv_freeaddrinfo(op->res);
  free(op);
  return 1;
}

/* aio.getaddrinfo(host [, port]) -> {{addr, family, port}, …} |
   nil, msg, code */
static int aio_getaddrinfo(lua_State *L) {
  luaio *h = luaio__host(L);
  const char *host = luaL_checkstring(L, 1);
  const char *service = NULL;
  struct addrinfo hints;
  task *t;
  dnsop *op;
  int err;
  if (!lua_isnoneornil(L, 2)) {
    if (lua_type(L, 2) == LUA_TNUMBER) {
      lua_Integer port = luaL_checkinteger(L, 2);
      luaL_argcheck(L, port >= 0 && port <= 65535, 2, "port out of range");
    }
    service = luaL_checkstring(L, 2);
  }
  lua_settop(L, 2);
  t = luaio__enter_wait(L, h);
  op = calloc(1, sizeof *op);
  if (op == NULL) return luaL_error(L, "not enough memory");
  op->req.data = op;
  op->t = t;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM; /* one entry per address */
  err =
      uv_getaddrinfo(h->loop, &op->req, on_getaddrinfo, host, service, &hints);
  if (err < 0) {
    free(op);
    return uvfail(L, err, host);
  }
  return luaio__wait(L, t, &dns_ops, op, (lua_KContext)op, k_getaddrinfo);
}

void luaio__dns_open(lua_State *L, luaio *h) {
  lua_pushlightuserdata(L, h);
  lua_pushcclosure(L, aio_getaddrinfo, 1);
  lua_setfield(L, -2, "getaddrinfo");
}

/*
** uvfail.h: how the bindings report a failure of the outside world.
**
** One helper for UDP, DNS and files: it pushes nil, a message and libuv's
** error name, in luv's order, so `local data, msg, code = …` reads
** nil, "ENOENT: no such file or directory: /x", "ENOENT".
*/

#ifndef LUAIO_UVFAIL_H
#define LUAIO_UVFAIL_H

#include "internal.h"

/* Push nil, "CODE: text[: what]", "CODE" for the libuv error err. */
static inline int uvfail(lua_State *L, int err, const char *what) {
  lua_pushnil(L);
  if (what != NULL)
    lua_pushfstring(L, "%s: %s: %s", uv_err_name(err), uv_strerror(err), what);
  else
    lua_pushfstring(L, "%s: %s", uv_err_name(err), uv_strerror(err));
  lua_pushstring(L, uv_err_name(err));
  return 3;
}

#endif

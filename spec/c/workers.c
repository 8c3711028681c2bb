/*
** workers.c: worker hosts from C.  luaio_config.on_worker preloads a
** module into every worker (and a worker's worker); a job, a worker, a
** channel and a cancelled pure Lua loop leave nothing behind (this test
** also runs under valgrind).
*/

#include <stdio.h>
#include <string.h>

#include "lauxlib.h"
#include "luaio.h"

static int failures;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                              \
    }                                                                          \
  } while (0)

static int open_embedded(lua_State *L) {
  lua_pushinteger(L, 42);
  return 1;
}

/* Run on each worker's own thread, before its code. */
static void on_worker(luaio *w, void *ud) {
  lua_State *L = luaio_state(w);
  (void)ud;
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, open_embedded);
  lua_setfield(L, -2, "embedded");
  lua_pop(L, 1);
}

static const char *script =
    "local aio = require 'luaio'\n"
    "aio.set_pool({size = 2})\n"
    "local v = aio.to_thread(function() return require 'embedded' end)\n"
    "local w = aio.worker(function()\n"
    "  local aio = require 'luaio'\n"
    "  local inner = aio.worker(function() return require 'embedded' end)\n"
    "  return require('embedded') + inner:join()\n"
    "end)\n"
    "local ch = aio.channel(1)\n"
    "local c = aio.worker(function(ch) ch:send('hi') end, ch)\n"
    "local spin = aio.spawn(aio.to_thread, function() while true do end end)\n"
    "aio.sleep(0.01)\n"
    "spin:cancel()\n"
    "pcall(spin.await, spin)\n"
    "result = v + w:join() + #ch:recv()\n"
    "c:join()\n";

int main(void) {
  luaio_config cfg;
  luaio *h;
  lua_State *L;
  luaio_config_init(&cfg);
  cfg.on_worker = on_worker;
  h = luaio_new(&cfg);
  L = luaio_state(h);
  CHECK(luaio_dostring(h, script, "=workers") == 0);
  CHECK(luaio_run(h) == 0);
  lua_getglobal(L, "result");
  CHECK(lua_tointeger(L, -1) == 42 + 84 + 2);
  lua_pop(L, 1);
  luaio_free(h);
  if (failures == 0) printf("workers: all checks passed\n");
  return failures != 0;
}

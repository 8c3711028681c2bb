/*
** module_unload.c: the luaio module under a plain Lua state, as stock
** lua5.4 loads it, outlived by a thread it started.
**
** A to_thread job stays in a C call (os.execute "sleep 3") past the
** grace a closing host gives it (1 s), so the host lets the thread go and
** lua_close unloads the module.  The process then lives on: when the
** thread comes back from its C call it runs the module's code, which must
** still be mapped.  Exit 0; a crash is the failure.
**
**   module_unload MODULE_DIR
*/

#include <stdio.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

static const char script[] =
    "package.cpath = ... .. '/?.so'\n"
    "local aio = require 'luaio'\n"
    "aio.run(function()\n"
    "  aio.spawn(function() aio.to_thread('os.execute', 'sleep 3') end)\n"
    "  aio.sleep(0.1)\n"
    "end)\n";

int main(int argc, char **argv) {
  lua_State *L;
  if (argc != 2) {
    fprintf(stderr, "usage: module_unload MODULE_DIR\n");
    return 2;
  }
  L = luaL_newstate();
  luaL_openlibs(L);
  if (luaL_loadstring(L, script) != LUA_OK) return 1;
  lua_pushstring(L, argv[1]);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    fprintf(stderr, "module_unload: %s\n", lua_tostring(L, -1));
    return 1;
  }
  lua_close(L); /* unloads the module */
  sleep(4);     /* the abandoned thread comes back from its C call */
  puts("ok: the module's code outlived its state");
  return 0;
}

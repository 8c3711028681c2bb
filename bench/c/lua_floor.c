/* The floors under a Lua task runtime, measured against liblua5.4:
     resume_yield   one lua_resume of a Lua function + its coroutine.yield
     resume_yield_c one lua_resume of a C function that lua_yieldk's
     thread_fresh   lua_newthread (garbage collection included)
     thread_fresh_run  lua_newthread, then resume an empty Lua function on it
     thread_reused  a thread taken from a pool table and put back
     thread_rss     bytes of RSS per thread parked in coroutine.yield
   Prints "FLOOR <name> <value> <unit>" lines. */
#include <stdlib.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include "bench.h"

static int k_loop(lua_State *L, int status, lua_KContext ctx);
static int c_loop(lua_State *L) { return lua_yieldk(L, 0, 0, k_loop); }
static int k_loop(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return lua_yieldk(L, 0, 0, k_loop);
}

static void report(const char *name, double v, const char *unit) {
  printf("FLOOR %s %.1f %s\n", name, v, unit);
  fflush(stdout);
}

static double resume_yield(lua_State *L, int n, int cfunc) {
  lua_State *co = lua_newthread(L);
  int nres, i;
  double t0;
  if (cfunc)
    lua_pushcfunction(co, c_loop);
  else
    luaL_loadstring(co, "while true do coroutine.yield() end");
  for (i = 0; i < 1000; i++)
    lua_resume(co, L, 0, &nres);
  t0 = wall_ns();
  for (i = 0; i < n; i++)
    lua_resume(co, L, 0, &nres);
  t0 = (wall_ns() - t0) / n;
  lua_pop(L, 1);
  return t0;
}

static double thread_fresh(lua_State *L, int n) {
  int i;
  double t0 = wall_ns();
  for (i = 0; i < n; i++) {
    lua_newthread(L);
    lua_pop(L, 1);
  }
  return (wall_ns() - t0) / n;
}

static double thread_fresh_run(lua_State *L, int n) {
  int i, nres;
  double t0;
  luaL_loadstring(L, "return true");
  t0 = wall_ns();
  for (i = 0; i < n; i++) {
    lua_State *co = lua_newthread(L);
    lua_pushvalue(L, -2);
    lua_xmove(L, co, 1);
    lua_resume(co, L, 0, &nres);
    lua_pop(L, 1);
  }
  t0 = (wall_ns() - t0) / n;
  lua_pop(L, 1);
  return t0;
}

/* As luaio's pool: a table of idle threads in the registry, used as a
   stack (rawgeti + settop on the way out, rawseti on the way back). */
static double thread_reused(lua_State *L, int n) {
  int i, top = 64;
  double t0;
  lua_createtable(L, 64, 0);
  for (i = 1; i <= 64; i++) {
    lua_newthread(L);
    lua_rawseti(L, -2, i);
  }
  t0 = wall_ns();
  for (i = 0; i < n; i++) {
    lua_State *co;
    lua_rawgeti(L, -1, top);
    co = lua_tothread(L, -1);
    lua_settop(co, 0);
    lua_rawseti(L, -2, top);
  }
  t0 = (wall_ns() - t0) / n;
  lua_pop(L, 1);
  return t0;
}

static double thread_rss(lua_State *L, int n) {
  long r0, r1;
  int i, nres;
  lua_gc(L, LUA_GCCOLLECT);
  luaL_loadstring(L, "coroutine.yield()");
  lua_createtable(L, n, 0);
  r0 = rss_bytes();
  for (i = 1; i <= n; i++) {
    lua_State *co = lua_newthread(L);
    lua_pushvalue(L, -3);
    lua_xmove(L, co, 1);
    lua_resume(co, L, 0, &nres);
    lua_rawseti(L, -2, i);
  }
  lua_gc(L, LUA_GCCOLLECT);
  r1 = rss_bytes();
  lua_pop(L, 2);
  return (double)(r1 - r0) / n;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 1000000;
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  report("resume_yield", resume_yield(L, n, 0), "ns");
  report("resume_yield_c", resume_yield(L, n, 1), "ns");
  thread_fresh(L, n / 10);
  report("thread_fresh", thread_fresh(L, n), "ns");
  report("thread_fresh_run", thread_fresh_run(L, n), "ns");
  report("thread_reused", thread_reused(L, n), "ns");
  lua_close(L);
  L = luaL_newstate(); /* a clean heap for the memory figure */
  luaL_openlibs(L);
  report("thread_rss", thread_rss(L, 100000), "B");
  lua_close(L);
  return 0;
}

/*
** after_free.c: what luaio_free leaves behind, and calls that reach the
** host at the wrong time (the core review's items 3 and 10).  Run under
** valgrind and the ASan tree too: each check is also "no invalid access".
*/

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lauxlib.h"
#include "lualib.h"
#include "luaio.h"

static int failures;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                              \
    }                                                                          \
  } while (0)

typedef struct errors {
  int n;
  char last[4096];
} errors;

static void on_error(luaio *h, const char *msg, void *ud) {
  errors *e = ud;
  (void)h;
  if (e == NULL) return;
  e->n++;
  snprintf(e->last, sizeof e->last, "%s", msg);
}

static luaio *new_host(lua_State *L, errors *e) {
  luaio_config cfg;
  luaio_config_init(&cfg);
  cfg.L = L;
  cfg.on_error = on_error;
  cfg.ud = e;
  return luaio_new(&cfg);
}

/* Run a chunk on a plain state; its error (or NULL) in *err. */
static int dostring(lua_State *L, const char *code, char *err, size_t n) {
  int st = luaL_dostring(L, code);
  if (err != NULL) {
    snprintf(err, n, "%s", st == LUA_OK ? "" : lua_tostring(L, -1));
  }
  if (st != LUA_OK) lua_pop(L, 1);
  return st;
}

static int getbool(lua_State *L, const char *name) {
  int v;
  lua_getglobal(L, name);
  v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* A borrowed state after luaio_free: the standard coroutine functions
   are back, the module is out of package.loaded, a closure kept from the
   old module raises "luaio host is closed", and a finalizer that runs a
   coroutine at lua_close works. */
static void test_borrowed_state_after_free(void) {
  char err[512];
  lua_State *L = luaL_newstate();
  luaio *h;
  luaL_openlibs(L);
  CHECK(dostring(L, "std_resume = coroutine.resume std_wrap = coroutine.wrap",
                 NULL, 0) == LUA_OK);
  h = new_host(L, NULL);
  CHECK(luaio_dostring(h,
                       "local aio = require 'luaio'\n"
                       "old_sleep, old_lock = aio.sleep, aio.lock()\n"
                       "patched = coroutine.resume ~= std_resume\n"
                       "aio.sleep(0.001)\n",
                       "=borrowed") == 0);
  CHECK(luaio_run(h) == 0);
  luaio_free(h);
  CHECK(getbool(L, "patched"));
  CHECK(dostring(L,
                 "restored = coroutine.resume == std_resume and "
                 "coroutine.wrap == std_wrap\n"
                 "gone = package.loaded.luaio == nil\n"
                 "local co = coroutine.wrap(function(a) "
                 "  return coroutine.yield(a) + 1 end)\n"
                 "works = co(1) == 1 and co(41) == 42\n",
                 err, sizeof err) == LUA_OK);
  CHECK(getbool(L, "restored"));
  CHECK(getbool(L, "gone"));
  CHECK(getbool(L, "works"));
  CHECK(dostring(L, "old_sleep(0)", err, sizeof err) != LUA_OK);
  CHECK(strstr(err, "luaio host is closed") != NULL);
  CHECK(dostring(L, "old_lock:acquire() old_lock:acquire()", err,
                 sizeof err) != LUA_OK);
  CHECK(strstr(err, "luaio host is closed") != NULL);
  CHECK(dostring(L,
                 "setmetatable({}, {__gc = function() "
                 "  local co = coroutine.create(function() "
                 "    coroutine.yield(1) end) "
                 "  coroutine.resume(co) coroutine.resume(co) end})",
                 err, sizeof err) == LUA_OK);
  lua_close(L); /* the finalizer runs here */
}

/* A second host on a state whose first host was freed works as the first
   did, and the first host's closures still raise cleanly. */
static void test_second_host(void) {
  char err[512];
  errors e = {0};
  lua_State *L = luaL_newstate();
  luaio *h;
  luaL_openlibs(L);
  h = new_host(L, &e);
  CHECK(luaio_dostring(h, "first = require('luaio').sleep", "=one") == 0);
  CHECK(luaio_run(h) == 0);
  luaio_free(h);
  h = new_host(L, &e);
  CHECK(luaio_dostring(h,
                       "local aio = require 'luaio'\n"
                       "local co = coroutine.wrap(function() "
                       "  aio.sleep(0.001) return 'nested' end)\n"
                       "second = co()\n"
                       "second_ok = not pcall(first, 0)\n",
                       "=two") == 0);
  CHECK(luaio_run(h) == 0);
  lua_getglobal(L, "second");
  CHECK(lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), "nested") == 0);
  lua_pop(L, 1);
  CHECK(getbool(L, "second_ok"));
  CHECK(e.n == 0);
  luaio_free(h);
  CHECK(dostring(L, "first(0)", err, sizeof err) != LUA_OK);
  CHECK(strstr(err, "luaio host is closed") != NULL);
  lua_close(L);
}

/* luaio_free called by a task, from inside luaio_step: it happens when the
   step returns, which then reports no live task. */
static luaio *freed_from_inside;

static int free_me(lua_State *L) {
  (void)L;
  luaio_free(freed_from_inside);
  return 0;
}

static void test_free_inside_step(void) {
  luaio *h = new_host(NULL, NULL);
  lua_State *L = luaio_state(h);
  freed_from_inside = h;
  lua_register(L, "free_me", free_me);
  CHECK(luaio_dostring(h,
                       "local aio = require 'luaio'\n"
                       "aio.spawn(aio.sleep, 10)\n"
                       "free_me()\n"
                       "aio.sleep(0)\n"
                       "after = true\n",
                       "=inside") == 0);
  CHECK(luaio_step(h, 0, 0) == 0); /* freed: nothing live */
}

/* A future of host A settled through host B's state is refused and
   reported by B; A's future is still pending, then settles normally. */
static void test_future_of_another_host(void) {
  errors ea = {0}, eb = {0};
  luaio *a = new_host(NULL, &ea), *b = new_host(NULL, &eb);
  lua_State *La = luaio_state(a), *Lb = luaio_state(b);
  luaio_future *fa = luaio_future_new(La), *fb;
  lua_setglobal(La, "fa");
  fb = luaio_future_new(Lb);
  lua_setglobal(Lb, "fb");
  (void)fb;
  CHECK(luaio_dostring(a, "got_a = fa:await()", "=a") == 0);
  CHECK(luaio_dostring(b, "got_b = fb:await()", "=b") == 0);
  luaio_step(a, 0, 0);
  luaio_step(b, 0, 0);
  lua_pushstring(Lb, "wrong");
  luaio_future_resolve(fa, Lb, 1);
  CHECK(eb.n == 1);
  CHECK(strstr(eb.last, "not one of this host's") != NULL);
  luaio_step(b, 0, 0);
  lua_getglobal(Lb, "got_b");
  CHECK(lua_isnil(Lb, -1)); /* fb was not settled */
  lua_pop(Lb, 1);
  lua_pushstring(La, "right");
  luaio_future_resolve(fa, La, 1);
  luaio_step(a, 0, 0);
  lua_getglobal(La, "got_a");
  CHECK(lua_isstring(La, -1) && strcmp(lua_tostring(La, -1), "right") == 0);
  lua_pop(La, 1);
  CHECK(ea.n == 0);
  lua_pushstring(Lb, "late");
  luaio_future_resolve(fb, Lb, 1);
  luaio_free(a);
  luaio_free(b);
}

/* luaio_step with a NaN or huge wait neither blocks forever nor hits an
   undefined conversion: a NaN is no wait; a huge one ends with the work. */
static void test_step_odd_waits(void) {
  luaio *h = new_host(NULL, NULL);
  CHECK(luaio_dostring(h, "require('luaio').sleep(0.01)", "=odd") == 0);
  luaio_step(h, 0, 0);
  CHECK(luaio_step(h, NAN, 0) == 1);
  CHECK(luaio_step(h, -INFINITY, NAN) == 1);
  while (luaio_step(h, 1e300, 0) > 0)
    ;
  luaio_free(h);
}

int main(void) {
  test_borrowed_state_after_free();
  test_second_host();
  test_free_inside_step();
  test_future_of_another_host();
  test_step_odd_waits();
  if (failures == 0) printf("after_free: all checks passed\n");
  return failures != 0;
}

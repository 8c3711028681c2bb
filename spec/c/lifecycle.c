/*
** lifecycle.c: the host's life cycle from C.  Each check ends by asserting
** that the loop closes cleanly: luaio leaves no handle behind.
*/

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
  e->n++;
  snprintf(e->last, sizeof e->last, "%s", msg);
}

static luaio *new_host(uv_loop_t *loop, lua_State *L, errors *e) {
  luaio_config cfg;
  luaio_config_init(&cfg);
  cfg.loop = loop;
  cfg.L = L;
  cfg.on_error = on_error;
  cfg.ud = e;
  return luaio_new(&cfg);
}

static int getint(lua_State *L, const char *name) {
  int v;
  lua_getglobal(L, name);
  v = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

/* Tasks run to the end; a failure nobody retrieved reaches on_error once. */
static void test_run(void) {
  errors e = {0};
  luaio *h = new_host(NULL, NULL, &e);
  lua_State *L = luaio_state(h);
  CHECK(h != NULL);
  CHECK(luaio_dostring(h,
                       "local aio = require 'luaio'\n"
                       "count = 0\n"
                       "for i = 1, 100 do\n"
                       "  aio.spawn(function() aio.sleep(0.001) "
                       "count = count + 1 end)\n"
                       "end\n"
                       "aio.spawn(function() error('lost failure') end)\n",
                       "=run") == 0);
  CHECK(luaio_run(h) != 0);
  CHECK(getint(L, "count") == 100);
  CHECK(e.n == 1);
  CHECK(strstr(e.last, "Task exception was never retrieved") != NULL);
  CHECK(strstr(e.last, "lost failure") != NULL);
  luaio_free(h);
}

/* A chunk that does not compile: a code and the message on the stack. */
static void test_syntax_error(void) {
  luaio *h = luaio_new(NULL);
  lua_State *L = luaio_state(h);
  CHECK(luaio_dostring(h, "x = = 1", "=bad") != 0);
  CHECK(strstr(lua_tostring(L, -1), "bad:1:") != NULL);
  lua_pop(L, 1);
  CHECK(luaio_dofile(h, "/nonexistent/file.lua") != 0);
  lua_pop(L, 1);
  luaio_free(h);
}

/* A borrowed loop: after luaio_free the loop closes cleanly, also when
   tasks were still sleeping and had cleanup to run. */
static void test_borrowed_loop(void) {
  uv_loop_t loop;
  errors e = {0};
  luaio *h;
  lua_State *L;
  CHECK(uv_loop_init(&loop) == 0);
  h = new_host(&loop, NULL, &e);
  L = luaio_state(h);
  CHECK(luaio_dostring(h,
                       "local aio = require 'luaio'\n"
                       "cleaned = 0\n"
                       "for i = 1, 10 do aio.spawn(function()\n"
                       "  local ok = pcall(aio.sleep, 100)\n"
                       "  aio.shield(function() aio.sleep(0.001) end)\n"
                       "  cleaned = cleaned + (ok and 0 or 1)\n"
                       "end) end\n",
                       "=borrowed") == 0);
  CHECK(luaio_step(h, 0, 0) > 0);
  CHECK(luaio_step(h, 0, 0) == 10); /* the chunk is done, 10 sleep */
  luaio_free(h);
  CHECK(uv_loop_close(&loop) == 0);
  (void)L;
  CHECK(e.n == 0);
}

/* A borrowed state: luaio adds itself and leaves the state usable. */
static void test_borrowed_state(void) {
  lua_State *L = luaL_newstate();
  luaio *h;
  luaL_openlibs(L);
  h = new_host(NULL, L, NULL);
  CHECK(luaio_state(h) == L);
  CHECK(luaio_dostring(h,
                       "local aio = require 'luaio'\n"
                       "answer = aio.sleep(0.001, 42)\n",
                       "=state") == 0);
  CHECK(luaio_run(h) == 0);
  luaio_free(h);
  CHECK(getint(L, "answer") == 42);
  CHECK(luaL_dostring(L, "x = 1 + 1") == LUA_OK);
  CHECK(getint(L, "x") == 2);
  lua_close(L);
}

/* luaio_step never blocks longer than asked and returns the live tasks. */
static void test_step(void) {
  luaio *h = luaio_new(NULL);
  lua_State *L = luaio_state(h);
  int frames = 0, live;
  CHECK(luaio_dostring(h,
                       "local aio = require 'luaio'\n"
                       "ticks = 0\n"
                       "for i = 1, 3 do ticks = ticks + 1 "
                       "aio.sleep(0.005) end\n",
                       "=step") == 0);
  do {
    live = luaio_step(h, 0.002, 0.001);
    frames++;
  } while (live > 0 && frames < 10000);
  CHECK(live == 0);
  CHECK(frames > 3); /* the sleeps spanned several frames */
  CHECK(getint(L, "ticks") == 3);
  luaio_free(h);
}

/* Two hosts side by side in one thread, interleaved. */
static void test_two_hosts(void) {
  luaio *a = luaio_new(NULL), *b = luaio_new(NULL);
  int i;
  const char *code = "local aio = require 'luaio'\n"
                     "n = 0\n"
                     "for i = 1, 5 do aio.sleep(0.001) n = n + 1 end\n";
  CHECK(luaio_dostring(a, code, "=a") == 0);
  CHECK(luaio_dostring(b, code, "=b") == 0);
  for (i = 0;
       i < 10000 && (luaio_step(a, 0.001, 0) + luaio_step(b, 0.001, 0)) > 0;
       i++) {
  }
  CHECK(getint(luaio_state(a), "n") == 5);
  CHECK(getint(luaio_state(b), "n") == 5);
  luaio_free(a);
  luaio_free(b);
}

/* luaio_free with tasks pending cancels them and lets cleanup run. */
static void test_free_cancels(void) {
  lua_State *L = luaL_newstate();
  luaio *h;
  luaL_openlibs(L);
  h = new_host(NULL, L, NULL);
  CHECK(luaio_dostring(h,
                       "local aio = require 'luaio'\n"
                       "state = 'waiting'\n"
                       "aio.spawn(function()\n"
                       "  local ok, e = pcall(aio.sleep, 100)\n"
                       "  state = aio.is_error(e, 'CancelledError') "
                       "and 'cancelled' or 'other'\n"
                       "end)\n",
                       "=free") == 0);
  luaio_step(h, 0, 0);
  luaio_step(h, 0, 0);
  luaio_free(h);
  lua_getglobal(L, "state");
  CHECK(strcmp(lua_tostring(L, -1), "cancelled") == 0);
  lua_close(L);
}

int main(void) {
  test_run();
  test_syntax_error();
  test_borrowed_loop();
  test_borrowed_state();
  test_step();
  test_two_hosts();
  test_free_cancels();
  if (failures == 0) printf("lifecycle: all checks passed\n");
  return failures != 0;
}

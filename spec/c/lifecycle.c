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

/* The application runs the loop itself (as one already built on libuv
   does); luaio's tasks still run, from the loop's check phase. */
static void test_app_runs_loop(void) {
  uv_loop_t loop;
  luaio *h;
  CHECK(uv_loop_init(&loop) == 0);
  h = new_host(&loop, NULL, NULL);
  CHECK(luaio_dostring(h,
                       "local aio = require 'luaio'\n"
                       "local ts = {}\n"
                       "for i = 1, 5 do ts[i] = aio.spawn(function() "
                       "aio.sleep(0.001 * i) return i end) end\n"
                       "total = 0\n"
                       "for i = 1, 5 do total = total + ts[i]:await() end\n",
                       "=app") == 0);
  uv_run(&loop, UV_RUN_DEFAULT); /* returns once nothing is left */
  CHECK(getint(luaio_state(h), "total") == 15);
  luaio_free(h);
  CHECK(uv_loop_close(&loop) == 0);
}

/* A frame's budget stops the scheduler after the task that used it up:
   with a budget too small for any task, each step resumes exactly one,
   and the rest keep their order for the next frames. */
static void test_budget(void) {
  luaio *h = luaio_new(NULL);
  lua_State *L = luaio_state(h);
  int step;
  CHECK(luaio_dostring(h,
                       "local aio = require 'luaio'\n"
                       "order = ''\n"
                       "for i = 1, 5 do aio.spawn(function() "
                       "order = order .. i end) end\n",
                       "=budget") == 0);
  luaio_step(h, 0, 1e-9); /* runs only the chunk, which spawns five */
  for (step = 1; step <= 5; step++) {
    size_t len;
    lua_getglobal(L, "order");
    lua_tolstring(L, -1, &len);
    CHECK((int)len == step - 1);
    lua_pop(L, 1);
    luaio_step(h, 0, 1e-9);
  }
  lua_getglobal(L, "order");
  CHECK(strcmp(lua_tostring(L, -1), "12345") == 0);
  lua_pop(L, 1);
  CHECK(luaio_step(h, 0, 0) == 0);
  luaio_free(h);
}

/* Futures: awaited from Lua, settled from C; settling twice is reported
   through on_error, and an awaiter that is cancelled leaves the future
   usable. */
static void test_futures(void) {
  errors e = {0};
  luaio *h = new_host(NULL, NULL, &e);
  lua_State *L = luaio_state(h);
  luaio_future *ok, *bad, *late;
  ok = luaio_future_new(L);
  lua_setglobal(L, "ok_f");
  bad = luaio_future_new(L);
  lua_setglobal(L, "bad_f");
  late = luaio_future_new(L);
  lua_setglobal(L, "late_f");
  CHECK(luaio_dostring(
            h,
            "local aio = require 'luaio'\n"
            "a, b = ok_f:await()\n"
            "local okk, err = pcall(bad_f.await, bad_f)\n"
            "bad = err\n"
            "local t = aio.spawn(function() return late_f:await() end)\n"
            "aio.sleep(0)\n"
            "t:cancel()\n"
            "cancelled = not pcall(t.await, t)\n"
            "late = late_f:await()\n",
            "=futures") == 0);
  luaio_step(h, 0, 0);
  lua_pushinteger(L, 7);
  lua_pushstring(L, "seven");
  luaio_future_resolve(ok, L, 2);
  lua_pushstring(L, "refused");
  luaio_future_reject(bad, L);
  luaio_step(h, 0, 0);
  luaio_step(h, 0, 0);
  lua_pushstring(L, "on time");
  luaio_future_resolve(late, L, 1);
  CHECK(luaio_run(h) == 0);
  CHECK(getint(L, "a") == 7);
  lua_getglobal(L, "b");
  CHECK(strcmp(lua_tostring(L, -1), "seven") == 0);
  lua_getglobal(L, "bad");
  CHECK(strcmp(lua_tostring(L, -1), "refused") == 0);
  lua_getglobal(L, "cancelled");
  CHECK(lua_toboolean(L, -1));
  lua_getglobal(L, "late");
  CHECK(strcmp(lua_tostring(L, -1), "on time") == 0);
  lua_pop(L, 4);
  CHECK(e.n == 0);
  lua_pushinteger(L, 1);
  luaio_future_resolve(ok, L, 1); /* twice: reported, not a crash */
  CHECK(e.n == 1);
  CHECK(strstr(e.last, "already settled") != NULL);
  CHECK(lua_gettop(L) == 0);
  luaio_free(h);
}

int main(void) {
  test_run();
  test_syntax_error();
  test_borrowed_loop();
  test_borrowed_state();
  test_step();
  test_two_hosts();
  test_free_cancels();
  test_app_runs_loop();
  test_budget();
  test_futures();
  if (failures == 0) printf("lifecycle: all checks passed\n");
  return failures != 0;
}

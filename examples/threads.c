/*
** threads.c: two threads, each with its own host, running scripts at the
** same time.  Hosts share nothing, so no lock is needed.
*/

#include <pthread.h>
#include <stdio.h>

#include "lauxlib.h"
#include "luaio.h"

typedef struct worker {
  pthread_t thread;
  int id;
  long long sum;
  int ok;
} worker;

static const char *script =
    "local aio = require 'luaio'\n"
    "local id = ...\n"
    "local ts = {}\n"
    "for i = 1, 1000 do\n"
    "  ts[i] = aio.spawn(function()\n"
    "    aio.sleep((i % 7) / 1000)\n"
    "    return i * id\n"
    "  end)\n"
    "end\n"
    "local sum = 0\n"
    "for _, t in ipairs(aio.gather(ts)) do sum = sum + t end\n"
    "result = sum\n";

static void *run(void *arg) {
  worker *w = arg;
  luaio *h = luaio_new(NULL);
  lua_State *L = luaio_state(h);
  if (luaL_loadstring(L, script) != 0) {
    luaio_free(h);
    return NULL;
  }
  lua_pushinteger(L, w->id);
  luaio_spawn(h, 1);
  w->ok = luaio_run(h) == 0;
  lua_getglobal(L, "result");
  w->sum = (long long)lua_tointeger(L, -1);
  lua_pop(L, 1);
  luaio_free(h);
  return NULL;
}

int main(void) {
  worker w[2] = {{0}, {0}};
  int i, failed = 0;
  for (i = 0; i < 2; i++) {
    w[i].id = i + 1;
    pthread_create(&w[i].thread, NULL, run, &w[i]);
  }
  for (i = 0; i < 2; i++) {
    long long want = 1000LL * 1001 / 2 * w[i].id;
    pthread_join(w[i].thread, NULL);
    printf("thread %d: sum %lld (%s)\n", w[i].id, w[i].sum,
           w[i].ok && w[i].sum == want ? "right" : "WRONG");
    failed |= !(w[i].ok && w[i].sum == want);
  }
  return failed;
}

/*
** http_threads.c: four threads, each with its own host, fetching over
** aio.http at the same time from a server of their own.  libcurl's global
** initialisation happens once, whichever thread comes first; the hosts
** share nothing else.  Also run under valgrind (spec/tests.cmake).
*/

#include <pthread.h>
#include <stdio.h>

#include "lauxlib.h"
#include "luaio.h"

#define NTHREADS 4

typedef struct worker {
  pthread_t thread;
  int ok;
  long long got;
} worker;

static const char *script =
    "local aio = require 'luaio'\n"
    "local body = 'hi'\n"
    "local server = aio.start_server(function(s)\n"
    "  while true do\n"
    "    local line = s:read_line()\n"
    "    if line == nil then break end\n"
    "    repeat local h = s:read_line() until h == nil or "
    "h:gsub('\\r$', '') == ''\n"
    "    s:write('HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\n' .. "
    "body)\n"
    "  end\n"
    "  s:close()\n"
    "end, '127.0.0.1', 0)\n"
    "local base = 'http://127.0.0.1:' .. server.port\n"
    "local session <close> = aio.http.client()\n"
    "local n = 0\n"
    "local jobs = {}\n"
    "for i = 1, 10 do jobs[i] = function()\n"
    "  local r = assert(session:get(base .. '/' .. i))\n"
    "  if r.body == body then n = n + 1 end\n"
    "end end\n"
    "aio.gather(jobs)\n"
    "server:close()\n"
    "session:close() -- its idle connections end the server's handlers\n"
    "result = n\n";

static void *run(void *arg) {
  worker *w = arg;
  luaio *h = luaio_new(NULL);
  lua_State *L = luaio_state(h);
  if (luaL_loadstring(L, script) != 0) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    luaio_free(h);
    return NULL;
  }
  luaio_spawn(h, 0);
  w->ok = luaio_run(h) == 0;
  lua_getglobal(L, "result");
  w->got = (long long)lua_tointeger(L, -1);
  lua_pop(L, 1);
  luaio_free(h);
  return NULL;
}

int main(void) {
  worker w[NTHREADS];
  int i, failed = 0;
  for (i = 0; i < NTHREADS; i++) {
    w[i].ok = 0;
    w[i].got = 0;
    pthread_create(&w[i].thread, NULL, run, &w[i]);
  }
  for (i = 0; i < NTHREADS; i++) {
    pthread_join(w[i].thread, NULL);
    printf("thread %d: %lld responses (%s)\n", i, w[i].got,
           w[i].ok && w[i].got == 10 ? "right" : "WRONG");
    failed |= !(w[i].ok && w[i].got == 10);
  }
  return failed;
}

/*
** tool.c: a tool that embeds luaio to run a user's script, and gives it
** one async C function: checksum(path) -> future, computed on libuv's
** thread pool while the script's tasks go on.
**
**   tool script.lua
*/

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lauxlib.h"
#include "luaio.h"

typedef struct job {
  uv_work_t req;
  luaio *h;
  luaio_future *fut;
  char *path;
  uint32_t sum; /* Adler-32 */
  int err;      /* errno-style failure, 0 if none */
} job;

/* On a thread of the pool: read the file and sum it. */
static void work(uv_work_t *req) {
  job *j = req->data;
  uint32_t a = 1, b = 0;
  unsigned char buf[65536];
  size_t n, i;
  FILE *f = fopen(j->path, "rb");
  if (f == NULL) {
    j->err = 1;
    return;
  }
  while ((n = fread(buf, 1, sizeof buf, f)) > 0)
    for (i = 0; i < n; i++) {
      a = (a + buf[i]) % 65521;
      b = (b + a) % 65521;
    }
  fclose(f);
  j->sum = (b << 16) | a;
}

/* Back on the loop's thread: settle the future. */
static void after_work(uv_work_t *req, int status) {
  job *j = req->data;
  lua_State *L = luaio_state(j->h);
  if (status != 0 || j->err) {
    lua_pushfstring(L, "cannot read %s", j->path);
    luaio_future_reject(j->fut, L);
  } else {
    char hex[9];
    snprintf(hex, sizeof hex, "%08x", (unsigned)j->sum);
    lua_pushstring(L, hex);
    luaio_future_resolve(j->fut, L, 1);
  }
  free(j->path);
  free(j);
}

/* checksum(path) -> future of the file's Adler-32 as 8 hex digits */
static int l_checksum(lua_State *L) {
  luaio *h = lua_touserdata(L, lua_upvalueindex(1));
  const char *path = luaL_checkstring(L, 1);
  job *j = calloc(1, sizeof *j);
  if (j == NULL || (j->path = strdup(path)) == NULL) {
    free(j);
    return luaL_error(L, "not enough memory");
  }
  j->h = h;
  j->req.data = j;
  j->fut = luaio_future_new(L);
  uv_queue_work(luaio_loop(h), &j->req, work, after_work);
  return 1;
}

int main(int argc, char **argv) {
  luaio *h;
  lua_State *L;
  int status;
  if (argc < 2) {
    fprintf(stderr, "usage: %s script.lua\n", argv[0]);
    return 2;
  }
  h = luaio_new(NULL);
  L = luaio_state(h);
  lua_pushlightuserdata(L, h);
  lua_pushcclosure(L, l_checksum, 1);
  lua_setglobal(L, "checksum");
  if (luaio_dofile(h, argv[1]) != 0) {
    fprintf(stderr, "tool: %s\n", lua_tostring(L, -1));
    luaio_free(h);
    return 1;
  }
  status = luaio_run(h); /* nonzero: a task error went to stderr */
  luaio_free(h);
  return status;
}

/*
** game.c: a frame-stepped "game" embedding luaio.
**
** A 60 fps loop calls luaio_step(h, 0, 0.002) once per frame.  Lua scripts
** move an entity with aio.sleep, spawn effects, and await an asset loader
** written in C whose futures are settled a few frames later.  Every line
** the scripts log carries the frame it happened in.
*/

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lauxlib.h"
#include "luaio.h"

#define FPS 60
#define MAX_FRAMES 600
#define MAX_LOADS 16

typedef struct load {
  luaio_future *fut;
  int due; /* the frame it completes in */
  char name[64];
} load;

typedef struct game {
  int frame;
  load loads[MAX_LOADS];
  int nloads;
} game;

/* log(msg): one line of the frame log */
static int l_log(lua_State *L) {
  game *g = lua_touserdata(L, lua_upvalueindex(1));
  printf("frame %3d: %s\n", g->frame, luaL_checkstring(L, 1));
  return 0;
}

/* load_asset(name) -> future: the asset, three frames later */
static int l_load_asset(lua_State *L) {
  game *g = lua_touserdata(L, lua_upvalueindex(1));
  const char *name = luaL_checkstring(L, 1);
  load *ld;
  if (g->nloads == MAX_LOADS) return luaL_error(L, "too many loads");
  ld = &g->loads[g->nloads++];
  snprintf(ld->name, sizeof ld->name, "%s", name);
  ld->due = g->frame + 3;
  ld->fut = luaio_future_new(L);
  return 1;
}

/* The engine's side: settle the loads that are due this frame. */
static void settle_loads(game *g, lua_State *L) {
  int i = 0;
  while (i < g->nloads) {
    load *ld = &g->loads[i];
    if (ld->due > g->frame) {
      i++;
      continue;
    }
    if (strstr(ld->name, "missing") != NULL) {
      lua_pushfstring(L, "no such asset: %s", ld->name);
      luaio_future_reject(ld->fut, L);
    } else {
      lua_createtable(L, 0, 2);
      lua_pushstring(L, ld->name);
      lua_setfield(L, -2, "name");
      lua_pushinteger(L, (lua_Integer)strlen(ld->name) * 1024);
      lua_setfield(L, -2, "bytes");
      luaio_future_resolve(ld->fut, L, 1);
    }
    *ld = g->loads[--g->nloads];
  }
}

static const char *script =
    "local aio = require 'luaio'\n"
    "local hero = {x = 0}\n"
    "aio.spawn(function()\n"
    "  for step = 1, 4 do\n"
    "    hero.x = hero.x + 10\n"
    "    log('hero moves to x=' .. hero.x)\n"
    "    aio.sleep(4 / 60)\n"
    "  end\n"
    "end)\n"
    "aio.spawn(function()\n"
    "  local tex = load_asset('hero.png'):await()\n"
    "  log('loaded ' .. tex.name .. ' (' .. tex.bytes .. ' bytes)')\n"
    "  local ok, err = pcall(function()\n"
    "    return load_asset('missing.png'):await()\n"
    "  end)\n"
    "  log('load failed: ' .. tostring(err))\n"
    "  local tg <close> = aio.taskgroup()\n"
    "  for i = 1, 3 do\n"
    "    tg:spawn(function()\n"
    "      aio.sleep(i / 60)\n"
    "      log('spark ' .. i .. ' fades')\n"
    "    end)\n"
    "  end\n"
    "end)\n";

static void sleep_frame(void) {
  struct timespec ts = {0, 1000000000L / FPS};
  nanosleep(&ts, NULL);
}

int main(void) {
  game g;
  luaio *h = luaio_new(NULL);
  lua_State *L = luaio_state(h);
  int live = 1;
  memset(&g, 0, sizeof g);
  lua_pushlightuserdata(L, &g);
  lua_pushcclosure(L, l_log, 1);
  lua_setglobal(L, "log");
  lua_pushlightuserdata(L, &g);
  lua_pushcclosure(L, l_load_asset, 1);
  lua_setglobal(L, "load_asset");
  if (luaio_dostring(h, script, "=game") != 0) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    luaio_free(h);
    return 1;
  }
  for (g.frame = 0; g.frame < MAX_FRAMES && live > 0; g.frame++) {
    settle_loads(&g, L);
    live = luaio_step(h, 0, 0.002);
    sleep_frame();
  }
  printf("frame %3d: no task left\n", g.frame);
  luaio_free(h);
  return live != 0;
}

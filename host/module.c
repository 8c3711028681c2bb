/*
** module.c: the `luaio` Lua module: aio.run, aio.spawn and the task
** functions, and luaopen_luaio, which gathers every file's functions.
*/

#include <string.h>

#include "internal.h"

static void check_callable(lua_State *L, int idx) {
  if (lua_type(L, idx) != LUA_TFUNCTION) {
    if (luaL_getmetafield(L, idx, "__call") == LUA_TNIL)
      luaL_typeerror(L, idx, "function");
    lua_pop(L, 1);
  }
}

/* aio.run inside a task runs fn as a new task of a run of its own: the
   tasks it spawns (and theirs) belong to that run, and when fn's task has
   ended they are cancelled and awaited, as the outermost run does with
   every task.  The caller's cancellation reaches fn's task; the wait for
   the rest cannot be interrupted.  Stack: 1 fn's task. */

/* The first live task of run `id`, after cancelling every one. */
static task *cancel_run(lua_State *L, luaio *h, unsigned id) {
  task *first = NULL;
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->tasks_ref);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    task *t = luaio__totask(L, -1);
    if (t != NULL && t->run == id && t->state != T_DONE) {
      luaio__task_cancel(t);
      if (first == NULL) first = t;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return first;
}

static int keep_waiting(task *t, int woken) {
  (void)t;
  (void)woken;
  return 0;
}

static const waitops run_ops = {"aio.run (cancelling the rest)", keep_waiting,
                                NULL};

static int k_run(lua_State *L, int status, lua_KContext ctx) {
  luaio *h = luaio__host(L);
  task *main = lua_touserdata(L, 1), *self = h->current, *left;
  (void)status;
  (void)ctx;
  lua_settop(L, 1);
  if ((left = cancel_run(L, h, main->run)) != NULL) {
    luaio__check_suspend(L, self);
    luaio__list_push(&left->awaiters, &self->w);
    return luaio__wait(L, self, &run_ops, left, 0, k_run);
  }
  return luaio__await_results(L, main);
}

/* aio.run(fn, ...) -> ...: fn's results, or raises its error */
static int aio_run(lua_State *L) {
  luaio *h = luaio__host(L);
  task *t;
  check_callable(L, 1);
  if (h->current != NULL) { /* inside a task: a run of its own */
    unsigned run = h->current->run;
    h->current->run = ++h->next_run;
    if (h->next_run == 0) h->current->run = h->next_run = 1;
    luaio__spawn(L, h, lua_gettop(L) - 1); /* the task at 1 */
    h->current->run = run;
    return luaio__await_k(L, 0, k_run);
  }
  if (h->running)
    return luaL_error(L, "aio.run: the event loop is already running");
  t = luaio__spawn(L, h, lua_gettop(L) - 1);
  luaio__run_main(h, t);
  return luaio__pushresults(L, t, 1);
}

/* aio.spawn(fn, ...) -> task */
static int aio_spawn(lua_State *L) {
  luaio *h = luaio__host(L);
  check_callable(L, 1);
  if (h->current == NULL && !h->running)
    return luaL_error(L, "no running event loop: spawn tasks from inside "
                         "aio.run (or a script run by luaio)");
  luaio__spawn(L, h, lua_gettop(L) - 1);
  return 1;
}

/* aio.current_task() -> task | nil */
static int aio_current_task(lua_State *L) {
  luaio *h = luaio__host(L);
  if (h->current == NULL) return 0;
  luaio__pushtask(L, h->current);
  return 1;
}

/* aio.all_tasks() -> array of the tasks not yet done */
static int aio_all_tasks(lua_State *L) {
  luaio *h = luaio__host(L);
  lua_Integer n = 0;
  lua_createtable(L, (int)h->ntasks, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->tasks_ref);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    if (lua_type(L, -1) == LUA_TUSERDATA)
      lua_rawseti(L, -4, ++n);
    else
      lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return 1;
}

/* aio.set_eager(on): start spawned tasks at once, until they first wait */
static int aio_set_eager(lua_State *L) {
  luaio__host(L)->eager = (unsigned char)lua_toboolean(L, 1);
  return 0;
}

/* aio.shield(task) -> ... | aio.shield(fn, ...) -> ... */
static int aio_shield(lua_State *L) {
  luaio *h = luaio__host(L);
  if (lua_type(L, 1) == LUA_TUSERDATA && luaio__totask(L, 1) != NULL)
    return luaio__await(L, 1);
  check_callable(L, 1);
  return luaio__shield_fn(L, h);
}

static const luaL_Reg funcs[] = {{"run", aio_run},
                                 {"spawn", aio_spawn},
                                 {"current_task", aio_current_task},
                                 {"all_tasks", aio_all_tasks},
                                 {"set_eager", aio_set_eager},
                                 {"shield", aio_shield},
                                 {NULL, NULL}};

static const luaL_Reg *const all_funcs[] = {funcs,
                                            luaio__timer_funcs,
                                            luaio__error_funcs,
                                            luaio__timeout_funcs,
                                            luaio__taskgroup_funcs,
                                            luaio__combine_funcs,
                                            luaio__sync_funcs,
                                            luaio__queue_funcs,
                                            NULL};

static void (*const openers[])(lua_State *L, luaio *h) = {
    luaio__net_open,    luaio__fs_open,     luaio__process_open,
    luaio__signal_open, luaio__json_open,   luaio__udp_open,
    luaio__dns_open,    luaio__worker_open, NULL};

/* __index of the module table: aio.stdin, aio.stdout, aio.stderr
   (tty.c), and aio.http, aio.pg … , the embedded Lua modules luaio.http,
   luaio.pg …, required on first use, so a script pays only for what it
   touches. */
static int lazy_index(lua_State *L) {
  int i;
  const char *k = lua_tostring(L, 2);
  if (lua_type(L, 2) != LUA_TSTRING) return 0;
  if (luaio__stdio_index(L)) return 1;
  for (i = 0; luaio__lua_files[i].name != NULL; i++) {
    const char *name = luaio__lua_files[i].name;
    if (strncmp(name, "luaio.", 6) == 0 && strcmp(name + 6, k) == 0) {
      lua_getglobal(L, "require");
      lua_pushstring(L, name);
      lua_call(L, 1, 1);
      lua_pushvalue(L, 2);
      lua_pushvalue(L, -2);
      lua_rawset(L, 1);
      return 1;
    }
  }
  return 0;
}

/* Each table of functions in the module on top of L (aio.fs, aio.json…)
   goes in package.loaded as luaio.<name>, where Lua's error messages
   look for a function's name ("bad argument #1 to 'luaio.fs.read_file'"). */
static void name_subtables(lua_State *L) {
  int mod = lua_gettop(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushnil(L);
  while (lua_next(L, mod)) {
    if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TTABLE) {
      lua_pushfstring(L, "luaio.%s", lua_tostring(L, -2));
      lua_insert(L, -2);
      lua_settable(L, mod + 1);
    } else
      lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

int luaopen_luaio(lua_State *L) {
  luaio *h = luaio__open_host(L);
  int i;
  lua_newtable(L);
  for (i = 0; all_funcs[i] != NULL; i++) {
    lua_pushlightuserdata(L, h);
    luaL_setfuncs(L, all_funcs[i], 1);
  }
  for (i = 0; openers[i] != NULL; i++)
    openers[i](L, h);
  name_subtables(L);
  lua_pushliteral(L, LUAIO_VERSION);
  lua_setfield(L, -2, "_VERSION");
  luaio__preload_open(L);
  lua_createtable(L, 0, 1);
  lua_pushlightuserdata(L, h);
  lua_pushcclosure(L, lazy_index, 1);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
  return 1;
}

/*
** host.c: the host object, its ready queue and how it drives the loop.
**
** The scheduler runs in the loop's check phase: each turn it resumes the
** tasks that were ready when the turn began, in order.  While tasks are
** ready an idle handle keeps the poll from blocking; an empty ready queue
** is the only time the loop blocks.  So luaio's tasks run whoever calls
** uv_run: luaio_run, luaio_step, aio.run, or an application's own loop.
*/

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "lualib.h"

/* Tasks resumed in one check phase before the loop polls again. */
#define DRAIN_MAX 4096

/* The registry key of the host of a state. */
static const char hostkey = 'h';

luaio *luaio__host(lua_State *L) {
  luaio *h = lua_touserdata(L, lua_upvalueindex(1));
  if (h->dead) luaL_error(L, "luaio host is closed");
  return h;
}

void luaio_config_init(luaio_config *cfg) { memset(cfg, 0, sizeof *cfg); }

lua_State *luaio_state(luaio *h) { return h->L; }

uv_loop_t *luaio_loop(luaio *h) { return h->loop; }

/* Ready queue. */

static void on_idle(uv_idle_t *i) { (void)i; }

void luaio__ready(task *t) {
  luaio *h = t->h;
  if (h->rcount == h->rcap) {
    size_t cap = h->rcap ? h->rcap * 2 : 64, i;
    task **q = malloc(cap * sizeof *q);
    if (q == NULL) abort(); /* cannot be reported without losing a task */
    for (i = 0; i < h->rcount; i++)
      q[i] = h->ready[(h->rhead + i) & (h->rcap - 1)];
    free(h->ready);
    h->ready = q;
    h->rhead = 0;
    h->rcap = cap;
  }
  if (h->rcount == 0 && !h->freeing) uv_idle_start(&h->idle, on_idle);
  h->ready[(h->rhead + h->rcount++) & (h->rcap - 1)] = t;
  if (t->state != T_NEW) t->state = T_READY;
}

/* Take t off the ready queue: a wait given up before it suspended. */
void luaio__unready(task *t) {
  luaio *h = t->h;
  size_t i, j, mask = h->rcap - 1;
  for (i = 0; i < h->rcount; i++)
    if (h->ready[(h->rhead + i) & mask] == t) {
      for (j = i; j + 1 < h->rcount; j++)
        h->ready[(h->rhead + j) & mask] = h->ready[(h->rhead + j + 1) & mask];
      h->rcount--;
      break;
    }
  if (h->rcount == 0) uv_idle_stop(&h->idle);
}

/* Deferred work.  Queued outside a drain, the idle handle makes sure the
   check phase comes round without waiting for I/O. */

void luaio__defer(luaio *h, deferred *d) {
  if (d->queued) return;
  d->queued = 1;
  d->prev = NULL;
  d->next = h->deferred;
  if (d->next) d->next->prev = d;
  h->deferred = d;
  uv_idle_start(&h->idle, on_idle);
}

void luaio__undefer(luaio *h, deferred *d) {
  if (!d->queued) return;
  d->queued = 0;
  if (d->prev)
    d->prev->next = d->next;
  else
    h->deferred = d->next;
  if (d->next) d->next->prev = d->prev;
}

static void run_deferred(luaio *h) {
  deferred *d;
  while ((d = h->deferred) != NULL) {
    luaio__undefer(h, d);
    d->run(d);
  }
}

/* Resume the tasks that are ready now; those they make ready run in a
   later round, so that sleep(0) lets every other task run once.  Rounds
   go on without polling while tasks keep each other busy, up to a bound
   that keeps I/O and timers from waiting long. */
int luaio__drain(luaio *h) {
  int ran = 0;
  while (h->rcount > 0 && ran < DRAIN_MAX) {
    size_t n = h->rcount;
    while (n-- > 0 && h->rcount > 0) {
      task *t = h->ready[h->rhead];
      h->rhead = (h->rhead + 1) & (h->rcap - 1);
      h->rcount--;
      luaio__resume(h, t);
      ran++;
      if (h->drain_stop) { /* let the loop see a signal first */
        h->drain_stop = 0;
        goto out;
      }
      if (h->budget_end > 0 && (double)luaio__now() / 1e9 >= h->budget_end)
        goto out;
    }
  }
out:
  if (h->deferred != NULL) run_deferred(h);
  if (h->rcount == 0) uv_idle_stop(&h->idle);
  return ran;
}

static void on_check(uv_check_t *c) {
  luaio *h = c->data;
  if (h->rcount > 0)
    luaio__drain(h);
  else if (h->deferred != NULL) {
    run_deferred(h);
    if (h->rcount == 0) uv_idle_stop(&h->idle);
  }
}

/* Errors nobody retrieved. */

void luaio__report(luaio *h, const char *msg) {
  h->nreported++;
  if (h->on_error)
    h->on_error(h, msg, h->ud);
  else {
    fputs(msg, stderr);
    fputc('\n', stderr);
    fflush(stderr);
  }
}

/* One turn of the loop; 0 when nothing is left that could wake a task. */
static int turn(luaio *h) {
  return uv_run(h->loop, UV_RUN_ONCE) != 0 || h->rcount > 0;
}

/* Run until every task is done; 0 if some wait on nothing that will come. */
static int run_all(luaio *h) {
  while (h->ntasks > 0)
    if (!turn(h)) return 0;
  return 1;
}

/* The end of a run: cancel every task left and let them finish
   cancelling.  A task spawned meanwhile is cancelled too, at its first
   wait (luaio__spawn), so the rounds end. */
static void end_run(luaio *h) {
  h->cancelling++;
  luaio__cancel_all(h);
  run_all(h);
  h->cancelling--;
}

/* Resources of the bindings. */

void luaio__res_add(luaio *h, resource *r) {
  r->prev = NULL;
  r->next = h->resources;
  if (h->resources) h->resources->prev = r;
  h->resources = r;
}

void luaio__res_remove(luaio *h, resource *r) {
  if (r->prev)
    r->prev->next = r->next;
  else if (h->resources == r)
    h->resources = r->next;
  if (r->next) r->next->prev = r->prev;
  r->prev = r->next = NULL;
}

/* Life cycle. */

/* __gc of the box that ties a host to its state: a host made by the
   module goes with its state; what luaio_free left of a host on a
   borrowed state (its struct, for closures still pointing at it) goes
   now. */
static int host_gc(lua_State *L) {
  luaio **hp = lua_touserdata(L, 1);
  luaio *h = *hp;
  if (h == NULL) return 0;
  *hp = NULL;
  if (h->dead) {
    free(h);
    return 0;
  }
  h->L = NULL;
  if (h->from_module) luaio_free(h);
  return 0;
}

/* Make L's registry point at h, with everything the core keeps there. */
static void attach(luaio *h, lua_State *L) {
  luaio **hp;
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  h->L = lua_tothread(L, -1);
  lua_pop(L, 1);
  hp = lua_newuserdatauv(L, sizeof *hp, 0);
  *hp = h;
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, host_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &hostkey);
  lua_newtable(L);
  h->tasks_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  h->pool = lua_newthread(L);
  h->pool_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->tasks_ref); /* at POOL_TASKS */
  lua_xmove(L, h->pool, 1);
  lua_newtable(L); /* failed tasks, weak keys */
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  h->failed_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  luaio__error_open(L);
  luaio__scope_open(L);
  luaio__timeout_open(L);
  luaio__taskgroup_open(L);
  luaio__future_open(L);
  luaio__tasks_open(L, h);
  luaio__coro_open(L, h);
  luaio__exit_open(L, h);
}

static luaio *host_new(uv_loop_t *loop, lua_State *L) {
  luaio *h = calloc(1, sizeof *h);
  if (h == NULL) return NULL;
  h->next_id = 1;
  h->next_scope = 1;
  /* Futures' generations start where another host's are unlikely to be,
     so a handle settled through the wrong host is refused (future.c). */
  h->next_gen = (uint32_t)((((uintptr_t)h ^ uv_hrtime()) *
                            UINT64_C(0x9E3779B97F4A7C15)) >>
                           32) |
                1;
  if (loop == NULL) {
    if (uv_loop_init(&h->own_loop) != 0) {
      free(h);
      return NULL;
    }
    loop = &h->own_loop;
    h->owns_loop = 1;
  }
  h->loop = loop;
  uv_check_init(loop, &h->check);
  uv_idle_init(loop, &h->idle);
  uv_timer_init(loop, &h->timer);
  uv_timer_init(loop, &h->step_timer);
  uv_timer_init(loop, &h->pool_timer);
  h->check.data = h->idle.data = h->timer.data = h->pool_timer.data = h;
  uv_check_start(&h->check, on_check);
  uv_unref((uv_handle_t *)&h->check);
  (void)L;
  return h;
}

luaio *luaio__find_host(lua_State *L) {
  luaio *h = NULL;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &hostkey) == LUA_TUSERDATA)
    h = *(luaio **)lua_touserdata(L, -1);
  lua_pop(L, 1);
  return h;
}

/* The host of L, creating one on a loop of its own when there is none. */
luaio *luaio__open_host(lua_State *L) {
  luaio *h = luaio__find_host(L);
  if (h != NULL) return h;
  h = host_new(NULL, L);
  if (h == NULL) luaL_error(L, "luaio: cannot create an event loop");
  h->from_module = 1;
  attach(h, L);
  return h;
}

luaio *luaio_new(const luaio_config *cfg) {
  luaio_config def;
  lua_State *L;
  luaio *h;
  if (cfg == NULL) {
    luaio_config_init(&def);
    cfg = &def;
  }
  L = cfg->L;
  if (L == NULL) {
    L = luaL_newstate();
    if (L == NULL) return NULL;
    luaL_openlibs(L);
  }
  h = host_new(cfg->loop, L);
  if (h == NULL) {
    if (cfg->L == NULL) lua_close(L);
    return NULL;
  }
  h->owns_state = cfg->L == NULL;
  h->on_error = cfg->on_error;
  h->ud = cfg->ud;
  h->on_worker = cfg->on_worker;
  attach(h, L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_luaio);
  lua_setfield(L, -2, "luaio");
  lua_pop(L, 1);
  return h;
}

static void on_walk_close(uv_handle_t *handle, void *arg) {
  (void)arg;
  if (!uv_is_closing(handle)) uv_close(handle, NULL);
}

/* Close the host's own handles and, if the loop is ours, every handle. */
static void close_handles(luaio *h) {
  uv_close((uv_handle_t *)&h->check, NULL);
  uv_close((uv_handle_t *)&h->idle, NULL);
  uv_close((uv_handle_t *)&h->timer, NULL);
  uv_close((uv_handle_t *)&h->step_timer, NULL);
  uv_close((uv_handle_t *)&h->pool_timer, NULL);
  if (h->owns_loop) {
    uv_walk(h->loop, on_walk_close, NULL);
    uv_run(h->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(h->loop) != 0)
      luaio__report(h, "luaio: the loop did not close cleanly");
  } else
    uv_run(h->loop, UV_RUN_NOWAIT);
}

/* Leave a borrowed state as luaio found it: the coroutine functions
   back, the module and its Lua parts out of package.loaded (when they are
   this host's), the registry keys gone.  The box of hostkey moves to a key
   of its own, so the struct stays for closures that still point at it
   (they raise "luaio host is closed") and goes with the state. */
static void detach(luaio *h, lua_State *L) {
  int mine = 0;
  luaio__coro_close(L, h);
  luaio__exit_close(L, h);
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &luaio__marker);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, "luaio") == LUA_TTABLE) {
    lua_pushliteral(L, "run");
    if (lua_rawget(L, -2) == LUA_TFUNCTION && lua_getupvalue(L, -1, 1)) {
      mine = lua_touserdata(L, -1) == h;
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  if (mine) { /* luaio, its Lua modules and its named tables */
    lua_pushnil(L);
    lua_setfield(L, -2, "luaio");
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      lua_pop(L, 1);
      if (lua_type(L, -1) == LUA_TSTRING &&
          strncmp(lua_tostring(L, -1), "luaio.", 6) == 0) {
        lua_pushvalue(L, -1);
        lua_pushnil(L);
        lua_rawset(L, -4);
      }
    }
  }
  lua_pop(L, 1);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &hostkey) == LUA_TUSERDATA &&
      *(luaio **)lua_touserdata(L, -1) == h)
    lua_rawsetp(L, LUA_REGISTRYINDEX, h);
  else
    lua_pop(L, 1);
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &hostkey);
}

void luaio_free(luaio *h) {
  lua_State *L = h->L;
  int keep;
  if (h->freeing || h->dead) return;
  if (h->running || h->current != NULL) { /* from inside: when it returns */
    h->free_pending = 1;
    return;
  }
  if (L != NULL) {
    /* Let what is left finish cancelling, then say what nobody saw. */
    h->running++;
    end_run(h);
    h->running--;
    luaio__report_unretrieved(h);
  }
  h->freeing = 1;
  h->rcount = 0;
  while (h->resources != NULL) {
    resource *r = h->resources;
    r->close(r); /* unlists r */
    if (h->resources == r) luaio__res_remove(h, r);
  }
  keep = L != NULL && !h->owns_state;
  if (L != NULL) {
    if (h->owns_state) {
      lua_close(L);
    } else
      detach(h, L);
  }
  close_handles(h);
  free(h->ready);
  luaio__timer_free(h);
  free(h->slots);
  free(h->cascade);
  free(h->free_anchors);
  if (keep) { /* the rest goes with the state (host_gc) */
    h->dead = 1;
    h->ready = NULL;
    h->slots = NULL;
    h->cascade = NULL;
    h->free_anchors = NULL;
    h->nslots = 0;
    h->current = NULL;
  } else
    free(h);
}

/* Running. */

/* Run the main task t to its end, then cancel the tasks still pending and
   wait for their cleanup; report what nobody retrieved but t's own error. */
void luaio__run_main(luaio *h, task *t) {
  h->running++;
  luaio__run_signal_start(h, t);
  while (t->state != T_DONE) {
    if (!turn(h)) { /* a deadlock: nothing can wake the main task */
      luaio__task_cancel_msg(h->L, t,
                             "deadlock: the main task waits for "
                             "something that nothing will do");
      luaio__cancel_all(h);
    }
  }
  end_run(h);
  luaio__run_signal_stop(h);
  h->running--;
  t->retrieved = 1;
  luaio__report_unretrieved(h);
}

/* luaio_free was called from inside a task: it happens now that the host
   has stopped running; 1 if it did. */
static int free_pending(luaio *h) {
  if (!h->free_pending || h->running) return 0;
  h->free_pending = 0;
  luaio_free(h);
  return 1;
}

int luaio_run(luaio *h) {
  int before = h->nreported, failed;
  h->running++;
  if (!run_all(h)) { /* the tasks left wait on nothing that will come */
    luaio__cancel_all(h);
    run_all(h);
  }
  h->running--;
  luaio__report_unretrieved(h);
  failed = h->nreported != before;
  free_pending(h);
  return failed;
}

static void on_step_timer(uv_timer_t *t) { (void)t; }

int luaio_step(luaio *h, double max_wait, double budget) {
  int live;
  h->budget_end = budget > 0 ? (double)luaio__now() / 1e9 + budget : 0;
  h->running++;
  if (h->rcount > 0 || !(max_wait > 0)) /* NaN too */
    uv_run(h->loop, UV_RUN_NOWAIT);
  else {
    if (max_wait > 1e9) max_wait = 1e9; /* about 30 years */
    uv_timer_start(&h->step_timer, on_step_timer,
                   (uint64_t)(max_wait * 1e3 + 0.5), 0);
    uv_run(h->loop, UV_RUN_ONCE);
    uv_timer_stop(&h->step_timer);
  }
  /* What the last poll or timers made ready runs now, within the budget. */
  if (h->rcount > 0 &&
      (h->budget_end == 0 || (double)luaio__now() / 1e9 < h->budget_end))
    luaio__drain(h);
  h->running--;
  h->budget_end = 0;
  live = (int)h->ntasks;
  return free_pending(h) ? 0 : live;
}

/* Starting code. */

int luaio_spawn(luaio *h, int nargs) {
  lua_State *L = h->L;
  luaio__spawn(L, h, nargs);
  lua_pop(L, 1);
  return 0;
}

int luaio_dostring(luaio *h, const char *code, const char *chunkname) {
  int st =
      luaL_loadbuffer(h->L, code, strlen(code), chunkname ? chunkname : code);
  return st != LUA_OK ? st : luaio_spawn(h, 0);
}

int luaio_dofile(luaio *h, const char *path) {
  int st = luaL_loadfile(h->L, path);
  return st != LUA_OK ? st : luaio_spawn(h, 0);
}

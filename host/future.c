/*
** future.c: futures settled from C, awaited from Lua (luaio_future_*).
**
** A luaio_future * is a handle, not a pointer: the host's slot number and
** the slot's generation.  Settling a future twice, or one the host no
** longer knows, finds a stale generation and is reported through the
** host's error hook, never a write to freed memory.
*/

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

enum { F_PENDING, F_RESOLVED, F_REJECTED };

typedef struct future {
  luaio *h;
  waitlist waiters;
  int state, nres;
  uint32_t slot;
} future;

static future *checkfuture(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, "luaio.Future");
}

/* Push the results (or raise the error) of a settled future at index 1. */
static int results(lua_State *L, future *f) {
  int i;
  lua_settop(L, 1);
  lua_getiuservalue(L, 1, 1);
  if (f->state == F_REJECTED) {
    lua_rawgeti(L, 2, 1);
    return lua_error(L);
  }
  luaL_checkstack(L, f->nres, "too many results");
  for (i = 1; i <= f->nres; i++)
    lua_rawgeti(L, 2, i);
  return f->nres;
}

static int k_await(lua_State *L, int status, lua_KContext ctx) {
  future *f = checkfuture(L, 1);
  (void)status;
  (void)ctx;
  luaio__resumed(L, f->h->current);
  return results(L, f);
}

static const waitops await_ops = {"future", luaio__abandon_list, NULL};

/* fut:await() -> ... (the values it was resolved with, or raises) */
static int future_await(lua_State *L) {
  future *f = checkfuture(L, 1);
  task *t;
  if (f->state != F_PENDING) return results(L, f);
  t = luaio__enter_wait(L, f->h);
  lua_settop(L, 1);
  luaio__list_push(&f->waiters, &t->w);
  return luaio__wait(L, t, &await_ops, f, 1, k_await);
}

/* fut:done() -> boolean */
static int future_done(lua_State *L) {
  lua_pushboolean(L, checkfuture(L, 1)->state != F_PENDING);
  return 1;
}

static int future_tostring(lua_State *L) {
  static const char *const states[] = {"pending", "resolved", "rejected"};
  future *f = checkfuture(L, 1);
  lua_pushfstring(L, "<future %s, %d waiting>", states[f->state],
                  (int)f->waiters.n);
  return 1;
}

/* Slots: the host's table of unsettled futures.  Each new future takes
   the host's next generation, so an old handle never matches, and a
   handle of another host (whose generations start elsewhere) almost
   never does. */

typedef struct slot {
  uint32_t gen;
  uint32_t next_free; /* 1 + the next free slot, 0: none */
  int ref;            /* the future's userdata, LUA_NOREF when free */
} slot;

static luaio_future *handle(uint32_t index, uint32_t gen) {
  return (luaio_future *)(uintptr_t)(((uint64_t)gen << 32) | (index + 1));
}

luaio_future *luaio_future_new(lua_State *L) {
  luaio *h = luaio__find_host(L);
  future *f;
  slot *slots;
  uint32_t i;
  if (h == NULL) luaL_error(L, "luaio_future_new: no luaio host in this state");
  if (h->free_slot == 0) { /* grow, chaining the new slots */
    uint32_t n = h->nslots ? h->nslots * 2 : 16, j;
    slots = realloc(h->slots, n * sizeof *slots);
    if (slots == NULL) luaL_error(L, "not enough memory");
    for (j = h->nslots; j < n; j++) {
      slots[j].gen = 0;
      slots[j].ref = LUA_NOREF;
      slots[j].next_free = j + 1 < n ? j + 2 : 0;
    }
    h->slots = slots;
    h->free_slot = h->nslots + 1;
    h->nslots = n;
  }
  slots = h->slots;
  i = h->free_slot - 1;
  h->free_slot = slots[i].next_free;
  f = lua_newuserdatauv(L, sizeof *f, 1);
  f->h = h;
  f->waiters.head = f->waiters.tail = NULL;
  f->waiters.n = 0;
  f->state = F_PENDING;
  f->nres = 0;
  f->slot = i;
  luaL_setmetatable(L, "luaio.Future");
  lua_pushvalue(L, -1);
  ((slot *)h->slots)[i].ref = luaL_ref(L, LUA_REGISTRYINDEX);
  ((slot *)h->slots)[i].gen = h->next_gen;
  h->next_gen = h->next_gen == UINT32_MAX ? 1 : h->next_gen + 1;
  return handle(i, ((slot *)h->slots)[i].gen);
}

/* The future of handle fh, pushed onto L, or NULL after reporting. */
static future *lookup(lua_State *L, luaio_future *fh, const char *what) {
  luaio *h = luaio__find_host(L);
  uint64_t v = (uint64_t)(uintptr_t)fh;
  uint32_t index = (uint32_t)(v & 0xffffffffu), gen = (uint32_t)(v >> 32);
  slot *s;
  if (h == NULL) {
    fprintf(stderr, "%s: no luaio host in this state\n", what);
    return NULL;
  }
  if (index == 0 || index > h->nslots ||
      ((slot *)h->slots)[index - 1].gen != gen ||
      ((slot *)h->slots)[index - 1].ref == LUA_NOREF) {
    lua_pushfstring(L, "%s: the future was already settled, or is not "
                    "one of this host's", what);
    luaio__report(h, lua_tostring(L, -1));
    lua_pop(L, 1);
    return NULL;
  }
  s = &((slot *)h->slots)[index - 1];
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->ref);
  luaL_unref(L, LUA_REGISTRYINDEX, s->ref);
  s->ref = LUA_NOREF;
  s->next_free = h->free_slot;
  h->free_slot = index;
  return lua_touserdata(L, -1);
}

static void settle_handle(luaio_future *fh, lua_State *L, int n, int state,
                          const char *what) {
  int base = lua_gettop(L) - n;
  future *f;
  if (!lua_checkstack(L, 4)) return;
  f = lookup(L, fh, what);
  if (f != NULL) {
    int i;
    lua_createtable(L, n, 0);
    for (i = 1; i <= n; i++) {
      lua_pushvalue(L, base + i);
      lua_rawseti(L, -2, i);
    }
    lua_setiuservalue(L, -2, 1);
    f->state = state;
    f->nres = n;
    while (f->waiters.head != NULL)
      luaio__wake(luaio__list_pop(&f->waiters), NULL, 0);
  }
  lua_settop(L, base);
}

void luaio_future_resolve(luaio_future *fh, lua_State *L, int nresults) {
  settle_handle(fh, L, nresults, F_RESOLVED, "luaio_future_resolve");
}

void luaio_future_reject(luaio_future *fh, lua_State *L) {
  settle_handle(fh, L, 1, F_REJECTED, "luaio_future_reject");
}

static const luaL_Reg future_methods[] = {
    {"await", future_await}, {"done", future_done}, {NULL, NULL}};

void luaio__future_open(lua_State *L) {
  luaL_newmetatable(L, "luaio.Future");
  lua_pushcfunction(L, future_tostring);
  lua_setfield(L, -2, "__tostring");
  luaL_newlib(L, future_methods);
  luaio__set_methods(L, "luaio.Future");
  lua_pop(L, 1);
}

/*
** timer.c: the host's timer heap, aio.sleep and aio.time.
**
** Sleeps and timeout deadlines are nodes of one binary min-heap per host,
** kept in nanoseconds of uv_hrtime(); a single uv_timer_t is armed for the
** earliest.  A node lives in its task or scope, so a sleep allocates
** nothing and cancelling one is O(log n).
*/

#include <math.h>
#include <stdlib.h>

#include "internal.h"

uint64_t luaio__now(void) { return uv_hrtime(); }

static void put(luaio *h, size_t i, tnode *n) {
  h->heap[i] = n;
  n->index = i;
}

static void sift_up(luaio *h, size_t i) {
  tnode *n = h->heap[i];
  while (i > 1 && h->heap[i / 2]->due > n->due) {
    put(h, i, h->heap[i / 2]);
    i /= 2;
  }
  put(h, i, n);
}

static void sift_down(luaio *h, size_t i) {
  tnode *n = h->heap[i];
  for (;;) {
    size_t c = 2 * i;
    if (c > h->nheap) break;
    if (c < h->nheap && h->heap[c + 1]->due < h->heap[c]->due) c++;
    if (h->heap[c]->due >= n->due) break;
    put(h, i, h->heap[c]);
    i = c;
  }
  put(h, i, n);
}

static void on_timer(uv_timer_t *timer) { luaio__timer_fire(timer->data); }

/* Arm the uv timer for the earliest node, or stop it. */
static void arm(luaio *h) {
  uint64_t now, ms;
  if (h->nheap == 0) {
    uv_timer_stop(&h->timer);
    return;
  }
  now = luaio__now();
  ms = h->heap[1]->due > now ? (h->heap[1]->due - now + 999999) / 1000000 : 0;
  uv_update_time(h->loop);
  uv_timer_start(&h->timer, on_timer, ms, 0);
}

/* Take n out of the heap; 1 if it was the earliest. */
static int heap_remove(luaio *h, tnode *n) {
  size_t i = n->index;
  tnode *last;
  if (i == 0) return 0;
  n->index = 0;
  last = h->heap[h->nheap--];
  if (last != n) {
    put(h, i, last);
    sift_up(h, i);
    sift_down(h, last->index);
  }
  return i == 1;
}

void luaio__timer_add(luaio *h, tnode *n, uint64_t due) {
  if (n->index) heap_remove(h, n);
  if (h->nheap + 1 >= h->cheap) {
    size_t cap = h->cheap ? h->cheap * 2 : 64;
    tnode **heap = realloc(h->heap, cap * sizeof *heap);
    if (heap == NULL) abort();
    h->heap = heap;
    h->cheap = cap;
  }
  n->due = due;
  put(h, ++h->nheap, n);
  sift_up(h, h->nheap);
  if (h->heap[1] == n) arm(h);
}

void luaio__timer_remove(luaio *h, tnode *n) {
  if (heap_remove(h, n)) arm(h);
}

/* Fire every node that is due; their callbacks only wake or cancel. */
void luaio__timer_fire(luaio *h) {
  uint64_t now = luaio__now();
  while (h->nheap > 0 && h->heap[1]->due <= now) {
    tnode *n = h->heap[1];
    heap_remove(h, n);
    n->fire(n);
  }
  arm(h);
}

/* Sleeping. */

static int sleep_abandon(task *t, int woken) {
  if (!woken) luaio__timer_remove(t->h, &t->sleep);
  return 1;
}

static const waitops sleep_ops = {"sleep", sleep_abandon, NULL};
static const waitops yield_ops = {"sleep(0)", luaio__abandon_list, NULL};

static void on_sleep(tnode *n) {
  luaio__wake(container_of(n, task, sleep), NULL, 0);
}

static int k_sleep(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  luaio__resumed(L, luaio__host(L)->current);
  lua_settop(L, 2);
  return (int)ctx; /* the value, if one was given */
}

/* aio.sleep(s [, value]) -> value */
static int aio_sleep(lua_State *L) {
  luaio *h = luaio__host(L);
  lua_Number s = luaL_checknumber(L, 1);
  task *t;
  int has_value;
  luaL_argcheck(L, !isnan(s), 1, "not a number");
  t = luaio__enter_wait(L, h);
  has_value = lua_gettop(L) >= 2;
  lua_settop(L, 2);
  if (s <= 0) {
    luaio__ready(t);
    return luaio__wait(L, t, &yield_ops, NULL, has_value, k_sleep);
  }
  if (s < 1e9) { /* longer than 30 years: forever */
    t->sleep.fire = on_sleep;
    luaio__timer_add(h, &t->sleep, luaio__now() + (uint64_t)(s * 1e9));
  }
  return luaio__wait(L, t, &sleep_ops, NULL, has_value, k_sleep);
}

/* aio.time() -> seconds on the loop's monotonic clock */
static int aio_time(lua_State *L) {
  lua_pushnumber(L, (lua_Number)luaio__now() / 1e9);
  return 1;
}

const luaL_Reg luaio__timer_funcs[] = {
    {"sleep", aio_sleep}, {"time", aio_time}, {NULL, NULL}};

/*
** timer.c: the host's timers, aio.sleep and aio.time.
**
** Sleeps and timeout deadlines are nodes kept in their task or scope, in
** nanoseconds of uv_hrtime(), so a sleep allocates nothing.  Nodes due in
** the same millisecond share a bucket, a list in order of `due`; the
** buckets form a binary min-heap per host, and one uv_timer_t is armed for
** the earliest node.  Timers made together mostly share a millisecond
** (a thousand tasks sleeping 1 ms), so adding one is an append to the
** bucket found again through `recent`, firing one an unlink from its
** head, and the heap moves only once per millisecond.
*/

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

uint64_t luaio__now(void) { return uv_hrtime(); }

static void put(luaio *h, size_t i, tbucket *b) {
  h->heap[i] = b;
  b->index = i;
}

/* Heap order: by millisecond, and buckets of the same millisecond (made
   when `recent` had lost the first) by their earliest node. */
static int before(const tbucket *a, const tbucket *b) {
  return a->ms != b->ms ? a->ms < b->ms : a->head->due < b->head->due;
}

static void sift_up(luaio *h, size_t i) {
  tbucket *b = h->heap[i];
  while (i > 1 && before(b, h->heap[i / 2])) {
    put(h, i, h->heap[i / 2]);
    i /= 2;
  }
  put(h, i, b);
}

static void sift_down(luaio *h, size_t i) {
  tbucket *b = h->heap[i];
  for (;;) {
    size_t c = 2 * i;
    if (c > h->nheap) break;
    if (c < h->nheap && before(h->heap[c + 1], h->heap[c])) c++;
    if (!before(h->heap[c], b)) break;
    put(h, i, h->heap[c]);
    i = c;
  }
  put(h, i, b);
}

static void *grow(void *p, size_t *cap, size_t size) {
  size_t n = *cap ? *cap * 2 : 64;
  p = realloc(p, n * size);
  if (p == NULL) abort();
  *cap = n;
  return p;
}

/* Put b where its earliest node now says. */
static void rekey(luaio *h, tbucket *b) {
  sift_up(h, b->index);
  sift_down(h, b->index);
}

/* The bucket for millisecond ms: the recent one, else a new empty one at
   the end of the heap, for the caller to fill and rekey. */
static tbucket *bucket_for(luaio *h, uint64_t ms) {
  tbucket *b = h->recent[ms % TRECENT];
  if (b != NULL && b->ms == ms) return b;
  if (h->nspare > 0)
    b = h->spare[--h->nspare];
  else if ((b = malloc(sizeof *b)) == NULL)
    abort();
  b->ms = ms;
  b->head = b->tail = NULL;
  if (h->nheap + 1 >= h->cheap)
    h->heap = grow(h->heap, &h->cheap, sizeof *h->heap);
  put(h, ++h->nheap, b);
  h->recent[ms % TRECENT] = b;
  return b;
}

static void bucket_drop(luaio *h, tbucket *b) {
  size_t i = b->index;
  tbucket *last = h->heap[h->nheap--];
  if (last != b) {
    put(h, i, last);
    sift_up(h, i);
    sift_down(h, last->index);
  }
  if (h->recent[b->ms % TRECENT] == b) h->recent[b->ms % TRECENT] = NULL;
  if (h->nspare == h->cspare)
    h->spare = grow(h->spare, &h->cspare, sizeof *h->spare);
  h->spare[h->nspare++] = b;
}

static void on_timer(uv_timer_t *timer) { luaio__timer_fire(timer->data); }

/* Arm the uv timer for the earliest node, or stop it. */
static void arm(luaio *h) {
  uint64_t now, due, ms;
  if (h->nheap == 0) {
    uv_timer_stop(&h->timer);
    return;
  }
  now = luaio__now();
  due = h->heap[1]->head->due;
  ms = due > now ? (due - now + 999999) / 1000000 : 0;
  uv_update_time(h->loop);
  uv_timer_start(&h->timer, on_timer, ms, 0);
}

/* Take n out of its bucket; 1 if it was the earliest. */
static int unlink_node(luaio *h, tnode *n) {
  tbucket *b = n->bucket;
  int first;
  if (b == NULL) return 0;
  first = b->index == 1 && b->head == n;
  if (n->prev)
    n->prev->next = n->next;
  else
    b->head = n->next;
  if (n->next)
    n->next->prev = n->prev;
  else
    b->tail = n->prev;
  n->bucket = NULL;
  if (b->head == NULL)
    bucket_drop(h, b);
  else if (n->prev == NULL)
    rekey(h, b);
  n->prev = n->next = NULL; /* a task's node then reads as an unlinked waiter */
  return first;
}

void luaio__timer_add(luaio *h, tnode *n, uint64_t due) {
  tbucket *b;
  tnode *p;
  if (n->bucket) unlink_node(h, n);
  n->due = due;
  b = bucket_for(h, (due + 999999) / 1000000);
  for (p = b->tail; p != NULL && p->due > due; p = p->prev) {
  }
  n->prev = p;
  n->next = p ? p->next : b->head;
  if (n->next)
    n->next->prev = n;
  else
    b->tail = n;
  if (p)
    p->next = n;
  else
    b->head = n;
  n->bucket = b;
  if (p == NULL) { /* b's earliest */
    rekey(h, b);
    if (b->index == 1) arm(h);
  }
}

void luaio__timer_remove(luaio *h, tnode *n) {
  if (unlink_node(h, n)) arm(h);
}

/* Fire every node that is due; their callbacks only wake or cancel. */
void luaio__timer_fire(luaio *h) {
  uint64_t now = luaio__now();
  while (h->nheap > 0 && h->heap[1]->head->due <= now) {
    tnode *n = h->heap[1]->head;
    unlink_node(h, n);
    n->fire(n);
  }
  arm(h);
}

/* Free the buckets; a node still armed is left unarmed, so whatever holds
   it may still remove it. */
void luaio__timer_free(luaio *h) {
  size_t i;
  tnode *n, *next;
  for (i = 1; i <= h->nheap; i++) {
    for (n = h->heap[i]->head; n != NULL; n = next) {
      next = n->next;
      n->bucket = NULL;
      n->prev = n->next = NULL;
    }
    free(h->heap[i]);
  }
  for (i = 0; i < h->nspare; i++)
    free(h->spare[i]);
  free(h->heap);
  free(h->spare);
  h->heap = NULL;
  h->spare = NULL;
  memset(h->recent, 0, sizeof h->recent);
  h->nheap = h->cheap = h->nspare = h->cspare = 0;
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

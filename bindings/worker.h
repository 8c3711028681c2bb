/*
** worker.h: what copy.c, channel.c and worker.c share.
**
** Values cross between hosts (each on its own thread, with its own state)
** as messages: a compact binary copy made by copy.c.  A few C objects
** (channels, the pool's jobs) cross by reference instead: their userdata is
** a box holding a pointer, and their metatable's __luaio_shared field is a
** light userdata pointing at their sharedops.
*/

#ifndef LUAIO_WORKER_H
#define LUAIO_WORKER_H

#include <pthread.h>

#include "internal.h"

#define LUAIO_MSG_MAX ((size_t)64 << 20) /* the largest message: 64 MiB */
#define LUAIO_COPY_DEPTH 200             /* tables nested at most this deep */

typedef struct sharedops {
  const char *name;
  void (*retain)(void *p);
  void (*release)(void *p);
  void (*push)(lua_State *L, void *p); /* takes over one reference */
} sharedops;

typedef struct sharedref {
  const sharedops *ops;
  void *p;
} sharedref;

/* A message: one or more values, copied.  It holds one reference on each
   shared object it names. */
typedef struct msg {
  struct msg *next;
  unsigned char *data;
  size_t len;
  sharedref *shared;
  size_t nshared;
  int nvalues;
} msg;

/* Copy the n values from first on; root names them in errors: value i
   (from 0) is root[base + i], or root alone when base is negative.
   Raises for what cannot cross, naming its path. */
msg *luaio__copy_encode(lua_State *L, int first, int n, const char *root,
                        int base);
/* Push the values of m and free it; returns how many. */
int luaio__copy_decode(lua_State *L, msg *m);
void luaio__msg_free(msg *m);

/* channel.c */
typedef struct channel channel;
channel *luaio__channel_new(size_t capacity); /* one reference; NULL: ENOMEM */
void luaio__channel_retain(channel *c);
void luaio__channel_release(channel *c);
void luaio__channel_push(lua_State *L, channel *c); /* takes the reference */
channel *luaio__tochannel(lua_State *L, int idx);   /* NULL if not one */
/* Put m in c whatever its capacity; 0 if c is closed (m is freed). */
int luaio__channel_put(channel *c, msg *m);
void luaio__channel_close(channel *c);
/* Wait in the running task for a message of c: the continuation gets the
   message as a light userdata on top (NULL once c is closed and drained).
   `ops` may replace the abandon hook (NULL: the message goes to the next
   receiver).  The task's wobj is the channel's link of this host. */
int luaio__channel_wait_recv(lua_State *L, luaio *h, channel *c,
                             const waitops *ops, lua_KFunction k);
/* A message of c now, or NULL if none (closed: *closed set). */
msg *luaio__channel_take(channel *c, int *closed);
/* In an abandon hook of a recv wait: give back the message the task was
   woken with (at the front) and leave the wait. */
void luaio__channel_abandon_recv(task *t, int woken);
void luaio__channel_open(lua_State *L, luaio *h);

/* worker.c */
void luaio__worker_open(lua_State *L, luaio *h);

#endif

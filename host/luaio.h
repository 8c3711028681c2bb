/*
** luaio.h: the embedding API of luaio, a Lua 5.4 host for asynchronous
** scripts on a libuv event loop.  See docs/embedding.md.
** Copyright (c) luaio authors.  MIT licence: see LICENSE.
*/

#ifndef LUAIO_H
#define LUAIO_H

#include <lua.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LUAIO_VERSION "luaio 0.1.0"

/* The library's objects are built with hidden visibility: only what this
   header declares is exported, so calls between luaio's own files are
   direct in the shared library and the module. */
#if defined(__GNUC__) || defined(__clang__)
#define LUAIO_API __attribute__((visibility("default")))
#else
#define LUAIO_API
#endif

typedef struct luaio luaio; /* one host: a Lua state + a loop */
typedef struct luaio_future luaio_future;

typedef struct luaio_config {
  uv_loop_t *loop; /* NULL: the host creates and owns its own loop      */
  lua_State *L;    /* NULL: the host creates a state with the std libs  */
  void (*on_error)(luaio *h, const char *message, void *ud);
  /* an uncaught task error, traceback included;
     NULL: written to stderr                          */
  void *ud;
  void (*on_worker)(luaio *worker, void *ud);
  /* run on the thread of every new worker host (aio.worker, aio.to_thread
     …) before any of its code, to preload the embedder's modules; workers
     inherit it and ud.  NULL: none */
} luaio_config;

LUAIO_API void luaio_config_init(luaio_config *cfg);
LUAIO_API luaio *luaio_new(const luaio_config *cfg); /* cfg may be NULL */
LUAIO_API lua_State *luaio_state(luaio *h);          /* `luaio` is preloaded */
LUAIO_API uv_loop_t *luaio_loop(luaio *h);

/* Compile a chunk and start it as a task; 0, or a nonzero code with the
   message on the state's stack when it does not compile. */
LUAIO_API int luaio_dostring(luaio *h, const char *code, const char *chunkname);
LUAIO_API int luaio_dofile(luaio *h, const char *path);
/* Start the function under its nargs arguments on the stack as a task. */
LUAIO_API int luaio_spawn(luaio *h, int nargs);

/* Run until no task is pending; 0, or nonzero when a task error went to
   on_error. */
LUAIO_API int luaio_run(luaio *h);
/* One turn for a frame loop: wait at most max_wait seconds for I/O or timers
   when nothing is ready (0: never block), run ready tasks for at most budget
   seconds (0: until none is ready), and return the number of live tasks. */
LUAIO_API int luaio_step(luaio *h, double max_wait, double budget);

/* A future pushed onto L (any thread of the host's state); Lua waits on it
   with fut:await().  It stays anchored until it is settled.  Settle it from
   C at any later time, with values (or the error) on top of L, which may be
   luaio_state(h).  Settling twice or after luaio_free is an error. */
LUAIO_API luaio_future *luaio_future_new(lua_State *L);
LUAIO_API void luaio_future_resolve(luaio_future *f, lua_State *L,
                                    int nresults);
LUAIO_API void luaio_future_reject(luaio_future *f, lua_State *L);

/* Cancel what is left, close every handle, free the host. */
LUAIO_API void luaio_free(luaio *h);
LUAIO_API int luaopen_luaio(lua_State *L);

#ifdef __cplusplus
}
#endif

#endif

/*
** tty.c: aio.stdin, aio.stdout and aio.stderr.
**
** Each is made the first time it is looked up, so that loading the module
** does not touch the terminal.  What the descriptor is decides the stream:
** a terminal is a uv_tty_t, a pipe or a socket a uv_pipe_t, and a regular
** file (or a character device such as /dev/null) is read and written with
** libuv's file requests on the thread pool, so none of them blocks the
** loop.  libuv never closes descriptors 0 to 2, and a pipe is put back in
** blocking mode when its stream closes.  A terminal on stdin is read only
** while a task waits to read it.
*/

#include <string.h>

#include "stream.h"

static const char *const names[] = {"stdin", "stdout", "stderr", NULL};

/* A stream over fd, or NULL with *err set. */
static stream *open_fd(luaio *h, int fd, int *err) {
  uv_handle_type type = uv_guess_handle(fd);
  stream *s;
  int kind = type == UV_TTY                            ? SK_TTY
             : type == UV_NAMED_PIPE || type == UV_TCP ? SK_PIPE
             : type == UV_FILE                         ? SK_FILE
                                                       : -1;
  if (kind < 0) {
    *err = UV_EBADF;
    return NULL;
  }
  if ((s = luaio__stream_alloc(h, kind)) == NULL) {
    *err = UV_ENOMEM;
    return NULL;
  }
  s->stdio = 1;
  s->wronly = fd != 0;
  /* A write to stdout or stderr returns once its bytes are with the
     system, so that none is lost when the program ends. */
  if (fd != 0) s->high = 0;
  /* A terminal is shared: with the REPL's line editor, with a child that
     inherits it.  aio.stdin takes from it only what a reader asks for, so
     keys typed after a read_line stay with whoever reads next. */
  if (fd == 0 && kind == SK_TTY) s->demand = 1;
  if (kind == SK_TTY)
    *err = uv_tty_init(h->loop, &s->u.tty, fd, fd == 0);
  else if (kind == SK_PIPE) {
    *err = uv_pipe_init(h->loop, &s->u.pipe, 0);
    if (*err == 0) {
      luaio__stream_attach(s);
      if ((*err = uv_pipe_open(&s->u.pipe, fd)) < 0) {
        luaio__stream_abort(s);
        return NULL;
      }
      return s;
    }
  } else {
    s->fd = fd;
    *err = 0;
  }
  if (*err < 0) {
    luaio__stream_discard(s);
    return NULL;
  }
  luaio__stream_attach(s);
  return s;
}

/* aio.stdin, aio.stdout, aio.stderr, made on the first read of the module
   table's field (its __index, module.c, calls this with the host as
   upvalue 1) and kept in the table; 0 for other keys. */
int luaio__stdio_index(lua_State *L) {
  luaio *h = luaio__host(L);
  const char *k = lua_tostring(L, 2);
  int fd, err;
  stream *s;
  if (k == NULL) return 0;
  for (fd = 0; names[fd] != NULL && strcmp(names[fd], k) != 0; fd++)
    ;
  if (names[fd] == NULL) return 0;
  if ((s = open_fd(h, fd, &err)) == NULL)
    return luaL_error(L, "cannot open %s: %s", k, uv_strerror(err));
  luaio__stream_push(L, s);
  lua_pushvalue(L, -1);
  lua_setfield(L, 1, k);
  return 1;
}

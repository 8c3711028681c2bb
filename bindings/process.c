/*
** process.c: child processes.  aio.subprocess, aio.exec, aio.getpid.
**
** A process is a malloc'd uv_process_t; its userdata keeps the piped ends
** (streams) as user values.  The exit callback records the status, wakes
** the tasks in p:wait() and closes the handle; the struct is freed once
** both the handle is closed and the userdata is collected.  luaio_free
** kills a child that is still running.
*/

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "stream.h"

typedef struct process process;

typedef struct procud {
  process *p;
} procud;

struct process {
  resource res;
  luaio *h;
  uv_process_t proc;
  procud *ud;
  unsigned char exited, closing, closed;
  int pid, signal;
  int64_t status;
  waitlist waiters;
};

enum { IO_INHERIT, IO_PIPE, IO_NULL };

#define MAX_ARGS 100000 /* arguments of one command */

static const struct {
  const char *name;
  int signo;
} signals[] = {{"HUP", SIGHUP},     {"INT", SIGINT},   {"QUIT", SIGQUIT},
               {"ILL", SIGILL},     {"TRAP", SIGTRAP}, {"ABRT", SIGABRT},
               {"BUS", SIGBUS},     {"FPE", SIGFPE},   {"KILL", SIGKILL},
               {"USR1", SIGUSR1},   {"SEGV", SIGSEGV}, {"USR2", SIGUSR2},
               {"PIPE", SIGPIPE},   {"ALRM", SIGALRM}, {"TERM", SIGTERM},
               {"CHLD", SIGCHLD},   {"CONT", SIGCONT}, {"STOP", SIGSTOP},
               {"TSTP", SIGTSTP},   {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},
               {"WINCH", SIGWINCH}, {NULL, 0}};

static void on_proc_closed(uv_handle_t *handle) {
  process *p = handle->data;
  p->closed = 1;
  if (p->ud == NULL) free(p);
}

static void close_proc(process *p) {
  if (p->closing) return;
  p->closing = 1;
  luaio__res_remove(p->h, &p->res);
  uv_close((uv_handle_t *)&p->proc, on_proc_closed);
}

static void on_proc_exit(uv_process_t *proc, int64_t status, int signo) {
  process *p = proc->data;
  task *t;
  p->exited = 1;
  p->status = status;
  p->signal = signo;
  while ((t = luaio__list_pop(&p->waiters)) != NULL)
    luaio__wake(t, NULL, 0);
  close_proc(p);
}

/* At luaio_free: a child still running is killed. */
static void proc_res_close(resource *r) {
  process *p = container_of(r, process, res);
  if (!p->exited) uv_process_kill(&p->proc, SIGKILL);
  close_proc(p);
}

static int io_mode(lua_State *L, int opts, const char *field, int def) {
  static const char *const modes[] = {"inherit", "pipe", "null", NULL};
  int m;
  if (lua_type(L, opts) != LUA_TTABLE) return def;
  lua_getfield(L, opts, field);
  m = lua_isnil(L, -1) ? def : luaL_checkoption(L, -1, NULL, modes);
  lua_pop(L, 1);
  return m;
}

/* Push the strings of argv (cmd at 1, args at 2) and return the array,
   anchored by a userdata on the stack.  The length is the table's raw
   one: a __len cannot size the array. */
static char **make_argv(lua_State *L) {
  size_t len = lua_istable(L, 2) ? lua_rawlen(L, 2) : 0;
  char **argv;
  int n, i;
  luaL_argcheck(L, len <= MAX_ARGS, 2, "too many arguments");
  n = (int)len;
  luaL_checkstack(L, n + 4, "too many arguments");
  argv = lua_newuserdatauv(L, (size_t)(n + 2) * sizeof *argv, 0);
  argv[0] = (char *)lua_tostring(L, 1);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 2, i);
    argv[i] = (char *)luaL_tolstring(L, -1, NULL);
    lua_remove(L, -2);
  }
  argv[n + 1] = NULL;
  return argv;
}

/* The environment "name=value" strings of opts.env, or NULL to inherit;
   the strings are anchored by a table left on the stack. */
static char **make_env(lua_State *L, int opts) {
  char **envp;
  int n = 0, i = 0, env;
  if (lua_type(L, opts) != LUA_TTABLE) return NULL;
  if (lua_getfield(L, opts, "env") == LUA_TNIL) {
    lua_pop(L, 1);
    return NULL;
  }
  luaL_checktype(L, -1, LUA_TTABLE);
  env = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, env)) {
    n++;
    lua_pop(L, 1);
  }
  lua_createtable(L, n, 0); /* env + 1: the anchor */
  envp = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *envp, 0);
  lua_pushnil(L);
  while (lua_next(L, env)) { /* key, value */
    const char *k = luaL_tolstring(L, -2, NULL);
    const char *v = luaL_tolstring(L, -2, NULL);
    envp[i] = (char *)lua_pushfstring(L, "%s=%s", k, v);
    lua_rawseti(L, env + 1, ++i);
    lua_pop(L, 3); /* the strings and the value */
  }
  envp[i] = NULL;
  return envp;
}

/* ENOENT from uv_spawn: say whether the directory or the program is
   missing. */
static int missing(lua_State *L, const char *file, const char *cwd) {
  struct stat st;
  lua_pushnil(L);
  if (cwd != NULL && (stat(cwd, &st) != 0 || !S_ISDIR(st.st_mode)))
    lua_pushfstring(L, "ENOENT: no such directory (cwd): %s", cwd);
  else
    lua_pushfstring(L, "ENOENT: no such program: %s", file);
  lua_pushliteral(L, "ENOENT");
  return 3;
}

/* Spawn cmd (1) with args (2) and opts (3) and stdio modes; push the
   process, or nil, msg, code. */
static int spawn(lua_State *L, const int mode[3]) {
  luaio *h = luaio__host(L);
  uv_process_options_t o;
  uv_stdio_container_t io[3];
  stream *pipes[3] = {NULL, NULL, NULL};
  process *p;
  procud *ud;
  int i, err, top;
  memset(&o, 0, sizeof o);
  o.file = luaL_checkstring(L, 1);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  o.args = make_argv(L);
  o.env = make_env(L, 3);
  if (lua_istable(L, 3) && lua_getfield(L, 3, "cwd") != LUA_TNIL)
    o.cwd = luaL_checkstring(L, -1);
  top = lua_gettop(L);
  for (i = 0; i < 3; i++) {
    if (mode[i] == IO_PIPE) {
      if ((pipes[i] = luaio__stream_alloc(h, SK_PIPE)) == NULL) break;
      uv_pipe_init(h->loop, &pipes[i]->u.pipe, 0);
      luaio__stream_attach(pipes[i]);
      io[i].flags =
          UV_CREATE_PIPE | (i == 0 ? UV_READABLE_PIPE : UV_WRITABLE_PIPE);
      io[i].data.stream = &pipes[i]->u.stream;
    } else if (mode[i] == IO_INHERIT) {
      io[i].flags = UV_INHERIT_FD;
      io[i].data.fd = i;
    } else
      io[i].flags = UV_IGNORE;
  }
  o.stdio = io;
  o.stdio_count = 3;
  o.exit_cb = on_proc_exit;
  p = i == 3 ? calloc(1, sizeof *p) : NULL;
  err = p == NULL ? UV_ENOMEM : uv_spawn(h->loop, &p->proc, &o);
  if (err < 0) {
    for (i = 0; i < 3; i++)
      if (pipes[i] != NULL) luaio__stream_abort(pipes[i]);
    if (p != NULL) {
      p->h = h;
      p->proc.data = p;
      p->closing = 1;
      uv_close((uv_handle_t *)&p->proc, on_proc_closed);
    }
    if (err == UV_ENOENT) return missing(L, o.file, o.cwd);
    return luaio__uv_fail(L, err);
  }
  p->h = h;
  p->proc.data = p;
  p->pid = p->proc.pid;
  p->res.close = proc_res_close;
  luaio__res_add(h, &p->res);
  lua_settop(L, top);
  ud = lua_newuserdatauv(L, sizeof *ud, 3);
  ud->p = p;
  p->ud = ud;
  luaL_setmetatable(L, "luaio.Process");
  for (i = 0; i < 3; i++) {
    if (pipes[i] == NULL) continue;
    pipes[i]->wronly = i == 0;
    luaio__stream_opts(L, 3, pipes[i]);
    luaio__stream_push(L, pipes[i]);
    lua_setiuservalue(L, -2, i + 1);
  }
  return 1;
}

static const char *const subprocess_options[] = {
    "stdin", "stdout", "stderr", "cwd", "env", "limit", "high_water", NULL};

static const char *const exec_options[] = {"stdin",      "stdout", "stderr",
                                           "cwd",        "env",    "limit",
                                           "high_water", "input",  NULL};

/* aio.subprocess(cmd [, args [, opts]]) -> process | nil, msg, code */
static int aio_subprocess(lua_State *L) {
  int mode[3];
  if (lua_type(L, 3) == LUA_TTABLE)
    luaio__check_options(L, 3, subprocess_options);
  mode[0] = io_mode(L, 3, "stdin", IO_INHERIT);
  mode[1] = io_mode(L, 3, "stdout", IO_INHERIT);
  mode[2] = io_mode(L, 3, "stderr", IO_INHERIT);
  return spawn(L, mode);
}

static process *checkproc(lua_State *L) {
  procud *ud = luaL_checkudata(L, 1, "luaio.Process");
  if (ud->p == NULL) luaL_error(L, "attempt to use a closed process");
  return ud->p;
}

static void push_status(lua_State *L, process *p) {
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, (lua_Integer)p->status);
  lua_setfield(L, -2, "status");
  lua_pushinteger(L, p->signal);
  lua_setfield(L, -2, "signal");
}

static int wait_abandon(task *t, int woken) {
  if (!woken) luaio__list_remove(&t->w);
  return 1;
}

static const waitops wait_ops = {"process", wait_abandon, NULL};

static int k_wait(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  luaio__resumed(L, luaio__host(L)->current);
  push_status(L, checkproc(L));
  return 1;
}

/* process:wait() -> {status = n, signal = n} */
static int process_wait(lua_State *L) {
  process *p = checkproc(L);
  task *t;
  lua_settop(L, 1);
  if (p->exited) {
    push_status(L, p);
    return 1;
  }
  t = luaio__enter_wait(L, p->h);
  luaio__list_push(&p->waiters, &t->w);
  return luaio__wait(L, t, &wait_ops, p, 0, k_wait);
}

static int signal_number(lua_State *L, int idx) {
  const char *name;
  int i;
  if (lua_isnoneornil(L, idx)) return SIGTERM;
  if (lua_type(L, idx) == LUA_TNUMBER) return (int)luaL_checkinteger(L, idx);
  name = luaL_checkstring(L, idx);
  if (strncmp(name, "SIG", 3) == 0) name += 3;
  for (i = 0; signals[i].name != NULL; i++)
    if (strcmp(signals[i].name, name) == 0) return signals[i].signo;
  return luaL_argerror(L, idx, "unknown signal");
}

/* process:kill([sig]) -> true | nil, msg, code (sig: "SIGTERM", 15, …) */
static int process_kill(lua_State *L) {
  process *p = checkproc(L);
  int signo = signal_number(L, 2), err;
  if (p->exited) return luaio__uv_fail(L, UV_ESRCH);
  if ((err = uv_process_kill(&p->proc, signo)) < 0)
    return luaio__uv_fail(L, err);
  lua_pushboolean(L, 1);
  return 1;
}

/* process.pid, .stdin, .stdout, .stderr, .exited, and the methods */
static int process_index(lua_State *L) {
  static const char *const ends[] = {"stdin", "stdout", "stderr"};
  process *p = checkproc(L);
  const char *k = luaL_checkstring(L, 2);
  int i;
  if (strcmp(k, "pid") == 0) {
    lua_pushinteger(L, p->pid);
    return 1;
  }
  for (i = 0; i < 3; i++)
    if (strcmp(k, ends[i]) == 0) {
      lua_getiuservalue(L, 1, i + 1);
      return 1;
    }
  lua_getmetatable(L, 1);
  lua_getfield(L, -1, "methods");
  lua_getfield(L, -1, k);
  return 1;
}

/* process:exited() -> boolean */
static int process_exited(lua_State *L) {
  lua_pushboolean(L, checkproc(L)->exited);
  return 1;
}

static int process_gc(lua_State *L) {
  procud *ud = luaL_checkudata(L, 1, "luaio.Process");
  process *p = ud->p;
  if (p != NULL) {
    p->ud = NULL;
    ud->p = NULL;
    if (p->closed) free(p);
  }
  return 0;
}

static int process_tostring(lua_State *L) {
  process *p = ((procud *)luaL_checkudata(L, 1, "luaio.Process"))->p;
  if (p == NULL)
    lua_pushliteral(L, "<process closed>");
  else if (p->exited)
    lua_pushfstring(L, "<process %d exited %d>", p->pid, (int)p->status);
  else
    lua_pushfstring(L, "<process %d>", p->pid);
  return 1;
}

/* aio.exec: the guard that kills the child when the caller fails or is
   cancelled. */
static int guard_close(lua_State *L) {
  if (!lua_isnil(L, 2)) {
    procud *ud;
    lua_getiuservalue(L, 1, 1);
    ud = lua_touserdata(L, -1);
    if (ud != NULL && ud->p != NULL && !ud->p->exited)
      uv_process_kill(&ud->p->proc, SIGKILL);
  }
  return 0;
}

/* The first result of a read_all at the top n values: the data, else the
   partial data, else "". */
static void keep_data(lua_State *L, int base) {
  if (lua_type(L, base + 1) != LUA_TSTRING) {
    lua_copy(L, base + 4, base + 1);
    if (lua_type(L, base + 1) != LUA_TSTRING) {
      lua_pushliteral(L, "");
      lua_replace(L, base + 1);
    }
  }
  lua_settop(L, base + 1);
}

static int k_exec(lua_State *L, int status, lua_KContext ctx);

/* Call the C function f on the value on top, going on at k_exec(stage). */
static int exec_call(lua_State *L, lua_CFunction f, int nres, int stage) {
  lua_pushlightuserdata(L, luaio__host(L));
  lua_pushcclosure(L, f, 1);
  lua_insert(L, -2);
  lua_callk(L, 1, nres, stage, k_exec);
  return k_exec(L, LUA_OK, stage);
}

/* Stack: cmd, args, opts, process (4), guard (5), stdout (6), stderr (7),
   and the results of the call that ended. */
static int k_exec(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  switch (ctx) {
  case 1:
    keep_data(L, 5);
    lua_getiuservalue(L, 4, 3);
    return exec_call(L, luaio__stream_read_all, 4, 2);
  case 2:
    keep_data(L, 6);
    lua_pushvalue(L, 4);
    return exec_call(L, process_wait, 1, 3);
  default:
    lua_pushvalue(L, 6);
    lua_setfield(L, -2, "stdout");
    lua_pushvalue(L, 7);
    lua_setfield(L, -2, "stderr");
    return 1;
  }
}

/* aio.exec(cmd [, args [, opts]]) -> {status, signal, stdout, stderr} |
   nil, msg, code: kills the child if the caller is cancelled */
static int aio_exec(lua_State *L) {
  int mode[3] = {IO_NULL, IO_PIPE, IO_PIPE};
  size_t inlen = 0;
  const char *input = NULL;
  int i;
  if (lua_type(L, 3) == LUA_TTABLE) {
    luaio__check_options(L, 3, exec_options);
    if (lua_getfield(L, 3, "input") != LUA_TNIL) {
      input = luaL_checklstring(L, -1, &inlen);
      mode[0] = IO_PIPE;
    } else
      mode[0] = io_mode(L, 3, "stdin", IO_NULL);
    lua_pop(L, 1);
  }
  luaio__enter_wait(L, luaio__host(L)); /* a task, not cancelled */
  if (spawn(L, mode) != 1) return 3;
  lua_replace(L, 4);
  lua_settop(L, 4);
  for (i = 2; i <= 3; i++) { /* both outputs are read in full */
    stream *s;
    lua_getiuservalue(L, 4, i);
    s = luaio__checkstream(L, -1);
    s->limit = (size_t)-1;
    luaio__stream_update(s);
    lua_pop(L, 1);
  }
  lua_newuserdatauv(L, 0, 1); /* 5: the guard */
  lua_pushvalue(L, 4);
  lua_setiuservalue(L, -2, 1);
  luaL_setmetatable(L, "luaio.ExecGuard");
  lua_toclose(L, 5);
  lua_getiuservalue(L, 4, 1);
  if (input != NULL) { /* written in the background, then closed */
    stream *s = luaio__checkstream(L, -1);
    s->high = (size_t)-1;
    lua_getfield(L, -1, "write");
    lua_pushvalue(L, -2);
    lua_getfield(L, 3, "input");
    lua_call(L, 2, 0);
    luaio__stream_close(s);
  }
  lua_pop(L, 1);
  lua_getiuservalue(L, 4, 2);
  return exec_call(L, luaio__stream_read_all, 4, 1);
}

/* aio.getpid() -> pid */
static int aio_getpid(lua_State *L) {
  lua_pushinteger(L, uv_os_getpid());
  return 1;
}

static const luaL_Reg process_methods[] = {{"wait", process_wait},
                                           {"kill", process_kill},
                                           {"exited", process_exited},
                                           {NULL, NULL}};

static const luaL_Reg funcs[] = {{"subprocess", aio_subprocess},
                                 {"exec", aio_exec},
                                 {"getpid", aio_getpid},
                                 {NULL, NULL}};

void luaio__process_open(lua_State *L, luaio *h) {
  luaL_newmetatable(L, "luaio.Process");
  lua_newtable(L);
  lua_pushlightuserdata(L, h);
  luaL_setfuncs(L, process_methods, 1);
  lua_setfield(L, -2, "methods");
  lua_pushcfunction(L, process_index);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, process_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, process_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  luaL_newmetatable(L, "luaio.ExecGuard");
  lua_pushcfunction(L, guard_close);
  lua_setfield(L, -2, "__close");
  lua_pop(L, 1);
  lua_pushlightuserdata(L, h);
  luaL_setfuncs(L, funcs, 1);
}

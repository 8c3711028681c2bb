/*
** worker.c: aio.worker, aio.to_thread, aio.worker_id and aio.set_pool.
**
** A worker is an OS thread running a host of its own (luaio_new: its own
** state and loop).  The thread and the object that started it share a
** wshared, refcounted: the channels to and from the worker, the copied
** function and arguments to start with, and the channel `done` that gets
** the outcome, one message: (true, results...) or (false, error,
** traceback).  The thread puts the outcome, closes its channels, marks
** itself finished and lets go of the wshared; nobody else ever touches its
** state, and a host that shuts down waits at most a grace for it.
**
** Cancelling a worker (or a job of the pool) sets a flag, wakes the
** worker's loop through its control uv_async (which cancels the target
** task) and sends the thread CANCEL_SIGNAL with pthread_kill: the handler
** sets a debug hook on the running coroutine, as lua.c's lstop does, and
** the hook cancels the task there, so a pure Lua loop stops within a few
** instructions.  A signal does not interrupt C code: a job that stays in
** a C call past the grace is abandoned, and the pool starts a fresh worker
** in its place.
**
** A graceful stop (w:shutdown, a cancelled join, <close>) sets `stop`
** and wakes the worker the same way.  On its thread, every server of its
** host stops accepting (luaio__net_close_servers), a drain task waits
** within the grace for their handlers, and the main task is cancelled;
** the main task's end waits, shielded, for the drain task, and the end of
** the run then cancels what is left.  The signal's hook cancels only the
** main task then, so a handler spinning in Lua is stopped by the owner's
** timer (wkill), which cancels the worker a second after the grace.
**
** aio.to_thread sends a job (a shared object, by reference) on the pool's
** jobs channel; each pool worker takes jobs one at a time and runs each
** as a task of its own.  The caller waits on the job's reply channel.
*/

#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "worker.h"

#define CANCEL_SIGNAL SIGURG /* ignored by default: harmless elsewhere */
#define GRACE_MS 1000        /* how long a cancelled job may stay in C */
#define STOP_MS 10000        /* a graceful stop's default grace */

enum { W_DEDICATED, W_POOL };
enum { J_QUEUED, J_RUNNING, J_DONE, J_CANCELLED, J_ABANDONED };

/* The registry keys of the worker id, of the host's pool, of the worker
   metatable. */
static const char idkey = 'i';
static const char poolkey = 'p';
static const char stopkey = 's'; /* a dedicated worker's stop function */

typedef struct job job;

typedef struct wshared {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  atomic_int refs;
  int kind, id;
  channel *in, *out, *done;
  msg *fn, *args; /* the start; the thread takes them */
  int is_path;
  void (*on_worker)(luaio *worker, void *ud);
  void *ud;
  pthread_t tid;
  unsigned char ctl_open, started, finished, abandoned; /* under mu */
  atomic_int cancel;
  atomic_int stop, stop_ms; /* a graceful stop, and its grace */
  uv_async_t ctl;           /* on the worker's loop */
  /* the thread's own */
  luaio *h;
  task *main;
  unsigned char stopping; /* the stop function ran */
  job *job;               /* the pool job it runs */
  msg *outcome;
} wshared;

struct job {
  pthread_mutex_t mu;
  atomic_int refs;
  int state; /* under mu */
  atomic_int cancel;
  msg *fn, *args;
  channel *reply;
  wshared *worker;      /* while running */
  task *task;           /* the worker's task running it (its thread's) */
  struct jtimer *timer; /* the caller's grace timer (its host's) */
  struct pool *pool;    /* the caller's */
};

typedef struct pool {
  resource res;
  luaio *h;
  int size, started;
  wshared **slots;
  wshared **old; /* abandoned, maybe still running */
  size_t nold, cold;
  channel *jobs;
} pool;

typedef struct jtimer {
  resource res;
  uv_timer_t timer;
  job *j;
  luaio *h;
} jtimer;

static _Thread_local wshared *self_worker;

/* The shared parts' lives. */

static void wshared_release(wshared *w) {
  if (atomic_fetch_sub(&w->refs, 1) != 1) return;
  if (w->in) luaio__channel_release(w->in);
  if (w->out) luaio__channel_release(w->out);
  if (w->done) luaio__channel_release(w->done);
  luaio__msg_free(w->fn);
  luaio__msg_free(w->args);
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->cv);
  free(w);
}

static void job_retain(void *p) { atomic_fetch_add(&((job *)p)->refs, 1); }

static void job_release(void *p) {
  job *j = p;
  if (atomic_fetch_sub(&j->refs, 1) != 1) return;
  luaio__msg_free(j->fn);
  luaio__msg_free(j->args);
  if (j->reply) luaio__channel_release(j->reply);
  pthread_mutex_destroy(&j->mu);
  free(j);
}

/* Cancelling.  The target is the task a cancellation request is for. */

static task *cancel_target(wshared *w) {
  if (w->job != NULL && atomic_load(&w->job->cancel)) return w->job->task;
  if (atomic_load(&w->cancel)) return w->main;
  return NULL;
}

/* The debug hook set by on_cancel_signal: cancel the target there. */
static void cancel_hook(lua_State *L, lua_Debug *ar) {
  wshared *w = self_worker;
  task *target, *t;
  scope *s;
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  if (w == NULL || w->h == NULL || (t = w->h->current) == NULL) return;
  target = cancel_target(w);
  /* a graceful stop: the main task is cancelled, the handlers go on */
  if (target == NULL && atomic_load(&w->stop) && t == w->main) target = t;
  if (target == NULL) return;
  if (target->state != T_DONE) luaio__task_cancel(target);
  if (t != target) luaio__task_cancel(t); /* what spins is stopped too */
  if ((s = luaio__cancelled_scope(t)) != NULL) {
    luaio__cancelled_push(L, s);
    lua_error(L);
  }
}

static void on_cancel_signal(int sig) {
  wshared *w = self_worker;
  luaio *h;
  int mask = LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT;
  (void)sig;
  if (w == NULL || (h = w->h) == NULL) return;
  if (h->current != NULL && h->current->co != NULL)
    lua_sethook(h->current->co, cancel_hook, mask, 1);
  if (h->nested != NULL) lua_sethook(h->nested, cancel_hook, mask, 1);
}

static pthread_once_t signal_once = PTHREAD_ONCE_INIT;

static void install_signal(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_cancel_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(CANCEL_SIGNAL, &sa, NULL);
}

/* Wake w's loop and interrupt its Lua code.  Under w->mu. */
static void poke(wshared *w) {
  if (w->ctl_open) {
    uv_async_send(&w->ctl);
    pthread_kill(w->tid, CANCEL_SIGNAL);
  }
}

/* Ask w to stop; 1 if it had not finished. */
static int request_cancel(wshared *w) {
  int live;
  atomic_store(&w->cancel, 1);
  pthread_mutex_lock(&w->mu);
  live = !w->finished;
  poke(w);
  pthread_mutex_unlock(&w->mu);
  return live;
}

/* Ask w to stop gracefully within ms (the first request's grace holds);
   1 if it had not finished. */
static int request_stop(wshared *w, int ms) {
  int live;
  pthread_mutex_lock(&w->mu);
  live = !w->finished;
  if (!atomic_load(&w->stop)) {
    atomic_store(&w->stop_ms, ms);
    atomic_store(&w->stop, 1);
    poke(w);
  }
  pthread_mutex_unlock(&w->mu);
  return live;
}

/* run_stop(): the worker's stop function, under pcall */
static int run_stop(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &stopkey);
  if (lua_isfunction(L, -1)) lua_call(L, 0, 0);
  return 0;
}

/* On the worker's thread: a graceful stop.  Every server stops accepting
   (their queued connections are served), a task waits within the grace
   for their handlers, and the main task is cancelled: its end waits for
   that task (dedicated_src). */
static void begin_stop(wshared *w) {
  lua_State *L = w->h->L;
  w->stopping = 1;
  lua_pushcfunction(L, run_stop);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
    luaio__report(w->h, luaio__push_errmsg(L, -1));
    lua_pop(L, 2);
  }
  if (w->main != NULL && w->main->state != T_DONE && w->main != w->h->current)
    luaio__task_cancel(w->main);
}

/* On the worker's thread: the control async. */
static void on_ctl(uv_async_t *a) {
  wshared *w = a->data;
  task *target = cancel_target(w);
  if (target != NULL && target->state != T_DONE)
    luaio__task_cancel(target);
  else if (w->kind == W_DEDICATED && atomic_load(&w->stop) && !w->stopping)
    begin_stop(w);
}

/* Wait until w finished, at most until `deadline` (a CLOCK_REALTIME
   time); 1 if it did. */
static int wait_finished(wshared *w, const struct timespec *deadline) {
  int done;
  pthread_mutex_lock(&w->mu);
  while (!w->finished)
    if (pthread_cond_timedwait(&w->cv, &w->mu, deadline) == ETIMEDOUT) break;
  done = w->finished;
  pthread_mutex_unlock(&w->mu);
  return done;
}

static void grace_deadline(struct timespec *ts) {
  clock_gettime(CLOCK_REALTIME, ts);
  ts->tv_sec += GRACE_MS / 1000;
  ts->tv_nsec += (long)(GRACE_MS % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

/* Outcomes. */

/* encode(base, root, values...) -> msg as a light userdata */
static int encode_values(lua_State *L) {
  int base = (int)lua_tointeger(L, 1);
  const char *root = lua_tostring(L, 2);
  msg *m = luaio__copy_encode(L, 3, lua_gettop(L) - 2, root, base);
  lua_pushlightuserdata(L, m);
  return 1;
}

/* The n values on top of L as a message, under pcall: NULL with the error
   on top instead of the values if they cannot cross. */
static msg *try_encode(lua_State *L, int n, const char *root, int base) {
  msg *m;
  lua_pushcfunction(L, encode_values);
  lua_pushinteger(L, base);
  lua_pushstring(L, root);
  lua_rotate(L, -n - 3, 3);
  if (lua_pcall(L, n + 2, 1, 0) != LUA_OK) return NULL;
  m = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return m;
}

/* The outcome of r, table.pack(xpcall(fn, handler, ...)) where the handler
   gives {error, traceback}, as a message. */
static msg *make_outcome(lua_State *L, int r) {
  lua_Integer n, i;
  msg *m;
  r = lua_absindex(L, r);
  luaL_checktype(L, r, LUA_TTABLE);
  lua_getfield(L, r, "n");
  n = lua_tointeger(L, -1);
  lua_pop(L, 1);
  luaL_checkstack(L, (int)n + 8, "too many results");
  lua_rawgeti(L, r, 1);
  if (lua_toboolean(L, -1)) {
    for (i = 2; i <= n; i++)
      lua_rawgeti(L, r, i);
    if ((m = try_encode(L, (int)n, "results", 0)) != NULL) return m;
    /* the error of the copy, as the job's error */
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    lua_pushliteral(L, "");
    return try_encode(L, 3, "error", 0);
  }
  lua_rawgeti(L, r, 2); /* {error, traceback} from the handler */
  lua_rawgeti(L, -1, 1);
  lua_rawgeti(L, -2, 2);
  lua_remove(L, -3); /* false, error, traceback */
  lua_pushvalue(L, -3);
  lua_pushvalue(L, -3);
  lua_pushvalue(L, -3);
  if ((m = try_encode(L, 3, "error", 0)) != NULL) {
    lua_pop(L, 3);
    return m;
  }
  lua_pop(L, 1);
  luaio__push_errmsg(L, -2); /* the error cannot cross: its text does */
  lua_replace(L, -3);
  if ((m = try_encode(L, 3, "error", 0)) != NULL) return m;
  lua_pop(L, 1);
  return NULL;
}

/* The worker's side. */

/* The Lua half of a worker's start: aio.parent, and the main task's
   function, which runs fn under xpcall and hands finish the outcome. */
static const char dedicated_src[] =
    "local aio, finish, inch, outch, fn, close_servers, grace = ...\n"
    "local parent = {}\n"
    "function parent:send(v) return outch:send(v) end\n"
    "function parent:recv() return inch:recv() end\n"
    "function parent:iter() return inch:iter() end\n"
    "rawset(aio, 'parent', parent)\n"
    "local function onerr(e)\n"
    "  if type(e) == 'table' and type(e.traceback) == 'string' then\n"
    "    return {e, e.traceback}\n"
    "  end\n"
    "  return {e, debug.traceback(nil, 2)}\n"
    "end\n"
    "local draining\n"
    "local function drain(servers, g)\n"
    "  pcall(aio.wait_for, function()\n"
    "    for _, s in ipairs(servers) do s:wait_closed() end\n"
    "  end, g)\n"
    "end\n"
    "local function stop()\n"
    "  if not draining then\n"
    "    draining = aio.spawn(drain, close_servers(), grace())\n"
    "  end\n"
    "end\n"
    "return function(...)\n"
    "  finish(table.pack(xpcall(fn, onerr, ...)))\n"
    "  if grace() then stop() end\n"
    "  if draining then\n"
    "    pcall(aio.shield, function() draining:await() end)\n"
    "  end\n"
    "end, stop\n";

/* A pool worker: jobs one at a time, each a task of its own. */
static const char pool_src[] =
    "local aio, finish, jobs = ...\n"
    "local function onerr(e)\n"
    "  if type(e) == 'table' and type(e.traceback) == 'string' then\n"
    "    return {e, e.traceback}\n"
    "  end\n"
    "  return {e, debug.traceback(nil, 2)}\n"
    "end\n"
    "local function call(r)\n"
    "  local f = r[2]\n"
    "  if type(f) == 'string' then\n"
    "    local mod, name = f:match('^(.+)%.([^.]+)$')\n"
    "    if not mod then\n"
    "      error(('aio.to_thread: %q is not \"module.function\"'):format(f))\n"
    "    end\n"
    "    f = require(mod)[name]\n"
    "    if type(f) ~= 'function' then\n"
    "      error(('aio.to_thread: %s.%s is not a function'):format(mod, "
    "name))\n"
    "    end\n"
    "  end\n"
    "  return f(table.unpack(r, 3, r.n))\n"
    "end\n"
    "local function run(job)\n"
    "  local r = table.pack(job:start())\n"
    "  if r[1] then job:finish(table.pack(xpcall(call, onerr, r))) end\n"
    "end\n"
    "return function()\n"
    "  pcall(function()\n"
    "    for job in jobs:iter() do\n"
    "      local t = aio.spawn(run, job)\n"
    "      job = nil\n"
    "      pcall(t.await, t)\n"
    "      if finish() then break end\n"
    "    end\n"
    "  end)\n"
    "end\n";

/* finish(r): the main task's outcome; finish() -> abandoned */
static int worker_finish(lua_State *L) {
  wshared *w = lua_touserdata(L, lua_upvalueindex(1));
  int abandoned;
  if (lua_isnoneornil(L, 1)) {
    pthread_mutex_lock(&w->mu);
    abandoned = w->abandoned;
    pthread_mutex_unlock(&w->mu);
    lua_pushboolean(L, abandoned);
    return 1;
  }
  luaio__msg_free(w->outcome);
  w->outcome = make_outcome(L, 1);
  return 0;
}

/* close_servers() -> the servers of this host that were live, now
   closed */
static int close_servers(lua_State *L) {
  luaio__net_close_servers(L);
  return 1;
}

/* grace() -> the grace of a stop in seconds, nil if none was asked */
static int stop_grace(lua_State *L) {
  wshared *w = lua_touserdata(L, lua_upvalueindex(1));
  if (!atomic_load(&w->stop)) return 0;
  lua_pushnumber(L, atomic_load(&w->stop_ms) / 1000.0);
  return 1;
}

static void push_channel_ref(lua_State *L, channel *c) {
  luaio__channel_retain(c);
  luaio__channel_push(L, c);
}

/* boot(w) -> the main task, under pcall in the worker's state */
static int boot(lua_State *L) {
  wshared *w = lua_touserdata(L, 1);
  luaio *h = w->h;
  int n = 0, base;
  lua_getglobal(L, "require");
  lua_pushliteral(L, "luaio");
  lua_call(L, 1, 1); /* aio at 2 */
  lua_pushinteger(L, w->id);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &idkey);
  base = lua_gettop(L);
  if (w->kind == W_DEDICATED) {
    msg *m = w->fn;
    if (luaL_loadbuffer(L, dedicated_src, sizeof dedicated_src - 1,
                        "=luaio.worker") != LUA_OK)
      return lua_error(L);
    lua_pushvalue(L, 2);
    lua_pushlightuserdata(L, w);
    lua_pushcclosure(L, worker_finish, 1);
    push_channel_ref(L, w->in);
    push_channel_ref(L, w->out);
    w->fn = NULL;
    luaio__copy_decode(L, m);
    if (w->is_path) {
      const char *path = lua_tostring(L, -1);
      if (luaL_loadfile(L, path) != LUA_OK) return lua_error(L);
      lua_remove(L, -2);
    }
    lua_pushcfunction(L, close_servers);
    lua_pushlightuserdata(L, w);
    lua_pushcclosure(L, stop_grace, 1);
    lua_call(L, 7, 2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &stopkey);
    if (w->args != NULL) {
      m = w->args;
      w->args = NULL;
      n = luaio__copy_decode(L, m);
    }
  } else {
    if (luaL_loadbuffer(L, pool_src, sizeof pool_src - 1, "=luaio.to_thread") !=
        LUA_OK)
      return lua_error(L);
    lua_pushvalue(L, 2);
    lua_pushlightuserdata(L, w);
    lua_pushcclosure(L, worker_finish, 1);
    push_channel_ref(L, w->in);
    lua_call(L, 3, 1);
  }
  (void)base;
  luaio__spawn(L, h, n);
  return 1;
}

static void *thread_main(void *arg) {
  wshared *w = arg;
  luaio_config cfg;
  luaio *h;
  lua_State *L;
  msg *outcome = NULL;
  luaio_config_init(&cfg);
  cfg.on_worker = w->on_worker;
  cfg.ud = w->ud;
  h = luaio_new(&cfg);
  if (h != NULL) {
    L = luaio_state(h);
    w->h = h;
    self_worker = w;
    uv_async_init(luaio_loop(h), &w->ctl, on_ctl);
    w->ctl.data = w;
    uv_unref((uv_handle_t *)&w->ctl);
    pthread_mutex_lock(&w->mu);
    w->ctl_open = 1;
    pthread_mutex_unlock(&w->mu);
    if (w->on_worker) w->on_worker(h, w->ud);
    lua_pushcfunction(L, boot);
    lua_pushlightuserdata(L, w);
    if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
      task *t = luaio__totask(L, -1); /* stays on the stack: anchored */
      w->main = t;
      if (atomic_load(&w->cancel))
        luaio__task_cancel(t);
      else if (w->kind == W_DEDICATED && atomic_load(&w->stop)) {
        w->stopping = 1; /* asked before it started: nothing to drain */
        luaio__task_cancel(t);
      }
      luaio__run_main(h, t);
      w->main = NULL;
      outcome = w->outcome;
      w->outcome = NULL;
      if (outcome == NULL && t->end == END_CANCELLED) { /* before it ran */
        lua_pushboolean(L, 0);
        luaio__error_push(L, "CancelledError",
                          "the worker was cancelled before it started");
        lua_pushliteral(L, "");
        outcome = try_encode(L, 3, "error", 0);
      }
      lua_settop(L, 0);
    } else { /* it did not start: the error as the outcome */
      lua_pushboolean(L, 0);
      lua_insert(L, -2);
      luaio__traceback(L, NULL, 0);
      outcome = try_encode(L, 3, "error", 0);
      lua_settop(L, 0);
    }
    pthread_mutex_lock(&w->mu);
    w->ctl_open = 0;
    pthread_mutex_unlock(&w->mu);
    uv_close((uv_handle_t *)&w->ctl, NULL);
    luaio_free(h);
    self_worker = NULL;
    w->h = NULL;
  }
  if (outcome != NULL) luaio__channel_put(w->done, outcome);
  luaio__channel_close(w->done);
  if (w->kind == W_DEDICATED) luaio__channel_close(w->in); /* not jobs */
  luaio__channel_close(w->out);
  pthread_mutex_lock(&w->mu);
  w->finished = 1;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
  wshared_release(w);
  return NULL;
}

/* A new wshared for h, with its channels; NULL if out of memory. */
static wshared *wshared_new(luaio *h, int kind, channel *jobs) {
  wshared *w = calloc(1, sizeof *w);
  static atomic_int next_id; /* ids are unique in the process */
  if (w == NULL) return NULL;
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  atomic_init(&w->refs, 1);
  atomic_init(&w->cancel, 0);
  w->kind = kind;
  w->id = atomic_fetch_add(&next_id, 1) + 1;
  w->on_worker = h->on_worker;
  w->ud = h->ud;
  if (jobs != NULL) {
    luaio__channel_retain(jobs);
    w->in = jobs;
  } else
    w->in = luaio__channel_new(0);
  w->out = luaio__channel_new(0);
  w->done = luaio__channel_new(0);
  if (w->in == NULL || w->out == NULL || w->done == NULL) {
    wshared_release(w);
    return NULL;
  }
  return w;
}

/* A thread that was let go may still be running (in a C call past the
   grace, or finishing): its code must stay mapped after its host is gone,
   even when the host is the module under stock lua5.4, whose lua_close
   unloads it.  So the first thread started pins the object file that holds
   this code (the module, the shared library or the program). */
static pthread_once_t pin_once = PTHREAD_ONCE_INIT;

static void pin_code(void) {
  Dl_info info;
  if (dladdr((void *)&pin_code, &info) && info.dli_fname != NULL)
    (void)dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE);
}

/* Start w's thread; 0, or an errno.  A thread that could not start counts
   as finished. */
static int wshared_start(wshared *w) {
  int rc;
  pthread_once(&signal_once, install_signal);
  pthread_once(&pin_once, pin_code);
  atomic_fetch_add(&w->refs, 1); /* the thread's */
  pthread_mutex_lock(&w->mu);
  rc = pthread_create(&w->tid, NULL, thread_main, w);
  if (rc == 0)
    w->started = 1;
  else
    w->finished = 1;
  pthread_mutex_unlock(&w->mu);
  if (rc != 0) atomic_fetch_sub(&w->refs, 1);
  return rc;
}

/* The owner lets go of w: a finished thread is joined (it has only its
   return left), one still running is detached. */
static void wshared_drop(wshared *w) {
  int started, finished;
  pthread_mutex_lock(&w->mu);
  started = w->started;
  finished = w->finished;
  pthread_mutex_unlock(&w->mu);
  if (started) {
    if (finished)
      pthread_join(w->tid, NULL);
    else
      pthread_detach(w->tid);
  }
  wshared_release(w);
}

/* The owner's side: outcomes and WorkerError. */

/* Push the text of the error at idx: "type: message" for a copied luaio
   error (a table without its metatable). */
static const char *push_error_text(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) == LUA_TTABLE) {
    lua_getfield(L, idx, "type");
    lua_getfield(L, idx, "message");
    if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
      lua_pushfstring(L, "%s: %s", lua_tostring(L, -2), lua_tostring(L, -1));
      lua_replace(L, -3);
      lua_pop(L, 1);
      return lua_tostring(L, -1);
    }
    lua_pop(L, 2);
  }
  return luaio__push_errmsg(L, idx);
}

/* Raise the WorkerError of the outcome table at o: {false, error,
   traceback}: the worker's stack, then where it is awaited. */
static int raise_worker_error(lua_State *L, int o, const char *what) {
  o = lua_absindex(L, o);
  lua_rawgeti(L, o, 2);
  push_error_text(L, -1);
  luaio__error_push(
      L, "WorkerError",
      lua_pushfstring(L, "%s failed: %s", what, lua_tostring(L, -1)));
  lua_remove(L, -2);
  lua_remove(L, -2);
  lua_rawgeti(L, o, 2);
  lua_setfield(L, -2, "error");
  lua_rawgeti(L, o, 3);
  if (!lua_isstring(L, -1)) {
    lua_pop(L, 1);
    lua_pushliteral(L, "");
  }
  lua_pushliteral(L, "\n(in the worker; awaited here)\n");
  luaio__traceback(L, NULL, 1);
  lua_concat(L, 3);
  lua_setfield(L, -2, "traceback");
  return lua_error(L);
}

/* Push the outcome message m as a table {n = …, ok, values…}; m NULL:
   the worker gave none (it could not start or was abandoned). */
static void push_outcome(lua_State *L, msg *m, const char *none) {
  int n, i, t;
  if (m == NULL || m->nvalues == 0) {
    luaio__msg_free(m);
    lua_createtable(L, 3, 1);
    lua_pushboolean(L, 0);
    lua_rawseti(L, -2, 1);
    lua_pushstring(L, none);
    lua_rawseti(L, -2, 2);
    lua_pushliteral(L, "");
    lua_rawseti(L, -2, 3);
    lua_pushinteger(L, 3);
    lua_setfield(L, -2, "n");
    return;
  }
  t = lua_gettop(L);
  n = luaio__copy_decode(L, m);
  lua_createtable(L, n, 1);
  lua_insert(L, t + 1);
  for (i = n; i >= 1; i--)
    lua_rawseti(L, t + 1, i);
  lua_pushinteger(L, n);
  lua_setfield(L, -2, "n");
}

/* Return the results of the outcome table at o, or raise its error. */
static int outcome_results(lua_State *L, int o, const char *what) {
  lua_Integer n, i;
  o = lua_absindex(L, o);
  lua_rawgeti(L, o, 1);
  if (!lua_toboolean(L, -1)) return raise_worker_error(L, o, what);
  lua_pop(L, 1);
  lua_getfield(L, o, "n");
  n = lua_tointeger(L, -1);
  lua_pop(L, 1);
  luaL_checkstack(L, (int)n, "too many results");
  for (i = 2; i <= n; i++)
    lua_rawgeti(L, o, i);
  return (int)n - 1;
}

/* Raise the CancelledError of the running task if one is due. */
static void check_cancelled(lua_State *L, luaio *h) {
  task *t = h->current;
  scope *s;
  if (t != NULL && t->ncancelled > 0 &&
      (s = luaio__cancelled_scope(t)) != NULL) {
    luaio__cancelled_push(L, s);
    lua_error(L);
  }
}

/* Worker objects. */

typedef struct wkill wkill;

typedef struct wbox {
  wshared *w; /* NULL once let go */
  resource res;
  luaio *h;
  wkill *kill;           /* the end of a stop's grace, if one runs */
  unsigned char settled; /* the outcome is user value 1 */
} wbox;

/* A graceful stop is bounded on the owner's side too: a second after the
   grace, the worker is cancelled (which stops a handler that spins in
   Lua, as the worker's own timers cannot). */
struct wkill {
  resource res;
  uv_timer_t timer;
  wbox *b;
};

static void on_wkill_closed(uv_handle_t *handle) { free(handle->data); }

static void wkill_close(wkill *k) {
  luaio__res_remove(k->b->h, &k->res);
  k->b->kill = NULL;
  uv_close((uv_handle_t *)&k->timer, on_wkill_closed);
}

static void wkill_res_close(resource *r) {
  wkill_close(container_of(r, wkill, res));
}

static void on_wkill(uv_timer_t *timer) {
  wkill *k = timer->data;
  if (k->b->w != NULL) request_cancel(k->b->w);
  wkill_close(k);
}

/* Stop b's worker gracefully within ms. */
static void stop_worker(wbox *b, int ms) {
  wkill *k;
  if (b->w == NULL || !request_stop(b->w, ms) || b->kill != NULL) return;
  if ((k = calloc(1, sizeof *k)) == NULL) return;
  uv_timer_init(b->h->loop, &k->timer);
  k->timer.data = k;
  k->b = b;
  b->kill = k;
  k->res.close = wkill_res_close;
  luaio__res_add(b->h, &k->res);
  uv_timer_start(&k->timer, on_wkill, (uint64_t)ms + GRACE_MS, 0);
}

/* Let go of the worker: cancel it; wait for it within the grace if
   `wait` (the host shuts down). */
static void wbox_drop(wbox *b, int wait) {
  wshared *w = b->w;
  if (w == NULL) return;
  if (b->kill != NULL) wkill_close(b->kill);
  b->w = NULL;
  luaio__res_remove(b->h, &b->res);
  if (request_cancel(w) && wait) {
    struct timespec ts;
    grace_deadline(&ts);
    wait_finished(w, &ts);
  }
  wshared_drop(w);
}

static void wbox_res_close(resource *r) {
  wbox_drop(container_of(r, wbox, res), 1);
}

static int worker_gc(lua_State *L) {
  wbox_drop(lua_touserdata(L, 1), 0);
  return 0;
}

static wbox *checkworker(lua_State *L) {
  wbox *b = luaL_checkudata(L, 1, "luaio.Worker");
  if (b->w == NULL) luaL_error(L, "attempt to use a closed worker");
  return b;
}

/* Keep the outcome m (or none) as user value 1. */
static void settle(lua_State *L, wbox *b, msg *m) {
  if (b->kill != NULL) wkill_close(b->kill);
  push_outcome(L, m, "the worker could not start");
  lua_setiuservalue(L, 1, 1);
  b->settled = 1;
}

/* The outcome if it is known now; 1 if so. */
static int settle_now(lua_State *L, wbox *b) {
  int closed;
  msg *m;
  if (b->settled) return 1;
  m = luaio__channel_take(b->w->done, &closed);
  if (m == NULL && !closed) return 0;
  settle(L, b, m);
  return 1;
}

/* The worker has ended: raise its WorkerError if it failed (always when
   `always`), else return nothing. */
static int ended(lua_State *L, wbox *b, int always) {
  if (settle_now(L, b)) {
    lua_getiuservalue(L, 1, 1);
    lua_rawgeti(L, -1, 1);
    if (!lua_toboolean(L, -1)) return raise_worker_error(L, -2, "the worker");
    lua_pop(L, 2);
  }
  if (always)
    return luaio__error_raise(L, "WorkerError", "the worker has ended");
  lua_pushnil(L);
  return 1;
}

/* w:send(v): to the worker's aio.parent:recv() */
static int worker_send(lua_State *L) {
  wbox *b = checkworker(L);
  msg *m;
  luaL_checkany(L, 2);
  if (lua_isnil(L, 2))
    return luaL_argerror(L, 2, "nil cannot be sent (use aio.null)");
  m = luaio__copy_encode(L, 2, 1, "value", -1);
  lua_settop(L, 1);
  if (!luaio__channel_put(b->w->in, m)) return ended(L, b, 1);
  return 0;
}

static int k_wrecv(lua_State *L, int status, lua_KContext ctx) {
  wbox *b = lua_touserdata(L, 1);
  msg *m;
  (void)status;
  (void)ctx;
  luaio__resumed(L, luaio__host(L)->current);
  m = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (m == NULL) return ended(L, b, 0);
  return luaio__copy_decode(L, m);
}

/* w:recv() -> v | nil once the worker ended (raises if it failed) */
static int worker_recv(lua_State *L) {
  wbox *b = checkworker(L);
  int closed;
  msg *m = luaio__channel_take(b->w->out, &closed);
  lua_settop(L, 1);
  if (m != NULL) return luaio__copy_decode(L, m);
  if (closed) return ended(L, b, 0);
  return luaio__channel_wait_recv(L, luaio__host(L), b->w->out, NULL, k_wrecv);
}

/* Cancelling a join stops the worker gracefully and waits for it to
   end; cancelling a shutdown (or a <close>) cancels it. */
static int join_abandon(task *t, int woken) {
  wbox *b = lua_touserdata((lua_State *)t->wobj, 1);
  if (!woken) stop_worker(b, STOP_MS);
  return 0;
}

static int close_abandon(task *t, int woken) {
  wbox *b = lua_touserdata((lua_State *)t->wobj, 1);
  if (!woken && b->w != NULL) request_cancel(b->w);
  return 0;
}

static const waitops join_ops = {"worker join", join_abandon, NULL};
static const waitops close_ops = {"worker shutdown", close_abandon, NULL};

static int k_join_or_close(lua_State *L, int closing) {
  wbox *b = lua_touserdata(L, 1);
  luaio *h = luaio__host(L);
  msg *m;
  luaio__resumed(L, h->current);
  m = lua_touserdata(L, -1);
  lua_settop(L, 1);
  if (!b->settled)
    settle(L, b, m);
  else
    luaio__msg_free(m);
  if (closing) return 0;
  check_cancelled(L, h);
  lua_getiuservalue(L, 1, 1);
  return outcome_results(L, -1, "the worker");
}

static int k_join(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return k_join_or_close(L, 0);
}

static int k_close(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return k_join_or_close(L, 1);
}

/* Join (closing 0), or stop within ms and wait for the end (closing 1,
   ms >= 0). */
static int join(lua_State *L, int closing, int ms) {
  wbox *b = luaL_checkudata(L, 1, "luaio.Worker");
  luaio *h = luaio__host(L);
  lua_settop(L, 1);
  if (!b->settled && (b->w == NULL || !settle_now(L, b))) {
    if (b->w == NULL) return luaL_error(L, "attempt to use a closed worker");
    if (closing) stop_worker(b, ms);
    if (h->current == NULL && closing) return 0;
    return luaio__channel_wait_recv(L, h, b->w->done,
                                    closing ? &close_ops : &join_ops,
                                    closing ? k_close : k_join);
  }
  if (closing) return 0;
  lua_getiuservalue(L, 1, 1);
  return outcome_results(L, -1, "the worker");
}

/* w:join() -> the worker's results, or raises its WorkerError */
static int worker_join(lua_State *L) { return join(L, 0, 0); }

/* w:__close(): stops the worker gracefully and waits until it has ended */
static int worker_close(lua_State *L) { return join(L, 1, STOP_MS); }

/* w:shutdown([grace]): stops the worker gracefully, waits until it has
   ended: its servers stop accepting, their handlers have `grace` seconds
   (10) to finish, then it is cancelled */
static int worker_shutdown(lua_State *L) {
  lua_Number g = luaL_optnumber(L, 2, STOP_MS / 1000.0);
  luaL_argcheck(L, g >= 0 && g <= 1e6, 2, "grace out of range");
  return join(L, 1, (int)(g * 1000));
}

/* w:cancel() -> false if it had already ended.  A worker whose outcome
   this side holds has ended, though its thread may not have marked itself
   finished yet (it posts the outcome first): a join that returned is
   never followed by a cancel that says "still running". */
static int worker_cancel(lua_State *L) {
  wbox *b = checkworker(L);
  lua_pushboolean(L, request_cancel(b->w) && !b->settled);
  return 1;
}

/* w:id() -> the worker's aio.worker_id() */
static int worker_id_method(lua_State *L) {
  wbox *b = luaL_checkudata(L, 1, "luaio.Worker");
  lua_pushinteger(L, b->w ? b->w->id : 0);
  return 1;
}

static int worker_tostring(lua_State *L) {
  wbox *b = luaL_checkudata(L, 1, "luaio.Worker");
  lua_pushfstring(L, "luaio.Worker %d (%s): %p", b->w ? b->w->id : 0,
                  b->settled ? "ended"
                  : b->w     ? "running"
                             : "closed",
                  (void *)b);
  return 1;
}

/* aio.worker(path_or_fn, ...) -> worker */
static int aio_worker(lua_State *L) {
  luaio *h = luaio__host(L);
  int top = lua_gettop(L), rc;
  int is_path = lua_type(L, 1) == LUA_TSTRING;
  wbox *b;
  wshared *w;
  if (!is_path) luaL_checktype(L, 1, LUA_TFUNCTION);
  b = lua_newuserdatauv(L, sizeof *b, 1);
  memset(b, 0, sizeof *b);
  b->h = h;
  luaL_setmetatable(L, "luaio.Worker");
  if ((w = wshared_new(h, W_DEDICATED, NULL)) == NULL)
    return luaL_error(L, "not enough memory");
  b->w = w;
  b->res.close = wbox_res_close;
  luaio__res_add(h, &b->res);
  w->is_path = is_path;
  w->fn = luaio__copy_encode(L, 1, 1, is_path ? "path" : "fn", -1);
  if (top > 1) w->args = luaio__copy_encode(L, 2, top - 1, "args", 1);
  if ((rc = wshared_start(w)) != 0)
    return luaL_error(L, "aio.worker: cannot start a thread: %s", strerror(rc));
  return 1;
}

/* aio.worker_id() -> the id of this host's worker; 0 on the main host */
static int aio_worker_id(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &idkey);
  if (lua_isnil(L, -1)) lua_pushinteger(L, 0);
  return 1;
}

/* Jobs, shared by reference between the caller's host and the pool
   worker that runs them. */

typedef struct jbox {
  job *j;
} jbox;

static void job_push(lua_State *L, void *p) {
  jbox *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->j = p;
  luaL_setmetatable(L, "luaio.Job");
}

static const sharedops job_shared = {"job", job_retain, job_release, job_push};

static job *checkjob(lua_State *L) {
  jbox *b = luaL_checkudata(L, 1, "luaio.Job");
  return b->j;
}

static int job_gc(lua_State *L) {
  jbox *b = lua_touserdata(L, 1);
  if (b->j != NULL) job_release(b->j);
  b->j = NULL;
  return 0;
}

/* job:start() -> true, fn, args... | false if it was cancelled; in the
   pool worker's task that runs it */
static int job_start(lua_State *L) {
  job *j = checkjob(L);
  wshared *w = self_worker;
  luaio *h = luaio__host(L);
  msg *fn, *args;
  int n = 0;
  if (w == NULL) return luaL_error(L, "job:start outside a pool worker");
  w->job = j;
  j->task = h->current;
  pthread_mutex_lock(&j->mu);
  if (j->state != J_QUEUED) {
    pthread_mutex_unlock(&j->mu);
    w->job = NULL;
    lua_pushboolean(L, 0);
    return 1;
  }
  j->state = J_RUNNING;
  j->worker = w;
  fn = j->fn;
  args = j->args;
  j->fn = j->args = NULL;
  pthread_mutex_unlock(&j->mu);
  lua_pushboolean(L, 1);
  luaio__copy_decode(L, fn);
  if (args != NULL) n = luaio__copy_decode(L, args);
  return 2 + n;
}

/* job:finish(r): the outcome, table.pack(xpcall(...)) */
static int job_finish(lua_State *L) {
  job *j = checkjob(L);
  msg *m = make_outcome(L, 2);
  int keep;
  if (self_worker != NULL) self_worker->job = NULL;
  pthread_mutex_lock(&j->mu);
  keep = j->state == J_RUNNING;
  if (keep) j->state = J_DONE;
  j->worker = NULL;
  pthread_mutex_unlock(&j->mu);
  if (m == NULL && keep) m = calloc(1, sizeof *m); /* no outcome */
  if (keep && m != NULL)
    luaio__channel_put(j->reply, m);
  else
    luaio__msg_free(m); /* abandoned: a late result nobody awaits */
  return 0;
}

/* The pool. */

static void pool_close(resource *r) {
  pool *p = container_of(r, pool, res);
  struct timespec ts;
  size_t i;
  int k;
  luaio__res_remove(p->h, r);
  luaio__channel_close(p->jobs);
  for (k = 0; k < p->size; k++)
    if (p->slots[k]) request_cancel(p->slots[k]);
  for (i = 0; i < p->nold; i++)
    request_cancel(p->old[i]);
  grace_deadline(&ts);
  for (k = 0; k < p->size; k++)
    if (p->slots[k]) {
      wait_finished(p->slots[k], &ts);
      wshared_drop(p->slots[k]);
    }
  for (i = 0; i < p->nold; i++) {
    wait_finished(p->old[i], &ts);
    wshared_drop(p->old[i]);
  }
  luaio__channel_release(p->jobs);
  if (p->h->L != NULL) {
    lua_pushnil(p->h->L);
    lua_rawsetp(p->h->L, LUA_REGISTRYINDEX, &poolkey);
  }
  free(p->slots);
  free(p->old);
  free(p);
}

static pool *get_pool(lua_State *L, luaio *h) {
  pool *p;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &poolkey);
  p = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (p != NULL) return p;
  if ((p = calloc(1, sizeof *p)) == NULL) luaL_error(L, "not enough memory");
  if ((p->jobs = luaio__channel_new(0)) == NULL) {
    free(p);
    luaL_error(L, "not enough memory");
  }
  p->h = h;
  p->size = (int)uv_available_parallelism();
  if (p->size < 1) p->size = 1;
  p->res.close = pool_close;
  luaio__res_add(h, &p->res);
  lua_pushlightuserdata(L, p);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &poolkey);
  return p;
}

/* A new pool worker in slot k; 0 or an errno. */
static int pool_spawn(pool *p, int k) {
  wshared *w = wshared_new(p->h, W_POOL, p->jobs);
  int rc;
  if (w == NULL) return ENOMEM;
  if ((rc = wshared_start(w)) != 0) {
    wshared_release(w);
    return rc;
  }
  p->slots[k] = w;
  return 0;
}

static void pool_start(lua_State *L, pool *p) {
  int k, rc;
  if (p->started) return;
  if ((p->slots = calloc((size_t)p->size, sizeof *p->slots)) == NULL)
    luaL_error(L, "not enough memory");
  p->started = 1;
  for (k = 0; k < p->size; k++)
    if ((rc = pool_spawn(p, k)) != 0 && k == 0)
      luaL_error(L, "aio.to_thread: cannot start a thread: %s", strerror(rc));
}

/* w stays in a C call: a fresh worker takes its slot. */
static void pool_replace(pool *p, wshared *w) {
  int k;
  for (k = 0; k < p->size; k++)
    if (p->slots[k] == w) break;
  if (k == p->size) return;
  if (p->nold == p->cold) {
    size_t c = p->cold ? p->cold * 2 : 4;
    wshared **o = realloc(p->old, c * sizeof *o);
    if (o == NULL) return; /* it keeps its slot */
    p->old = o;
    p->cold = c;
  }
  p->old[p->nold++] = w;
  p->slots[k] = NULL;
  pthread_mutex_lock(&w->mu);
  w->abandoned = 1;
  pthread_mutex_unlock(&w->mu);
  pool_spawn(p, k);
  /* the abandoned ones that have finished go */
  {
    size_t i = 0;
    while (i < p->nold) {
      wshared *o = p->old[i];
      int fin;
      pthread_mutex_lock(&o->mu);
      fin = o->finished;
      pthread_mutex_unlock(&o->mu);
      if (fin) {
        wshared_drop(o);
        p->old[i] = p->old[--p->nold];
      } else
        i++;
    }
  }
}

/* The grace of a cancelled job that runs. */

static void on_jtimer_closed(uv_handle_t *handle) {
  jtimer *jt = handle->data;
  job_release(jt->j);
  free(jt);
}

static void jtimer_close(jtimer *jt) {
  luaio__res_remove(jt->h, &jt->res);
  if (jt->j->timer == jt) jt->j->timer = NULL;
  uv_close((uv_handle_t *)&jt->timer, on_jtimer_closed);
}

static void jtimer_res_close(resource *r) {
  jtimer_close(container_of(r, jtimer, res));
}

static void on_grace(uv_timer_t *timer) {
  jtimer *jt = timer->data;
  job *j = jt->j;
  wshared *w = NULL;
  pthread_mutex_lock(&j->mu);
  if (j->state == J_RUNNING) {
    j->state = J_ABANDONED;
    w = j->worker;
  }
  pthread_mutex_unlock(&j->mu);
  if (w != NULL) {
    msg *none = calloc(1, sizeof *none);
    pool_replace(j->pool, w);
    if (none != NULL) luaio__channel_put(j->reply, none);
  }
  jtimer_close(jt);
}

static void start_grace(job *j, luaio *h) {
  jtimer *jt;
  if (j->timer != NULL || (jt = calloc(1, sizeof *jt)) == NULL) return;
  uv_timer_init(h->loop, &jt->timer);
  jt->timer.data = jt;
  jt->j = j;
  jt->h = h;
  job_retain(j);
  jt->res.close = jtimer_res_close;
  luaio__res_add(h, &jt->res);
  j->timer = jt;
  uv_timer_start(&jt->timer, on_grace, GRACE_MS, 0);
}

/* aio.to_thread. */

/* Cancelling the caller: a queued job never starts; a running one is
   cancelled, and the caller waits (shielded) for its outcome, or for the
   grace to end. */
static int to_thread_abandon(task *t, int woken) {
  lua_State *wl = t->wobj;
  job *j = ((jbox *)lua_touserdata(wl, 1))->j;
  if (woken) return 0; /* the outcome came: the task sees it */
  pthread_mutex_lock(&j->mu);
  if (j->state == J_QUEUED) {
    j->state = J_CANCELLED;
    pthread_mutex_unlock(&j->mu);
    luaio__channel_abandon_recv(t, 0);
    return 1;
  }
  if (j->state == J_RUNNING && !atomic_load(&j->cancel)) {
    atomic_store(&j->cancel, 1);
    pthread_mutex_lock(&j->worker->mu);
    poke(j->worker);
    pthread_mutex_unlock(&j->worker->mu);
    start_grace(j, t->h);
  }
  pthread_mutex_unlock(&j->mu);
  return 0;
}

static const waitops to_thread_ops = {"aio.to_thread", to_thread_abandon, NULL};

static int k_to_thread(lua_State *L, int status, lua_KContext ctx) {
  luaio *h = luaio__host(L);
  job *j = ((jbox *)lua_touserdata(L, 1))->j;
  msg *m;
  (void)status;
  (void)ctx;
  luaio__resumed(L, h->current);
  m = lua_touserdata(L, -1);
  lua_settop(L, 1);
  if (j->timer != NULL) jtimer_close(j->timer);
  if (m == NULL || m->nvalues == 0) { /* abandoned */
    luaio__msg_free(m);
    check_cancelled(L, h);
    return luaL_error(L, "aio.to_thread: the job was abandoned");
  }
  push_outcome(L, m, "");
  lua_rawgeti(L, -1, 1);
  if (!lua_toboolean(L, -1)) check_cancelled(L, h);
  lua_pop(L, 1);
  return outcome_results(L, -1, "the job");
}

/* aio.to_thread(fn_or_name, ...) -> fn's results, copied */
static int aio_to_thread(lua_State *L) {
  luaio *h = luaio__host(L);
  int top = lua_gettop(L);
  jbox *b;
  job *j;
  pool *p;
  msg *m;
  if (lua_type(L, 1) != LUA_TSTRING) luaL_checktype(L, 1, LUA_TFUNCTION);
  luaio__enter_wait(L, h);
  b = lua_newuserdatauv(L, sizeof *b, 0);
  b->j = NULL;
  luaL_setmetatable(L, "luaio.Job");
  if ((j = calloc(1, sizeof *j)) == NULL)
    return luaL_error(L, "not enough memory");
  pthread_mutex_init(&j->mu, NULL);
  atomic_init(&j->refs, 1);
  b->j = j;
  if ((j->reply = luaio__channel_new(0)) == NULL)
    return luaL_error(L, "not enough memory");
  j->fn = luaio__copy_encode(L, 1, 1, "fn", -1);
  if (top > 1) j->args = luaio__copy_encode(L, 2, top - 1, "args", 1);
  p = get_pool(L, h);
  pool_start(L, p);
  j->pool = p;
  m = luaio__copy_encode(L, top + 1, 1, "job", -1);
  lua_replace(L, 1);
  lua_settop(L, 1);
  if (!luaio__channel_put(p->jobs, m))
    return luaL_error(L, "aio.to_thread: the pool is closed");
  return luaio__channel_wait_recv(L, h, j->reply, &to_thread_ops, k_to_thread);
}

/* aio.set_pool{size = n}: before the pool's first use */
static int aio_set_pool(lua_State *L) {
  static const char *const known[] = {"size", NULL};
  luaio *h = luaio__host(L);
  lua_Integer n;
  pool *p;
  luaL_checktype(L, 1, LUA_TTABLE);
  luaio__check_options(L, 1, known);
  lua_getfield(L, 1, "size");
  n = luaL_checkinteger(L, -1);
  luaL_argcheck(L, n >= 1 && n <= 1024, 1, "size must be from 1 to 1024");
  p = get_pool(L, h);
  if (p->started)
    return luaL_error(L, "aio.set_pool: the pool has already started");
  p->size = (int)n;
  return 0;
}

static const luaL_Reg worker_methods[] = {{"send", worker_send},
                                          {"recv", worker_recv},
                                          {"join", worker_join},
                                          {"cancel", worker_cancel},
                                          {"id", worker_id_method},
                                          {"shutdown", worker_shutdown},
                                          {NULL, NULL}};

static const luaL_Reg job_methods[] = {
    {"start", job_start}, {"finish", job_finish}, {NULL, NULL}};

static const luaL_Reg funcs[] = {{"worker", aio_worker},
                                 {"worker_id", aio_worker_id},
                                 {"to_thread", aio_to_thread},
                                 {"set_pool", aio_set_pool},
                                 {NULL, NULL}};

void luaio__worker_open(lua_State *L, luaio *h) {
  luaio__channel_open(L, h);
  if (luaL_newmetatable(L, "luaio.Worker")) {
    lua_createtable(L, 0, 6);
    lua_pushlightuserdata(L, h);
    luaL_setfuncs(L, worker_methods, 1);
    luaio__set_methods(L, "luaio.Worker");
    lua_pushlightuserdata(L, h);
    lua_pushcclosure(L, worker_close, 1);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, worker_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, worker_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, "luaio.Job")) {
    lua_createtable(L, 0, 2);
    lua_pushlightuserdata(L, h);
    luaL_setfuncs(L, job_methods, 1);
    luaio__set_methods(L, "luaio.Job");
    lua_pushcfunction(L, job_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushlightuserdata(L, (void *)&job_shared);
    lua_setfield(L, -2, "__luaio_shared");
  }
  lua_pop(L, 1);
  lua_pushlightuserdata(L, h);
  luaL_setfuncs(L, funcs, 1);
  /* aio.workers is lua/luaio/workers.lua, loaded on first use */
}

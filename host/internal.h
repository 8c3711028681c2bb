/*
** internal.h: what the core's files share.  Not installed.
**
** The one way to wait (DESIGN.md): a C function that waits calls
** luaio__enter_wait (which raises if the task is cancelled), links the
** task's waiter node into the list of what it waits on, and returns
** luaio__wait with a continuation.  Whatever completes the wait unlinks the
** node and calls luaio__wake; the scheduler resumes the task later, from
** its ready queue.  Cancellation calls the wait's `abandon` hook, which
** unlinks the node or, when the task was already woken, takes back what it
** had been handed.
*/

#ifndef LUAIO_INTERNAL_H
#define LUAIO_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "lauxlib.h"
#include "luaio.h"

struct task;

#define LUAIO_NSIG 65 /* signal numbers luaio knows are below this */

/* An intrusive FIFO of waiters: the node lives in the waiting task. */
typedef struct waitlist {
  struct waiter *head, *tail;
  size_t n;
} waitlist;

typedef struct waiter {
  struct waiter *prev, *next;
  waitlist *list; /* the list holding the node, NULL if none */
} waiter;

void luaio__list_push(waitlist *l, waiter *w);
void luaio__list_remove(waiter *w);
struct task *luaio__list_pop(waitlist *l); /* NULL when empty */

/* How a wait is abandoned when its task is cancelled.  `woken` is 0 when
   the task still waits (unlink the node and return 1) and 1 when it was
   woken but has not run yet: return 1 after taking back or passing on
   what the wake handed it (the values are still on the task's thread), or
   0 to let the task see the result; its next wait raises then.  With
   woken 0, returning 0 keeps the task waiting: a wait that must not be
   interrupted (a task group waiting for its children) does that, after
   passing the cancellation on. */
typedef struct waitops {
  const char *what; /* for <task … waiting on X> */
  int (*abandon)(struct task *t, int woken);
  /* Optional: what a cancellation of the waiting task passes on (an await
     cancels the awaited task); called after abandon succeeded. */
  void (*propagate)(struct task *t, void *obj);
} waitops;

/* A watch: C code told when a task finishes (gather, wait, task groups).
   The node lives in the watcher's own memory; `done` runs from the
   scheduler right after the task finished, and may only wake or cancel. */
typedef struct watch {
  struct watch *prev, *next;
  struct task *task; /* watched; NULL if unlinked */
  void (*done)(struct watch *w);
} watch;

void luaio__watch(struct task *t, watch *w); /* t must not be done */
void luaio__unwatch(watch *w);

/* Something a binding holds open (a libuv handle and what goes with it).
   luaio_free closes every resource still listed, so a borrowed loop is
   left with no handle of luaio's; `close` must start uv_close and unlist
   the resource, and the memory is freed in the close callback. */
typedef struct resource {
  struct resource *prev, *next;
  void (*close)(struct resource *r);
} resource;

void luaio__res_add(luaio *h, resource *r);
void luaio__res_remove(luaio *h, resource *r);

/* A timer node (a sleep or a timeout deadline), kept in its task or scope.
   Nodes due in the same millisecond share a bucket, in order of `due`;
   the buckets form the host's heap (timer.c). */
typedef struct tnode {
  uint64_t due; /* uv_hrtime() nanoseconds */
  struct tnode *prev, *next;
  struct tbucket *bucket; /* NULL: not armed */
  void (*fire)(struct tnode *n);
} tnode;

typedef struct tbucket {
  uint64_t ms; /* nodes due in ((ms - 1) ms, ms ms] */
  tnode *head, *tail;
  size_t index; /* in the heap, from 1 */
} tbucket;

#define TRECENT 64 /* buckets found again by their millisecond */

/* Work put off until the tasks ready now have run: a binding that would
   write once per task (a Redis command) writes what they all queued once.
   `run` is called from the scheduler, outside any task and any library
   callback; it may write, wake or cancel, but runs no Lua code. */
typedef struct deferred {
  struct deferred *prev, *next;
  void (*run)(struct deferred *d);
  unsigned char queued;
} deferred;

void luaio__defer(luaio *h, deferred *d);   /* once; no-op if queued */
void luaio__undefer(luaio *h, deferred *d); /* before d's memory goes */

/* A cancel scope: a task's root, a timeout, a group body or a shield.  A
   task's root scope is only this; the others are a subscope, which links
   the scope into its task's stack. */
typedef struct scope {
  uint64_t id; /* CancelledError.scope; a task's root: minus its number */
  unsigned char cancelled, shield, active;
  unsigned char sub; /* the `s` of a subscope; 0: a task's root */
} scope;

struct subscope;

/* What a subscope does beyond cancelling. */
typedef struct scopeops {
  void (*drop)(lua_State *L, struct subscope *s); /* left without closing */
  /* Optional: push what the scope is, for errors ("the timeout scope
     created at x.lua:3"). */
  void (*describe)(lua_State *L, struct subscope *s);
} scopeops;

typedef struct subscope {
  scope s;
  scope *parent; /* the next scope out; the task's root at the bottom */
  struct task *task;
  const scopeops *ops;
} subscope;

enum { T_NEW, T_READY, T_RUNNING, T_WAITING, T_DONE };
enum { END_NONE, END_OK, END_ERROR, END_CANCELLED }; /* how a task ended */

/* Task user values. */
enum { TUV_THREAD = 1, TUV_RESULT, TUV_EXTRA, TUV_COUNT = TUV_EXTRA };

/* The fields are ordered so that none needs padding: with its three user
   values the userdata fits mimalloc's 256-byte size class (at most 168
   bytes here). */
typedef struct task {
  const void *magic; /* luaio__task_magic: tells a task from others */
  luaio *h;
  lua_State *co; /* the task's thread; NULL when done */
  /* the wait in progress: a task waits on one thing at a time, linked
     into a list (w) or sleeping (sleep).  Whichever is not in use reads
     as unlinked: a node out of the timer heap has next (w.list) NULL, and
     a waiter leaves the node's bucket NULL. */
  union {
    waiter w;
    tnode sleep;
  };
  const waitops *wops;
  void *wobj;
  /* cancellation */
  scope root;
  scope *scope;      /* innermost */
  waitlist awaiters; /* tasks in t:await() on this one */
  watch *watches;    /* C code told when this one finishes */
  int ref;           /* anchor in the host's live-task table */
  int nwake;         /* values pushed on co for the next resume; before the task
                        starts, its arguments waiting in TUV_RESULT */
  int nres;          /* results kept in TUV_RESULT (>1: a table) */
  unsigned ncancelled; /* cancelled scopes on the stack */
  unsigned run;        /* the aio.run it belongs to: 0 the outermost */
  int spawn_line;      /* with the spawning function in TUV_EXTRA */
  unsigned char state, end, retrieved, wake_err;
  unsigned char run_cancelled;  /* starts even if cancelled before */
  unsigned char escaped;        /* coroutine.running() gave co away: no pool */
  unsigned char has_cancel_msg; /* t:cancel(msg): in the extra table */
  unsigned char has_callbacks;  /* add_done_callback: in the extra table */
} task;

/* The task whose stack holds scope s. */
static inline task *luaio__scope_task(scope *s) {
  return s->sub ? ((subscope *)(void *)s)->task
                : (task *)(void *)((char *)s - offsetof(task, root));
}

/* The next scope out from s; NULL past a task's root. */
static inline scope *luaio__scope_parent(scope *s) {
  return s->sub ? ((subscope *)(void *)s)->parent : NULL;
}

/* A task's number, as in its name "Task-3". */
#define luaio__task_number(t) (-(lua_Integer)(t)->root.id)

#define container_of(p, type, field)                                           \
  ((type *)((char *)(p)-offsetof(type, field)))

struct luaio {
  lua_State *L; /* the main thread */
  uv_loop_t *loop;
  uv_loop_t own_loop;
  unsigned char owns_loop, owns_state, from_module, running, freeing;
  unsigned char dead;       /* freed: only the struct is left (host.c) */
  unsigned char cancelling; /* the end of a run: new tasks are cancelled */
  volatile unsigned char drain_stop; /* poll now: a signal came (main.c) */
  unsigned char free_pending;        /* luaio_free called while running */
  unsigned char eager;
  unsigned char nested_ok; /* `nested` may suspend the running task */
  lua_State *nested;       /* the coroutine luaio's resume runs in the task */
  int eager_depth;
  uv_check_t check;      /* drains the ready queue */
  uv_idle_t idle;        /* keeps poll from blocking while tasks are ready */
  uv_timer_t timer;      /* the earliest node of the heap */
  uv_timer_t pool_timer; /* gives idle pooled threads back (task.c) */
  task **ready;          /* ring buffer */
  size_t rhead, rcount, rcap;
  tbucket **heap; /* 1-based binary min-heap of timer buckets */
  size_t nheap, cheap;
  tbucket *recent[TRECENT]; /* by ms % TRECENT, if still in the heap */
  tbucket **spare;          /* emptied buckets for reuse */
  size_t nspare, cspare;
  task *current;
  size_t ntasks; /* live tasks */
  uint64_t next_id, next_scope;
  unsigned next_run; /* nested aio.run calls so far */
  task **cascade;    /* tasks whose cancellation is being passed on */
  size_t ncascade, ccascade;
  unsigned char cascading;
  int tasks_ref, pool_ref, failed_ref, task_mt_ref;
  lua_State *pool;     /* idle threads for new tasks, on this one's stack */
  int npool, pool_low; /* how many; the fewest since the last trim */
  int coro_ref;        /* the coroutine functions coro.c replaced */
  int exit_ref;        /* the standard os.exit (exit.c) */
  int nanchors, *free_anchors; /* slots of the tasks table, freed ones */
  size_t nfree_anchors, cfree_anchors;
  int nreported;     /* errors sent to on_error */
  double budget_end; /* luaio_step: stop draining after this */
  void (*on_error)(luaio *h, const char *message, void *ud);
  void *ud;
  void (*on_worker)(luaio *worker, void *ud); /* luaio_config's */
  resource *resources;                        /* what bindings hold open */
  deferred *deferred;                         /* luaio__defer's */
  void *slots;                                /* future.c: unsettled futures */
  uint32_t nslots, free_slot, next_gen;
  uv_timer_t step_timer; /* bounds luaio_step's wait */
  /* aio.signal and aio.on_signal objects open, by signal: a script that
     watches a signal owns it (the command's defaults step aside). */
  unsigned short nsigwatch[LUAIO_NSIG];
  struct runsig *runsig; /* signal.c: SIGINT of a module's aio.run */
  void *chport;          /* channel.c: the host's port, NULL until used */
};

/* host.c */
luaio *luaio__host(lua_State *L);      /* the host of upvalue 1 */
luaio *luaio__find_host(lua_State *L); /* NULL if L has no host */
void luaio__ready(task *t);
void luaio__unready(task *t); /* off the ready queue (rare) */
void luaio__report(luaio *h, const char *msg);
int luaio__drain(luaio *h);
void luaio__run_main(luaio *h, task *t);

/* A core object at idx: a full userdata of `size` bytes whose first field
   (a const void *) points at `tag`, told without a registry lookup.  A
   light userdata has no size, so its pointer is never read.  NULL if it is
   not one. */
static inline void *luaio__toobj(lua_State *L, int idx, const void *tag,
                                 size_t size) {
  void *p = lua_touserdata(L, idx);
  if (p == NULL || lua_rawlen(L, idx) != size || *(const void **)p != tag)
    return NULL;
  return p;
}

/* task.c */
extern const char luaio__marker;
extern const char luaio__task_magic; /* a task's own yields */
task *luaio__spawn(lua_State *L, luaio *h, int nargs);
task *luaio__spawn_now(lua_State *L, luaio *h, int nargs);
task *luaio__totask(lua_State *L, int idx); /* NULL if not a task */
task *luaio__checktask(lua_State *L, int idx);
void luaio__pushtask(lua_State *L, task *t);
void luaio__resume(luaio *h, task *t);
int luaio__pushresults(lua_State *L, task *t, int raise);
int luaio__await(lua_State *L, int shielded);
int luaio__await_k(lua_State *L, int shielded, lua_KFunction k);
int luaio__await_results(lua_State *L, task *t);
void luaio__tasks_open(lua_State *L, luaio *h);
void luaio__cancel_all(luaio *h);
void luaio__report_unretrieved(luaio *h);
void luaio__push_failure(lua_State *L, task *t, int ud);

/* wait.c */
task *luaio__enter_wait(lua_State *L, luaio *h);
void luaio__check_suspend(lua_State *L, task *t);
int luaio__wait(lua_State *L, task *t, const waitops *ops, void *obj,
                lua_KContext ctx, lua_KFunction k);
int luaio__resumed(lua_State *L, task *t); /* raises a pending error */
void luaio__wake(task *t, lua_State *from, int n);
int luaio__abandon_list(task *t, int woken);
int luaio__k_values(lua_State *L, int status, lua_KContext ctx);

/* scope.c */
void luaio__scope_push(task *t, subscope *s);
void luaio__scope_pop(lua_State *L, task *t, subscope *s);
void luaio__scope_cancel(scope *s);
void luaio__scope_drop(lua_State *L, task *t, subscope *s);
void luaio__scope_drop_all(lua_State *L, task *t);
scope *luaio__cancelled_scope(task *t); /* NULL if none takes effect */
int luaio__task_cancel(task *t);
void luaio__task_cancel_msg(lua_State *L, task *t, const char *msg);
int luaio__push_cancel_msg(lua_State *L, task *t);
int luaio__shield_fn(lua_State *L, luaio *h);
void luaio__scope_open(lua_State *L);

/* timer.c */
uint64_t luaio__now(void);
void luaio__timer_add(luaio *h, tnode *n, uint64_t due);
void luaio__timer_remove(luaio *h, tnode *n);
void luaio__timer_free(luaio *h); /* the buckets, at the end */
#define luaio__timer_armed(n) ((n)->bucket != NULL)
void luaio__timer_fire(luaio *h);

/* error.c */
void luaio__error_open(lua_State *L);
void luaio__error_push(lua_State *L, const char *type, const char *msg);
void luaio__traceback(lua_State *L, const char *msg, int level);
void luaio__traceback_of(lua_State *L, lua_State *L1, const char *msg,
                         int level);
int luaio__error_raise(lua_State *L, const char *type, const char *fmt, ...);
int luaio__is_error(lua_State *L, int idx, const char *type);
void luaio__check_options(lua_State *L, int idx, const char *const known[]);
void luaio__set_methods(lua_State *L, const char *name);
const char *luaio__push_errmsg(lua_State *L, int idx);
void luaio__cancelled_push(lua_State *L, scope *s);
uint64_t luaio__cancelled_scope_id(lua_State *L, int idx);

/* coro.c */
void luaio__coro_open(lua_State *L, luaio *h);
void luaio__coro_close(lua_State *L, luaio *h); /* puts the originals back */
int luaio__is_resumer(lua_CFunction f);

/* exit.c */
void luaio__exit_open(lua_State *L, luaio *h);
void luaio__exit_close(lua_State *L, luaio *h);

/* The functions each file adds to the module table. */
extern const luaL_Reg luaio__timer_funcs[], luaio__error_funcs[],
    luaio__timeout_funcs[], luaio__taskgroup_funcs[], luaio__combine_funcs[],
    luaio__sync_funcs[], luaio__queue_funcs[];

/* Metatables made when a host attaches to a state. */
void luaio__timeout_open(lua_State *L);
void luaio__taskgroup_open(lua_State *L);
void luaio__future_open(lua_State *L);

/* The bindings: each adds its functions (or sub-tables: aio.fs, aio.udp,
   aio.json, aio.http) to the module table on top of L. */
void luaio__net_open(lua_State *L, luaio *h);       /* bindings/net.c … */
void luaio__net_close_servers(lua_State *L);        /* all stop; pushes them */
void luaio__fs_open(lua_State *L, luaio *h);        /* bindings/fs.c */
void luaio__process_open(lua_State *L, luaio *h);   /* bindings/process.c */
void luaio__signal_open(lua_State *L, luaio *h);    /* bindings/signal.c */
void luaio__run_signal_start(luaio *h, task *main); /* module hosts only */
void luaio__run_signal_stop(luaio *h);
void luaio__json_open(lua_State *L, luaio *h);   /* bindings/json.c */
void luaio__udp_open(lua_State *L, luaio *h);    /* bindings/udp.c */
void luaio__dns_open(lua_State *L, luaio *h);    /* bindings/dns.c */
void luaio__worker_open(lua_State *L, luaio *h); /* bindings/worker.c */

int luaio__stdio_index(lua_State *L); /* bindings/tty.c */

/* module.c */
luaio *luaio__open_host(lua_State *L);

/* preload.c: the Lua modules of lua/, embedded by lua/embed.cmake. */
typedef struct luaio__lua_file {
  const char *name;      /* "luaio.patterns" */
  const char *chunkname; /* "@luaio/patterns.lua" */
  const char *text;
  size_t size;
} luaio__lua_file;

extern const luaio__lua_file luaio__lua_files[]; /* ends with NULL names */
/* The bindings' C modules luaio._x (c_modules.c, generated by CMake). */
extern const luaL_Reg luaio__c_modules[];
int luaio__lua_file_open(lua_State *L, int i);
void luaio__preload_open(lua_State *L); /* into package.preload */

#endif

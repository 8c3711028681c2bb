/*
** main.c: the `luaio` command.  Takes lua5.4's options and runs each chunk
** (-e, -l, the script) as the main task of a run, so top-level code may
** wait.  SIGINT and SIGTERM cancel the main task; a second SIGINT exits.
** With -i, or with no script on a terminal, the chunks run in the REPL's
** foreground instead (the tasks they spawn go on), and the REPL follows.
*/

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef LUAIO_MIMALLOC
#include <mimalloc.h>
#endif

#include "internal.h"
#include "lualib.h"
#include "repl.h"

#define PROGNAME "luaio"
#define LUA_INIT_VAR "LUA_INIT"
#define LUA_INITVARVERSION "LUA_INIT_5_4"

typedef struct app {
  luaio *h;
  task *main;                  /* the task that runs now, if any */
  volatile sig_atomic_t signo; /* the signal that cancelled it */
  repl *repl; /* interactive: the REPL, which takes the signals */
  uv_signal_t sigint, sigterm;
} app;

/* The name the command was invoked by, as lua.c's progname. */
static const char *progname = PROGNAME;

static void message(const char *msg) {
  fprintf(stderr, "%s: %s\n", progname, msg);
  fflush(stderr);
}

static void print_usage(const char *badoption) {
  if (badoption[1] == 'e' || badoption[1] == 'l')
    fprintf(stderr, "%s: '%s' needs argument\n", progname, badoption);
  else
    fprintf(stderr, "%s: unrecognized option '%s'\n", progname, badoption);
  fprintf(stderr,
          "usage: %s [options] [script [args]]\n"
          "Available options are:\n"
          "  -e stat   execute string 'stat'\n"
          "  -i        enter interactive mode after executing 'script'\n"
          "  -l mod    require library 'mod' into global 'mod'\n"
          "  -l g=mod  require library 'mod' into global 'g'\n"
          "  -v        show version information\n"
          "  -E        ignore environment variables\n"
          "  -W        turn warnings on\n"
          "  --        stop handling options\n"
          "  -         stop handling options and execute stdin\n",
          progname);
}

/* SIGINT and SIGTERM.  libuv's handler wakes the loop, whose callback
   (on_signal) cancels the main task, or every task once the main task
   has ended.  But Lua code that does not wait never lets the loop run:
   so our own handler, chained before libuv's, also sets a hook on the
   thread that runs, as lua.c's laction does, and the hook raises the
   running task's cancellation at its next instruction.  A second signal
   before the command is done exits at once.  A script that watches the
   signal itself (aio.signal, aio.on_signal) owns it: then none of this
   happens. */
static app *sig_app;
static struct sigaction uv_action[2]; /* libuv's, for SIGINT and SIGTERM */
static volatile sig_atomic_t sig_pending, sig_count, sig_signo;
static unsigned sig_taken; /* signals the hook handled (main thread only) */

static void on_hook(lua_State *L, lua_Debug *ar) {
  app *a = sig_app;
  task *t = a->h->current;
  scope *s;
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  if (!sig_pending || t == NULL) return; /* the loop has seen it */
  sig_pending = 0;
  /* The REPL cancels its foreground line (or clears the prompt) here, and
     its loop callback leaves the signal; a task running at the prompt is
     cancelled too, or nothing would stop it.  A script's main task is
     cancelled by the loop callback as well. */
  if (a->repl != NULL && luaio__repl_signal(a->repl, sig_signo)) sig_taken++;
  if (t->ncancelled == 0) luaio__task_cancel_msg(L, t, "interrupted");
  if ((s = luaio__cancelled_scope(t)) == NULL) return; /* shielded */
  luaio__cancelled_push(L, s);
  lua_error(L);
}

static void on_signal_c(int signo) {
  app *a = sig_app;
  task *t;
  uv_action[signo == SIGTERM].sa_handler(signo);
  if (a == NULL || a->h->nsigwatch[signo] > 0) return;
  if (a->repl != NULL) luaio__repl_note_signal(signo);
  if (a->repl == NULL && sig_count++ > 0) _exit(128 + signo);
  if (a->repl == NULL) a->signo = signo; /* for the exit status */
  sig_signo = signo;
  sig_pending = 1;
  a->h->drain_stop = 1;
  if ((t = a->h->current) != NULL)
    lua_sethook(a->h->nested != NULL ? a->h->nested : t->co, on_hook,
                LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

static void on_signal(uv_signal_t *s, int signo) {
  app *a = s->data;
  sig_pending = 0;
  if (a->h->nsigwatch[signo] > 0) return;
  if (sig_taken > 0) { /* the hook did what this would do */
    sig_taken--;
    return;
  }
  if (a->repl != NULL && luaio__repl_signal(a->repl, signo)) return;
  a->signo = signo;
  if (a->main != NULL && a->main->state != T_DONE)
    luaio__task_cancel_msg(a->h->L, a->main, "interrupted");
  else /* the run is ending: cancel what is left, again */
    luaio__cancel_all(a->h);
}

/* Watch signo on the loop, then chain our handler before libuv's. */
static void watch_signal(app *a, uv_signal_t *handle, int signo) {
  struct sigaction sa;
  uv_signal_init(luaio_loop(a->h), handle);
  handle->data = a;
  uv_signal_start(handle, on_signal, signo);
  uv_unref((uv_handle_t *)handle);
  sigaction(signo, NULL, &uv_action[signo == SIGTERM]);
  sa = uv_action[signo == SIGTERM];
  if (sa.sa_flags & SA_SIGINFO) return; /* not libuv's handler */
  sa.sa_handler = on_signal_c;
  sigfillset(&sa.sa_mask);
  sigaction(signo, &sa, NULL);
}

/* Run the function under its nargs arguments as the main task; 0 if it
   succeeds, else the exit status, after reporting the failure.  The task
   is left on the stack. */
static int run_task(app *a, int nargs) {
  lua_State *L = a->h->L;
  task *t = luaio__spawn(L, a->h, nargs);
  int status = 0;
  a->main = t;
  if (a->repl != NULL) {
    luaio__repl_wait(a->repl, t);
    t->retrieved = 1;
  } else
    luaio__run_main(a->h, t);
  a->main = NULL;
  if (t->state != T_DONE) /* left to run on by a second ^C */
    status = 130;
  else if (t->end == END_CANCELLED && a->signo != 0)
    status = 128 + a->signo;
  else if (t->end != END_OK) {
    luaio__push_failure(L, t, lua_gettop(L));
    message(lua_tostring(L, -1));
    lua_pop(L, 1);
    status = 1;
  }
  return status;
}

static int run_main(app *a, int nargs) {
  int status = run_task(a, nargs);
  lua_pop(a->h->L, 1);
  return status;
}

/* Report a chunk that does not compile; the message is on the stack. */
static int load_failed(lua_State *L) {
  message(lua_tostring(L, -1));
  lua_pop(L, 1);
  return 1;
}

static int dochunk(app *a, int loaded) {
  if (loaded != LUA_OK) return load_failed(a->h->L);
  return run_main(a, 0);
}

static int dostring(app *a, const char *s, const char *name) {
  lua_State *L = a->h->L;
  return dochunk(a, luaL_loadbuffer(L, s, strlen(s), name));
}

/* -l mod or -l g=mod: g = require(mod), run as a task. */
static int dolibrary(app *a, const char *name) {
  lua_State *L = a->h->L;
  const char *eq = strchr(name, '=');
  int status;
  if (eq != NULL) {
    lua_pushlstring(L, name, (size_t)(eq - name));
    name = eq + 1;
  } else
    lua_pushstring(L, name);
  lua_getglobal(L, "require");
  lua_pushstring(L, name);
  status = run_task(a, 1);
  if (status == 0) {          /* the global takes require's first result */
    int base = lua_gettop(L); /* the task; the global's name below */
    luaio__pushresults(L, luaio__totask(L, base), 0);
    lua_settop(L, base + 1);
    lua_setglobal(L, lua_tostring(L, base - 1));
  }
  lua_pop(L, 2);
  return status;
}

/* arg: the script at 0, its arguments from 1, the rest below. */
static void createargtable(lua_State *L, char **argv, int argc, int script) {
  int i, narg;
  if (script == argc) script = 0; /* no script name */
  narg = argc - (script + 1);
  lua_createtable(L, narg, script + 1);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

static int handle_script(app *a, char **argv) {
  lua_State *L = a->h->L;
  const char *fname = argv[0];
  int status, n, i;
  if (strcmp(fname, "-") == 0 && strcmp(argv[-1], "--") != 0) fname = NULL;
  status = luaL_loadfile(L, fname);
  if (status != LUA_OK) return load_failed(L);
  if (lua_getglobal(L, "arg") != LUA_TTABLE)
    luaL_error(L, "'arg' is not a table");
  n = (int)luaL_len(L, -1);
  luaL_checkstack(L, n + 3, "too many arguments to script");
  for (i = 1; i <= n; i++)
    lua_rawgeti(L, -i, i);
  lua_remove(L, -i);
  return run_main(a, n);
}

#define has_error 1
#define has_i 2
#define has_v 4
#define has_e 8
#define has_E 16

/* As lua.c: which options are there, and where the script is. */
static int collectargs(char **argv, int *first) {
  int args = 0, i;
  *first = 0;
  if (argv[0] == NULL) return 0;
  for (i = 1; argv[i] != NULL; i++) {
    *first = i;
    if (argv[i][0] != '-') return args;
    switch (argv[i][1]) {
    case '-':
      if (argv[i][2] != '\0') return has_error;
      *first = i + 1;
      return args;
    case '\0':
      return args;
    case 'E':
      if (argv[i][2] != '\0') return has_error;
      args |= has_E;
      break;
    case 'W':
      if (argv[i][2] != '\0') return has_error;
      break;
    case 'i':
      if (argv[i][2] != '\0') return has_error;
      args |= has_i; /* the banner is shown on a terminal only */
      break;
    case 'v':
      if (argv[i][2] != '\0') return has_error;
      args |= has_v;
      break;
    case 'e':
      args |= has_e; /* FALLTHROUGH */
    case 'l':
      if (argv[i][2] == '\0') {
        i++;
        if (argv[i] == NULL || argv[i][0] == '-') return has_error;
      }
      break;
    default:
      return has_error;
    }
  }
  *first = i;
  return args;
}

/* Run -e, -l and -W in order. */
static int runargs(app *a, char **argv, int n) {
  int i, status;
  for (i = 1; i < n; i++) {
    int option = argv[i][1];
    switch (option) {
    case 'e':
    case 'l': {
      const char *extra = argv[i] + 2;
      if (*extra == '\0') extra = argv[++i];
      status = option == 'e' ? dostring(a, extra, "=(command line)")
                             : dolibrary(a, extra);
      if (status != 0) return status;
      break;
    }
    case 'W':
      lua_warning(a->h->L, "@on", 0);
      break;
    }
  }
  return 0;
}

static int handle_luainit(app *a) {
  const char *name = "=" LUA_INITVARVERSION;
  const char *init = getenv(name + 1);
  if (init == NULL) {
    name = "=" LUA_INIT_VAR;
    init = getenv(name + 1);
  }
  if (init == NULL) return 0;
  if (init[0] == '@') return dochunk(a, luaL_loadfile(a->h->L, init + 1));
  return dostring(a, init, name);
}

static void print_version(void) {
  printf("%s on %s, libuv %s\n", LUAIO_VERSION, LUA_RELEASE,
         uv_version_string());
  fflush(stdout);
}

/* Write an error nobody retrieved; at the REPL, above the prompt. */
static void on_error(luaio *h, const char *msg, void *ud) {
  app *a = ud;
  (void)h;
  if (a->repl != NULL)
    luaio__repl_report(a->repl, msg);
  else {
    fprintf(stderr, "%s\n", msg);
    fflush(stderr);
  }
}

static int run(app *a, int argc, char **argv, int script, int args) {
  lua_State *L = a->h->L;
  int status, interactive;
  /* Bare `luaio` on a terminal is the REPL; on a pipe it runs stdin. */
  interactive = (args & has_i) ||
                (script == argc && !(args & (has_e | has_v)) && isatty(0));
  if ((args & has_v) || (interactive && isatty(0))) print_version();
  createargtable(L, argv, argc, script);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "luaio");
  lua_call(L, 1, 1);
  lua_setglobal(L, "aio");
  if (interactive &&
      (a->repl = luaio__repl_new(a->h, isatty(0), progname)) == NULL) {
    message("cannot start the REPL: not enough memory");
    return 1;
  }
  if (!(args & has_E) && (status = handle_luainit(a)) != 0) return status;
  if ((status = runargs(a, argv, script)) != 0) return status;
  if (script < argc && (status = handle_script(a, argv + script)) != 0)
    return status;
  if (interactive) return luaio__repl_run(a->repl);
  if (script == argc && !(args & (has_e | has_v)))
    return dochunk(a, luaL_loadfile(L, NULL));
  return 0;
}

/* Start the host on L (its libraries opened, -E applied first). */
static void start_host(app *a, lua_State *L, int args) {
  luaio_config cfg;
  if (args & has_E) {
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  luaL_openlibs(L);
  /* The generational collector, as lua.c: plain-Lua code that allocates
     runs in about two thirds of the incremental mode's time, and task
     workloads are no slower (bench/results/gc.md).  A script goes back
     with collectgarbage("incremental"). */
  lua_gc(L, LUA_GCGEN, 0, 0);
  luaio_config_init(&cfg);
  cfg.L = L;
  cfg.on_error = on_error;
  cfg.ud = a;
  a->h = luaio_new(&cfg);
  if (a->h == NULL) luaL_error(L, "cannot create the event loop");
  sig_app = a;
  watch_signal(a, &a->sigint, SIGINT);
  watch_signal(a, &a->sigterm, SIGTERM);
  /* The host closes the state before it waits for the loop's last
     requests: what the script holds (a FIFO's writer held by io.open) is
     closed first, so a read waiting for it can end. */
  a->h->owns_state = 1;
}

/* Everything the command does with the state, in a protected call as
   lua.c's pmain: a script that breaks `arg` or `package` gets an error,
   not a panic.  Returns the exit status. */
static int pmain(lua_State *L) {
  app *a = lua_touserdata(L, 1);
  int argc = (int)lua_tointeger(L, 2);
  char **argv = lua_touserdata(L, 3);
  int script = 0;
  int args = collectargs(argv, &script);
  lua_settop(L, 0);
  if (args == has_error) {
    print_usage(argv[script]);
    lua_pushinteger(L, 1);
    return 1;
  }
  start_host(a, L, args);
  lua_pushinteger(L, run(a, argc, argv, script, args));
  return 1;
}

/* The state's allocator: lauxlib's, except that a new block comes from
   malloc, not realloc(NULL, n), which is mimalloc's slower path.  Both use
   the one malloc, so blocks made before the switch are freed alike. */
static void *alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  (void)osize;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  return ptr == NULL ? malloc(nsize) : realloc(ptr, nsize);
}

int main(int argc, char **argv) {
  app a;
  lua_State *L;
  int status;
  memset(&a, 0, sizeof a);
  if (argv[0] != NULL && argv[0][0] != '\0') progname = argv[0];
  /* Every worker host shares libuv's one thread pool (4 by default). */
  setenv("UV_THREADPOOL_SIZE", "16", 0); /* unless set */
#ifdef LUAIO_MIMALLOC
  /* Tasks are small objects made by the hundred thousand: in 2 MiB pages
     they cost a page fault per 2 MiB instead of per 4 KiB, the larger
     part of spawning one (docs/performance.md).  MIMALLOC_LARGE_OS_PAGES=0
     in the environment turns it off. */
  mi_option_set_default(mi_option_large_os_pages, 1);
#endif
  L = luaL_newstate();
  if (L == NULL) {
    message("cannot create state: not enough memory");
    return 1;
  }
  lua_setallocf(L, alloc, NULL);
  lua_pushcfunction(L, pmain);
  lua_pushlightuserdata(L, &a);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  if (lua_pcall(L, 3, 1, 0) == LUA_OK)
    status = (int)lua_tointeger(L, -1);
  else { /* from the host's start or the command's own calls */
    const char *msg = lua_tostring(L, -1);
    message(msg != NULL ? msg : "(error object is not a string)");
    status = 1;
  }
  if (a.repl != NULL) luaio__repl_close(a.repl);
  if (a.h != NULL)
    luaio_free(a.h); /* closes the state and the signal handles */
  else
    lua_close(L);
  sig_app = NULL;
  /* After lua_close: the state's print and io.write point at the REPL. */
  if (a.repl != NULL) luaio__repl_free(a.repl);
  return status;
}

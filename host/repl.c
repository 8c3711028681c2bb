/*
** repl.c: the REPL of the `luaio` command.
**
** Each input runs as a task in the foreground while the loop goes on, so
** a line may wait, and the tasks it spawns keep running between prompts.
** Input is read through the loop: a uv_poll_t on fd 0 tells when a key
** (on a terminal) or more piped input is there.  On a terminal each key
** goes to libedit's readline-compatible callback interface; otherwise
** lines are cut from what arrives and each chunk runs as soon as it is
** complete.  A regular file on stdin, which cannot be polled, is read
** with read(2), which never blocks for long on a file.
**
** While the prompt is shown, `print`, `io.write` and io.stdout:write
** clear the prompt and the partial line, write, and draw them again
** below what they wrote.
**
** libedit keeps its state in globals and calls the line handler and the
** completion function without user data: they find the REPL through the
** one static pointer `active`, so a process has one REPL at a time.
*/

#define _GNU_SOURCE /* ppoll */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <editline/readline.h>

#include "lualib.h"
#include "repl.h"

#define PROMPT "> "
#define PROMPT2 ">> "
#define PROMPT_VAR "_PROMPT"
#define PROMPT2_VAR "_PROMPT2"
#define HISTORY_FILE "/.luaio_history"
#define HISTORY_MAX 1000
#define CHUNKNAME "=stdin"
#define EOFMARK "<eof>"
#define READ_SIZE 4096
/* Where liolib keeps the default output file (its IO_OUTPUT). */
#define IO_OUTPUT "_IO_output"
/* Completion takes words made of names, dots and colons. */
#define WORD_BREAKS " \t\n\"\\'`@$><=;|&{}()[],+-*/%^~#"

struct repl {
  luaio *h;
  lua_State *L;
  int tty;      /* stdin is a terminal: prompts, editing, history */
  int has_poll; /* stdin can be polled (not a regular file) */
  int polling;  /* the poll is started */
  int editing;  /* the line handler is installed: a prompt is shown */
  int eof, quit, closed, status;
  int ending;     /* cancelling what is left: signals go to the command */
  int interrupts; /* SIGINTs since the foreground task started */
  task *fg;       /* the task in the foreground; NULL at the prompt */
  int fn_ref;     /* the compiled input waiting to run, or LUA_NOREF */
  int printer_ref;
  const char *progname; /* argv[0]: error messages start with it */
  int cont;             /* the chunk goes on: the second prompt */
  char *prompt;         /* the prompt shown, from _PROMPT or _PROMPT2 */
  char *chunk;          /* the statement being typed, over several lines */
  size_t nchunk, cchunk;
  char *in; /* piped input not yet cut into lines */
  size_t nin, cin;
  char *histfile;
  char **cands; /* the completions being handed to libedit */
  size_t ncands, icand;
  uv_poll_t poll;
  uv_signal_t winch;
};

static repl *active;

/* The printer of results, in Lua: strings as they are, tables nested
   (sorted keys, cycles marked, depth-limited), the rest by tostring. */
static const char printer_src[] =
    "local select, type, tostring, next, rawget, getmetatable, ipairs =\n"
    "  select, type, tostring, next, rawget, getmetatable, ipairs\n"
    "local mtype, sort, concat, fmt = math.type, table.sort, table.concat,\n"
    "  string.format\n"
    "local DEPTH, WIDTH = 5, 72\n"
    "local keywords = {}\n"
    "for w in ('and break do else elseif end false for function goto if '\n"
    "  .. 'in local nil not or repeat return then true until while')\n"
    "  :gmatch('%a+') do keywords[w] = true end\n"
    "local rank = {number = 1, string = 2}\n"
    "local function before(a, b)\n"
    "  local ta, tb = type(a), type(b)\n"
    "  if ta ~= tb then\n"
    "    local ra, rb = rank[ta] or 3, rank[tb] or 3\n"
    "    if ra ~= rb then return ra < rb end\n"
    "    return ta < tb\n"
    "  end\n"
    "  if ta == 'number' or ta == 'string' then return a < b end\n"
    "  if ta == 'boolean' then return b and not a end\n"
    "  return tostring(a) < tostring(b)\n"
    "end\n"
    "local function plain(v)\n"
    "  if type(v) ~= 'table' then return true end\n"
    "  local mt = getmetatable(v)\n"
    "  return type(mt) == 'table' and rawget(mt, '__tostring') ~= nil\n"
    "end\n"
    "local function render(v, indent, seen, depth)\n"
    "  if plain(v) then\n"
    "    if type(v) == 'string' then\n"
    "      return (fmt('%q', v):gsub('\\\\\\n', '\\\\n'))\n"
    "    end\n"
    "    return tostring(v)\n"
    "  end\n"
    "  if seen[v] then return '<cycle>' end\n"
    "  if depth >= DEPTH then return '{...}' end\n"
    "  seen[v] = true\n"
    "  local items, inner, n, keys = {}, indent .. '  ', 0, {}\n"
    "  while rawget(v, n + 1) ~= nil do\n"
    "    n = n + 1\n"
    "    items[n] = render(rawget(v, n), inner, seen, depth + 1)\n"
    "  end\n"
    "  for k in next, v do\n"
    "    if not (mtype(k) == 'integer' and k >= 1 and k <= n) then\n"
    "      keys[#keys + 1] = k\n"
    "    end\n"
    "  end\n"
    "  sort(keys, before)\n"
    "  for _, k in ipairs(keys) do\n"
    "    local name = k\n"
    "    if type(k) ~= 'string' or not k:match('^[%a_][%w_]*$')\n"
    "        or keywords[k] then\n"
    "      name = '[' .. render(k, inner, seen, depth + 1) .. ']'\n"
    "    end\n"
    "    items[#items + 1] = name .. ' = '\n"
    "      .. render(rawget(v, k), inner, seen, depth + 1)\n"
    "  end\n"
    "  seen[v] = nil\n"
    "  if #items == 0 then return '{}' end\n"
    "  local line = '{' .. concat(items, ', ') .. '}'\n"
    "  if #indent + #line <= WIDTH and not line:find('\\n', 1, true) then\n"
    "    return line\n"
    "  end\n"
    "  return '{\\n' .. inner .. concat(items, ',\\n' .. inner) .. '\\n'\n"
    "    .. indent .. '}'\n"
    "end\n"
    "return function(...)\n"
    "  local out = {}\n"
    "  for i = 1, select('#', ...) do\n"
    "    local v = select(i, ...)\n"
    "    out[i] = type(v) == 'string' and v or render(v, '', {}, 0)\n"
    "  end\n"
    "  return concat(out, '\\t')\n"
    "end\n";

static void *grow(char **buf, size_t *cap, size_t need) {
  if (need > *cap) {
    size_t c = *cap ? *cap : 256;
    char *b;
    while (c < need)
      c *= 2;
    b = realloc(*buf, c);
    if (b == NULL) {
      fputs("luaio: out of memory in the REPL\n", stderr);
      abort();
    }
    *buf = b;
    *cap = c;
  }
  return *buf;
}

/* Output. */

/* Clear the prompt and the line being edited; the cursor is left at the
   start of the prompt. */
static void clear_line(repl *r) {
  int cols = 0;
  size_t rows;
  rl_get_screen_size(NULL, &cols);
  rows = cols > 0 && r->prompt != NULL
             ? (strlen(r->prompt) + (size_t)rl_point) / (size_t)cols
             : 0;
  fputc('\r', stdout);
  if (rows > 0) fprintf(stdout, "\033[%zuA", rows);
  fputs("\033[J", stdout);
  fflush(stdout);
}

/* Draw the prompt and the line again, at the start of a line. */
static void redraw(repl *r) {
  (void)r;
  rl_forced_update_display();
  fflush(stdout);
}

/* Write s to f; while a prompt is shown, above it. */
static void write_out(repl *r, FILE *f, const char *s, size_t n) {
  int shown = r->editing;
  if (shown) clear_line(r);
  if (f != stdout) fflush(stdout);
  fwrite(s, 1, n, f);
  if (shown && n > 0 && s[n - 1] != '\n') fputc('\n', f);
  fflush(f);
  if (shown) redraw(r);
}

void luaio__repl_report(repl *r, const char *msg) {
  size_t n = strlen(msg);
  write_out(r, stderr, msg, n);
  if (n == 0 || msg[n - 1] != '\n') write_out(r, stderr, "\n", 1);
}

/* An error, as lua.c reports it: after the program's name. */
static void report_error(repl *r, const char *msg) {
  lua_State *L = r->L;
  lua_pushfstring(L, "%s: %s", r->progname, msg);
  luaio__repl_report(r, lua_tostring(L, -1));
  lua_pop(L, 1);
}

/* print(...) at the REPL: Lua's print, written above the prompt. */
static int repl_print(lua_State *L) {
  repl *r = lua_touserdata(L, lua_upvalueindex(1));
  int n = lua_gettop(L), i;
  size_t len;
  const char *s;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (i = 1; i <= n; i++) {
    if (i > 1) luaL_addchar(&b, '\t');
    luaL_tolstring(L, i, NULL);
    luaL_addvalue(&b);
  }
  luaL_addchar(&b, '\n');
  luaL_pushresult(&b);
  s = lua_tolstring(L, -1, &len);
  write_out(r, stdout, s, len);
  return 0;
}

/* io.write(...) and file:write(...) at the REPL: Lua's (upvalue 2), with
   the prompt cleared first when they write to stdout.  Upvalue 3 tells
   which: true for the method. */
static int repl_write(lua_State *L) {
  repl *r = lua_touserdata(L, lua_upvalueindex(1));
  int n = lua_gettop(L), status, shown, nl = 0;
  luaL_Stream *p;
  if (lua_toboolean(L, lua_upvalueindex(3)))
    p = luaL_testudata(L, 1, LUA_FILEHANDLE);
  else {
    lua_getfield(L, LUA_REGISTRYINDEX, IO_OUTPUT);
    p = luaL_testudata(L, -1, LUA_FILEHANDLE);
    lua_pop(L, 1);
  }
  shown = r->editing && p != NULL && p->f == stdout;
  if (shown) {
    size_t len = 0;
    const char *s =
        lua_type(L, n) == LUA_TSTRING ? lua_tolstring(L, n, &len) : NULL;
    nl = s != NULL && len > 0 && s[len - 1] == '\n';
    clear_line(r);
  }
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_insert(L, 1);
  status = lua_pcall(L, n, LUA_MULTRET, 0);
  if (shown) {
    fflush(stdout);
    if (!nl) fputc('\n', stdout);
    redraw(r);
  }
  if (status != LUA_OK) return lua_error(L);
  return lua_gettop(L);
}

/* Replace print, io.write and the write method of files. */
static void wrap_output(repl *r) {
  lua_State *L = r->L;
  lua_pushlightuserdata(L, r);
  lua_pushcclosure(L, repl_print, 1);
  lua_setglobal(L, "print");
  if (lua_getglobal(L, "io") == LUA_TTABLE) {
    lua_pushlightuserdata(L, r);
    lua_getfield(L, -2, "write");
    lua_pushboolean(L, 0);
    lua_pushcclosure(L, repl_write, 3);
    lua_setfield(L, -2, "write");
  }
  lua_pop(L, 1);
  if (luaL_getmetatable(L, LUA_FILEHANDLE) == LUA_TTABLE &&
      lua_getfield(L, -1, "__index") == LUA_TTABLE) {
    lua_pushlightuserdata(L, r);
    lua_getfield(L, -2, "write");
    lua_pushboolean(L, 1);
    lua_pushcclosure(L, repl_write, 3);
    lua_setfield(L, -2, "write");
  }
  lua_settop(L, 0);
}

/* Input. */

static void on_line(char *line);

static void start_poll(repl *r);

/* get_prompt(name, default) -> tostring(_G[name]) or the default, as
   lua.c's get_prompt: in a protected call, __tostring may fail. */
static int get_prompt(lua_State *L) {
  if (lua_getglobal(L, lua_tostring(L, 1)) == LUA_TNIL)
    lua_pushvalue(L, 2);
  else
    luaL_tolstring(L, -1, NULL);
  return 1;
}

/* Set r->prompt to the prompt for the line to read now. */
static void set_prompt(repl *r) {
  lua_State *L = r->L;
  const char *p = r->cont ? PROMPT2 : PROMPT;
  char *copy;
  lua_pushcfunction(L, get_prompt);
  lua_pushstring(L, r->cont ? PROMPT2_VAR : PROMPT_VAR);
  lua_pushstring(L, p);
  if (lua_pcall(L, 2, 1, 0) == LUA_OK) p = lua_tostring(L, -1);
  copy = strdup(p);
  lua_pop(L, 1);
  if (copy == NULL) return; /* the last one is kept */
  free(r->prompt);
  r->prompt = copy;
}

static void show_prompt(repl *r) {
  if (r->closed || r->eof || r->quit) return;
  if (r->tty && !r->editing) {
    active = r;
    set_prompt(r);
    rl_callback_handler_install(r->prompt != NULL ? r->prompt : PROMPT,
                                on_line);
    r->editing = 1;
    fflush(stdout);
  }
  start_poll(r);
}

static void end_editing(repl *r) {
  if (r->editing) {
    rl_callback_handler_remove();
    r->editing = 0;
  }
}

static void history_add(repl *r, const char *entry) {
  if (!r->tty) return;
  add_history(entry);
  if (r->histfile != NULL) write_history(r->histfile);
}

static void reset_chunk(repl *r) {
  r->nchunk = 0;
  r->cont = 0;
}

static int blank(const char *s) {
  while (*s == ' ' || *s == '\t' || *s == '\r')
    s++;
  return *s == '\0';
}

/* The compiled function on top of L is the next input to run. */
static void take_function(repl *r) {
  r->fn_ref = luaL_ref(r->L, LUA_REGISTRYINDEX);
}

/* A syntax error whose message ends in <eof>: the chunk goes on. */
static int incomplete(lua_State *L, int status) {
  size_t len;
  const char *msg;
  if (status != LUA_ERRSYNTAX) return 0;
  msg = lua_tolstring(L, -1, &len);
  return len >= sizeof EOFMARK - 1 &&
         strcmp(msg + len - (sizeof EOFMARK - 1), EOFMARK) == 0;
}

/* One more line of input: compile what was typed so far, as lua.c does:
   the first line as `return <line>` if that compiles (`=expr` too, as
   Lua 5.1's REPL took it), else as a statement; a chunk that ends too
   early waits for the next line. */
static void input_line(repl *r, const char *line) {
  lua_State *L = r->L;
  size_t len = strlen(line);
  int status;
  if (r->nchunk == 0) {
    if (blank(line)) return;
    lua_pushfstring(L, "return %s;", line[0] == '=' ? line + 1 : line);
    status =
        luaL_loadbuffer(L, lua_tostring(L, -1), lua_rawlen(L, -1), CHUNKNAME);
    lua_remove(L, -2);
    if (status == LUA_OK) {
      history_add(r, line);
      take_function(r);
      return;
    }
    lua_pop(L, 1);
  } else {
    grow(&r->chunk, &r->cchunk, r->nchunk + 1);
    r->chunk[r->nchunk++] = '\n';
  }
  grow(&r->chunk, &r->cchunk, r->nchunk + len + 1);
  memcpy(r->chunk + r->nchunk, line, len + 1);
  r->nchunk += len;
  status = luaL_loadbuffer(L, r->chunk, r->nchunk, CHUNKNAME);
  if (incomplete(L, status)) {
    lua_pop(L, 1);
    r->cont = 1;
    return;
  }
  history_add(r, r->chunk);
  reset_chunk(r);
  if (status == LUA_OK)
    take_function(r);
  else {
    report_error(r, lua_tostring(L, -1));
    lua_pop(L, 1);
  }
}

/* The line handler of libedit: a line typed, or NULL at Ctrl-D. */
static void on_line(char *line) {
  repl *r = active;
  end_editing(r);
  if (line == NULL) {
    fputs("\n", stdout);
    fflush(stdout);
    r->eof = 1;
    return;
  }
  input_line(r, line);
  free(line);
}

/* Read what stdin has; end of input at 0 or an error. */
static void read_input(repl *r) {
  ssize_t n;
  grow(&r->in, &r->cin, r->nin + READ_SIZE);
  n = read(0, r->in + r->nin, READ_SIZE);
  if (n > 0)
    r->nin += (size_t)n;
  else if (n == 0 || (errno != EAGAIN && errno != EINTR))
    r->eof = 1;
}

/* Feed the next complete piped line to input_line; 0 if there is none. */
static int next_line(repl *r) {
  char *nl = r->nin > 0 ? memchr(r->in, '\n', r->nin) : NULL;
  size_t len;
  if (nl == NULL) return 0;
  *nl = '\0';
  len = (size_t)(nl - r->in);
  if (len > 0 && r->in[len - 1] == '\r') r->in[len - 1] = '\0';
  input_line(r, r->in);
  r->nin -= len + 1;
  memmove(r->in, nl + 1, r->nin);
  return 1;
}

/* The end of piped input: its last line, then what remains of a chunk,
   which can only be a syntax error now. */
static void end_of_input(repl *r) {
  lua_State *L = r->L;
  if (r->nin > 0) {
    grow(&r->in, &r->cin, r->nin + 1);
    r->in[r->nin] = '\0';
    r->nin = 0;
    input_line(r, r->in);
  }
  if (r->fn_ref == LUA_NOREF && r->nchunk > 0) {
    if (luaL_loadbuffer(L, r->chunk, r->nchunk, CHUNKNAME) == LUA_OK)
      take_function(r);
    else {
      report_error(r, lua_tostring(L, -1));
      lua_pop(L, 1);
    }
    reset_chunk(r);
  }
}

/* SIGINT, seen by the command's signal handler before the loop sees it. */
static volatile sig_atomic_t sigint_seen;

void luaio__repl_note_signal(int signo) {
  if (signo == SIGINT) sigint_seen = 1;
}

/* libedit's reads of keys.  rl_callback_read_char runs when the poll says
   a key is there, so a first read never waits; but an incremental search
   (Ctrl-R) or an escape sequence reads its further keys itself, waiting
   with the loop stopped.  A SIGINT in that wait ends the poll (poll is
   never restarted) and gives libedit a Ctrl-G, which abandons the search
   and restores the line; the loop then handles the SIGINT as at the
   prompt, clearing the line. */
static int read_key(FILE *f) {
  struct pollfd p;
  unsigned char c;
  ssize_t n;
  sigset_t block, old;
  int key = EOF;
  (void)f;
  p.fd = 0;
  p.events = POLLIN;
  /* SIGINT stays blocked but inside ppoll, so one that comes between the
     check and the wait (while libedit handled the key before) ends the
     wait instead of being missed. */
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  for (;;) {
    if (sigint_seen) {
      key = 0x07; /* Ctrl-G: abort */
      break;
    }
    if (ppoll(&p, 1, NULL, &old) < 0) {
      if (errno != EINTR) break;
      continue;
    }
    if ((n = read(0, &c, 1)) == 1) {
      key = c;
      break;
    }
    if (n == 0 || (errno != EINTR && errno != EAGAIN)) break;
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return key;
}

static void on_readable(uv_poll_t *p, int status, int events) {
  repl *r = p->data;
  (void)events;
  if (status < 0)
    r->eof = 1;
  else if (r->tty)
    rl_callback_read_char();
  else
    read_input(r);
}

static void start_poll(repl *r) {
  if (r->has_poll && !r->polling && !r->closed) {
    uv_poll_start(&r->poll, UV_READABLE, on_readable);
    r->polling = 1;
  }
}

static void stop_poll(repl *r) {
  if (r->polling) {
    uv_poll_stop(&r->poll);
    r->polling = 0;
  }
}

/* Wait, the loop going on, for the next input to run, and leave it
   compiled in fn_ref; 0 at the end of input. */
static int read_chunk(repl *r) {
  luaio *h = r->h;
  while (r->fn_ref == LUA_NOREF && !r->quit) {
    if (!r->tty && next_line(r)) continue;
    if (r->eof) {
      if (!r->tty) end_of_input(r);
      break;
    }
    if (r->has_poll) {
      show_prompt(r);
      uv_run(h->loop, UV_RUN_ONCE);
    } else {
      read_input(r);
      uv_run(h->loop, UV_RUN_NOWAIT);
    }
  }
  stop_poll(r);
  end_editing(r);
  return r->fn_ref != LUA_NOREF && !r->quit;
}

/* Completion. */

/* Replace the value on top by its field `name`, read without calling
   anything: raw reads, through __index tables. */
static void raw_field(lua_State *L, const char *name, size_t len) {
  int depth;
  for (depth = 0; depth < 8; depth++) {
    if (lua_type(L, -1) == LUA_TTABLE) {
      lua_pushlstring(L, name, len);
      if (lua_rawget(L, -2) != LUA_TNIL) {
        lua_remove(L, -2);
        return;
      }
      lua_pop(L, 1);
    }
    if (luaL_getmetafield(L, -1, "__index") == LUA_TNIL) break;
    lua_remove(L, -2);
  }
  lua_pop(L, 1);
  lua_pushnil(L);
}

static int is_name(const char *s, size_t len) {
  size_t i;
  if (len == 0 || !(s[0] == '_' || ((s[0] | 32) >= 'a' && (s[0] | 32) <= 'z')))
    return 0;
  for (i = 1; i < len; i++)
    if (!(s[i] == '_' || (s[i] >= '0' && s[i] <= '9') ||
          ((s[i] | 32) >= 'a' && (s[i] | 32) <= 'z')))
      return 0;
  return 1;
}

/* Add to the set at index set the names of the value on top (its fields,
   then those of its __index tables) that start with the partial word;
   only functions if `methods`, each with a `(` after it.  Pops the
   value. */
static void add_names(lua_State *L, int set, const char *prefix, size_t np,
                      const char *part, size_t npart, int methods) {
  int depth;
  for (depth = 0; depth < 8; depth++) {
    if (lua_type(L, -1) == LUA_TTABLE) {
      lua_pushnil(L);
      while (lua_next(L, -2)) {
        size_t len;
        const char *k;
        if (lua_type(L, -2) == LUA_TSTRING &&
            (!methods || lua_type(L, -1) == LUA_TFUNCTION)) {
          k = lua_tolstring(L, -2, &len);
          if (len >= npart && memcmp(k, part, npart) == 0 && is_name(k, len)) {
            lua_pushlstring(L, prefix, np);
            lua_pushvalue(L, -3);
            if (methods) /* a method is called: open its argument list */
              lua_pushliteral(L, "(");
            lua_concat(L, methods ? 3 : 2);
            lua_pushboolean(L, 1);
            lua_rawset(L, set);
          }
        }
        lua_pop(L, 1);
      }
    }
    if (luaL_getmetafield(L, -1, "__index") == LUA_TNIL) break;
    lua_remove(L, -2);
  }
  lua_pop(L, 1);
}

static const char *const keywords[] = {
    "and",    "break",    "do",   "else", "elseif", "end",   "false", "for",
    "goto",   "function", "if",   "in",   "local",  "nil",   "not",   "or",
    "repeat", "return",   "then", "true", "until",  "while", NULL};

/* collect(text) -> sorted array of the words that complete text */
static int collect(lua_State *L) {
  size_t n, i, len;
  const char *text = luaL_checklstring(L, 1, &n), *sep = NULL, *p;
  lua_settop(L, 1);
  lua_newtable(L); /* 2: the set */
  for (p = text; p < text + n; p++)
    if (*p == '.' || *p == ':') sep = p;
  if (sep == NULL) {
    for (i = 0; keywords[i] != NULL; i++)
      if (strncmp(keywords[i], text, n) == 0) {
        lua_pushboolean(L, 1);
        lua_setfield(L, 2, keywords[i]);
      }
    lua_pushglobaltable(L);
    add_names(L, 2, "", 0, text, n, 0);
  } else {
    lua_pushglobaltable(L);
    for (p = text; p < sep; p += len + 1) {
      const char *dot = memchr(p, '.', (size_t)(sep - p));
      len = dot ? (size_t)(dot - p) : (size_t)(sep - p);
      if (!is_name(p, len)) goto done; /* not a plain name: no guess */
      raw_field(L, p, len);
    }
    if (*sep == ':') {
      if (luaL_getmetafield(L, -1, "__index") == LUA_TNIL) goto done;
      lua_remove(L, -2);
    }
    add_names(L, 2, text, (size_t)(sep + 1 - text), sep + 1,
              n - (size_t)(sep + 1 - text), *sep == ':');
  }
done:
  lua_settop(L, 2);
  lua_newtable(L); /* 3: the array */
  i = 0;
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_rawseti(L, 3, (lua_Integer)++i);
  }
  lua_getglobal(L, "table");
  lua_getfield(L, -1, "sort");
  lua_pushvalue(L, 3);
  lua_call(L, 1, 0);
  lua_settop(L, 3);
  return 1;
}

static void free_cands(repl *r) {
  size_t i;
  for (i = 0; i < r->ncands; i++)
    free(r->cands[i]);
  free(r->cands);
  r->cands = NULL;
  r->ncands = r->icand = 0;
}

/* The generator for rl_completion_matches: the candidates in order. */
static char *next_cand(const char *text, int state) {
  repl *r = active;
  (void)text;
  if (state == 0) r->icand = 0;
  if (r->icand >= r->ncands) return NULL;
  return strdup(r->cands[r->icand++]);
}

static char **complete(const char *text, int start, int end) {
  repl *r = active;
  lua_State *L = r->L;
  int top = lua_gettop(L);
  (void)start;
  (void)end;
  rl_attempted_completion_over = 1; /* never file names */
  free_cands(r);
  lua_pushcfunction(L, collect);
  lua_pushstring(L, text);
  if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_istable(L, -1)) {
    size_t i, n = lua_rawlen(L, -1);
    r->cands = calloc(n + 1, sizeof *r->cands);
    for (i = 0; r->cands != NULL && i < n; i++) {
      lua_rawgeti(L, -1, (lua_Integer)i + 1);
      r->cands[i] = strdup(lua_tostring(L, -1));
      lua_pop(L, 1);
      if (r->cands[i] != NULL) r->ncands++;
    }
  }
  lua_settop(L, top);
  if (r->ncands == 0) return NULL;
  return rl_completion_matches(text, next_cand);
}

/* Running. */

static void on_winch(uv_signal_t *s, int signo) {
  (void)s;
  (void)signo;
  rl_resize_terminal();
}

void luaio__repl_wait(repl *r, task *t) {
  luaio *h = r->h;
  int stuck = 0;
  stop_poll(r);
  r->fg = t;
  r->interrupts = 0;
  h->running++;
  while (t->state != T_DONE && r->fg == t) {
    if (uv_run(h->loop, UV_RUN_ONCE) == 0 && h->rcount == 0 &&
        t->state != T_DONE) {
      if (stuck++ > 0) break; /* it waits on, even cancelled */
      luaio__task_cancel_msg(h->L, t,
                             "deadlock: the input waits for something "
                             "that nothing will do");
    }
  }
  h->running--;
  r->fg = NULL;
}

/* Print what the finished task at the top of the stack returned, or its
   error.  The results go to the global print, as lua.c's l_print does;
   the REPL's own print shows them pretty-printed. */
static void print_results(repl *r, task *t) {
  lua_State *L = r->L;
  int ud = lua_gettop(L), n;
  if (t->end == END_OK) {
    n = luaio__pushresults(L, t, 0);
    if (n == 0) goto done;
    luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
    lua_getglobal(L, "print");
    if (lua_tocfunction(L, -1) != repl_print) {
      lua_insert(L, -(n + 1));
      if (lua_pcall(L, n, 0, 0) != LUA_OK) {
        lua_pushfstring(L, "error calling 'print' (%s)",
                        luaio__push_errmsg(L, -1));
        report_error(r, lua_tostring(L, -1));
      }
    } else {
      lua_pop(L, 1);
      lua_rawgeti(L, LUA_REGISTRYINDEX, r->printer_ref);
      lua_insert(L, -(n + 1));
      if (lua_pcall(L, n, 1, 0) == LUA_OK) {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        write_out(r, stdout, s, len);
        write_out(r, stdout, "\n", 1);
      } else {
        lua_pushfstring(L, "error printing the results: %s",
                        luaio__push_errmsg(L, -1));
        report_error(r, lua_tostring(L, -1));
      }
    }
  } else {
    luaio__pushresults(L, t, 0); /* retrieved: not reported again */
    if (t->end == END_CANCELLED)
      report_error(r, luaio__push_errmsg(L, -1));
    else {
      luaio__push_failure(L, t, ud);
      report_error(r, lua_tostring(L, -1));
    }
  }
done:
  lua_settop(L, ud);
}

/* Run the compiled input as the foreground task. */
static void run_input(repl *r) {
  lua_State *L = r->L;
  task *t;
  lua_rawgeti(L, LUA_REGISTRYINDEX, r->fn_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, r->fn_ref);
  r->fn_ref = LUA_NOREF;
  t = luaio__spawn(L, r->h, 0);
  luaio__repl_wait(r, t);
  if (t->state == T_DONE)
    print_results(r, t);
  else if (!r->quit) {
    lua_pushfstring(L, "%s goes on in the background",
                    luaL_tolstring(L, -1, NULL));
    luaio__repl_report(r, lua_tostring(L, -1));
  }
  lua_pop(L, lua_gettop(L));
}

/* Cancel the tasks still running and wait until they are done. */
static void cancel_rest(repl *r) {
  luaio *h = r->h;
  char msg[64];
  if (h->ntasks == 0) return;
  snprintf(msg, sizeof msg, "cancelling %zu task%s", h->ntasks,
           h->ntasks == 1 ? "" : "s");
  luaio__repl_report(r, msg);
  luaio__cancel_all(h);
  h->running++;
  while (h->ntasks > 0)
    if (uv_run(h->loop, UV_RUN_ONCE) == 0 && h->rcount == 0) break;
  h->running--;
}

int luaio__repl_run(repl *r) {
  lua_settop(r->L, 0);
  while (read_chunk(r))
    run_input(r);
  r->ending = 1;
  cancel_rest(r);
  return r->status;
}

int luaio__repl_signal(repl *r, int signo) {
  if (signo == SIGINT) sigint_seen = 0;
  if (r->ending) return 0;
  if (signo == SIGINT && r->fg != NULL) {
    if (r->tty) write_out(r, stdout, "\n", 1); /* after the ^C echoed */
    if (r->interrupts++ == 0)
      luaio__task_cancel_msg(r->L, r->fg, "interrupted");
    else
      r->fg = NULL; /* a second ^C: back to the prompt */
    return 1;
  }
  if (signo == SIGINT && r->tty && !r->eof && !r->quit) {
    if (r->editing) {
      fputs("^C\r\n", stdout);
      fflush(stdout);
      end_editing(r);
    }
    reset_chunk(r); /* the loop shows a new prompt */
    return 1;
  }
  r->quit = 1;
  r->status = 128 + signo;
  if (r->fg != NULL) luaio__task_cancel_msg(r->L, r->fg, "interrupted");
  return 1;
}

/* Life cycle. */

static void history_open(repl *r) {
  const char *home = getenv("HOME");
  if (home == NULL || *home == '\0') return;
  r->histfile = malloc(strlen(home) + sizeof HISTORY_FILE);
  if (r->histfile == NULL) return;
  strcpy(r->histfile, home);
  strcat(r->histfile, HISTORY_FILE);
  using_history();
  stifle_history(HISTORY_MAX);
  read_history(r->histfile);
}

repl *luaio__repl_new(luaio *h, int tty, const char *progname) {
  lua_State *L = h->L;
  repl *r = calloc(1, sizeof *r);
  int flags;
  if (r == NULL) return NULL;
  r->h = h;
  r->L = L;
  r->tty = tty;
  r->fn_ref = LUA_NOREF;
  r->progname = progname;
  active = r;
  if (luaL_loadbuffer(L, printer_src, sizeof printer_src - 1, "=repl") !=
          LUA_OK ||
      lua_pcall(L, 0, 1, 0) != LUA_OK) {
    lua_pop(L, 1);
    free(r);
    return NULL;
  }
  r->printer_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  wrap_output(r);
  /* A regular file cannot be polled; it is read as it comes. */
  if (uv_poll_init(h->loop, &r->poll, 0) == 0) {
    r->has_poll = 1;
    r->poll.data = r;
    /* libuv made stdin non-blocking; it is read only when ready, and
       the terminal (shared with the shell) stays as it was. */
    flags = fcntl(0, F_GETFL);
    if (flags != -1) fcntl(0, F_SETFL, flags & ~O_NONBLOCK);
  }
  if (tty) {
    rl_catch_signals = 0; /* SIGINT is the loop's */
    rl_getc_function = read_key;
    rl_catch_sigwinch = 0;
    rl_readline_name = "luaio";
    rl_attempted_completion_function = complete;
    rl_basic_word_break_characters = WORD_BREAKS;
    rl_completer_word_break_characters = (char *)WORD_BREAKS;
    rl_completion_append_character = '\0';
    history_open(r);
    uv_signal_init(h->loop, &r->winch);
    uv_signal_start(&r->winch, on_winch, SIGWINCH);
    uv_unref((uv_handle_t *)&r->winch);
  }
  return r;
}

void luaio__repl_close(repl *r) {
  if (r->closed) return;
  stop_poll(r);
  end_editing(r);
  r->closed = 1;
  if (r->has_poll) uv_close((uv_handle_t *)&r->poll, NULL);
  if (r->tty) uv_close((uv_handle_t *)&r->winch, NULL);
  if (r->fn_ref != LUA_NOREF) {
    luaL_unref(r->L, LUA_REGISTRYINDEX, r->fn_ref);
    r->fn_ref = LUA_NOREF;
  }
}

void luaio__repl_free(repl *r) {
  free_cands(r);
  free(r->chunk);
  free(r->in);
  free(r->histfile);
  free(r->prompt);
  if (active == r) active = NULL;
  free(r);
}

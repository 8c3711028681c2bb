/*
** repl.h: the interactive prompt of the `luaio` command (repl.c).  Only
** the command uses it: the library and the Lua module do not link it.
*/

#ifndef LUAIO_REPL_H
#define LUAIO_REPL_H

#include "internal.h"

typedef struct repl repl;

/* A REPL on h reading stdin: with editing, prompts and history when tty
   is nonzero, else statements as they arrive.  It replaces the globals
   `print` and `io.write` (and io.stdout:write) by versions that keep the
   line being edited intact.  Error messages start with progname.  NULL
   when out of memory. */
repl *luaio__repl_new(luaio *h, int tty, const char *progname);

/* Run the task t in the foreground until it is done, the loop going on:
   SIGINT cancels it; the other tasks keep running after it. */
void luaio__repl_wait(repl *r, task *t);

/* Read, run and print until the end of the input; then cancel the tasks
   still running ("cancelling 2 tasks") and wait for them.  Returns the
   exit status. */
int luaio__repl_run(repl *r);

/* A signal the command caught: SIGINT cancels the foreground task or
   clears the line; others end the REPL.  0 when the REPL has ended and
   leaves the signal to the command. */
int luaio__repl_signal(repl *r, int signo);

/* From the command's signal handler (async-signal-safe): a signal is on
   its way to the loop; a SIGINT ends a key wait inside the line editor. */
void luaio__repl_note_signal(int signo);

/* Write a message (an error report) to stderr without garbling the line
   being edited. */
void luaio__repl_report(repl *r, const char *msg);

/* Close the REPL's handles (before luaio_free); free it after lua_close,
   since the functions it put in the state point at it. */
void luaio__repl_close(repl *r);
void luaio__repl_free(repl *r);

#endif

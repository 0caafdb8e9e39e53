/*
** What the files of the asynchost executable (host/) share.
*/
#ifndef AH_HOST_H
#define AH_HOST_H

#include "lua.h"

#include "asynchost.h"             /* the internal API (bindings/) */
#include "../include/asynchost.h"

/* Opens the standard libraries and asynchost's modules (host.c). */
void ah_openlibs (lua_State *L);

/* Makes asynchost's modules loadable by require (host.c). */
void ah_openmodules (lua_State *L);

/* Reads, runs and prints lines from stdin until end of file (repl.c):
** with readline on the loop when stdin is a terminal, each input as a
** task.  Leaves the stack as it found it; returns 0. */
int ah_repl (lua_State *L);

/* Sets the globals 'async' (the module) and 'await', unless set: the
** REPL's, also given to a piped stdin (repl.c). */
void ah_replglobals (lua_State *L);

/* What the REPL shows and completes (replshow.c). */

/* Prints its arguments, as lua's REPL prints the values of an input but
** with tables readable (bounded, cycles marked); a lua_CFunction. */
int ah_printvalues (lua_State *L);

/* readline's completion of the word 'text': globals, fields and methods,
** never file names.  NULL if none; runs no metamethod. */
char **ah_replcomplete (lua_State *L, const char *text);


/* The REPL's state and what its two files give each other: repl.c runs
** inputs as tasks, commands and the prompt; replio.c is the terminal
** (readline on the loop, output while the prompt is shown, history,
** Ctrl-C, Ctrl-Z, resizing). */

#define AH_HISTFILE  ".asynchost_history"  /* in $HOME */

typedef struct ah_replstate {
  lua_State *L;             /* the main thread */
  ah_host *h;
  ah_sched *S;
  int tty;                  /* readline on a terminal, else plain lines */
  uv_poll_t input;          /* stdin is readable (tty) */
  uv_signal_t sigint, sigwinch, sigtstp;
  int nclosing;             /* handles still closing at the end */
  ah_waiter w;              /* hangs on the running input's task */
  ah_task *task;            /* that task, or NULL */
  int taskref;              /* a registry ref of it */
  int done;                 /* it has ended */
  int intref;               /* Ctrl-C cancelled it: where it was, or
                            ** LUA_NOREF */
  int ninputs;              /* inputs run, to name their tasks */
  char *chunk;              /* lines of an unfinished statement, or NULL */
  int shown;                /* the prompt is on the screen (tty) */
  int hidden;               /* cleared for output, to be drawn again */
  int endnl;                /* that output ended with a newline */
  int ctrlc;                /* Ctrl-C at an empty prompt: one more exits */
  int quit;
  char *histfile;           /* NULL: no history file */
  int fdflags;              /* stdin's file status flags, to restore */
} ah_replstate;

/* repl.c: the error value on top goes to stderr as a message, popped. */
void ah_replreport (lua_State *L);

/* repl.c: a line was read; runs a command, starts an input as a task, or
** keeps the line for an unfinished statement. */
void ah_repldoline (ah_replstate *r, const char *line);

/* repl.c: pushes the prompt for the next line and returns it. */
const char *ah_replpushprompt (ah_replstate *r);

/* replio.c: makes 'r' the running REPL and takes Ctrl-C; ah_replend gives
** Ctrl-C back to libuv and closes the last handle. */
void ah_replbegin (ah_replstate *r);
void ah_replend (ah_replstate *r);

/* replio.c: readline on the terminal (0 if stdin cannot be polled), with
** the history and the output wrappers; and its end. */
int ah_replstartterminal (ah_replstate *r);
void ah_replendterminal (ah_replstate *r);

/* replio.c: shows the prompt and reads the next line (tty). */
void ah_replshowprompt (ah_replstate *r);

/* replio.c: after a loop turn, output on a line of its own, then the
** prompt and the line being edited again. */
void ah_replshowagain (ah_replstate *r);

/* replio.c: adds an input to the history and its file (tty), unless it
** repeats. */
void ah_repladdhistory (ah_replstate *r, const char *chunk);

#endif

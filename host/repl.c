/*
** The interactive REPL of the asynchost executable.
**
** On a terminal, GNU readline reads lines through its callback interface,
** fed by a uv_poll on stdin: the loop keeps running while the prompt
** waits, so background tasks go on (and print) while the user types.  Each
** input runs as a task of its own; when it ends, its values are printed
** and the prompt comes back.  Ctrl-C cancels the running input, or clears
** the line at the prompt.  Without a terminal (asynchost -i < file) lines
** are read with fgets between inputs, as lua.c does without readline.
**
** Output of tasks while the prompt is shown goes through wrappers of
** print, io.write and file:write that clear the prompt line first; the
** prompt and the line being edited are drawn again after the loop turn.
**
** How values print and what Tab completes are in replshow.c.
*/

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>

#include <readline/readline.h>
#include <readline/history.h>

#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

#include "asynchost.h"             /* the internal API (bindings/) */
#include "../include/asynchost.h"
#include "host.h"


#define PROMPT   "> "
#define PROMPT2  ">> "

#define CHUNKNAME  "=stdin"

/* how a syntax error for a statement cut short ends */
#define EOFMARK  "<eof>"
#define MARKLEN  (sizeof(EOFMARK) - 1)

#define HISTFILE  ".asynchost_history"  /* in $HOME */
#define HISTMAX   1000                  /* lines kept in it */

#define EXITHINT  "(to exit, press Ctrl-C again or Ctrl-D, or type .exit)"


typedef struct repl {
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
} repl;

/* The running REPL: readline's callbacks and the signal handler take no
** argument.  NULL when none runs (the wrappers then only pass through). */
static repl *R = NULL;


/* {======================================================
** Output while the prompt is shown
** ======================================================= */

/* Before output: takes the prompt and the line off the screen. */
static void hideprompt (repl *r) {
  if (r->shown && !r->hidden) {
    rl_clear_visible_line();
    fflush(rl_outstream);
    r->hidden = 1;
    r->endnl = 1;
  }
}

/* After the loop turn: the output on a line of its own, then the prompt
** and the line being edited, the cursor where it was. */
static void showagain (repl *r) {
  if (!r->hidden) return;
  r->hidden = 0;
  fflush(stderr);
  if (!r->endnl) fputs("\n", stdout);
  fflush(stdout);
  rl_forced_update_display();
}

/* Did the arguments from 'first' on end with a newline (-1: no text)? */
static int endsinnl (lua_State *L, int first) {
  int k;
  for (k = lua_gettop(L); k >= first; k--) {
    size_t l;
    const char *s;
    if (lua_type(L, k) == LUA_TNUMBER) return 0;
    if (lua_type(L, k) != LUA_TSTRING) continue;
    s = lua_tolstring(L, k, &l);
    if (l > 0) return s[l - 1] == '\n';
  }
  return -1;
}

/* Calls the wrapped function (upvalue 1) with the arguments. */
static int passon (lua_State *L) {
  int n = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, n, LUA_MULTRET);
  return lua_gettop(L);
}

static int wrapprint (lua_State *L) {
  repl *r = R;
  if (r == NULL || !r->shown) return passon(L);
  hideprompt(r);
  r->endnl = 1;
  return passon(L);
}

static int wrapwrite (lua_State *L) {  /* io.write */
  repl *r = R;
  int nl;
  if (r == NULL || !r->shown) return passon(L);
  hideprompt(r);
  nl = endsinnl(L, 1);
  if (nl >= 0) r->endnl = nl;
  return passon(L);
}

static int wrapfwrite (lua_State *L) {  /* file:write */
  repl *r = R;
  luaL_Stream *p = (luaL_Stream *)luaL_testudata(L, 1, LUA_FILEHANDLE);
  int nl;
  if (r == NULL || !r->shown || p == NULL ||
      (p->f != stdout && p->f != stderr))
    return passon(L);
  hideprompt(r);
  nl = endsinnl(L, 2);
  if (nl >= 0) r->endnl = nl;
  return passon(L);
}

/* Replaces t[name] (t on top) with 'fn' wrapping it; leaves t. */
static void wrap (lua_State *L, const char *name, lua_CFunction fn) {
  if (lua_getfield(L, -1, name) != LUA_TFUNCTION) {
    lua_pop(L, 1);
    return;
  }
  lua_pushcclosure(L, fn, 1);
  lua_setfield(L, -2, name);
}

static int wrapoutput (lua_State *L) {
  lua_pushglobaltable(L);
  wrap(L, "print", wrapprint);
  lua_pop(L, 1);
  if (lua_getglobal(L, "io") == LUA_TTABLE)
    wrap(L, "write", wrapwrite);
  lua_pop(L, 1);
  if (luaL_getmetatable(L, LUA_FILEHANDLE) == LUA_TTABLE &&
      lua_getfield(L, -1, "__index") == LUA_TTABLE)
    wrap(L, "write", wrapfwrite);
  return 0;
}

/* }====================================================== */


/* {======================================================
** History, in ~/.asynchost_history
** ======================================================= */

static void openhistory (repl *r) {
  const char *home = getenv("HOME");
  using_history();
  history_comment_char = '#';  /* timestamps keep entries of lines whole */
  history_write_timestamps = 1;
  history_multiline_entries = 1;
  if (home == NULL || *home == '\0') return;
  r->histfile = (char *)malloc(strlen(home) + sizeof("/" HISTFILE));
  if (r->histfile == NULL) return;
  sprintf(r->histfile, "%s/%s", home, HISTFILE);
  read_history(r->histfile);  /* none yet is fine */
}

/* Adds a chunk to the history and to the file, unless it repeats. */
static void addhistory (repl *r, const char *chunk) {
  HIST_ENTRY *last;
  if (!r->tty || chunk[strspn(chunk, " \t\n")] == '\0') return;
  last = history_get(history_base + history_length - 1);
  if (last != NULL && strcmp(last->line, chunk) == 0) return;
  add_history(chunk);
  if (r->histfile != NULL && append_history(1, r->histfile) != 0)
    write_history(r->histfile);  /* no file yet */
}

static void closehistory (repl *r) {
  if (r->histfile != NULL) {
    history_truncate_file(r->histfile, HISTMAX);
    free(r->histfile);
    r->histfile = NULL;
  }
  clear_history();
}

/* }====================================================== */


/* {======================================================
** Inputs as tasks
** ======================================================= */

/* Same as main.c's: the error value on top becomes a message string. */
static const char *errmsg (lua_State *L) {
  if (!lua_isstring(L, -1)) {
    if (luaL_getmetafield(L, -1, "__tostring") != LUA_TNIL) {
      lua_pushvalue(L, -2);
      if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TSTRING) {
        lua_replace(L, -2);
        return lua_tostring(L, -1);
      }
      lua_pop(L, 1);  /* what __tostring returned, or its error */
    }
    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, -1));
    lua_replace(L, -2);
  }
  return lua_tostring(L, -1);
}

/* Messages go out without the program's name, as in lua's REPL. */
static void report (lua_State *L) {
  fflush(stdout);
  fprintf(stderr, "%s\n", errmsg(L));
  fflush(stderr);
  lua_pop(L, 1);
}

/* The input's task has ended (called by the scheduler: no Lua here). */
static void ondone (ah_sched *S, ah_waiter *w, ah_future *f) {
  repl *r = (repl *)((char *)w - offsetof(repl, w));
  (void)S; (void)f;
  r->done = 1;
}

static int spawninput (lua_State *L) {  /* name, function -> task */
  ah_spawn(ah_sched_get(L), L, 2, 0);
  ah_settaskname(L, 2, lua_tostring(L, 1));
  return 1;
}

/* Starts the function on top as the input's task. */
static void startinput (repl *r) {
  lua_State *L = r->L;
  lua_pushcfunction(L, spawninput);
  lua_pushfstring(L, "input %d", ++r->ninputs);
  lua_rotate(L, -3, 2);  /* spawninput, name, function */
  if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
    report(L);
    return;
  }
  r->task = (ah_task *)lua_touserdata(L, -1);
  r->done = 0;
  ah_addwaiter(&r->task->f.waiters, &r->w);
  r->taskref = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* task, where Ctrl-C found it (or nil) -> prints its results */
static int outcome (lua_State *L) {
  ah_future *f = (ah_future *)lua_touserdata(L, 1);
  if (f->state == AH_CANCELLED && lua_isstring(L, 2)) {
    lua_settop(L, 2);
    return lua_error(L);  /* "interrupted!" and where */
  }
  lua_settop(L, 1);
  if (ah_taskoutcome(L, 1, LUA_MULTRET, 0) != LUA_OK)
    return lua_error(L);  /* the message, with its traceback */
  lua_remove(L, 1);
  if (lua_gettop(L) == 0) return 0;
  lua_pushcfunction(L, ah_printvalues);
  lua_insert(L, 1);
  if (lua_pcall(L, lua_gettop(L) - 1, 0, 0) != LUA_OK)
    luaL_error(L, "error printing the results (%s)", errmsg(L));
  return 0;
}

/* The input's task has ended: its values or its error. */
static void finishinput (repl *r) {
  lua_State *L = r->L;
  lua_pushcfunction(L, outcome);
  lua_rawgeti(L, LUA_REGISTRYINDEX, r->taskref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, r->intref);
  luaL_unref(L, LUA_REGISTRYINDEX, r->taskref);
  luaL_unref(L, LUA_REGISTRYINDEX, r->intref);
  r->taskref = r->intref = LUA_NOREF;
  r->task = NULL;
  r->done = 0;
  if (lua_pcall(L, 2, 0, 0) != LUA_OK)
    report(L);
}

/* Every task waits and nothing can wake them: the input's await fails
** with a DeadlockError naming what each waits on (as sched.c does for
** the main task). */
static int pushdeadlock (lua_State *L) {
  ah_pushtaskdump(L, "deadlock: every task waits and nothing can wake them");
  ah_pusherror(L, "DeadlockError", lua_tostring(L, -1));
  return 1;
}

static void deadlock (repl *r) {
  lua_State *L = r->L;
  ah_task *t = r->task;
  if (t->unwait == NULL) return;
  lua_pushcfunction(L, pushdeadlock);
  if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
    report(L);
    ah_cancel(r->S, t, "deadlock");
    return;
  }
  ah_setextra(L, t, "wakeerror");  /* pops the error */
  t->unwait(r->S, t);
  t->unwait = NULL;
  t->wake = AH_WAKE_ERROR;
  ah_ready(r->S, t);
}

/* Is the load error on top that of a statement that is not finished? */
static int incomplete (lua_State *L, int status) {
  size_t l;
  const char *msg;
  if (status != LUA_ERRSYNTAX)
    return 0;
  msg = lua_tolstring(L, -1, &l);
  return l >= MARKLEN && strcmp(msg + l - MARKLEN, EOFMARK) == 0;
}

static const char help[] =
  "Each input runs as a task on the event loop: it may await (async.sleep(1),\n"
  "http.get(url)...) while tasks started earlier keep running.\n"
  "  expression       prints its values ('=expr' works too)\n"
  "  statements       run; an unfinished statement continues at '>>'\n"
  "  async, await     pre-bound: async = require \"asynchost\", await = "
  "async.await\n"
  "  .tasks           the live tasks: what each waits on, and where\n"
  "  .help            this text\n"
  "  .exit            leaves, as Ctrl-D does (pending tasks are cancelled)\n"
  "Ctrl-C cancels the running input; at the prompt it clears the line, and\n"
  "twice on an empty line it leaves.  Tab completes names and fields\n"
  "(async.ga<Tab>, t:ca<Tab>).  History is kept in ~/" HISTFILE ".\n";

static int dumptasks (lua_State *L) {
  ah_sched *S = ah_sched_get(L);
  if (S->nlive == 0)
    lua_pushliteral(L, "no live tasks");
  else
    ah_pushtaskdump(L, lua_pushfstring(L, "%d live task%s:", S->nlive,
                                       S->nlive == 1 ? "" : "s"));
  fputs(lua_tostring(L, -1), stdout);
  fputs("\n", stdout);
  fflush(stdout);
  return 0;
}

/* '.name' at the start of an input: runs the command, returns 1; 0 if
** 'line' is no command (Lua code: '.5' is a number). */
static int command (repl *r, const char *line) {
  lua_State *L = r->L;
  size_t n = 0;
  if (line[0] != '.' || !((line[1] | 32) >= 'a' && (line[1] | 32) <= 'z'))
    return 0;
  while (line[1 + n] != '\0' && !strchr(" \t\n", line[1 + n])) n++;
  if (line[1 + n + strspn(line + 1 + n, " \t\n")] != '\0')
    n = 0;  /* something after the word: not a command */
  if (n == 4 && strncmp(line + 1, "help", 4) == 0)
    fputs(help, stdout);
  else if (n == 5 && strncmp(line + 1, "tasks", 5) == 0) {
    lua_pushcfunction(L, dumptasks);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) report(L);
  }
  else if (n == 4 && strncmp(line + 1, "exit", 4) == 0)
    r->quit = 1;
  else {
    fflush(stdout);
    fprintf(stderr, "unknown command '%s' (.help lists them)\n", line);
    fflush(stderr);
  }
  fflush(stdout);
  return 1;
}

/*
** A line was read.  The first line of an input is a command, or an
** expression if 'return <line>;' compiles (lua.c's rule; '=exp' is
** 'return exp'), else statements, which may need more lines: then the
** lines wait in 'r->chunk' for the next one.  A complete input starts as
** a task.
*/
static void doline (repl *r, const char *line) {
  lua_State *L = r->L;
  int status;
  size_t l;
  const char *s;
  if (r->chunk == NULL) {
    if (line[strspn(line, " \t\n")] == '\0' || command(r, line))
      return;
    if (line[0] == '=')
      lua_pushfstring(L, "return %s;", line + 1);
    else
      lua_pushfstring(L, "return %s;", line);
    s = lua_tolstring(L, -1, &l);
    status = luaL_loadbuffer(L, s, l, CHUNKNAME);
    lua_remove(L, -2);
    if (status == LUA_OK) {
      addhistory(r, line);
      startinput(r);
      return;
    }
    lua_pop(L, 1);
    lua_pushstring(L, line);
  }
  else {
    lua_pushfstring(L, "%s\n%s", r->chunk, line);
    free(r->chunk);
    r->chunk = NULL;
  }
  s = lua_tolstring(L, -1, &l);
  status = luaL_loadbuffer(L, s, l, CHUNKNAME);
  if (incomplete(L, status)) {
    lua_pop(L, 1);
    r->chunk = strdup(s);
    lua_pop(L, 1);
    if (r->chunk == NULL) {
      fputs("not enough memory\n", stderr);
      fflush(stderr);
    }
    return;
  }
  addhistory(r, s);
  lua_remove(L, -2);  /* the source */
  if (status == LUA_OK)
    startinput(r);
  else
    report(L);
}

/* The prompt for the next line: _PROMPT or _PROMPT2 if a string or a
** number (read raw: no code runs at the prompt), else the default. */
static const char *pushprompt (repl *r) {
  lua_State *L = r->L;
  int t;
  lua_pushglobaltable(L);
  lua_pushstring(L, r->chunk == NULL ? "_PROMPT" : "_PROMPT2");
  t = lua_rawget(L, -2);
  lua_remove(L, -2);
  if (t != LUA_TSTRING && t != LUA_TNUMBER) {
    lua_pop(L, 1);
    lua_pushstring(L, r->chunk == NULL ? PROMPT : PROMPT2);
  }
  return lua_tostring(L, -1);
}

/* }====================================================== */


/* {======================================================
** The terminal: readline on the loop
** ======================================================= */

static void onreadable (uv_poll_t *p, int status, int events);
static void online (char *line);

/* readline's completion: our candidates (replshow.c). */
static char **complete (const char *text, int start, int end) {
  (void)start; (void)end;
  return ah_replcomplete(R->L, text);
}

/* Shows the prompt and reads the next line. */
static void showprompt (repl *r) {
  using_history();  /* history browsing starts from the end again */
  rl_callback_handler_install(pushprompt(r), online);
  lua_pop(r->L, 1);
  r->shown = 1;
  r->hidden = 0;
  uv_poll_start(&r->input, UV_READABLE, onreadable);
}

static void hideinput (repl *r) {
  rl_callback_handler_remove();  /* the terminal as it was */
  r->shown = r->hidden = 0;
  uv_poll_stop(&r->input);
}

/* readline has read a line (NULL at end of file, Ctrl-D). */
static void online (char *line) {
  repl *r = R;
  const char *bp = rl_variable_value("enable-bracketed-paste");
  hideinput(r);
  if (line == NULL) {
    if (bp == NULL || strcmp(bp, "on") != 0)
      fputs("\n", stdout);  /* else readline went to a new line */
    fflush(stdout);
    r->quit = 1;
    return;
  }
  doline(r, line);
  free(line);
  if (r->task == NULL && !r->quit)
    showprompt(r);
}

static void onreadable (uv_poll_t *p, int status, int events) {
  repl *r = (repl *)p->data;
  (void)events;
  if (status < 0) {  /* stdin is gone */
    online(NULL);
    return;
  }
  r->ctrlc = 0;
  rl_callback_read_char();
}

/* Ctrl-C at the prompt: the line and any unfinished input are dropped; on
** an empty prompt, the first says how to exit and the second exits. */
static void interruptprompt (repl *r) {
  int empty = (rl_end == 0 && r->chunk == NULL);
  rl_free_line_state();
  rl_callback_sigcleanup();  /* a search or key sequence cut short */
  rl_point = rl_end;
  rl_redisplay();
  fputs("^C\n", stdout);  /* before readline's "\r" in hideinput */
  fflush(stdout);
  hideinput(r);
  free(r->chunk);
  r->chunk = NULL;
  if (empty && r->ctrlc) {
    r->quit = 1;
    fflush(stdout);
    return;
  }
  if (empty) fputs(EXITHINT "\n", stdout);
  r->ctrlc = empty;
  fflush(stdout);
  showprompt(r);
}

static void onwinch (uv_signal_t *h, int signum) {
  repl *r = (repl *)h->data;
  (void)signum;
  if (r->shown) rl_resize_terminal();
  else rl_reset_screen_size();
}

/* Ctrl-Z: the terminal as it was while stopped; back, the prompt and the
** line being edited again (readline's own handler does this when it has
** the signals, which the loop has here). */
static void onstop (uv_signal_t *h, int signum) {
  repl *r = (repl *)h->data;
  struct sigaction dfl, old;
  char *text = NULL;
  int point = rl_point, shown = r->shown;
  if (shown) {
    text = rl_copy_text(0, rl_end);
    fputs("\n", stdout);
    hideinput(r);
  }
  fflush(stdout);
  memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  sigaction(signum, &dfl, &old);
  raise(signum);  /* stopped here until continued */
  sigaction(signum, &old, NULL);
  if (shown) {
    showprompt(r);
    if (text != NULL) {
      rl_insert_text(text);
      rl_point = point <= rl_end ? point : rl_end;
      rl_redisplay();
    }
  }
  free(text);
}

/* }====================================================== */


/* {======================================================
** Ctrl-C
** ======================================================= */

/*
** libuv's handler makes the loop call 'onsigint' on its next turn; ours,
** chained before it, sees when a Ctrl-C comes while an earlier one is
** still unseen: the loop is stuck in code that never awaits (a busy
** loop).  The running task then gets an 'interrupted!' error at its next
** instruction (a hook, as lua.c does); a third such Ctrl-C ends the
** process as the default action would.
*/
static struct sigaction uvsigint;  /* libuv's handler, which we chain */
static volatile sig_atomic_t unseen = 0;  /* Ctrl-C the loop hasn't seen */
static volatile sig_atomic_t handled = 0;  /* of those, how many the hook
                                          ** answered */
static pthread_t mainthread;
static struct termios ttymodes;  /* as the REPL found the terminal */
static volatile sig_atomic_t ttysaved = 0;

static void stophook (lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  if (R != NULL) hideprompt(R);
  fputs("\n", stdout);  /* after the terminal's ^C */
  fflush(stdout);
  luaL_error(L, "interrupted!");
}

static void rawsigint (int signum, siginfo_t *info, void *ctx) {
  repl *r = R;
  if (unseen++ > 0 && r != NULL && pthread_equal(pthread_self(), mainthread)) {
    if (unseen > 2) {  /* the terminal as it was, if readline had it */
      if (ttysaved) tcsetattr(0, TCSANOW, &ttymodes);
      signal(SIGINT, SIG_DFL);
      raise(SIGINT);
      return;
    }
    if (r->S->current != NULL) {
      lua_sethook(r->S->current->co, stophook,
                  LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
      handled = unseen;
    }
  }
  if (uvsigint.sa_flags & SA_SIGINFO)
    uvsigint.sa_sigaction(signum, info, ctx);
  else if (uvsigint.sa_handler != SIG_DFL && uvsigint.sa_handler != SIG_IGN)
    uvsigint.sa_handler(signum);
}

/* co -> where it waits, as lua.c reports an interrupt */
static int wherewaits (lua_State *L) {
  luaL_traceback(L, lua_tothread(L, 1), "interrupted!", 0);
  return 1;
}

/* Ctrl-C while an input runs: its task is cancelled. */
static void interruptinput (repl *r) {
  lua_State *L = r->L;
  ah_task *t = r->task;
  if (r->S->sigintusers > 0 || t->f.state != AH_PENDING)
    return;  /* async.signal("SIGINT") has it; or too late */
  if (r->intref == LUA_NOREF) {
    int ok = 0;
    if (t->started && t->unwait != NULL) {  /* suspended: where? */
      lua_pushcfunction(L, wherewaits);
      lua_rawgeti(L, LUA_REGISTRYINDEX, r->taskref);
      lua_getiuservalue(L, -1, 1);  /* its coroutine */
      lua_remove(L, -2);
      ok = (lua_pcall(L, 1, 1, 0) == LUA_OK);
      if (!ok) lua_pop(L, 1);
    }
    if (!ok) lua_pushliteral(L, "interrupted!");
    r->intref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  fputs("\n", stdout);  /* after the terminal's ^C */
  fflush(stdout);
  ah_cancel(r->S, t, "interrupted");
}

static void onsigint (uv_signal_t *h, int signum) {
  repl *r = (repl *)h->data;
  (void)signum;
  unseen = 0;
  if (handled > 0) {  /* the hook did what this Ctrl-C asked */
    handled--;
    return;
  }
  if (r->task != NULL)
    interruptinput(r);
  else if (r->shown)
    interruptprompt(r);
}

/* }====================================================== */


/* {======================================================
** The REPL
** ======================================================= */

/* Runs the loop until the input's task ends, or Ctrl-D. */
static void runloop (repl *r) {
  while (!r->quit || r->task != NULL) {
    int more = ah_host_step(r->h, 1);
    if (more < 0) break;
    if (r->hidden) showagain(r);
    if (r->done) {
      finishinput(r);
      if (r->S->rcount > 0)  /* tasks it spawned start before the prompt */
        ah_host_step(r->h, 0);
      if (r->tty && !r->quit) showprompt(r);
      if (!r->tty) return;
    }
    else if (!more && r->task != NULL)
      deadlock(r);
    else if (!r->tty && r->task == NULL)
      return;
  }
}

/* Reads a line from a stdin that is no terminal; 0 at end of file. */
static int plainline (repl *r) {
  lua_State *L = r->L;
  char buf[512];
  luaL_Buffer b;
  int got = 0;
  fputs(pushprompt(r), stdout);
  lua_pop(L, 1);
  fflush(stdout);
  luaL_buffinit(L, &b);
  while (fgets(buf, sizeof(buf), stdin) != NULL) {
    size_t l = strlen(buf);
    got = 1;
    if (l > 0 && buf[l - 1] == '\n') {
      luaL_addlstring(&b, buf, l - 1);
      break;
    }
    luaL_addlstring(&b, buf, l);  /* a part of a long line */
  }
  luaL_pushresult(&b);
  if (!got) lua_pop(L, 1);
  return got;
}

static void onclosed (uv_handle_t *h) {
  ((repl *)h->data)->nclosing--;
}

static void closehandle (repl *r, uv_handle_t *h) {
  r->nclosing++;
  uv_close(h, onclosed);
}

/* async = require "asynchost" and await = async.await, unless taken. */
static int prebind (lua_State *L) {
  if (lua_getglobal(L, "async") == LUA_TNIL) {
    lua_getglobal(L, "require");
    lua_pushliteral(L, "asynchost");
    lua_call(L, 1, 1);
    lua_pushvalue(L, -1);
    lua_setglobal(L, "async");
  }
  if (lua_getglobal(L, "await") == LUA_TNIL && lua_istable(L, -2)) {
    lua_getfield(L, -2, "await");
    lua_setglobal(L, "await");
  }
  return 0;
}

void ah_replglobals (lua_State *L) {
  lua_pushcfunction(L, prebind);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) report(L);
}

/* Readline on the terminal; 0 if stdin cannot be polled. */
static int startterminal (repl *r) {
  uv_loop_t *loop = ah_host_loop(r->h);
  int ok;
  r->fdflags = fcntl(0, F_GETFL);
  ok = (uv_poll_init(loop, &r->input, 0) == 0);
  if (r->fdflags != -1)
    fcntl(0, F_SETFL, r->fdflags);  /* blocking again: stdout may share it */
  if (!ok) return 0;
  ttysaved = (tcgetattr(0, &ttymodes) == 0);
  r->input.data = r;
  uv_signal_init(loop, &r->sigwinch);
  r->sigwinch.data = r;
  uv_signal_start(&r->sigwinch, onwinch, SIGWINCH);
  uv_unref((uv_handle_t *)&r->sigwinch);
  uv_signal_init(loop, &r->sigtstp);
  r->sigtstp.data = r;
  uv_signal_start(&r->sigtstp, onstop, SIGTSTP);
  uv_unref((uv_handle_t *)&r->sigtstp);
  rl_readline_name = "asynchost";
  rl_catch_signals = 0;   /* the loop handles them */
  rl_catch_sigwinch = 0;
  rl_change_environment = 0;  /* no LINES and COLUMNS in the environment */
  rl_attempted_completion_function = complete;
  rl_completer_word_break_characters = " \t\n\"'`@$><=;|&{(+-*/%^~#,[]}";
  rl_initialize();
  openhistory(r);
  lua_pushcfunction(r->L, wrapoutput);
  if (lua_pcall(r->L, 0, 0, 0) != LUA_OK) report(r->L);
  return 1;
}

static void endterminal (repl *r) {
  if (r->shown) hideinput(r);
  closehistory(r);
  closehandle(r, (uv_handle_t *)&r->input);
  closehandle(r, (uv_handle_t *)&r->sigwinch);
  closehandle(r, (uv_handle_t *)&r->sigtstp);
  if (r->fdflags != -1)
    fcntl(0, F_SETFL, r->fdflags);
}

/* At the end of the input, an unfinished statement is an error. */
static void endchunk (repl *r) {
  lua_State *L = r->L;
  if (r->chunk == NULL) return;
  if (luaL_loadbuffer(L, r->chunk, strlen(r->chunk), CHUNKNAME) != LUA_OK)
    report(L);
  else
    lua_pop(L, 1);
  free(r->chunk);
  r->chunk = NULL;
}

int ah_repl (lua_State *L) {
  int top = lua_gettop(L);
  struct sigaction sa;
  repl r;
  memset(&r, 0, sizeof(r));
  r.L = L;
  r.h = ah_host_of(L);
  r.S = ah_sched_get(L);
  r.taskref = r.intref = LUA_NOREF;
  r.w.fn = ondone;
  ah_replglobals(L);
  R = &r;
  uv_signal_init(ah_host_loop(r.h), &r.sigint);
  r.sigint.data = &r;
  uv_signal_start(&r.sigint, onsigint, SIGINT);
  uv_unref((uv_handle_t *)&r.sigint);
  mainthread = pthread_self();  /* chain ours before libuv's handler */
  unseen = handled = 0;
  sigaction(SIGINT, NULL, &uvsigint);
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = rawsigint;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigfillset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  r.tty = (uv_guess_handle(0) == UV_TTY) && startterminal(&r);
  if (r.tty) {
    showprompt(&r);
    runloop(&r);
    endchunk(&r);
    endterminal(&r);
  }
  else {
    while (!r.quit && plainline(&r)) {
      doline(&r, lua_tostring(L, -1));
      lua_pop(L, 1);
      if (r.task != NULL) runloop(&r);
    }
    if (!r.quit) {
      fputs("\n", stdout);
      endchunk(&r);
    }
    fflush(stdout);
  }
  sigaction(SIGINT, &uvsigint, NULL);  /* libuv's alone again */
  ttysaved = 0;
  closehandle(&r, (uv_handle_t *)&r.sigint);
  while (r.nclosing > 0 && ah_host_step(r.h, 1) >= 0)
    ;
  R = NULL;
  lua_settop(L, top);
  return 0;
}

/* }====================================================== */

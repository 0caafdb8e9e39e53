/*
** The terminal side of the REPL (repl.c): GNU readline reads lines through
** its callback interface, fed by a uv_poll on stdin, so the loop keeps
** running while the prompt waits and background tasks go on (and print)
** while the user types.
**
** Output of tasks while the prompt is shown goes through wrappers of
** print, io.write and file:write that clear the prompt line first; the
** prompt and the line being edited are drawn again after the loop turn.
**
** Also here: the history in ~/.asynchost_history, Ctrl-C (cancels the
** running input, or clears the line at the prompt), Ctrl-Z and resizing.
*/

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
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


#define HISTMAX   1000  /* lines kept in the history file */

#define EXITHINT  "(to exit, press Ctrl-C again or Ctrl-D, or type .exit)"


/* The running REPL: readline's callbacks and the signal handler take no
** argument.  NULL when none runs (the wrappers then only pass through). */
static ah_replstate *R = NULL;


/* {======================================================
** Output while the prompt is shown
** ======================================================= */

/* Before output: takes the prompt and the line off the screen. */
static void hideprompt (ah_replstate *r) {
  if (r->shown && !r->hidden) {
    rl_clear_visible_line();
    fflush(rl_outstream);
    r->hidden = 1;
    r->endnl = 1;
  }
}

/* After the loop turn: the output on a line of its own, then the prompt
** and the line being edited, the cursor where it was. */
void ah_replshowagain (ah_replstate *r) {
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
  ah_replstate *r = R;
  if (r == NULL || !r->shown) return passon(L);
  hideprompt(r);
  r->endnl = 1;
  return passon(L);
}

static int wrapwrite (lua_State *L) {  /* io.write */
  ah_replstate *r = R;
  int nl;
  if (r == NULL || !r->shown) return passon(L);
  hideprompt(r);
  nl = endsinnl(L, 1);
  if (nl >= 0) r->endnl = nl;
  return passon(L);
}

static int wrapfwrite (lua_State *L) {  /* file:write */
  ah_replstate *r = R;
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

static void openhistory (ah_replstate *r) {
  const char *home = getenv("HOME");
  using_history();
  history_comment_char = '#';  /* timestamps keep entries of lines whole */
  history_write_timestamps = 1;
  history_multiline_entries = 1;
  if (home == NULL || *home == '\0') return;
  r->histfile = (char *)malloc(strlen(home) + sizeof("/" AH_HISTFILE));
  if (r->histfile == NULL) return;
  sprintf(r->histfile, "%s/%s", home, AH_HISTFILE);
  read_history(r->histfile);  /* none yet is fine */
}

/* Adds a chunk to the history and to the file, unless it repeats. */
void ah_repladdhistory (ah_replstate *r, const char *chunk) {
  HIST_ENTRY *last;
  if (!r->tty || chunk[strspn(chunk, " \t\n")] == '\0') return;
  last = history_get(history_base + history_length - 1);
  if (last != NULL && strcmp(last->line, chunk) == 0) return;
  add_history(chunk);
  if (r->histfile != NULL && append_history(1, r->histfile) != 0)
    write_history(r->histfile);  /* no file yet */
}

static void closehistory (ah_replstate *r) {
  if (r->histfile != NULL) {
    history_truncate_file(r->histfile, HISTMAX);
    free(r->histfile);
    r->histfile = NULL;
  }
  clear_history();
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
void ah_replshowprompt (ah_replstate *r) {
  using_history();  /* history browsing starts from the end again */
  rl_callback_handler_install(ah_replpushprompt(r), online);
  lua_pop(r->L, 1);
  r->shown = 1;
  r->hidden = 0;
  uv_poll_start(&r->input, UV_READABLE, onreadable);
}

static void hideinput (ah_replstate *r) {
  rl_callback_handler_remove();  /* the terminal as it was */
  r->shown = r->hidden = 0;
  uv_poll_stop(&r->input);
}

/* readline has read a line (NULL at end of file, Ctrl-D). */
static void online (char *line) {
  ah_replstate *r = R;
  const char *bp = rl_variable_value("enable-bracketed-paste");
  hideinput(r);
  if (line == NULL) {
    if (bp == NULL || strcmp(bp, "on") != 0)
      fputs("\n", stdout);  /* else readline went to a new line */
    fflush(stdout);
    r->quit = 1;
    return;
  }
  ah_repldoline(r, line);
  free(line);
  if (r->task == NULL && !r->quit)
    ah_replshowprompt(r);
}

static void onreadable (uv_poll_t *p, int status, int events) {
  ah_replstate *r = (ah_replstate *)p->data;
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
static void interruptprompt (ah_replstate *r) {
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
  ah_replshowprompt(r);
}

static void onwinch (uv_signal_t *h, int signum) {
  ah_replstate *r = (ah_replstate *)h->data;
  (void)signum;
  if (r->shown) rl_resize_terminal();
  else rl_reset_screen_size();
}

/* Ctrl-Z: the terminal as it was while stopped; back, the prompt and the
** line being edited again (readline's own handler does this when it has
** the signals, which the loop has here). */
static void onstop (uv_signal_t *h, int signum) {
  ah_replstate *r = (ah_replstate *)h->data;
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
    ah_replshowprompt(r);
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
  ah_replstate *r = R;
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
static void interruptinput (ah_replstate *r) {
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
  ah_replstate *r = (ah_replstate *)h->data;
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
** Start and end
** ======================================================= */

static void onclosed (uv_handle_t *h) {
  ((ah_replstate *)h->data)->nclosing--;
}

static void closehandle (ah_replstate *r, uv_handle_t *h) {
  r->nclosing++;
  uv_close(h, onclosed);
}

/* Readline on the terminal; 0 if stdin cannot be polled. */
int ah_replstartterminal (ah_replstate *r) {
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
  if (lua_pcall(r->L, 0, 0, 0) != LUA_OK) ah_replreport(r->L);
  return 1;
}

void ah_replendterminal (ah_replstate *r) {
  if (r->shown) hideinput(r);
  closehistory(r);
  closehandle(r, (uv_handle_t *)&r->input);
  closehandle(r, (uv_handle_t *)&r->sigwinch);
  closehandle(r, (uv_handle_t *)&r->sigtstp);
  if (r->fdflags != -1)
    fcntl(0, F_SETFL, r->fdflags);
}

/* Makes 'r' the running REPL and takes Ctrl-C. */
void ah_replbegin (ah_replstate *r) {
  struct sigaction sa;
  R = r;
  uv_signal_init(ah_host_loop(r->h), &r->sigint);
  r->sigint.data = r;
  uv_signal_start(&r->sigint, onsigint, SIGINT);
  uv_unref((uv_handle_t *)&r->sigint);
  mainthread = pthread_self();  /* chain ours before libuv's handler */
  unseen = handled = 0;
  sigaction(SIGINT, NULL, &uvsigint);
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = rawsigint;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigfillset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
}

/* Gives Ctrl-C back to libuv alone and closes the last handle: no REPL
** runs any more. */
void ah_replend (ah_replstate *r) {
  sigaction(SIGINT, &uvsigint, NULL);  /* libuv's alone again */
  ttysaved = 0;
  closehandle(r, (uv_handle_t *)&r->sigint);
  while (r->nclosing > 0 && ah_host_step(r->h, 1) >= 0)
    ;
  R = NULL;
}

/* }====================================================== */

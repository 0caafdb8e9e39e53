/*
** The interactive REPL of the asynchost executable.
**
** Each input runs as a task of its own; when it ends, its values are
** printed and the prompt comes back.  On a terminal the loop keeps running
** while the prompt waits (readline on the loop, in replio.c), so background
** tasks go on while the user types.  Without a terminal (asynchost -i <
** file) lines are read with fgets between inputs, as lua.c does without
** readline.
**
** The terminal side (readline, output while the prompt is shown, history,
** Ctrl-C, Ctrl-Z) is in replio.c; how values print and what Tab completes
** are in replshow.c.
*/

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
void ah_replreport (lua_State *L) {
  fflush(stdout);
  fprintf(stderr, "%s\n", errmsg(L));
  fflush(stderr);
  lua_pop(L, 1);
}

/* The input's task has ended (called by the scheduler: no Lua here). */
static void ondone (ah_sched *S, ah_waiter *w, ah_future *f) {
  ah_replstate *r = (ah_replstate *)((char *)w - offsetof(ah_replstate, w));
  (void)S; (void)f;
  r->done = 1;
}

static int spawninput (lua_State *L) {  /* name, function -> task */
  ah_spawn(ah_sched_get(L), L, 2, 0);
  ah_settaskname(L, 2, lua_tostring(L, 1));
  return 1;
}

/* Starts the function on top as the input's task. */
static void startinput (ah_replstate *r) {
  lua_State *L = r->L;
  lua_pushcfunction(L, spawninput);
  lua_pushfstring(L, "input %d", ++r->ninputs);
  lua_rotate(L, -3, 2);  /* spawninput, name, function */
  if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
    ah_replreport(L);
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
static void finishinput (ah_replstate *r) {
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
    ah_replreport(L);
}

/* Every task waits and nothing can wake them: the input's await fails
** with a DeadlockError naming what each waits on (as sched.c does for
** the main task). */
static int pushdeadlock (lua_State *L) {
  ah_pushtaskdump(L, "deadlock: every task waits and nothing can wake them");
  ah_pusherror(L, "DeadlockError", lua_tostring(L, -1));
  return 1;
}

static void deadlock (ah_replstate *r) {
  lua_State *L = r->L;
  ah_task *t = r->task;
  if (t->unwait == NULL) return;
  lua_pushcfunction(L, pushdeadlock);
  if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
    ah_replreport(L);
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
  "(async.ga<Tab>, t:ca<Tab>).  History is kept in ~/" AH_HISTFILE ".\n";

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
static int command (ah_replstate *r, const char *line) {
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
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) ah_replreport(L);
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
void ah_repldoline (ah_replstate *r, const char *line) {
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
      ah_repladdhistory(r, line);
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
  ah_repladdhistory(r, s);
  lua_remove(L, -2);  /* the source */
  if (status == LUA_OK)
    startinput(r);
  else
    ah_replreport(L);
}

/* The prompt for the next line: _PROMPT or _PROMPT2 if a string or a
** number (read raw: no code runs at the prompt), else the default. */
const char *ah_replpushprompt (ah_replstate *r) {
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
** The REPL
** ======================================================= */

/* Runs the loop until the input's task ends, or Ctrl-D. */
static void runloop (ah_replstate *r) {
  while (!r->quit || r->task != NULL) {
    int more = ah_host_step(r->h, 1);
    if (more < 0) break;
    if (r->hidden) ah_replshowagain(r);
    if (r->done) {
      finishinput(r);
      if (r->S->rcount > 0)  /* tasks it spawned start before the prompt */
        ah_host_step(r->h, 0);
      if (r->tty && !r->quit) ah_replshowprompt(r);
      if (!r->tty) return;
    }
    else if (!more && r->task != NULL)
      deadlock(r);
    else if (!r->tty && r->task == NULL)
      return;
  }
}

/* Reads a line from a stdin that is no terminal; 0 at end of file. */
static int plainline (ah_replstate *r) {
  lua_State *L = r->L;
  char buf[512];
  luaL_Buffer b;
  int got = 0;
  fputs(ah_replpushprompt(r), stdout);
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
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) ah_replreport(L);
}

/* At the end of the input, an unfinished statement is an error. */
static void endchunk (ah_replstate *r) {
  lua_State *L = r->L;
  if (r->chunk == NULL) return;
  if (luaL_loadbuffer(L, r->chunk, strlen(r->chunk), CHUNKNAME) != LUA_OK)
    ah_replreport(L);
  else
    lua_pop(L, 1);
  free(r->chunk);
  r->chunk = NULL;
}

int ah_repl (lua_State *L) {
  int top = lua_gettop(L);
  ah_replstate r;
  memset(&r, 0, sizeof(r));
  r.L = L;
  r.h = ah_host_of(L);
  r.S = ah_sched_get(L);
  r.taskref = r.intref = LUA_NOREF;
  r.w.fn = ondone;
  ah_replglobals(L);
  ah_replbegin(&r);
  r.tty = (uv_guess_handle(0) == UV_TTY) && ah_replstartterminal(&r);
  if (r.tty) {
    ah_replshowprompt(&r);
    runloop(&r);
    endchunk(&r);
    ah_replendterminal(&r);
  }
  else {
    while (!r.quit && plainline(&r)) {
      ah_repldoline(&r, lua_tostring(L, -1));
      lua_pop(L, 1);
      if (r.task != NULL) runloop(&r);
    }
    if (!r.quit) {
      fputs("\n", stdout);
      endchunk(&r);
    }
    fflush(stdout);
  }
  ah_replend(&r);
  lua_settop(L, top);
  return 0;
}

/* }====================================================== */

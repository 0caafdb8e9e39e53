/*
** Futures and tasks: the module asynchost.core.
**
** A future or task is a full userdata with three user values:
**   task:   1 its coroutine, 2 the function that spawned it, 3 extras
**   future: 1 results table {n=...}, 2 children (gather), 3 extras
** The extras table is made on demand: name, traceback, cancel message,
** done callbacks, the awaited task whose error it re-raised ('cause').
** A finished task keeps its results on its dead coroutine's stack.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <math.h>
#include "asynchost.h"

static void pusherrmsg (lua_State *L, int i);

static const char *const statenames[] =
  {"pending", "done", "failed", "cancelled"};


/* {======================================================
** Helpers: extras, the live table, errors
** ======================================================= */

ah_future *ah_tofuture (ah_sched *S, lua_State *L, int i) {
  (void)S;
  return (ah_future *)ah_totagged(L, i, AH_TAG_FUTURE, ah_future);
}

ah_task *ah_checktask (ah_sched *S, lua_State *L, int i) {
  ah_future *f = ah_tofuture(S, L, i);
  if (f == NULL || !f->istask)
    luaL_typeerror(L, i, "task");
  return (ah_task *)f;
}

/* Pushes the extras table of the object at 'i', making it when 'make'. */
static int pushextras (lua_State *L, int i, int make) {
  if (lua_getiuservalue(L, i, 3) == LUA_TTABLE) return 1;
  lua_pop(L, 1);
  if (!make) return 0;
  i = lua_absindex(L, i);
  lua_createtable(L, 0, 4);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, i, 3);
  return 1;
}

/* Pushes field 'k' of the extras of the object at 'i' (nil if none). */
int ah_getextra (lua_State *L, int i, const char *k) {
  i = lua_absindex(L, i);
  if (!pushextras(L, i, 0)) {
    lua_pushnil(L);
    return LUA_TNIL;
  }
  lua_getfield(L, -1, k);
  lua_remove(L, -2);
  return lua_type(L, -1);
}

/* extras[k] = top of stack (popped) for the object at 'i' */
void ah_setextraat (lua_State *L, int i, const char *k) {
  i = lua_absindex(L, i);
  pushextras(L, i, 1);
  lua_insert(L, -2);
  lua_setfield(L, -2, k);
  lua_pop(L, 1);
}

/* Pushes the userdata of a pending task. */
void ah_pushtask (lua_State *L, ah_task *t) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->S->liveref);
  lua_rawgeti(L, -1, t->liveidx);
  lua_remove(L, -2);
}

void ah_pushextra (lua_State *L, ah_task *t, const char *k) {
  ah_pushtask(L, t);
  ah_getextra(L, -1, k);
  lua_remove(L, -2);
}

void ah_setextra (lua_State *L, ah_task *t, const char *k) {
  ah_pushtask(L, t);
  lua_insert(L, -2);
  ah_setextraat(L, -2, k);
  lua_pop(L, 1);
}

static void liveadd (lua_State *L, ah_sched *S, ah_task *t, int i) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->liveref);
  lua_pushvalue(L, i);
  lua_rawseti(L, -2, ++S->nlive);
  lua_pop(L, 1);
  t->liveidx = S->nlive;
}

/* Removes 't' from the live table, moving the last task into its slot. */
static void livedel (lua_State *L, ah_sched *S, ah_task *t) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->liveref);
  if (t->liveidx != S->nlive) {
    ah_task *last;
    lua_rawgeti(L, -1, S->nlive);
    last = (ah_task *)lua_touserdata(L, -1);
    last->liveidx = t->liveidx;
    lua_rawseti(L, -2, t->liveidx);
  }
  lua_pushnil(L);
  lua_rawseti(L, -2, S->nlive--);
  lua_pop(L, 1);
  t->liveidx = 0;
}

/* Pushes module asynchost.errors (required once, then kept). */
static void pusherrors (lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, "asynchost.errors") != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "asynchost.errors");
    lua_call(L, 1, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, "asynchost.errors");
  }
}

/* Pushes a new error of class 'cls' (a name in asynchost.errors). */
void ah_pusherror (lua_State *L, const char *cls, const char *msg) {
  pusherrors(L);
  lua_getfield(L, -1, cls);
  lua_remove(L, -2);
  if (msg) lua_pushstring(L, msg); else lua_pushnil(L);
  lua_call(L, 1, 1);
}

/* Is the value at 'i' an instance of class 'cls' (or of a subclass)? */
int ah_isa (lua_State *L, int i, const char *cls) {
  int r = 0;
  if (lua_type(L, i) != LUA_TTABLE || !lua_getmetatable(L, i)) return 0;
  pusherrors(L);
  lua_getfield(L, -1, cls);
  lua_remove(L, -2);  /* stack: mt, class */
  while (!r && lua_istable(L, -2)) {
    r = lua_rawequal(L, -1, -2);
    lua_getfield(L, -2, "super");
    lua_replace(L, -3);
  }
  lua_pop(L, 2);
  return r;
}

int ah_iscancellederror (lua_State *L, int i) {
  return ah_isa(L, i, "CancelledError");
}

/* Pushes a CancelledError carrying the cancel message of 't'. */
void ah_pushcancelled (lua_State *L, ah_task *t) {
  ah_pushextra(L, t, "cancelmsg");
  ah_pusherror(L, "CancelledError", lua_tostring(L, -1));
  lua_remove(L, -2);
}

/* Pushes the name of the task at 'i'. */
void ah_pushname (lua_State *L, int i) {
  i = lua_absindex(L, i);
  if (ah_getextra(L, i, "name") == LUA_TNIL) {
    ah_task *t = (ah_task *)lua_touserdata(L, i);
    lua_pop(L, 1);
    lua_pushfstring(L, "Task-%d", (int)t->seq);
  }
}

void ah_settaskname (lua_State *L, int i, const char *name) {
  if (name == NULL) return;
  lua_pushstring(L, name);
  ah_setextraat(L, i, "name");
}

/* Pushes "file:line" where the task at 'i' was spawned, or "?" */
void ah_pushspawnsite (lua_State *L, int i) {
  ah_task *t = (ah_task *)lua_touserdata(L, i);
  i = lua_absindex(L, i);
  lua_Debug ar;
  if (lua_getiuservalue(L, i, 2) == LUA_TFUNCTION) {
    lua_getinfo(L, ">S", &ar);
    lua_pushfstring(L, "%s:%d", ar.short_src, t->spawnline);
  }
  else {
    lua_pop(L, 1);
    lua_pushliteral(L, "?");
  }
}

/* Pushes pre .. "file:line" .. post for where the task at 'i' was
** spawned, or 'none' for a task started from C. */
static void pushspawnedat (lua_State *L, int i, const char *pre,
                           const char *post, const char *none) {
  i = lua_absindex(L, i);
  ah_pushspawnsite(L, i);
  if (strcmp(lua_tostring(L, -1), "?") == 0) {
    lua_pop(L, 1);
    lua_pushstring(L, none);
  }
  else {
    lua_pushstring(L, pre);
    lua_insert(L, -2);
    lua_pushstring(L, post);
    lua_concat(L, 3);
  }
}

/* }====================================================== */


/* {======================================================
** Futures: waiters, completion, results
** ======================================================= */

void ah_addwaiter (ah_wlist *l, ah_waiter *w) {
  w->next = NULL;
  w->prev = l->tail;
  if (l->tail) l->tail->next = w; else l->head = w;
  l->tail = w;
}

void ah_delwaiter (ah_wlist *l, ah_waiter *w) {
  if (w->prev) w->prev->next = w->next; else l->head = w->next;
  if (w->next) w->next->prev = w->prev; else l->tail = w->prev;
  w->prev = w->next = NULL;
}

ah_task *ah_taskofwaiter (ah_waiter *w) {
  return (ah_task *)((char *)w - offsetof(ah_task, w));
}

/* Queues the done callbacks of the future at 'i' to run on the next turn */
static void queuecallbacks (lua_State *L, ah_sched *S, int i) {
  int n, k;
  i = lua_absindex(L, i);
  if (ah_getextra(L, i, "callbacks") != LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  n = (int)lua_rawlen(L, -1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->cbref);
  for (k = 1; k <= n; k++) {
    lua_rawgeti(L, -2, k);
    lua_rawseti(L, -2, ++S->cbtail);
    lua_pushvalue(L, i);
    lua_rawseti(L, -2, ++S->cbtail);
  }
  lua_pop(L, 2);
  lua_pushnil(L);
  ah_setextraat(L, i, "callbacks");
  if (n > 0 && S->rcount == 0)
    uv_idle_start(&S->idle, ah_noidle);
}

/* Runs the queued done callbacks, those queued before this call only. */
void ah_runcallbacks (ah_sched *S) {
  lua_State *L = S->L;
  int last = S->cbtail;
  if (S->cbhead == last) return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->cbref);
  while (S->cbhead < last) {
    int q = lua_gettop(L);
    lua_pushcfunction(L, ah_tracemsgh);
    lua_rawgeti(L, q, ++S->cbhead);  /* callback */
    lua_pushnil(L); lua_rawseti(L, q, S->cbhead);
    lua_rawgeti(L, q, ++S->cbhead);  /* its future */
    lua_pushnil(L); lua_rawseti(L, q, S->cbhead);
    if (S->trace) ah_trace_cbbegin(L, S, q + 2);
    if (lua_pcall(L, 1, 0, q + 1) != LUA_OK) {
      fprintf(stderr, "asynchost: error in a done callback: %s\n",
              lua_tostring(L, -1));
      fflush(stderr);
    }
    if (S->trace) ah_trace_cbend(S, "a done callback");
    lua_settop(L, q);
  }
  lua_pop(L, 1);
  if (S->cbhead == S->cbtail)
    S->cbhead = S->cbtail = 0;
}

/* The future at 'i' has just completed: wake its waiters, queue its done
** callbacks. */
void ah_completed (lua_State *L, ah_sched *S, int i) {
  ah_future *f = (ah_future *)lua_touserdata(L, i);
  ah_waiter *w;
  i = lua_absindex(L, i);
  if ((f->state == AH_FAILED && !f->retrieved) ||
      (S->trace != NULL && f->istask)) {  /* its finalizer has work now */
    lua_rawgeti(L, LUA_REGISTRYINDEX,
                S->mtref[f->istask ? AH_MT_TASKGC : AH_MT_FUTUREGC]);
    lua_setmetatable(L, i);
  }
  while ((w = f->waiters.head) != NULL) {
    ah_delwaiter(&f->waiters, w);
    w->fn(S, w, f);
  }
  if (f->hascb) {
    f->hascb = 0;
    queuecallbacks(L, S, i);
  }
}

/* Pushes the results of the done future at 'i' and returns how many; for a
** failed or cancelled one, raises its error. */
int ah_pushresults (lua_State *L, int i) {
  ah_future *f = (ah_future *)lua_touserdata(L, i);
  int n = f->nres, k;
  f->observed = 1;
  switch (f->state) {
    case AH_DONE:
      luaL_checkstack(L, n + 1, "too many results");
      lua_getiuservalue(L, i, 1);  /* see 'keepresults' */
      if (f->istask && n <= 1) {
        if (n == 0) lua_pop(L, 1);
        return n;
      }
      for (k = 1; k <= n; k++)
        lua_rawgeti(L, -k, k);
      lua_remove(L, -n - 1);
      return n;
    case AH_FAILED:
      f->retrieved = 1;
      ah_pusherrorvalue(L, i);
      return lua_error(L);
    case AH_CANCELLED:
      ah_pusherrorvalue(L, i);
      return lua_error(L);
    default:
      return luaL_error(L, "%s is not done yet",
                        f->istask ? "task" : "future");
  }
}

/* Pushes the error of the failed or cancelled future at 'i'. */
void ah_pusherrorvalue (lua_State *L, int i) {
  i = lua_absindex(L, i);
  if (((ah_future *)lua_touserdata(L, i))->nres > 0)  /* failed */
    ah_pushfirstresult(L, i);
  else {  /* cancelled */
    ah_getextra(L, i, "cancelmsg");
    ah_pusherror(L, "CancelledError", lua_tostring(L, -1));
    lua_remove(L, -2);
  }
}

/* Pushes the first result (or the error) of the done future at 'i', nil
** if it has none.  A future's user value 1 is a table of its results; a
** task's is its one result itself, a table of several, or nil (see
** 'keepresults'). */
void ah_pushfirstresult (lua_State *L, int i) {
  ah_future *f = (ah_future *)lua_touserdata(L, i);
  if (lua_getiuservalue(L, i, 1) == LUA_TTABLE &&
      (!f->istask || f->nres > 1)) {
    lua_rawgeti(L, -1, 1);
    lua_remove(L, -2);
  }
}

/* Completes the plain future at 'i' with the 'n' values on top (popped). */
void ah_setfuture (lua_State *L, ah_sched *S, int i, int state, int n) {
  ah_future *f = (ah_future *)lua_touserdata(L, i);
  int k;
  i = lua_absindex(L, i);
  lua_createtable(L, n, 1);
  lua_insert(L, -n - 1);
  for (k = n; k >= 1; k--)
    lua_rawseti(L, -k - 1, k);
  lua_setiuservalue(L, i, 1);
  f->state = (unsigned char)state;
  f->nres = n;
  ah_completed(L, S, i);
}

/* }====================================================== */


/* {======================================================
** Tasks: spawning, stepping, finishing, cancelling
** ======================================================= */

/* The message handler of a task's body: records where the error was
** raised (the traceback) before the stack unwinds. */
int ah_msgh (lua_State *L) {
  ah_sched *S = ah_sched_get(L);
  ah_task *t = S->current;
  if (lua_type(L, 1) == LUA_TSTRING || !ah_iscancellederror(L, 1)) {
    luaL_traceback(L, L, NULL, 1);
    if (ah_isa(L, 1, "Error")) {  /* our error objects keep their traceback */
      lua_getfield(L, 1, "traceback");
      if (lua_isnil(L, -1)) {
        lua_pushvalue(L, -2);
        lua_setfield(L, 1, "traceback");
      }
      lua_pop(L, 1);
    }
    if (t != NULL && t->liveidx > 0 && !t->f.state) {
      ah_setextra(L, t, "traceback");
      /* a re-raised error of an awaited task continues its story */
      ah_pushextra(L, t, "cause");
      if (!lua_isnil(L, -1)) {
        ah_pusherrorvalue(L, lua_gettop(L));
        if (!lua_rawequal(L, -1, 1)) {
          lua_pushnil(L);
          ah_setextra(L, t, "cause");
        }
        lua_pop(L, 1);
      }
      lua_pop(L, 1);
    }
  }
  lua_settop(L, 1);
  return 1;
}

/* A message handler for callbacks: the error as text, with a traceback. */
int ah_tracemsgh (lua_State *L) {
  pusherrmsg(L, 1);
  luaL_traceback(L, L, lua_tostring(L, -1), 1);
  return 1;
}

static int taskbodyk (lua_State *L, int status, lua_KContext ctx) {
  ah_task *t = *(ah_task **)lua_getextraspace(L);
  (void)ctx;
  if (status == LUA_OK || status == LUA_YIELD) {
    t->outcome = AH_DONE;
    return lua_gettop(L) - 1;  /* all but the handler */
  }
  t->outcome = ah_iscancellederror(L, -1) ? AH_CANCELLED : AH_FAILED;
  return 1;  /* the error */
}

/* The first function of every task's coroutine: calls the task's function
** under a message handler, so that <close> variables and error handlers
** run inside the task (and may await). */
static int taskbody (lua_State *L) {
  int n = lua_gettop(L);
  lua_pushcfunction(L, ah_msgh);
  lua_insert(L, 1);
  return taskbodyk(L, lua_pcallk(L, n - 1, LUA_MULTRET, 1, 0, taskbodyk), 0);
}

/* Finds the frame that spawns: the first Lua caller outside the library's
** combinators (a task that gather or wait_for spawns for the user was
** spawned where the user called them). */
static int spawnsite (lua_State *L, lua_Debug *ar) {
  int level;
  for (level = 1; lua_getstack(L, level, ar); level++) {
    lua_getinfo(L, "Slf", ar);  /* pushes the function */
    if (ar->currentline > 0 && strstr(ar->source, "asynchost/tasks.lua") == NULL)
      return 1;
    lua_pop(L, 1);
  }
  return 0;
}

/* Makes a task of the function at 'base' and the 'nargs' values above it,
** replacing them with the new task.  The task starts on the next turn. */
ah_task *ah_spawn (ah_sched *S, lua_State *L, int base, int nargs) {
  ah_task *t;
  lua_State *co;
  lua_Debug ar;
  t = (ah_task *)lua_newuserdatauv(L, sizeof(ah_task), 3);
  memset(t, 0, sizeof(*t));
  t->f.tag = AH_TAG_FUTURE;
  t->f.istask = 1;
  t->S = S;
  t->heapidx = -1;
  t->waitref = LUA_NOREF;
  t->seq = ++S->seq;
  t->born = uv_now(S->loop);
  ah_setmt(L, S, AH_MT_TASK);
  co = lua_newthread(L);
  *(ah_task **)lua_getextraspace(co) = t;
  t->co = co;
  lua_setiuservalue(L, -2, 1);
  if (spawnsite(L, &ar)) {
    t->spawnline = ar.currentline;
    lua_setiuservalue(L, -2, 2);  /* the spawning function */
  }
  lua_insert(L, base);  /* task below function and arguments */
  lua_checkstack(co, nargs + 2);
  lua_pushcfunction(co, taskbody);
  lua_xmove(L, co, nargs + 1);
  liveadd(L, S, t, base);
  if (S->trace) ah_trace_spawn(L, S, t);
  ah_ready(S, t);
  return t;
}

/* Moves the 'nres' results (or the error) on top of the ended task's
** coroutine into the task's user value 1, where the coroutine was: one
** value as itself, several in a table, none as nil.  A done task keeps its
** results but lets its coroutine go, a ~1.2 KB stack the collector would
** otherwise go on traversing at every cycle while somebody holds the task
** (a list of tasks to gather, say).  The task is on top of L. */
static void keepresults (lua_State *L, ah_task *t, int nres) {
  lua_State *co = t->co;
  int k;
  if (nres > 1) {  /* built in the coroutine, which has them on its stack */
    lua_checkstack(co, 2);  /* nres < its stack: 'ah_step' popped a frame */
    lua_createtable(co, nres, 0);
    lua_insert(co, -nres - 1);
    for (k = nres; k >= 1; k--)
      lua_rawseti(co, -k - 1, k);
    nres = 1;
  }
  if (nres == 1) lua_xmove(co, L, 1);
  else lua_pushnil(L);
  lua_setiuservalue(L, -2, 1);
  *(ah_task **)lua_getextraspace(co) = NULL;
  t->co = NULL;
}

/* The task has ended; its 'nres' results (or its error) are on top of its
** coroutine. */
static void finish (ah_sched *S, ah_task *t, int nres) {
  lua_State *L = S->L;
  t->f.state = t->outcome;
  t->f.nres = nres;
  if (S->trace) ah_trace_done(S, t);
  ah_pushtask(L, t);
  keepresults(L, t, nres);
  livedel(L, S, t);
  ah_completed(L, S, -1);
  lua_pop(L, 1);
}

/* Resumes 't' where it waits (or starts it). */
void ah_step (ah_sched *S, ah_task *t) {
  lua_State *co = t->co;
  int status, nres, narg = 0;
  if (t->f.state != AH_PENDING) return;
  if (!t->started) {
    t->started = 1;
    if (t->mustcancel) {  /* cancelled before it ran: never runs */
      lua_settop(co, 0);
      t->outcome = AH_CANCELLED;
      finish(S, t, 0);
      return;
    }
    narg = lua_gettop(co) - 1;
  }
  S->current = t;
  if (S->trace) ah_trace_resume(S, t);
  status = lua_resume(co, S->L, narg, &nres);
  S->current = NULL;
  if (S->trace) ah_trace_suspend(S, t, status);
  if (status == LUA_YIELD) {
    lua_pop(co, nres);
    if (t->unwait == NULL && !t->queued)  /* a yield that isn't an await */
      ah_ready(S, t);
    return;
  }
  if (status != LUA_OK) {  /* an error the body could not catch */
    t->outcome = AH_FAILED;
    nres = 1;
  }
  finish(S, t, nres);
}

void ah_unawait (ah_sched *S, ah_task *t) {
  lua_State *L = S->L;
  ah_delwaiter(&((ah_future *)t->waitobj)->waiters, &t->w);
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->waitref);
  luaL_unref(L, LUA_REGISTRYINDEX, t->waitref);
  t->waitref = LUA_NOREF;
  ah_pushextra(L, t, "cancelmsg");  /* forwarded with the cancel */
  ah_cancelfuture(L, S, lua_gettop(L) - 1, lua_tostring(L, -1));
  lua_pop(L, 2);
}

/* Requests the cancellation of 't'.  Returns 0 if it is already done. */
int ah_cancel (ah_sched *S, ah_task *t, const char *msg) {
  lua_State *L = S->L;
  if (t->f.state != AH_PENDING) return 0;
  if (t->ncancel < 0xffff) t->ncancel++;
  if (msg != NULL) {
    lua_pushstring(L, msg);
    ah_setextra(L, t, "cancelmsg");
  }
  if (t->unwait != NULL) {  /* waiting: end the wait now */
    ah_unwaitfn unwait = t->unwait;
    t->unwait = NULL;
    unwait(S, t);
    t->wake = AH_WAKE_CANCEL;
    ah_ready(S, t);
  }
  else  /* running, or woken already: at its next await */
    t->mustcancel = 1;
  return 1;
}

/* Cancels every pending task (at exit), saying so on stderr. */
void ah_cancelall (lua_State *L, ah_sched *S, const char *why) {
  int n = S->nlive, k;
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->liveref);
  lua_createtable(L, n, 0);  /* a copy: cancelling may end tasks */
  for (k = 1; k <= n; k++) {
    lua_rawgeti(L, -2, k);
    lua_rawseti(L, -2, k);
  }
  for (k = 1; k <= n; k++) {
    ah_task *t;
    lua_rawgeti(L, -1, k);
    t = (ah_task *)lua_touserdata(L, -1);
    if (t->f.state == AH_PENDING) {
      ah_pushname(L, -1);
      ah_pushspawnsite(L, -2);
      fprintf(stderr, "asynchost: cancelling task '%s' (spawned at %s), "
              "still pending when %s\n", lua_tostring(L, -2),
              lua_tostring(L, -1), why);
      lua_pop(L, 2);
      ah_cancel(S, t, why);
    }
    lua_pop(L, 1);
  }
  fflush(stderr);
  lua_pop(L, 2);
}

/* }====================================================== */


/* {======================================================
** Reporting: error messages with their story, task dumps
** ======================================================= */

const char *ah_statename (int state) {
  return statenames[state];
}

/* Pushes the error value at 'i' as text, as lua.c's handler would. */
static void pusherrmsg (lua_State *L, int i) {
  if (lua_type(L, i) == LUA_TSTRING || lua_type(L, i) == LUA_TNUMBER ||
      luaL_getmetafield(L, i, "__tostring") != LUA_TNIL) {
    if (lua_type(L, i) != LUA_TSTRING && lua_type(L, i) != LUA_TNUMBER)
      lua_pop(L, 1);  /* the metafield */
    luaL_tolstring(L, i, NULL);
  }
  else
    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, i));
}

/* Concatenates to the string below the top: where the task at 'i' failed
** (its traceback) and where it was spawned. */
static void addstory (lua_State *L, int i) {
  if (ah_getextra(L, i, "traceback") == LUA_TSTRING) {
    lua_pushliteral(L, "\n");
    lua_insert(L, -2);
    lua_concat(L, 3);
  }
  else lua_pop(L, 1);
  lua_pushliteral(L, "\n\t(in task '");
  ah_pushname(L, i);
  pushspawnedat(L, i, "', spawned at ", "", "'");
  lua_pushliteral(L, ")");
  lua_concat(L, 5);
}

/* Pushes the message of the failed task at 'i': its error, where it was
** raised, and the chain of tasks that awaited and re-raised it. */
void ah_pushstory (lua_State *L, int i) {
  int top = lua_gettop(L), k, n = 0;
  i = lua_absindex(L, i);
  lua_pushvalue(L, i);
  while (ah_getextra(L, -1, "cause") == LUA_TUSERDATA && n < 50)
    n++;  /* stack: i, cause1, cause2, ..., nil */
  lua_pop(L, 1);
  ah_pusherrorvalue(L, top + 1 + n);
  pusherrmsg(L, lua_gettop(L));
  lua_remove(L, -2);
  for (k = top + 1 + n; k > top; k--) {
    if (k != top + 1 + n) {
      lua_pushliteral(L, "\nre-raised by the task awaiting it:");
      lua_concat(L, 2);
    }
    addstory(L, k);
  }
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);
}

/* What a task waits on, for dumps. */
void ah_pushwait (lua_State *L, ah_task *t) {
  if (t->f.state != AH_PENDING)
    lua_pushstring(L, statenames[t->f.state]);
  else if (t->waitwhat == NULL)
    lua_pushstring(L, t->queued ? "ready to run" : "running");
  else
    lua_pushfstring(L, "waiting on %s", t->waitwhat);
}

/* Pushes a report of every live task: name, where spawned, what it waits
** on, and where (its traceback). */
void ah_pushtaskdump (lua_State *L, const char *title) {
  ah_sched *S = ah_sched_get(L);
  int k, live;
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->liveref);
  live = lua_gettop(L);
  lua_pushstring(L, title);
  for (k = 1; k <= S->nlive; k++) {
    ah_task *t;
    lua_rawgeti(L, live, k);
    t = (ah_task *)lua_touserdata(L, -1);
    lua_pushliteral(L, "\n  task '");
    ah_pushname(L, -2);
    pushspawnedat(L, -3, "' (spawned at ", ")", "'");
    lua_pushliteral(L, ": ");
    ah_pushwait(L, t);
    ah_trace_pushdumpinfo(L, t);  /* more on the wait; the task's age */
    if (t->started && t != S->current) {
      luaL_traceback(L, t->co, NULL, 0);
      luaL_gsub(L, lua_tostring(L, -1), "\n\t", "\n      ");
      lua_remove(L, -2);
      lua_pushliteral(L, "\n    ");
      lua_insert(L, -2);
      lua_concat(L, 8);
    }
    else
      lua_concat(L, 6);
    lua_remove(L, -2);  /* the task */
    lua_concat(L, 2);
  }
  lua_remove(L, live);
}

/* Cancels the future at 'i': a task through ah_cancel, a gather with its
** children.  Returns 0 if it was already done. */
int ah_cancelfuture (lua_State *L, ah_sched *S, int i, const char *msg) {
  ah_future *f = (ah_future *)lua_touserdata(L, i);
  i = lua_absindex(L, i);
  if (f->istask) return ah_cancel(S, (ah_task *)f, msg);
  if (f->state != AH_PENDING) return 0;
  if (msg != NULL) {
    lua_pushstring(L, msg);
    ah_setextraat(L, i, "cancelmsg");
  }
  f->state = AH_CANCELLED;
  f->nres = 0;
  ah_completed(L, S, i);
  if (f->kind == AH_KIND_GATHER)
    ah_cancelgather(L, S, i, msg);
  else if (f->kind == AH_KIND_HOOKED && ((ah_hookedfuture *)f)->oncancel)
    ((ah_hookedfuture *)f)->oncancel(((ah_hookedfuture *)f)->p);
  return 1;
}

/* }====================================================== */


/* After ah_runtask: the outcome of the task at 'i'.  Pushes its results
** and returns LUA_OK, or pushes one error value: the formatted message
** ('raw' == 0) or the error itself. */
int ah_taskoutcome (lua_State *L, int i, int nresults, int raw) {
  ah_future *f = (ah_future *)lua_touserdata(L, i);
  int top = lua_gettop(L), n;
  ah_sched *S = ah_sched_get(L);
  switch (f->state) {
    case AH_DONE:
      n = ah_pushresults(L, i);
      if (nresults != LUA_MULTRET)
        lua_settop(L, top + nresults);
      (void)n;
      return LUA_OK;
    case AH_PENDING:
      lua_pushliteral(L, "the task did not finish: the loop stopped");
      return LUA_ERRRUN;
    case AH_CANCELLED:
      if (!raw && S->interrupted) {
        lua_pushliteral(L, "interrupted!");
        return LUA_ERRRUN;
      }
      /* FALLTHROUGH */
    default:
      f->retrieved = 1;
      if (raw)
        ah_pusherrorvalue(L, i);
      else
        ah_pushstory(L, i);
      return LUA_ERRRUN;
  }
}

/* }====================================================== */

/*
** asynchost.core: the Lua functions of tasks, futures, sleep and gather.
** The machinery they use lives in task.c and sched.c.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <math.h>
#include "asynchost.h"

typedef struct gnode {  /* a gather's waiter on one child */
  ah_waiter w;
  int idx;              /* 1-based position of the child */
  int done;             /* the child is done: its slot holds its result */
} gnode;

typedef struct ah_gather {
  ah_future f;
  ah_sched *S;
  int n, remaining;
  int retexc;           /* return_exceptions */
  int ref;              /* keeps the gather alive while children run */
  gnode nodes[1];
} ah_gather;

#define getsched(L)  ((ah_sched *)lua_touserdata(L, lua_upvalueindex(1)))

static ah_future *checkfuture (lua_State *L, int i) {
  ah_future *f = ah_tofuture(getsched(L), L, i);
  if (f == NULL) luaL_typeerror(L, i, "task or future");
  return f;
}

static void checkcallable (lua_State *L, int i) {
  if (lua_type(L, i) != LUA_TFUNCTION) {
    if (!luaL_getmetafield(L, i, "__call"))
      luaL_typeerror(L, i, "function");
    lua_pop(L, 1);
  }
}


/* {======================================================
** Tasks and time
** ======================================================= */

static int l_spawn (lua_State *L) {
  int n = lua_gettop(L);
  checkcallable(L, 1);
  ah_spawn(getsched(L), L, 1, n - 1);
  return 1;
}

static int sleepk (lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  ah_checkwake(L, getsched(L)->current);
  return 0;
}

static int l_sleep (lua_State *L) {
  lua_Number s = luaL_checknumber(L, 1);
  ah_task *t;
  luaL_argcheck(L, s >= 0, 1, "non-negative number expected");
  t = ah_current(getsched(L), L, "sleep");
  ah_sleep(t, (double)s);
  return ah_suspend(L, sleepk, 0);
}

/* Hangs the running task 't' on the future at 1 and suspends it. */
static void waitwake (ah_sched *S, ah_waiter *w, ah_future *f) {
  ah_task *t = (ah_task *)((char *)w - offsetof(ah_task, w));
  lua_State *L = S->L;
  (void)f;
  luaL_unref(L, LUA_REGISTRYINDEX, t->waitref);
  t->waitref = LUA_NOREF;
  ah_wake(t, AH_WAKE_OK);
}

static int finishawait (lua_State *L, ah_task *t) {
  ah_future *f = (ah_future *)lua_touserdata(L, 1);
  if (f->state == AH_FAILED && f->istask && t != NULL) {
    lua_pushvalue(L, 1);  /* its error continues the story of 1 */
    ah_setextra(L, t, "cause");
  }
  return ah_pushresults(L, 1);
}

static int awaitk (lua_State *L, int status, lua_KContext ctx) {
  ah_task *t = getsched(L)->current;
  (void)status; (void)ctx;
  ah_checkwake(L, t);
  return finishawait(L, t);
}

static int l_await (lua_State *L) {
  ah_future *f = checkfuture(L, 1);
  ah_task *t;
  lua_settop(L, 1);
  if (f->state != AH_PENDING)
    return finishawait(L, getsched(L)->current);
  t = ah_current(getsched(L), L, "await");
  if (f == &t->f)
    return luaL_error(L, "a task cannot await itself");
  if (!ah_wait(t, ah_unawait, f, f->istask ? "a task"
               : f->kind == AH_KIND_GATHER ? "a gather" : "a future")) {
    t->w.fn = waitwake;
    ah_addwaiter(&f->waiters, &t->w);
    lua_pushvalue(L, 1);
    t->waitref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  return ah_suspend(L, awaitk, 0);
}

static int l_current (lua_State *L) {
  ah_sched *S = getsched(L);
  if (S->current == NULL) lua_pushnil(L);
  else ah_pushtask(L, S->current);
  return 1;
}

static int l_alltasks (lua_State *L) {
  ah_sched *S = getsched(L);
  int k;
  lua_createtable(L, S->nlive, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->liveref);
  for (k = 1; k <= S->nlive; k++) {
    lua_rawgeti(L, -1, k);
    lua_rawseti(L, -3, k);
  }
  lua_pop(L, 1);
  return 1;
}

static int l_looptime (lua_State *L) {
  ah_sched *S = getsched(L);
  lua_pushnumber(L, (lua_Number)(uv_hrtime() - S->t0) / 1e9);
  return 1;
}

/* run(fn, ...): runs fn as a task to its end, then cancels what it left */
static int l_run (lua_State *L) {
  int n = lua_gettop(L), status;
  checkcallable(L, 1);
  status = ah_runtask1(L, n - 1, LUA_MULTRET, 1);
  if (getsched(L)->main == NULL)
    ah_shutdown(L);
  if (status != LUA_OK)
    return lua_error(L);
  return lua_gettop(L);
}

static void listhandle (uv_handle_t *h, void *arg) {
  ah_sched *S = (ah_sched *)arg;
  lua_State *L = S->L;
  if (h == (uv_handle_t *)&S->check || h == (uv_handle_t *)&S->idle ||
      h == (uv_handle_t *)&S->timer || h == (uv_handle_t *)&S->sigint ||
      !uv_is_active(h) || uv_is_closing(h))
    return;
  lua_pushstring(L, uv_handle_type_name(uv_handle_get_type(h)));
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
}

/* handles() -> array of the type names of the active handles on the loop
** (the scheduler's own excepted) */
static int l_handles (lua_State *L) {
  ah_sched *S = getsched(L);
  lua_newtable(L);
  lua_pushvalue(L, -1);
  lua_xmove(L, S->L, 1);
  uv_walk(S->loop, listhandle, S);
  lua_pop(S->L, 1);
  return 1;
}

/* isatty(fd): is the file descriptor (0, 1, 2...) a terminal? */
static int l_isatty (lua_State *L) {
  lua_Integer fd = luaL_checkinteger(L, 1);
  luaL_argcheck(L, fd >= 0 && fd <= 0x7fffffff, 1, "invalid descriptor");
  lua_pushboolean(L, uv_guess_handle((uv_file)fd) == UV_TTY);
  return 1;
}

static int l_taskdump (lua_State *L) {
  ah_pushtaskdump(L, luaL_optstring(L, 1, "tasks:"));
  return 1;
}

/* }====================================================== */


/* {======================================================
** Methods shared by tasks and futures
** ======================================================= */

static int f_done (lua_State *L) {
  lua_pushboolean(L, checkfuture(L, 1)->state != AH_PENDING);
  return 1;
}

static int f_cancelled (lua_State *L) {
  lua_pushboolean(L, checkfuture(L, 1)->state == AH_CANCELLED);
  return 1;
}

static int f_result (lua_State *L) {
  ah_future *f = checkfuture(L, 1);
  if (f->state == AH_PENDING) {
    ah_pusherror(L, "InvalidStateError", f->istask ? "task is not done yet"
                                                   : "future is not done yet");
    return lua_error(L);
  }
  lua_settop(L, 1);
  return ah_pushresults(L, 1);
}

static int f_exception (lua_State *L) {
  ah_future *f = checkfuture(L, 1);
  f->observed = 1;
  switch (f->state) {
    case AH_PENDING:
      ah_pusherror(L, "InvalidStateError", f->istask ? "task is not done yet"
                                                     : "future is not done yet");
      return lua_error(L);
    case AH_CANCELLED:
      ah_pusherrorvalue(L, 1);
      return lua_error(L);
    case AH_FAILED:
      f->retrieved = 1;
      ah_pusherrorvalue(L, 1);
      return 1;
    default:
      lua_pushnil(L);
      return 1;
  }
}

static int f_adddonecb (lua_State *L) {
  ah_future *f = checkfuture(L, 1);
  ah_sched *S = getsched(L);
  checkcallable(L, 2);
  lua_settop(L, 2);
  f->observed = 1;
  if (f->state != AH_PENDING) {  /* run it on the next turn */
    lua_rawgeti(L, LUA_REGISTRYINDEX, S->cbref);
    lua_pushvalue(L, 2);
    lua_rawseti(L, -2, ++S->cbtail);
    lua_pushvalue(L, 1);
    lua_rawseti(L, -2, ++S->cbtail);
    if (S->rcount == 0) uv_idle_start(&S->idle, ah_noidle);
    return 0;
  }
  if (ah_getextra(L, 1, "callbacks") != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    ah_setextraat(L, 1, "callbacks");
  }
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  f->hascb = 1;
  return 0;
}

static int f_removedonecb (lua_State *L) {
  int n, k, removed = 0;
  checkfuture(L, 1);
  checkcallable(L, 2);  /* what add_done_callback takes */
  if (ah_getextra(L, 1, "callbacks") != LUA_TTABLE) {
    lua_pushinteger(L, 0);
    return 1;
  }
  n = (int)lua_rawlen(L, -1);
  lua_newtable(L);
  for (k = 1; k <= n; k++) {
    lua_rawgeti(L, -2, k);
    if (lua_rawequal(L, -1, 2)) { removed++; lua_pop(L, 1); }
    else lua_rawseti(L, -2, k - removed);
  }
  ah_setextraat(L, 1, "callbacks");
  lua_pushinteger(L, removed);
  return 1;
}

/* }====================================================== */


/* {======================================================
** Task methods
** ======================================================= */

static int t_cancel (lua_State *L) {
  ah_task *t = ah_checktask(getsched(L), L, 1);
  const char *msg = luaL_optstring(L, 2, NULL);
  lua_pushboolean(L, ah_cancel(t->S, t, msg));
  return 1;
}

static int t_cancelling (lua_State *L) {
  lua_pushinteger(L, ah_checktask(getsched(L), L, 1)->ncancel);
  return 1;
}

static int t_uncancel (lua_State *L) {
  ah_task *t = ah_checktask(getsched(L), L, 1);
  if (t->ncancel > 0 && --t->ncancel == 0)
    t->mustcancel = t->swallowed = 0;
  lua_pushinteger(L, t->ncancel);
  return 1;
}

static int t_getname (lua_State *L) {
  ah_checktask(getsched(L), L, 1);
  ah_pushname(L, 1);
  return 1;
}

static int t_setname (lua_State *L) {
  ah_checktask(getsched(L), L, 1);
  luaL_checkany(L, 2);
  luaL_tolstring(L, 2, NULL);
  ah_setextraat(L, 1, "name");
  return 0;
}

static int t_tostring (lua_State *L) {
  ah_task *t = ah_checktask(getsched(L), L, 1);
  lua_pushliteral(L, "Task '");
  ah_pushname(L, 1);
  lua_pushliteral(L, "' (");
  ah_pushwait(L, t);
  lua_pushliteral(L, ")");
  lua_concat(L, 5);
  return 1;
}

/* The traceback of where the task failed, or nil. */
static int t_traceback (lua_State *L) {
  ah_checktask(getsched(L), L, 1);
  ah_getextra(L, 1, "traceback");
  return 1;
}

/* A failed task nobody asked about is reported when collected. */
static int t_gc (lua_State *L) {
  ah_task *t = (ah_task *)lua_touserdata(L, 1);
  if (t->f.state == AH_FAILED && !t->f.retrieved) {
    t->f.retrieved = 1;
    ah_pushstory(L, 1);
    ah_pushname(L, 1);
    fprintf(stderr, "asynchost: error of task '%s' was never retrieved: %s\n",
            lua_tostring(L, -1), lua_tostring(L, -2));
    fflush(stderr);
    lua_pop(L, 2);
  }
  if (t->S->trace) ah_trace_taskgc(L, t->S, 1);  /* never awaited? */
  return 0;
}

/* }====================================================== */


/* {======================================================
** Futures made by Lua (and by the embedder)
** ======================================================= */

static int l_future (lua_State *L) {
  ah_future *f = (ah_future *)lua_newuserdatauv(L, sizeof(ah_future), 3);
  memset(f, 0, sizeof(*f));
  f->tag = AH_TAG_FUTURE;
  ah_setmt(L, getsched(L), AH_MT_FUTURE);
  return 1;
}

static ah_future *checkplain (lua_State *L, int i) {
  ah_future *f = ah_tofuture(getsched(L), L, i);
  if (f == NULL || f->istask)
    luaL_typeerror(L, i, "future");
  if (f->kind == AH_KIND_GATHER)
    luaL_argerror(L, i, "the result of a gather cannot be set");
  return f;
}

static int u_setresult (lua_State *L) {
  ah_future *f = checkplain(L, 1);
  if (f->state != AH_PENDING) {
    ah_pusherror(L, "InvalidStateError", "future is already done");
    return lua_error(L);
  }
  ah_setfuture(L, getsched(L), 1, AH_DONE, lua_gettop(L) - 1);
  return 0;
}

static int u_setexception (lua_State *L) {
  ah_future *f = checkplain(L, 1);
  luaL_checkany(L, 2);
  if (f->state != AH_PENDING) {
    ah_pusherror(L, "InvalidStateError", "future is already done");
    return lua_error(L);
  }
  lua_settop(L, 2);
  ah_setfuture(L, getsched(L), 1, AH_FAILED, 1);
  return 0;
}

static int u_cancel (lua_State *L) {
  checkfuture(L, 1);
  lua_settop(L, 2);
  lua_pushboolean(L, ah_cancelfuture(L, getsched(L), 1, luaL_optstring(L, 2, NULL)));
  return 1;
}

static int u_tostring (lua_State *L) {
  ah_future *f = ah_tofuture(getsched(L), L, 1);
  lua_pushfstring(L, "Future (%s)", ah_statename(f->state));
  return 1;
}

static int u_gc (lua_State *L) {
  ah_future *f = (ah_future *)lua_touserdata(L, 1);
  if (f->state == AH_FAILED && !f->retrieved) {
    ah_pusherrorvalue(L, 1);
    fprintf(stderr, "asynchost: error of a future was never retrieved: %s\n",
            luaL_tolstring(L, -1, NULL));
    fflush(stderr);
    lua_pop(L, 2);
  }
  return 0;
}

/* }====================================================== */


/* {======================================================
** gather: one future over many, results in input order
** ======================================================= */

#define gatherof(nd)  ((ah_gather *)((char *)((nd) - ((nd)->idx - 1)) - \
                                     offsetof(ah_gather, nodes)))

static void endgather (lua_State *L, ah_gather *g) {
  if (g->remaining == 0 && g->ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, g->ref);
    g->ref = LUA_NOREF;
  }
}

/* A child of the gather is done.  Stack use: balanced. */
static void gatherwake (ah_sched *S, ah_waiter *w, ah_future *child) {
  gnode *nd = (gnode *)w;
  ah_gather *g = gatherof(nd);
  lua_State *L = S->L;
  int top = lua_gettop(L), gi, ci;
  g->remaining--;
  nd->done = 1;
  child->observed = 1;
  if (child->state == AH_FAILED) child->retrieved = 1;
  if (g->f.state != AH_PENDING) {  /* already failed or cancelled */
    endgather(L, g);
    return;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, g->ref);
  gi = lua_gettop(L);
  lua_getiuservalue(L, gi, 1);  /* results, and the children not done yet */
  lua_rawgeti(L, -1, nd->idx);
  ci = lua_gettop(L);
  if (child->state == AH_DONE) {  /* its result takes its place */
    ah_pushfirstresult(L, ci);
    lua_rawseti(L, ci - 1, nd->idx);
  }
  else if (g->retexc) {
    ah_pusherrorvalue(L, ci);
    lua_rawseti(L, ci - 1, nd->idx);
  }
  else {  /* the first failure is the gather's */
    lua_createtable(L, 1, 0);
    ah_pusherrorvalue(L, ci);
    lua_rawseti(L, -2, 1);
    lua_setiuservalue(L, gi, 1);
    g->f.state = AH_FAILED;
    g->f.nres = 1;
    g->f.retrieved = 0;
    ah_completed(L, S, gi);
  }
  if (g->remaining == 0 && g->f.state == AH_PENDING) {
    lua_settop(L, ci - 1);  /* the results */
    lua_pushinteger(L, g->n);
    lua_setfield(L, -2, "n");
    g->f.state = AH_DONE;
    g->f.nres = 1;  /* uservalue 1 becomes {results} */
    lua_createtable(L, 1, 0);
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, 1);
    lua_setiuservalue(L, gi, 1);
    ah_completed(L, S, gi);
  }
  endgather(L, g);
  lua_settop(L, top);
}

/* gather(list, n, return_exceptions) -> future */
static int l_gather (lua_State *L) {
  ah_sched *S = getsched(L);
  int n, k, retexc, gi;
  ah_gather *g;
  luaL_checktype(L, 1, LUA_TTABLE);
  n = (int)luaL_optinteger(L, 2, (lua_Integer)lua_rawlen(L, 1));
  retexc = lua_toboolean(L, 3);
  luaL_argcheck(L, n >= 0 && n < (1 << 26), 2, "invalid count");
  lua_settop(L, 1);
  lua_createtable(L, n, 1);  /* 2: our copy of the list; each child gives
                                its place to its result (and 'n' comes) */
  for (k = 1; k <= n; k++) {
    lua_rawgeti(L, 1, k);
    if (lua_type(L, -1) == LUA_TFUNCTION)
      ah_spawn(S, L, lua_gettop(L), 0);
    else if (ah_tofuture(S, L, -1) == NULL)
    {
      lua_pushfstring(L, "bad argument #%d to 'gather' (task, future or "
                      "function expected, got %s)", k, luaL_typename(L, -1));
      return lua_error(L);
    }
    lua_rawseti(L, 2, k);
  }
  g = (ah_gather *)lua_newuserdatauv(L, sizeof(ah_gather)
                                        + (size_t)n * sizeof(gnode), 3);
  memset(g, 0, sizeof(ah_gather) + (size_t)n * sizeof(gnode));
  g->f.tag = AH_TAG_FUTURE;
  g->f.kind = AH_KIND_GATHER;
  g->S = S;
  g->n = g->remaining = n;
  g->retexc = retexc;
  ah_setmt(L, S, AH_MT_FUTURE);
  gi = lua_gettop(L);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, gi, 1);
  lua_pushvalue(L, gi);
  g->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  for (k = 1; k <= n; k++) {
    ah_future *c;
    lua_rawgeti(L, 2, k);
    c = (ah_future *)lua_touserdata(L, -1);
    lua_pop(L, 1);
    g->nodes[k - 1].idx = k;
    g->nodes[k - 1].w.fn = gatherwake;
    if (c->state != AH_PENDING)
      gatherwake(S, &g->nodes[k - 1].w, c);
    else
      ah_addwaiter(&c->waiters, &g->nodes[k - 1].w);
  }
  if (n == 0) {
    lua_getiuservalue(L, gi, 1);
    lua_pushinteger(L, 0);
    lua_setfield(L, -2, "n");
    lua_createtable(L, 1, 0);
    lua_insert(L, -2);
    lua_rawseti(L, -2, 1);
    lua_setiuservalue(L, gi, 1);
    g->f.state = AH_DONE;
    g->f.nres = 1;
    endgather(L, g);
  }
  lua_settop(L, gi);
  return 1;
}

/* Cancels the children of the gather at 'i' that are still pending. */
void ah_cancelgather (lua_State *L, ah_sched *S, int i, const char *msg) {
  ah_gather *g = (ah_gather *)lua_touserdata(L, i);
  int k;
  lua_getiuservalue(L, i, 1);  /* results, and the children not done yet */
  for (k = 1; k <= g->n; k++) {
    if (g->nodes[k - 1].done) continue;
    lua_rawgeti(L, -1, k);
    ah_cancelfuture(L, S, lua_gettop(L), msg);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* }====================================================== */


/* {======================================================
** call_later: a callback on the main thread after a delay
** ======================================================= */

#define LATER_MT  "asynchost.TimerHandle"

/* The timer lives in malloc'ed memory (its close completes after the
** userdata may be gone); the userdata holds a pointer to it, NULL once
** the timer has fired or was cancelled. */
typedef struct later {
  uv_timer_t h;
  ah_sched *S;
  struct later **box;  /* the userdata's pointer to us, or NULL */
  int selfref;         /* keeps the userdata alive while the timer runs */
  int fnref;
} later;

static void laterfree (uv_handle_t *h) {
  free(h->data);
}

/* Stops the timer and lets go of its Lua values (state still open). */
static void laterstop (later *l) {
  lua_State *L = l->S->L;
  luaL_unref(L, LUA_REGISTRYINDEX, l->fnref);
  luaL_unref(L, LUA_REGISTRYINDEX, l->selfref);
  if (l->box) *l->box = NULL;
  uv_close((uv_handle_t *)&l->h, laterfree);
}

static void onlater (uv_timer_t *h) {
  later *l = (later *)h->data;
  ah_sched *S = l->S;
  lua_State *L = S->L;
  int top = lua_gettop(L);
  lua_pushcfunction(L, ah_tracemsgh);
  lua_rawgeti(L, LUA_REGISTRYINDEX, l->fnref);
  laterstop(l);
  if (S->trace) ah_trace_cbbegin(L, S, top + 2);
  if (lua_pcall(L, 0, 0, top + 1) != LUA_OK) {
    fprintf(stderr, "asynchost: error in a call_later callback: %s\n",
            lua_tostring(L, -1));
    fflush(stderr);
  }
  if (S->trace) ah_trace_cbend(S, "a call_later callback");
  lua_settop(L, top);
}

/* call_later(seconds, fn) -> handle with :cancel() */
static int l_calllater (lua_State *L) {
  ah_sched *S = getsched(L);
  lua_Number s = luaL_checknumber(L, 1);
  later *l, **box;
  luaL_argcheck(L, s >= 0, 1, "non-negative number expected");
  checkcallable(L, 2);
  if (s > 1e9) s = 1e9;
  box = (later **)lua_newuserdatauv(L, sizeof(later *), 0);
  *box = NULL;
  luaL_setmetatable(L, LATER_MT);
  l = (later *)malloc(sizeof(later));
  if (l == NULL) return luaL_error(L, "not enough memory");
  l->S = S;
  l->box = box;
  uv_timer_init(S->loop, &l->h);
  l->h.data = l;
  lua_pushvalue(L, 2);
  l->fnref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, -1);
  l->selfref = luaL_ref(L, LUA_REGISTRYINDEX);
  *box = l;
  uv_update_time(S->loop);
  uv_timer_start(&l->h, onlater, (uint64_t)ceil(s * 1000), 0);
  return 1;
}

static int later_cancel (lua_State *L) {
  later **box = (later **)luaL_checkudata(L, 1, LATER_MT);
  int active = *box != NULL;
  if (active) laterstop(*box);
  lua_pushboolean(L, active);
  return 1;
}

/* Collected with its timer still set: only when the state closes (the
** timer keeps its userdata alive otherwise).  No Lua calls here. */
static int later_gc (lua_State *L) {
  later **box = (later **)lua_touserdata(L, 1);
  if (*box != NULL) {
    (*box)->box = NULL;
    uv_close((uv_handle_t *)&(*box)->h, laterfree);
    *box = NULL;
  }
  return 0;
}

/* }====================================================== */


static const luaL_Reg funcs[] = {
  {"call_later", l_calllater},
  {"spawn", l_spawn},
  {"sleep", l_sleep},
  {"await", l_await},
  {"current_task", l_current},
  {"all_tasks", l_alltasks},
  {"loop_time", l_looptime},
  {"run", l_run},
  {"Future", l_future},
  {"gather", l_gather},
  {"dump_tasks", l_taskdump},
  {"handles", l_handles},
  {"isatty", l_isatty},
  {NULL, NULL}
};

static const luaL_Reg taskmeth[] = {
  {"await", l_await},
  {"cancel", t_cancel},
  {"cancelling", t_cancelling},
  {"uncancel", t_uncancel},
  {"done", f_done},
  {"cancelled", f_cancelled},
  {"result", f_result},
  {"exception", f_exception},
  {"add_done_callback", f_adddonecb},
  {"remove_done_callback", f_removedonecb},
  {"get_name", t_getname},
  {"set_name", t_setname},
  {"traceback", t_traceback},
  {NULL, NULL}
};

static const luaL_Reg futmeth[] = {
  {"await", l_await},
  {"cancel", u_cancel},
  {"done", f_done},
  {"cancelled", f_cancelled},
  {"result", f_result},
  {"exception", f_exception},
  {"add_done_callback", f_adddonecb},
  {"remove_done_callback", f_removedonecb},
  {"set_result", u_setresult},
  {"set_exception", u_setexception},
  {NULL, NULL}
};

static const luaL_Reg taskmetameth[] = {
  {"__tostring", t_tostring},
  {NULL, NULL}
};

static const luaL_Reg futmetameth[] = {
  {"__tostring", u_tostring},
  {NULL, NULL}
};

/* Registers as our k-th metatable a copy of the metatable on top with
** 'gc' as its finalizer; leaves the stack as it was. */
static void gcvariant (lua_State *L, ah_sched *S, int k, lua_CFunction gc) {
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, -3)) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, -4);
  }
  lua_pushlightuserdata(L, S);
  lua_pushcclosure(L, gc, 1);
  lua_setfield(L, -2, "__gc");
  ah_regmt(L, S, k);
  lua_pop(L, 1);
}

/* Makes the metatables of tasks and futures (with the scheduler, since
** the first task may come before the module is required).  A finalizer
** costs every object that has one (Lua keeps such objects on a list of
** their own and runs a call when they are collected), and ours only
** matter for a failure nobody retrieved or in debug mode: a task or
** future gets the variant with __gc when it completes so (ah_completed). */
void ah_openclasses (lua_State *L, ah_sched *S) {
  ah_newclass(L, S, AH_MT_TASK, AH_TASK_MT, taskmeth, taskmetameth);
  ah_newclass(L, S, AH_MT_FUTURE, AH_FUTURE_MT, futmeth, futmetameth);
  luaL_getmetatable(L, AH_TASK_MT);
  gcvariant(L, S, AH_MT_TASKGC, t_gc);
  luaL_getmetatable(L, AH_FUTURE_MT);
  gcvariant(L, S, AH_MT_FUTUREGC, u_gc);
  lua_pop(L, 2);
}

int luaopen_asynchost_core (lua_State *L) {
  ah_sched *S = ah_sched_get(L);
  luaL_newmetatable(L, LATER_MT);
  lua_newtable(L);
  lua_pushcfunction(L, later_cancel);
  lua_setfield(L, -2, "cancel");
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, later_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, funcs, 1);
  lua_pushliteral(L, AH_VERSION_STRING);
  lua_setfield(L, -2, "_VERSION");
  lua_pushlightuserdata(L, AH_YIELDMARK);
  lua_setfield(L, -2, "YIELDMARK");
  return 1;
}

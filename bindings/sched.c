/*
** The scheduler: the ready queue, the timer heap, waits and wake-ups, and
** driving the loop until a task ends.  No Lua module here: the functions
** are shared through asynchost.h.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <signal.h>
#include "asynchost.h"

static void runready (uv_check_t *h);
static void ontimer (uv_timer_t *h);
static void onsigint (uv_signal_t *h, int signum);


/* {======================================================
** Creating and closing
** ======================================================= */

const char ah_yieldmark = 0;

void ah_noidle (uv_idle_t *h) { (void)h; }

static int schedgc (lua_State *L) {
  ah_sched **box = (ah_sched **)lua_touserdata(L, 1);
  if (*box != NULL) {
    ah_sched_close(*box);
    *box = NULL;
  }
  return 0;
}

/* Creates the scheduler of 'L' on 'loop' (NULL: a loop of its own) and
** anchors it in the registry.  Raises on failure. */
ah_sched *ah_sched_new (lua_State *L, uv_loop_t *loop) {
  ah_sched *S = (ah_sched *)calloc(1, sizeof(ah_sched));
  ah_sched **box;
  int r;
  if (S == NULL) luaL_error(L, "not enough memory");
  if (loop == NULL) {
    loop = (uv_loop_t *)malloc(sizeof(uv_loop_t));
    if (loop == NULL || (r = uv_loop_init(loop)) != 0) {
      free(loop); free(S);
      luaL_error(L, "cannot create the event loop");
    }
    S->ownloop = 1;
  }
  S->loop = loop;
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  S->L = lua_tothread(L, -1);
  lua_pop(L, 1);
  /* every new thread copies the main thread's extra space: a task's
  ** coroutine holds its task there, any other thread NULL */
  *(ah_task **)lua_getextraspace(S->L) = NULL;
  uv_check_init(loop, &S->check);
  uv_idle_init(loop, &S->idle);
  uv_timer_init(loop, &S->timer);
  uv_signal_init(loop, &S->sigint);
  S->check.data = S->idle.data = S->timer.data = S->sigint.data = S;
  uv_check_start(&S->check, runready);
  uv_unref((uv_handle_t *)&S->check);  /* only 'idle' keeps the loop alive */
  S->t0 = uv_hrtime();
  lua_newtable(L);  /* live tasks, as an array */
  S->liveref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_newtable(L);  /* done callbacks to run: callback, future, ... */
  S->cbref = luaL_ref(L, LUA_REGISTRYINDEX);
  box = (ah_sched **)lua_newuserdatauv(L, sizeof(ah_sched *), 0);
  *box = S;
  lua_newtable(L);
  lua_pushcfunction(L, schedgc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, AH_SCHED_KEY);
  ah_openclasses(L, S);
  ah_trace_fromenv(L, S);  /* ASYNCHOST_DEBUG */
  return S;
}

void *ah_totagged_ (lua_State *L, int i, unsigned int tag, size_t size) {
  unsigned int *p = (unsigned int *)lua_touserdata(L, i);
  /* a light userdata has no length: it fails the size test */
  if (p == NULL || lua_rawlen(L, i) < size || *p != tag)
    return NULL;
  return p;
}

/* Makes metatable 'name' for a class of ours: 'meth' becomes its __index
** table and 'metameth' its metamethods (__tostring, __gc, __close...),
** all with the scheduler as upvalue 1; k >= 0 records it as our k-th. */
void ah_newclass (lua_State *L, ah_sched *S, int k, const char *name,
                  const luaL_Reg *meth, const luaL_Reg *metameth) {
  luaL_newmetatable(L, name);
  if (k >= 0) ah_regmt(L, S, k);
  lua_newtable(L);
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, meth, 1);
  lua_setfield(L, -2, "__index");
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, metameth, 1);
  lua_pop(L, 1);
}

/* Records the metatable on top as our k-th. */
void ah_regmt (lua_State *L, ah_sched *S, int k) {
  S->mt[k] = lua_topointer(L, -1);
  lua_pushvalue(L, -1);
  S->mtref[k] = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* Gives the value on top our k-th metatable. */
void ah_setmt (lua_State *L, ah_sched *S, int k) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->mtref[k]);
  lua_setmetatable(L, -2);
}

/* Has the value at 'i' our k-th metatable? */
int ah_ismt (lua_State *L, ah_sched *S, int i, int k) {
  int r;
  if (!lua_getmetatable(L, i)) return 0;
  r = lua_topointer(L, -1) == S->mt[k];
  lua_pop(L, 1);
  return r;
}

ah_sched *ah_sched_get (lua_State *L) {
  ah_sched *S;
  if (lua_getfield(L, LUA_REGISTRYINDEX, AH_SCHED_KEY) == LUA_TUSERDATA)
    S = *(ah_sched **)lua_touserdata(L, -1);
  else
    S = NULL;
  lua_pop(L, 1);
  return (S != NULL) ? S : ah_sched_new(L, NULL);
}

static void onclosed (uv_handle_t *h) {
  ah_sched *S = (ah_sched *)h->data;
  if (--S->closing == 0) {
    free(S->ready);
    free(S->heap);
    free(S);
  }
}

/* Closes the scheduler's handles.  With a loop of its own, runs it until
** they are closed and closes it; with a borrowed loop the embedder's next
** turns finish the job. */
void ah_sched_close (ah_sched *S) {
  uv_loop_t *loop = S->loop;
  int own = S->ownloop;
  S->closing = 4;
  uv_close((uv_handle_t *)&S->check, onclosed);
  uv_close((uv_handle_t *)&S->idle, onclosed);
  uv_close((uv_handle_t *)&S->timer, onclosed);
  uv_close((uv_handle_t *)&S->sigint, onclosed);
  if (own) {  /* 'S' is freed during this run: no callback may reach Lua */
    uv_walk(loop, ah_closewalk, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    free(loop);
  }
}

void ah_closewalk (uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

/* }====================================================== */


/* {======================================================
** The ready queue
** ======================================================= */

void ah_ready (ah_sched *S, ah_task *t) {
  if (t->queued) return;
  if (S->rcount == S->rcap) {  /* grow the ring, unrolling it */
    size_t ncap = S->rcap ? S->rcap * 2 : 64;
    ah_task **nr = (ah_task **)malloc(ncap * sizeof(ah_task *));
    size_t i;
    if (nr == NULL) {
      fputs("asynchost: not enough memory for the ready queue\n", stderr);
      abort();
    }
    for (i = 0; i < S->rcount; i++)
      nr[i] = S->ready[(S->rhead + i) % S->rcap];
    free(S->ready);
    S->ready = nr;
    S->rhead = 0;
    S->rcap = ncap;
  }
  S->ready[(S->rhead + S->rcount++) % S->rcap] = t;
  t->queued = 1;
  if (S->rcount == 1 && !S->closing)
    uv_idle_start(&S->idle, ah_noidle);  /* don't block in poll */
}

/* Runs the tasks that were ready when this turn began. */
static void runready (uv_check_t *h) {
  ah_sched *S = (ah_sched *)h->data;
  size_t n = S->rcount;
  while (n-- > 0) {
    ah_task *t = S->ready[S->rhead];
    S->rhead = (S->rhead + 1) % S->rcap;
    S->rcount--;
    t->queued = 0;
    ah_step(S, t);
  }
  ah_runcallbacks(S);
  if (S->rcount == 0)
    uv_idle_stop(&S->idle);
}

/* }====================================================== */


/* {======================================================
** Waits
** ======================================================= */

/* Begins a wait of 't' (the running task).  Returns 0 when the caller must
** register it, or 1 when a pending cancellation preempts it: the task is
** then already queued to be woken with CancelledError. */
int ah_wait (ah_task *t, ah_unwaitfn unwait, void *obj, const char *what) {
  t->gen++;
  t->waitwhat = what;
  t->waitobj = obj;
  if (t->mustcancel || (t->swallowed && t->ncancel > 0)) {
    t->mustcancel = t->swallowed = 0;
    t->unwait = NULL;
    t->wake = AH_WAKE_CANCEL;
    ah_ready(t->S, t);
    return 1;
  }
  t->unwait = unwait;
  return 0;
}

/* Ends the wait of 't', once: later calls for the same wait do nothing. */
void ah_wake (ah_task *t, int how) {
  if (t->unwait == NULL) return;
  t->unwait = NULL;
  t->wake = (unsigned char)how;
  ah_ready(t->S, t);
}

/* Suspends the running task until its wait ends; 'k' continues the C
** function that waits and must begin with ah_checkwake. */
int ah_suspend (lua_State *L, lua_KFunction k, lua_KContext ctx) {
  lua_pushlightuserdata(L, AH_YIELDMARK);  /* tells user coroutines to pass */
  return lua_yieldk(L, 1, ctx, k);
}

/* Was the task cancelled since its wait began (while waiting, or after it
** was woken but before it ran)?  A primitive that handed it something
** (a permit) passes it on when this is true, before ah_checkwake. */
int ah_cancelpending (ah_task *t) {
  return t->wake == AH_WAKE_CANCEL || (t->wake == AH_WAKE_OK && t->mustcancel);
}

/* At the return of a wait: raises CancelledError when the task was
** cancelled since the wait began (even if it was woken first: what it
** waited for stays where it was, as in asyncio), or the error the
** scheduler set. */
void ah_checkwake (lua_State *L, ah_task *t) {
  t->waitwhat = NULL;
  if (t->wake == AH_WAKE_OK && !t->mustcancel) return;
  if (t->wake != AH_WAKE_ERROR) {
    t->wake = AH_WAKE_OK;
    t->mustcancel = 0;
    ah_pushcancelled(L, t);
    lua_error(L);
  }
  t->wake = AH_WAKE_OK;  /* AH_WAKE_ERROR: the error is in the extras */
  ah_pushextra(L, t, "wakeerror");
  lua_error(L);
}

/* The running task, or a clear error naming 'fname'. */
/* Is 'src' (a chunk name) a file of asynchost's own Lua library, whose
** directory is .../asynchost/ (or .../asynchost/http/)? */
int ah_islibrary (const char *src) {
  const char *end = strrchr(src, '/'), *p;
  int up;
  if (src[0] != '@' || end == NULL) return 0;
  for (up = 0; up < 2; up++) {
    for (p = end; p > src + 1 && p[-1] != '/'; p--) ;
    if (end - p == 9 && strncmp(p, "asynchost", 9) == 0) return 1;
    if (p <= src + 1) return 0;
    end = p - 1;  /* one directory up */
  }
  return 0;
}

/* Pushes "chunk:line:" of the first Lua function up the stack that is not
** part of asynchost's library: errors blame the user's call, not the
** wrapper that made it (like luaL_where, which sees only one level). */
static void pushuserwhere (lua_State *L) {
  lua_Debug ar;
  int level;
  for (level = 1; lua_getstack(L, level, &ar); level++) {
    lua_getinfo(L, "Sl", &ar);
    if (ar.currentline > 0 && !ah_islibrary(ar.source)) {
      lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
      return;
    }
  }
  lua_pushliteral(L, "");
}

ah_task *ah_current (ah_sched *S, lua_State *L, const char *fname) {
  if (S->current == NULL) {
    pushuserwhere(L);
    lua_pushfstring(L, "cannot await outside a task (%s was called outside "
                       "async.run or async.spawn)", fname);
    lua_concat(L, 2);
    lua_error(L);
  }
  if (!lua_isyieldable(L))  /* checked before any wait is registered */
    luaL_error(L, "attempt to await across a C-call boundary (%s was called "
                  "from a metamethod, a table.sort comparator or another C "
                  "function that cannot be suspended)", fname);
  return S->current;
}

/* Undoes the wait the running task 't' just began, which cannot happen
** after all (its await could not be suspended). */
void ah_abortwait (ah_sched *S, ah_task *t) {
  if (t->unwait != NULL) {
    ah_unwaitfn unwait = t->unwait;
    t->unwait = NULL;
    unwait(S, t);
  }
  if (t->queued) {  /* woken at once (sleep(0)): take it off the queue */
    size_t i, j = 0, n = S->rcount;
    for (i = 0; i < n; i++) {
      ah_task *x = S->ready[(S->rhead + i) % S->rcap];
      if (x != t) S->ready[(S->rhead + j++) % S->rcap] = x;
    }
    S->rcount = j;
    t->queued = 0;
  }
  t->waitwhat = NULL;
}

/* }====================================================== */


/* {======================================================
** The timer heap: sleeping tasks ordered by (deadline, seq)
** ======================================================= */

/* Comes 'a' before 'b'?  (Equal deadlines, in nanoseconds, are rare: only
** they look at the tasks.) */
static int before (const ah_heapent *a, const ah_heapent *b) {
  return a->deadline < b->deadline ||
         (a->deadline == b->deadline && a->t->seq < b->t->seq);
}

static void heapset (ah_sched *S, int i, ah_heapent e) {
  S->heap[i] = e;
  e.t->heapidx = i;
}

static void siftup (ah_sched *S, int i) {
  ah_heapent e = S->heap[i];
  while (i > 0) {
    int p = (i - 1) / 4;
    if (!before(&e, &S->heap[p])) break;
    heapset(S, i, S->heap[p]);
    i = p;
  }
  heapset(S, i, e);
}

static void siftdown (ah_sched *S, int i) {
  ah_heapent e = S->heap[i];
  for (;;) {
    int c = 4 * i + 1, k, end = c + 4 < S->nheap ? c + 4 : S->nheap;
    if (c >= S->nheap) break;
    for (k = c + 1; k < end; k++)  /* the least of up to 4 children */
      if (before(&S->heap[k], &S->heap[c])) c = k;
    if (!before(&S->heap[c], &e)) break;
    heapset(S, i, S->heap[c]);
    i = c;
  }
  heapset(S, i, e);
}

static void armtimer (ah_sched *S) {
  uint64_t now, ms;
  if (S->nheap == 0) {
    uv_timer_stop(&S->timer);
    return;
  }
  now = uv_hrtime();
  ms = (S->heap[0].deadline > now)
     ? (S->heap[0].deadline - now + 999999) / 1000000 : 0;
  uv_update_time(S->loop);  /* libuv counts from its cached 'now' */
  uv_timer_start(&S->timer, ontimer, ms, 0);
}

static void heappush (ah_sched *S, ah_task *t) {
  if (S->nheap == S->heapcap) {
    int ncap = S->heapcap ? S->heapcap * 2 : 64;
    ah_heapent *nh = (ah_heapent *)realloc(S->heap, ncap * sizeof(*nh));
    if (nh == NULL) {
      fputs("asynchost: not enough memory for timers\n", stderr);
      abort();
    }
    S->heap = nh;
    S->heapcap = ncap;
  }
  S->heap[S->nheap].deadline = t->deadline;
  S->heap[S->nheap].t = t;
  siftup(S, S->nheap++);
  if (S->heap[0].t == t)
    armtimer(S);
}

static void heapremove (ah_sched *S, ah_task *t) {
  int i = t->heapidx;
  ah_heapent last;
  if (i < 0) return;
  t->heapidx = -1;
  last = S->heap[--S->nheap];
  if (i < S->nheap) {
    heapset(S, i, last);
    if (i > 0 && before(&last, &S->heap[(i - 1) / 4]))
      siftup(S, i);
    else
      siftdown(S, i);
  }
  if (S->nheap == 0)
    uv_timer_stop(&S->timer);
}

static void ontimer (uv_timer_t *h) {
  ah_sched *S = (ah_sched *)h->data;
  uint64_t now = uv_hrtime();
  while (S->nheap > 0 && S->heap[0].deadline <= now) {
    ah_task *t = S->heap[0].t;
    heapremove(S, t);
    ah_wake(t, AH_WAKE_OK);
  }
  armtimer(S);
}

static void unsleep (ah_sched *S, ah_task *t) {
  heapremove(S, t);
}

/* Makes the running task 't' sleep 'seconds' (>= 0, may be HUGE_VAL). */
void ah_sleep (ah_task *t, double seconds) {
  if (ah_wait(t, unsleep, NULL, "sleep")) return;
  if (seconds <= 0) {  /* one trip through the loop */
    ah_wake(t, AH_WAKE_OK);
    return;
  }
  if (seconds > 1e9)  /* forever, for all purposes (~31 years) */
    seconds = 1e9;
  t->deadline = uv_hrtime() + (uint64_t)ceil(seconds * 1e9);
  heappush(t->S, t);
}

/* }====================================================== */


/* {======================================================
** Running a task to its end: the host's main chunk and async.run
** ======================================================= */

static void onsigint (uv_signal_t *h, int signum) {
  ah_sched *S = (ah_sched *)h->data;
  (void)signum;
  if (S->sigintusers > 0) return;  /* async.signal("SIGINT") has it */
  if (S->interrupted++ > 0 || S->main == NULL) {  /* second Ctrl-C */
    signal(SIGINT, SIG_DFL);
    raise(SIGINT);
    return;
  }
  fputs("\n", stderr);
  ah_cancel(S, S->main, "interrupted");
}

/* Wakes the main task with a deadlock error describing every waiting task.
** Returns 0 when the main task isn't waiting (nothing to wake). */
static int deadlock (ah_sched *S) {
  lua_State *L = S->L;
  ah_task *t = S->main;
  if (t->unwait == NULL) return 0;
  ah_pushtaskdump(L, "deadlock: every task waits and nothing can wake them");
  ah_pusherror(L, "DeadlockError", lua_tostring(L, -1));
  ah_setextra(L, t, "wakeerror");  /* pops the error */
  lua_pop(L, 1);
  t->unwait(S, t);
  t->unwait = NULL;
  t->wake = AH_WAKE_ERROR;
  ah_ready(S, t);
  return 1;
}

/* Like lua_pcall with a traceback handler, but the function runs as a task
** and the loop runs until that task ends.  On error, leaves one value: the
** message with the task's traceback. */
int ah_runtask (lua_State *L, int nargs, int nresults) {
  return ah_runtask1(L, nargs, nresults, 0);
}

/* ah_runtask; 'raw' leaves the error value itself rather than a message */
int ah_runtask1 (lua_State *L, int nargs, int nresults, int raw) {
  ah_sched *S = ah_sched_get(L);
  int base = lua_gettop(L) - nargs;  /* the function */
  ah_task *t, *outer = S->main;
  int status, stuck = 0;
  if (S->current != NULL) {
    lua_settop(L, base - 1);
    lua_pushliteral(L, "async.run cannot be called from a running task "
                       "(use async.await or async.spawn)");
    return LUA_ERRRUN;
  }
  t = ah_spawn(S, L, base, nargs);  /* replaces function and args with the task */
  ah_settaskname(L, lua_gettop(L), outer == NULL ? "main" : NULL);
  S->main = t;
  S->interrupted = 0;
  if (outer == NULL) {
    uv_signal_start(&S->sigint, onsigint, SIGINT);
    uv_unref((uv_handle_t *)&S->sigint);
  }
  while (t->f.state == AH_PENDING) {
    int alive = uv_run(S->loop, UV_RUN_ONCE);
    if (t->f.state != AH_PENDING) break;
    if (!alive && S->rcount == 0 && S->sighandlers > 0 &&
        uv_is_active((uv_handle_t *)&S->sigint)) {
      /* only a signal's handler may still wake it: wait for a signal
      ** (any started handle that is referenced makes uv_run block) */
      uv_ref((uv_handle_t *)&S->sigint);
      uv_run(S->loop, UV_RUN_ONCE);
      uv_unref((uv_handle_t *)&S->sigint);
      continue;
    }
    if (!alive && S->rcount == 0) {  /* nothing can ever wake the task */
      if (stuck++ < 2 && deadlock(S)) continue;
      break;
    }
    stuck = 0;
  }
  if (outer == NULL)
    uv_signal_stop(&S->sigint);
  S->main = outer;
  status = ah_taskoutcome(L, base, nresults, raw);
  lua_remove(L, base);  /* the task */
  return status;
}

/* Cancels the tasks still pending, lets them clean up (they may await),
** and reports those that would not end. */
/* Runs the loop up to 20 ms while tasks are live: those about to end by
** themselves (a server's connection seeing its client go) are not
** reported as left behind. */
void ah_settle (ah_sched *S) {
  uint64_t limit = uv_hrtime() + 20 * 1000000u;
  while (S->nlive > 0 && uv_hrtime() < limit) {
    if (uv_run(S->loop, UV_RUN_NOWAIT) == 0 && S->rcount == 0) break;
    if (S->rcount == 0) uv_sleep(1);
  }
}

void ah_shutdown (lua_State *L) {
  ah_sched *S = ah_sched_get(L);
  uint64_t limit = uv_hrtime() + (uint64_t)5 * 1000000000u;
  if (S->current != NULL) return;
  if (S->nlive > 0) ah_settle(S);
  if (S->nlive > 0)
    ah_cancelall(L, S, "the main task ended");
  while (S->nlive > 0 && uv_hrtime() < limit) {
    int alive = uv_run(S->loop, UV_RUN_ONCE);
    if (!alive && S->rcount == 0) break;
  }
  if (S->nlive > 0) {
    ah_pushtaskdump(L, "asynchost: tasks that would not end after the main "
                       "task (cleanup took over 5 s)");
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  uv_run(S->loop, UV_RUN_NOWAIT);  /* run close callbacks */
}

/* }====================================================== */

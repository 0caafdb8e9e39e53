/*
** C tests of the embedding API (include/asynchost.h), one case per run:
**
**   embed_test <case>      prints "ok <case>", or where a check failed
**
** Cases: version borrowed thread cancel twohosts churn errors closepending
** ownloop.  Run them under the ASan build too: every host must be freed.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include "lua.h"
#include "lauxlib.h"
#include "asynchost.h"

#define CHECK(c)  ((c) ? (void)0 : failed(__FILE__, __LINE__, #c))

static void failed (const char *file, int line, const char *what) {
  fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
  fflush(stderr);
  exit(1);
}

static double seconds (void) {
  return (double)uv_hrtime() / 1e9;
}

static int contains (const char *s, const char *part) {
  return s != NULL && strstr(s, part) != NULL;
}

static void setglobalfn (ah_host *h, const char *name, lua_CFunction f) {
  lua_pushcfunction(ah_host_state(h), f);
  lua_setglobal(ah_host_state(h), name);
}


/* {======================================================
** What a done callback saw
** ======================================================= */

#define MAXRES  4

typedef struct result {
  int ncalls;               /* times the done callback ran */
  int status, nres;
  double num[MAXRES];       /* the results as numbers */
  char str[MAXRES][2048];   /* and as text (the error, when AH_ERROR) */
  double tdone;             /* when the done callback ran */
  int closeit;              /* close the host from the done callback */
  unsigned grace;           /* with this grace */
  int closed;               /* the close callback ran */
  double tclosed;
} result;

static void onclosed (void *ud) {
  result *r = (result *)ud;
  r->closed++;
  r->tclosed = seconds();
}

static void ondone (ah_host *h, int status, lua_State *L, int nres,
                    void *ud) {
  result *r = (result *)ud;
  int i, base = lua_gettop(L) - nres + 1;
  CHECK(nres >= 0 && lua_gettop(L) >= nres);
  r->ncalls++;
  r->status = status;
  r->nres = nres;
  r->tdone = seconds();
  for (i = 0; i < nres && i < MAXRES; i++) {
    int k = base + i;
    r->num[i] = lua_tonumber(L, k);
    if (lua_type(L, k) == LUA_TBOOLEAN)
      strcpy(r->str[i], lua_toboolean(L, k) ? "true" : "false");
    else if (lua_type(L, k) == LUA_TSTRING || lua_type(L, k) == LUA_TNUMBER) {
      lua_pushvalue(L, k);  /* lua_tostring would convert the result */
      snprintf(r->str[i], sizeof(r->str[i]), "%s", lua_tostring(L, -1));
      lua_pop(L, 1);
    }
    else
      snprintf(r->str[i], sizeof(r->str[i]), "(%s)", luaL_typename(L, k));
  }
  if (r->closeit)
    CHECK(ah_host_close(h, r->grace, onclosed, r) == AH_OK);
}

/* }====================================================== */


/* {======================================================
** version
** ======================================================= */

static void test_version (void) {
  char buf[64];
  snprintf(buf, sizeof(buf), "%d.%d.%d", ASYNCHOST_VERSION_MAJOR,
           ASYNCHOST_VERSION_MINOR, ASYNCHOST_VERSION_PATCH);
  CHECK(strcmp(ah_version(), buf) == 0);
  CHECK(ah_version_num() == ASYNCHOST_VERSION_NUM);
  CHECK(ASYNCHOST_VERSION_NUM == ASYNCHOST_VERSION_MAJOR * 10000 +
        ASYNCHOST_VERSION_MINOR * 100 + ASYNCHOST_VERSION_PATCH);
}

/* }====================================================== */


/* {======================================================
** borrowed: a host on the embedder's loop, beside its handles
** ======================================================= */

static uv_timer_t tick, stopper;
static int nticks, ticksatclose, stopped;
static double tstopped;

static void ontick (uv_timer_t *t) {
  (void)t;
  nticks++;
}

static void onstop (uv_timer_t *t) {
  /* the host is gone; our ticker runs on until we stop it */
  CHECK(uv_is_active((uv_handle_t *)&tick));
  CHECK(nticks > ticksatclose);
  stopped = 1;
  tstopped = seconds();
  uv_timer_stop(&tick);
  uv_close((uv_handle_t *)&tick, NULL);
  uv_close((uv_handle_t *)t, NULL);
}

static void onborrowedclosed (void *ud) {
  onclosed(ud);
  ticksatclose = nticks;
  CHECK(uv_is_active((uv_handle_t *)&tick));
  uv_timer_start(&stopper, onstop, 50, 0);
}

static void ondoneclose (ah_host *h, int status, lua_State *L, int nres,
                         void *ud) {
  ondone(h, status, L, nres, ud);
  CHECK(ah_host_close(h, 100, onborrowedclosed, ud) == AH_OK);
  CHECK(ah_host_close(h, 100, NULL, NULL) == AH_ECLOSED);  /* once */
}

static void test_borrowed (void) {
  static result r;
  uv_loop_t loop;
  ah_host *h;
  lua_State *L;
  int top;
  CHECK(uv_loop_init(&loop) == 0);
  uv_timer_init(&loop, &tick);
  uv_timer_init(&loop, &stopper);
  uv_timer_start(&tick, ontick, 5, 5);
  h = ah_host_new(&loop, 0);
  CHECK(h != NULL);
  CHECK(ah_host_loop(h) == &loop);
  L = ah_host_state(h);
  CHECK(ah_host_of(L) == h);
  /* the loop is the embedder's: the host does not run it */
  CHECK(ah_host_run(h) == AH_EINVAL);
  CHECK(contains(ah_host_errmsg(h), "borrowed"));
  CHECK(ah_host_step(h, 0) == AH_EINVAL);
  CHECK(ah_host_step(h, 1) == AH_EINVAL);
  top = lua_gettop(L);
  CHECK(luaL_loadstring(L, "return 1") == LUA_OK);
  lua_pushinteger(L, 2);
  CHECK(ah_host_call(h, 1, 1) == AH_EINVAL);
  CHECK(lua_gettop(L) == top + 1);  /* like lua_pcall: the message */
  CHECK(contains(lua_tostring(L, -1), "borrowed"));
  lua_pop(L, 1);
  CHECK(ah_host_start_string(h,
    "local async = require 'asynchost'\n"
    "async.sleep(0.05)\n"
    "return 42, 'second'\n", "=borrowed", ondoneclose, &r) == AH_OK);
  CHECK(lua_gettop(L) == top);
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(r.ncalls == 1);
  CHECK(r.status == AH_OK);
  CHECK(r.nres == 2);
  CHECK(r.num[0] == 42);
  CHECK(strcmp(r.str[1], "second") == 0);
  CHECK(r.closed == 1);
  CHECK(ticksatclose >= 3);          /* our timer ticked during the sleep */
  CHECK(stopped);                    /* the loop ran on until we stopped */
  CHECK(tstopped - r.tclosed >= 0.045);
  CHECK(uv_loop_close(&loop) == 0);  /* nothing of the host left on it */
}

/* }====================================================== */


/* {======================================================
** thread: a future finished from another thread through ah_host_post
** ======================================================= */

#define MAXJOBS  4

typedef struct job {
  uv_thread_t tid;
  ah_host *h;
  ah_cfuture *f;
  lua_Integer x, y;  /* y = 1 + 2 + ... + x, computed in the thread */
  int postrc;        /* what ah_host_post returned there */
} job;

static job jobs[MAXJOBS];
static int njobs, ndelivered;

static void deliver (ah_host *h, void *ud) {  /* on the loop thread */
  job *j = (job *)ud;
  CHECK(h == j->h);
  lua_pushinteger(ah_host_state(h), j->y);
  CHECK(ah_future_resolve(j->f, 1) == AH_OK);
  ndelivered++;
}

static void worker (void *ud) {
  job *j = (job *)ud;
  lua_Integer k;
  uv_sleep(20);
  j->y = 0;
  for (k = 1; k <= j->x; k++)
    j->y += k;
  j->postrc = ah_host_post(j->h, deliver, j);
}

static int sum_in_thread (lua_State *L) {
  lua_Integer x = luaL_checkinteger(L, 1);
  job *j;
  luaL_argcheck(L, njobs < MAXJOBS, 1, "too many jobs");
  j = &jobs[njobs];
  j->h = ah_host_of(L);
  j->x = x;
  j->postrc = 1;
  if ((j->f = ah_future_new(L, NULL, NULL)) == NULL)
    return luaL_error(L, "cannot create a future");
  if (uv_thread_create(&j->tid, worker, j) != 0) {
    ah_future_release(j->f);
    return luaL_error(L, "cannot start a thread");
  }
  njobs++;
  return 1;  /* the future */
}

static void nevercalled (ah_host *h, void *ud) {
  (void)h; (void)ud;
  CHECK(!"a function posted after the close started ran");
}

static void latepost (void *ud) {  /* another thread, while closing */
  job *j = (job *)ud;
  j->postrc = ah_host_post(j->h, nevercalled, NULL);
}

static void ondonethread (ah_host *h, int status, lua_State *L, int nres,
                          void *ud) {
  job late;
  ondone(h, status, L, nres, ud);
  CHECK(ah_host_close(h, 0, onclosed, ud) == AH_OK);
  CHECK(ah_host_post(h, nevercalled, NULL) == AH_ECLOSED);
  late.h = h;
  late.postrc = 1;
  CHECK(uv_thread_create(&late.tid, latepost, &late) == 0);
  CHECK(uv_thread_join(&late.tid) == 0);
  CHECK(late.postrc == AH_ECLOSED);
}

static void test_thread (void) {
  static result r;
  uv_loop_t loop;
  ah_host *h;
  int i;
  CHECK(uv_loop_init(&loop) == 0);
  h = ah_host_new(&loop, 0);
  CHECK(h != NULL);
  setglobalfn(h, "sum_in_thread", sum_in_thread);
  CHECK(ah_host_start_string(h,
    "local async = require 'asynchost'\n"
    "local ticks = 0\n"
    "local ticker = async.spawn(function()\n"
    "  while true do async.sleep(0.002); ticks = ticks + 1 end\n"
    "end)\n"
    "local t0 = async.loop_time()\n"
    "local r = async.gather(sum_in_thread(100),\n"
    "  function() async.sleep(0.01); return 'slept' end,\n"
    "  function() async.sleep(0.015); return 'slept too' end)\n"
    "local took = async.loop_time() - t0\n"
    "ticker:cancel()\n"
    "async.wait({ticker})\n"
    "return r[1], ticks, took, r[2]\n", "=thread", ondonethread, &r)
    == AH_OK);
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  for (i = 0; i < njobs; i++)
    CHECK(uv_thread_join(&jobs[i].tid) == 0);
  CHECK(njobs == 1 && ndelivered == 1);
  CHECK(jobs[0].postrc == AH_OK);
  if (r.status != AH_OK) fprintf(stderr, "%s\n", r.str[0]);
  CHECK(r.ncalls == 1 && r.status == AH_OK && r.nres == 4);
  CHECK(r.num[0] == 5050);
  CHECK(r.num[1] >= 3);                     /* the loop stayed responsive */
  CHECK(r.num[2] >= 0.019 && r.num[2] < 1);
  CHECK(strcmp(r.str[3], "slept") == 0);
  CHECK(r.closed == 1);
  CHECK(uv_loop_close(&loop) == 0);
}

/* }====================================================== */


/* {======================================================
** cancel: C futures cancelled by wait_for, task:cancel(), future:cancel()
** ======================================================= */

static int ncancels;
static ah_cfuture *kept;  /* a cancelled future the test releases */
static int releaseincb;   /* as ud: release from the cancel callback */

static void countcancel (ah_cfuture *f, void *ud) {
  ncancels++;
  CHECK(ah_future_cancelled(f));
  if (ud == &releaseincb)
    CHECK(ah_future_release(f) == AH_OK);
}

static int never (lua_State *L) {  /* never(release_in_cancel_cb) */
  int inside = lua_toboolean(L, 1);
  ah_cfuture *f = ah_future_new(L, countcancel, inside ? &releaseincb : NULL);
  if (f == NULL)
    return luaL_error(L, "cannot create a future");
  CHECK(ah_future_host(f) == ah_host_of(L));
  CHECK(!ah_future_cancelled(f));
  if (!inside)
    kept = f;
  return 1;
}

/* finish_soon(how): a future finished by C from a timer 1 ms later, by
** ah_future_reject_msg ("reject") or ah_future_release ("release") */
typedef struct later {
  uv_timer_t timer;  /* timer.data == this struct */
  ah_cfuture *f;
  int release;
} later;

static void freehandle (uv_handle_t *hd) {
  free(hd->data);
}

static void onlater (uv_timer_t *t) {
  later *lt = (later *)t->data;
  if (lt->release)
    CHECK(ah_future_release(lt->f) == AH_OK);
  else
    CHECK(ah_future_reject_msg(lt->f, "rejected from C") == AH_OK);
  uv_close((uv_handle_t *)t, freehandle);
}

static int finish_soon (lua_State *L) {
  later *lt;
  int release = strcmp(luaL_checkstring(L, 1), "release") == 0;
  if ((lt = (later *)malloc(sizeof(later))) == NULL)
    return luaL_error(L, "not enough memory");
  if ((lt->f = ah_future_new(L, countcancel, NULL)) == NULL) {
    free(lt);
    return luaL_error(L, "cannot create a future");
  }
  lt->release = release;
  uv_timer_init(ah_host_loop(ah_host_of(L)), &lt->timer);
  lt->timer.data = lt;
  uv_timer_start(&lt->timer, onlater, 1, 0);
  return 1;
}

static void runscript (ah_host *h, const char *code, result *r) {
  memset(r, 0, sizeof(*r));
  CHECK(ah_host_start_string(h, code, "=script", ondone, r) == AH_OK);
  CHECK(ah_host_run(h) == AH_OK);
  if (r->status != AH_OK) fprintf(stderr, "%s\n", r->str[0]);
  CHECK(r->ncalls == 1 && r->status == AH_OK);
}

/* Runs 'code' with ah_host_call: its results are left on the stack. */
static int callcode (ah_host *h, const char *code) {
  lua_State *L = ah_host_state(h);
  int top = lua_gettop(L);
  CHECK(luaL_loadstring(L, code) == LUA_OK);
  if (ah_host_call(h, 0, LUA_MULTRET) != AH_OK) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    CHECK(!"ah_host_call failed");
  }
  return lua_gettop(L) - top;
}

static void test_cancel (void) {
  static result r;
  ah_host *h = ah_host_new(NULL, 0);
  lua_State *L;
  CHECK(h != NULL);
  L = ah_host_state(h);
  setglobalfn(h, "never", never);
  /* wait_for times out: the awaited C future is cancelled.  (ah_host_call
  ** rather than ah_host_run: a future not yet finished keeps the loop
  ** alive, and this one is finished below, by the test.) */
  CHECK(callcode(h,
    "local async = require 'asynchost'\n"
    "local f = never()\n"
    "local ok, err = pcall(async.wait_for, f, 0.02)\n"
    "return ok, async.TimeoutError:is(err), tostring(err), f:cancelled()\n")
    == 4);
  CHECK(!lua_toboolean(L, -4));
  CHECK(lua_toboolean(L, -3));
  CHECK(contains(lua_tostring(L, -2), "TimeoutError"));
  CHECK(lua_toboolean(L, -1));
  lua_pop(L, 4);
  CHECK(ncancels == 1);
  CHECK(kept != NULL && ah_future_cancelled(kept));
  CHECK(ah_future_host(kept) == h);
  CHECK(ah_future_release(kept) == AH_OK);
  CHECK(ah_future_release(NULL) == AH_EINVAL);
  CHECK(ah_future_resolve(NULL, 0) == AH_EINVAL);
  CHECK(ah_future_reject_msg(NULL, "x") == AH_EINVAL);
  /* cancelling the awaiting task reaches the cancel callback, which
  ** releases the future itself */
  CHECK(callcode(h,
    "local async = require 'asynchost'\n"
    "local t = async.spawn(function() return async.await(never(true)) end)\n"
    "async.sleep(0.01)\n"
    "t:cancel()\n"
    "async.wait({t})\n"
    "return t:cancelled()\n") == 1);
  CHECK(lua_toboolean(L, -1));
  lua_pop(L, 1);
  CHECK(ncancels == 2);
  /* so does cancelling the future itself, once */
  CHECK(callcode(h,
    "local async = require 'asynchost'\n"
    "local f = never(true)\n"
    "local first = f:cancel()\n"
    "local again = f:cancel()\n"
    "return first, again, f:cancelled()\n") == 3);
  CHECK(lua_toboolean(L, -3));
  CHECK(!lua_toboolean(L, -2));
  CHECK(lua_toboolean(L, -1));
  lua_pop(L, 3);
  CHECK(ncancels == 3);
  /* a future C released (nobody awaits it) is no longer C's: cancelling
  ** it from Lua calls nothing */
  setglobalfn(h, "finish_soon", finish_soon);
  CHECK(callcode(h,
    "local async = require 'asynchost'\n"
    "local f = finish_soon('release')\n"
    "async.sleep(0.01)\n"
    "return f:done(), f:cancel(), f:cancelled()\n") == 3);
  CHECK(!lua_toboolean(L, -3));
  CHECK(lua_toboolean(L, -2));
  CHECK(lua_toboolean(L, -1));
  lua_pop(L, 3);
  CHECK(ncancels == 3);
  CHECK(ah_host_pending(h) == 0);
  /* closing the host cancels a future still awaited */
  kept = NULL;
  CHECK(ah_host_start_string(h,
    "local async = require 'asynchost'\n"
    "async.await(never())\n", "=awaiting", ondone, &r) == AH_OK);
  CHECK(ah_host_step(h, 0) >= 0);  /* starts the task */
  CHECK(kept != NULL && !ah_future_cancelled(kept));
  memset(&r, 0, sizeof(r));
  CHECK(ah_host_close(h, 100, onclosed, &r) == AH_OK);
  CHECK(r.closed == 1);
  CHECK(r.ncalls == 1 && r.status == AH_ERROR);  /* it was cancelled */
  CHECK(contains(r.str[0], "CancelledError"));
  CHECK(ncancels == 4);
  CHECK(ah_future_cancelled(kept));
  CHECK(ah_future_host(kept) == NULL);  /* the host is gone */
  CHECK(ah_future_release(kept) == AH_OK);
}

/* }====================================================== */


/* {======================================================
** twohosts: two hosts share a borrowed loop
** ======================================================= */

static void test_twohosts (void) {
  static result r1, r2;
  uv_loop_t loop;
  ah_host *h1, *h2;
  double t0;
  CHECK(uv_loop_init(&loop) == 0);
  h1 = ah_host_new(&loop, 0);
  h2 = ah_host_new(&loop, 0);
  CHECK(h1 != NULL && h2 != NULL && h1 != h2);
  CHECK(ah_host_state(h1) != ah_host_state(h2));
  r1.closeit = r2.closeit = 1;
  t0 = seconds();
  CHECK(ah_host_start_string(h1,
    "local async = require 'asynchost'\n"
    "shared = 'one'\n"
    "async.sleep(0.1)\n"
    "return shared\n", "=one", ondone, &r1) == AH_OK);
  CHECK(ah_host_start_string(h2,
    "local async = require 'asynchost'\n"
    "async.sleep(0.1)\n"
    "return tostring(shared)\n", "=two", ondone, &r2) == AH_OK);
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(r1.ncalls == 1 && r1.status == AH_OK);
  CHECK(r2.ncalls == 1 && r2.status == AH_OK);
  CHECK(strcmp(r1.str[0], "one") == 0);
  CHECK(strcmp(r2.str[0], "nil") == 0);  /* separate states */
  CHECK(r1.tdone - t0 >= 0.099 && r1.tdone - t0 < 0.19);
  CHECK(r2.tdone - t0 >= 0.099 && r2.tdone - t0 < 0.19);
  CHECK(r1.closed == 1 && r2.closed == 1);
  CHECK(uv_loop_close(&loop) == 0);
}

/* }====================================================== */


/* {======================================================
** churn: many hosts created and closed
** ======================================================= */

static const char tiny[] =
  "local async = require 'asynchost'\n"
  "async.sleep(0)\n"
  "return async.loop_time() >= 0\n";

static void test_churn (void) {
  static result r;
  uv_loop_t loop;
  int i;
  for (i = 0; i < 1000; i++) {  /* hosts on loops of their own */
    ah_host *h = ah_host_new(NULL, 0);
    CHECK(h != NULL);
    memset(&r, 0, sizeof(r));
    CHECK(ah_host_start_string(h, tiny, "=tiny", ondone, &r) == AH_OK);
    CHECK(ah_host_run(h) == AH_OK);
    CHECK(r.ncalls == 1 && r.status == AH_OK);
    CHECK(strcmp(r.str[0], "true") == 0);
    CHECK(ah_host_close(h, 0, onclosed, &r) == AH_OK);
    CHECK(r.closed == 1);  /* before ah_host_close returned */
  }
  for (i = 0; i < 30; i++) {  /* closed with nothing, or work, pending */
    ah_host *h = ah_host_new(NULL, 0);
    CHECK(h != NULL);
    memset(&r, 0, sizeof(r));
    if (i % 3 == 1)  /* ends at once when cancelled, even with no grace */
      CHECK(ah_host_start_string(h,
        "require('asynchost').sleep(10)", "=sleeper", ondone, &r) == AH_OK);
    else if (i % 3 == 2 && i < 6)  /* never ends: abandoned and reported */
      CHECK(ah_host_start_string(h,
        "local async = require 'asynchost'\n"
        "local _ <close> = setmetatable({}, {__close = function()\n"
        "  async.sleep(10)\n"
        "end})\n"
        "async.sleep(10)\n", "=stubborn", ondone, &r) == AH_OK);
    CHECK(ah_host_step(h, 0) >= 0);  /* starts the task */
    CHECK(ah_host_close(h, i % 3 == 2 ? 10 : 0, onclosed, &r) == AH_OK);
    CHECK(r.closed == 1);
    CHECK(r.ncalls == (i % 3 == 1));
    if (r.ncalls > 0)
      CHECK(r.status == AH_ERROR && contains(r.str[0], "CancelledError"));
  }
  CHECK(uv_loop_init(&loop) == 0);
  for (i = 0; i < 200; i++) {  /* hosts on one borrowed loop */
    ah_host *h = ah_host_new(&loop, 0);
    CHECK(h != NULL);
    memset(&r, 0, sizeof(r));
    r.closeit = 1;
    CHECK(ah_host_start_string(h, tiny, "=tiny", ondone, &r) == AH_OK);
    while (!r.closed && uv_run(&loop, UV_RUN_ONCE) != 0)
      ;
    CHECK(r.ncalls == 1 && r.status == AH_OK);
    CHECK(r.closed == 1);
    CHECK(uv_run(&loop, UV_RUN_NOWAIT) == 0);  /* nothing left of it */
  }
  CHECK(uv_loop_close(&loop) == 0);
}

/* }====================================================== */


/* {======================================================
** errors: syntax errors, failing scripts and calls, deadlocks
** ======================================================= */

static void test_errors (void) {
  static result r;
  ah_host *h = ah_host_new(NULL, 0);
  lua_State *L;
  int top;
  CHECK(h != NULL);
  L = ah_host_state(h);
  top = lua_gettop(L);
  CHECK(strcmp(ah_host_errmsg(h), "") == 0);
  /* a syntax error starts nothing */
  CHECK(ah_host_start_string(h, "return = 1", "=syntax", ondone, &r)
        == AH_ERROR);
  CHECK(contains(ah_host_errmsg(h), "syntax:1:"));
  CHECK(contains(ah_host_errmsg(h), "unexpected symbol"));
  CHECK(ah_host_start_file(h, "/nonexistent/script.lua", ondone, &r)
        == AH_ERROR);
  CHECK(contains(ah_host_errmsg(h), "/nonexistent/script.lua"));
  CHECK(lua_gettop(L) == top);
  CHECK(ah_host_pending(h) == 0);
  CHECK(ah_host_run(h) == AH_OK);
  CHECK(r.ncalls == 0);
  /* ah_host_start_function without a function */
  CHECK(ah_host_start_function(h, 0, ondone, &r) == AH_EINVAL);
  /* a script that raises */
  memset(&r, 0, sizeof(r));
  CHECK(ah_host_start_string(h,
    "local function inner() error('boom from the script') end\n"
    "inner()\n", "=raiser", ondone, &r) == AH_OK);
  CHECK(ah_host_run(h) == AH_OK);
  CHECK(r.ncalls == 1 && r.status == AH_ERROR && r.nres == 1);
  CHECK(contains(r.str[0], "raiser:1: boom from the script"));
  CHECK(contains(r.str[0], "stack traceback"));
  CHECK(contains(r.str[0], "inner"));
  /* a C future rejected from a callback */
  setglobalfn(h, "finish_soon", finish_soon);
  runscript(h,
    "local async = require 'asynchost'\n"
    "local ok, err = pcall(async.await, finish_soon('reject'))\n"
    "return ok, err\n", &r);
  CHECK(strcmp(r.str[0], "false") == 0);
  CHECK(contains(r.str[1], "rejected from C"));
  /* ah_host_call with a function that raises */
  CHECK(luaL_loadstring(L, "error('the call failed')") == LUA_OK);
  CHECK(ah_host_call(h, 0, 0) == AH_ERROR);
  CHECK(lua_gettop(L) == top + 1);
  CHECK(contains(lua_tostring(L, -1), "the call failed"));
  CHECK(contains(lua_tostring(L, -1), "stack traceback"));
  CHECK(contains(ah_host_errmsg(h), "the call failed"));
  lua_pop(L, 1);
  /* ah_host_call that can never end */
  CHECK(luaL_loadstring(L,
    "local async = require 'asynchost'\n"
    "local ev = async.Event()\n"
    "ev:wait()\n"
    "return 'unreachable'\n") == LUA_OK);
  CHECK(ah_host_call(h, 0, 1) == AH_ERROR);
  CHECK(lua_gettop(L) == top + 1);
  CHECK(contains(lua_tostring(L, -1), "deadlock"));
  CHECK(contains(ah_host_errmsg(h), "deadlock"));
  lua_pop(L, 1);
  /* after all that, the host still works */
  CHECK(luaL_loadstring(L, "return 1 + 1") == LUA_OK);
  CHECK(ah_host_call(h, 0, 1) == AH_OK);
  CHECK(lua_tointeger(L, -1) == 2);
  lua_pop(L, 1);
  CHECK(ah_host_close(h, 0, NULL, NULL) == AH_OK);
}

/* }====================================================== */


/* {======================================================
** closepending: a closing host lets its tasks clean up (and await)
** ======================================================= */

static int flag;

static int set_flag (lua_State *L) {
  (void)L;
  flag++;
  return 0;
}

/* spawns a task whose cleanup awaits, and leaves it sleeping */
static const char pendingtask[] =
  "local async = require 'asynchost'\n"
  "async.spawn(function()\n"
  "  local guard <close> = setmetatable({}, {__close = function()\n"
  "    async.sleep(0.01)\n"
  "    set_flag()\n"
  "  end})\n"
  "  async.sleep(10)\n"
  "end)\n"
  "async.sleep(0.02)\n";

static void test_closepending (void) {
  static result r;
  uv_loop_t loop;
  ah_host *h;
  lua_State *L;
  double t0;
  /* own loop: ah_host_close finishes before it returns */
  h = ah_host_new(NULL, 0);
  CHECK(h != NULL);
  L = ah_host_state(h);
  setglobalfn(h, "set_flag", set_flag);
  CHECK(luaL_loadstring(L, pendingtask) == LUA_OK);
  CHECK(ah_host_call(h, 0, 0) == AH_OK);
  CHECK(ah_host_pending(h) == 1);
  CHECK(flag == 0);
  t0 = seconds();
  CHECK(ah_host_close(h, 1000, onclosed, &r) == AH_OK);
  CHECK(r.closed == 1);
  CHECK(r.tclosed - t0 >= 0.009 && r.tclosed - t0 < 1);
  CHECK(flag == 1);
  /* borrowed loop: closed from the done callback */
  flag = 0;
  memset(&r, 0, sizeof(r));
  r.closeit = 1;
  r.grace = 1000;
  CHECK(uv_loop_init(&loop) == 0);
  h = ah_host_new(&loop, 0);
  CHECK(h != NULL);
  setglobalfn(h, "set_flag", set_flag);
  CHECK(ah_host_start_string(h, pendingtask, "=pending", ondone, &r)
        == AH_OK);
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(r.ncalls == 1 && r.status == AH_OK);
  CHECK(r.closed == 1);
  CHECK(r.tclosed - r.tdone >= 0.009 && r.tclosed - r.tdone < 1);
  CHECK(flag == 1);
  CHECK(uv_loop_close(&loop) == 0);
}

/* }====================================================== */


/* {======================================================
** ownloop: run, step, call and pending on a loop of the host's own
** ======================================================= */

static void test_ownloop (void) {
  static result r;
  static int marker;
  ah_host *h = ah_host_new(NULL, AH_NOENV);
  lua_State *L;
  int top, rc, nsteps;
  CHECK(h != NULL);
  L = ah_host_state(h);
  top = lua_gettop(L);
  CHECK(ah_host_of(L) == h);
  CHECK(ah_host_userdata(h) == NULL);
  ah_host_setuserdata(h, &marker);
  CHECK(ah_host_userdata(h) == &marker);
  CHECK(ah_host_loop(h) != NULL);
  CHECK(ah_host_pending(h) == 0);
  CHECK(ah_host_step(h, 0) == 0);  /* nothing to do */
  /* a script, run to its end */
  CHECK(ah_host_start_string(h,
    "local async = require 'asynchost'\n"
    "async.sleep(0.01)\n"
    "return 'first', 2\n", "=first", ondone, &r) == AH_OK);
  CHECK(ah_host_pending(h) == 1);
  CHECK(r.ncalls == 0);  /* it starts on the next turn */
  CHECK(ah_host_run(h) == AH_OK);
  CHECK(r.ncalls == 1 && r.status == AH_OK && r.nres == 2);
  CHECK(strcmp(r.str[0], "first") == 0 && r.num[1] == 2);
  CHECK(ah_host_pending(h) == 0);
  /* a script, one turn at a time */
  memset(&r, 0, sizeof(r));
  CHECK(ah_host_start_string(h,
    "local async = require 'asynchost'\n"
    "for i = 1, 3 do async.sleep(0.01) end\n"
    "return 'stepped'\n", "=stepped", ondone, &r) == AH_OK);
  nsteps = 0;
  while ((rc = ah_host_step(h, 1)) > 0)
    nsteps++;
  CHECK(rc == 0);
  CHECK(nsteps >= 3);
  CHECK(r.ncalls == 1 && strcmp(r.str[0], "stepped") == 0);
  /* a function called with arguments, with results */
  CHECK(luaL_loadstring(L,
    "local a, b = ...\n"
    "require('asynchost').sleep(0.01)\n"
    "return a + b, a * b\n") == LUA_OK);
  lua_pushinteger(L, 3);
  lua_pushinteger(L, 4);
  CHECK(ah_host_call(h, 2, 2) == AH_OK);
  CHECK(lua_gettop(L) == top + 2);
  CHECK(lua_tointeger(L, -2) == 7 && lua_tointeger(L, -1) == 12);
  lua_pop(L, 2);
  CHECK(luaL_loadstring(L, "return 1, 2, 3") == LUA_OK);
  CHECK(ah_host_call(h, 0, LUA_MULTRET) == AH_OK);
  CHECK(lua_gettop(L) == top + 3);
  lua_settop(L, top);
  /* a call that leaves a task behind */
  CHECK(luaL_loadstring(L,
    "local async = require 'asynchost'\n"
    "async.spawn(function() async.sleep(0.02) end)\n") == LUA_OK);
  CHECK(ah_host_call(h, 0, 0) == AH_OK);
  CHECK(ah_host_pending(h) == 1);
  CHECK(ah_host_run(h) == AH_OK);
  CHECK(ah_host_pending(h) == 0);
  CHECK(lua_gettop(L) == top);
  memset(&r, 0, sizeof(r));
  CHECK(ah_host_close(h, 0, onclosed, &r) == AH_OK);
  CHECK(r.closed == 1);
  /* AH_NOLIBS: no standard globals but the base ones, asynchost works */
  h = ah_host_new(NULL, AH_NOLIBS);
  CHECK(h != NULL);
  L = ah_host_state(h);
  CHECK(luaL_loadstring(L,
    "local async = require 'asynchost'\n"
    "assert(string == nil and math == nil and debug == nil)\n"
    "local r = async.gather(function() async.sleep(0.01) return 5 end)\n"
    "local ok, e = pcall(async.wait_for, function() async.sleep(1) end, 0)\n"
    "assert(async.TimeoutError:is(e))\n"
    "return r[1]") == LUA_OK);
  CHECK(ah_host_call(h, 0, 1) == AH_OK);
  CHECK(lua_tointeger(L, -1) == 5);
  lua_pop(L, 1);
  memset(&r, 0, sizeof(r));
  CHECK(ah_host_close(h, 0, onclosed, &r) == AH_OK);
  CHECK(r.closed == 1);
}

/* }====================================================== */


static const struct {
  const char *name;
  void (*fn) (void);
} cases[] = {
  {"version", test_version},
  {"borrowed", test_borrowed},
  {"thread", test_thread},
  {"cancel", test_cancel},
  {"twohosts", test_twohosts},
  {"churn", test_churn},
  {"errors", test_errors},
  {"closepending", test_closepending},
  {"ownloop", test_ownloop},
  {NULL, NULL}
};

int main (int argc, char **argv) {
  int i;
  if (argc != 2) {
    fprintf(stderr, "usage: %s case\n", argv[0]);
    return 2;
  }
  for (i = 0; cases[i].name != NULL; i++) {
    if (strcmp(argv[1], cases[i].name) == 0) {
      cases[i].fn();
      printf("ok %s\n", cases[i].name);
      return 0;
    }
  }
  fprintf(stderr, "%s: no case '%s'\n", argv[0], argv[1]);
  return 2;
}

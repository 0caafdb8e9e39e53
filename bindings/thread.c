/*
** asynchost.core.thread: Lua functions run in worker Lua states on threads
** of our own (async.to_thread, async.executor).  This file holds what Lua
** sees: to_thread, the executor objects, the checks of arguments, and the
** worker's errors made WorkerErrors; the pool itself is in pool.c.
**
** A job carries the function (as bytecode) and its arguments, marshalled
** (marshal.c), to a pool of worker threads, each with a Lua state of its
** own kept from job to job; the results, or the error, come back the same
** way.
*/
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "asynchost.h"

#define EXECUTOR_MT  "asynchost.Executor"
#define JOB_MT       "asynchost.thread.job"
#define DEFAULT_KEY  "asynchost.thread.default"  /* the default executor */
#define CODE_KEY     "asynchost.thread.code"     /* function -> bytecode */
#define MAXWORKERS   256

typedef ah_pool pool;
typedef ah_job job;

typedef struct executor {   /* the userdata */
  pool *P;                  /* NULL once closed */
  int closed;               /* takes no more jobs */
  int nworkers;
} executor;

typedef struct jobbox {     /* the userdata holding a job for a task */
  job *j;
} jobbox;

#define getsched(L)  ((ah_sched *)lua_touserdata(L, lua_upvalueindex(1)))


/* {======================================================
** Jobs and executors
** ======================================================= */

static int box_gc (lua_State *L) {
  jobbox *bx = (jobbox *)lua_touserdata(L, 1);
  if (bx->j != NULL) {
    ah_pool_release(L, bx->j);
    bx->j = NULL;
  }
  return 0;
}

/* Pushes a box holding a new job. */
static job *newjob (lua_State *L, ah_sched *S) {
  jobbox *bx = (jobbox *)lua_newuserdatauv(L, sizeof(jobbox), 0);
  job *j;
  bx->j = NULL;
  luaL_setmetatable(L, JOB_MT);
  if ((j = (job *)calloc(1, sizeof(job))) == NULL)
    luaL_error(L, "not enough memory");
  atomic_init(&j->stop, 0);
  j->S = S;
  j->held = 1;
  j->futref = j->exref = LUA_NOREF;
  bx->j = j;
  return j;
}

/* Pushes the WorkerError of the error record at p[0 .. len). */
static void pushworkererror (lua_State *L, const char *p, size_t len) {
  int top = lua_gettop(L), n = ah_decode(L, p, len);
  if (n != 4) {
    lua_settop(L, top);
    ah_pusherror(L, "WorkerError", n > 0 ? lua_tostring(L, top + 1)
                                         : "the worker failed");
    return;
  }
  ah_pusherror(L, "WorkerError", lua_tostring(L, top + 1));
  lua_pushvalue(L, top + 2);
  lua_setfield(L, -2, "traceback");
  lua_pushvalue(L, top + 3);
  lua_setfield(L, -2, "class");
  lua_pushvalue(L, top + 4);
  lua_setfield(L, -2, "value");
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);
}

static void pushjoberror (lua_State *L, job *j) {
  if (j->out.n > 0)
    pushworkererror(L, j->out.p + 1, j->out.n - 1);
  else
    ah_pusherror(L, "WorkerError", "the worker failed: not enough memory");
}

/* Pushes the results of done job 'j' and returns their number, or raises
** its error. */
static int pushoutcome (lua_State *L, job *j) {
  if (j->out.n > 0 && j->out.p[0] == 'R')
    return ah_decode(L, j->out.p + 1, j->out.n - 1);
  pushjoberror(L, j);
  return lua_error(L);
}

static int fdeliver (lua_State *L) {  /* future, job */
  job *j = (job *)lua_touserdata(L, 2);
  lua_settop(L, 2);
  if (j->out.n > 0 && j->out.p[0] == 'R')
    ah_setfuture(L, j->S, 1, AH_DONE, ah_decode(L, j->out.p + 1,
                                                j->out.n - 1));
  else {
    pushjoberror(L, j);
    ah_setfuture(L, j->S, 1, AH_FAILED, 1);
  }
  return 0;
}

static int ffail (lua_State *L) {  /* future, error */
  ah_setfuture(L, ah_sched_get(L), 1, AH_FAILED, 1);
  return 0;
}

/* Completes the future of 'j' (on the loop: nothing may raise). */
void ah_thread_completefuture (lua_State *L, job *j) {
  int top = lua_gettop(L);
  ah_future *f;
  j->fut->p = NULL;
  j->fut = NULL;
  lua_pushcfunction(L, fdeliver);
  lua_rawgeti(L, LUA_REGISTRYINDEX, j->futref);
  f = (ah_future *)lua_touserdata(L, -1);
  lua_pushlightuserdata(L, j);
  if (f->state == AH_PENDING && lua_pcall(L, 2, 0, 0) != LUA_OK) {
    lua_pushcfunction(L, ffail);  /* out of memory, probably */
    lua_insert(L, -2);
    lua_rawgeti(L, LUA_REGISTRYINDEX, j->futref);
    lua_insert(L, -2);
    (void)lua_pcall(L, 2, 0, 0);
  }
  lua_settop(L, top);
  ah_pool_release(L, j);
}

/* Ends the pool of 'ex'.  'drain': the workers finish the queue and
** whoever waits gets the results; else queued jobs are dropped and
** running ones interrupted. */
static void endpool (lua_State *L, executor *ex, int drain) {
  pool *P = ex->P;
  if (P == NULL) return;
  ex->P = NULL;
  ex->closed = 1;
  ah_pool_end(L, P, drain);
}

/* Pushes a new executor with 'n' worker threads. */
static executor *newexecutor (lua_State *L, ah_sched *S, int n) {
  executor *ex = (executor *)lua_newuserdatauv(L, sizeof(executor), 0);
  ex->P = NULL;
  ex->closed = 1;
  ex->nworkers = n;
  luaL_setmetatable(L, EXECUTOR_MT);
  ah_pool_start(L, S, &ex->P, n);
  ex->closed = 0;
  return ex;
}

/* }====================================================== */


/* {======================================================
** Lua functions
** ======================================================= */

static int writer (lua_State *L, const void *p, size_t sz, void *ud) {
  (void)L;
  return !ah_mbuf_add((ah_mbuf *)ud, p, sz);
}

/* Pushes the bytecode of the Lua function on top (popped) into 'scratch'
** and then as a string, after checking its upvalues ('arg' for errors). */
static void dump (lua_State *L, int arg, ah_mbuf *scratch) {
  const char *name;
  int k;
  for (k = 1; (name = lua_getupvalue(L, -1, k)) != NULL; k++) {
    lua_pop(L, 1);
    if (k > 1 || strcmp(name, "_ENV") != 0)
      luaL_argerror(L, arg, lua_pushfstring(L, "function with upvalues cannot "
                    "run in a worker: upvalue '%s'", name));
  }
  scratch->n = 0;
  if (lua_dump(L, writer, scratch, 0) != 0)
    luaL_error(L, "not enough memory");
  lua_pop(L, 1);
  lua_pushlstring(L, scratch->p, scratch->n);
}

static void checkfunction (lua_State *L, int arg) {
  int t = lua_type(L, arg);
  if (t != LUA_TFUNCTION && t != LUA_TSTRING)
    luaL_typeerror(L, arg, "function or string");
}

/* Pushes the bytecode of the function (or source) at 'arg'. */
static void pushcode (lua_State *L, int arg, job *j) {
  switch (lua_type(L, arg)) {
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, arg, &len);
      if (luaL_loadbufferx(L, s, len, s, "bt") != LUA_OK)
        luaL_argerror(L, arg, lua_tostring(L, -1));
      dump(L, arg, &j->out);
      break;
    }
    case LUA_TFUNCTION:
      if (lua_iscfunction(L, arg))
        luaL_argerror(L, arg, "a C function cannot run in a worker");
      lua_getfield(L, LUA_REGISTRYINDEX, CODE_KEY);
      lua_pushvalue(L, arg);
      if (lua_rawget(L, -2) != LUA_TSTRING) {  /* not dumped before */
        lua_pop(L, 1);
        lua_pushvalue(L, arg);
        dump(L, arg, &j->out);
        lua_pushvalue(L, arg);
        lua_pushvalue(L, -2);
        lua_rawset(L, -4);
      }
      lua_remove(L, -2);
      break;
    default:
      luaL_typeerror(L, arg, "function or string");
  }
}

static executor *checkexecutor (lua_State *L, int i) {
  executor *ex = (executor *)luaL_checkudata(L, i, EXECUTOR_MT);
  if (ex->closed)
    luaL_error(L, "attempt to use a closed executor");
  return ex;
}

/* The default executor, made at the first use. */
static executor *defaultexecutor (lua_State *L, ah_sched *S) {
  executor *ex;
  if (lua_getfield(L, LUA_REGISTRYINDEX, DEFAULT_KEY) == LUA_TUSERDATA)
    ex = (executor *)lua_touserdata(L, -1);
  else {
    unsigned int n = uv_available_parallelism();
    lua_pop(L, 1);
    ex = newexecutor(L, S, n < 2 ? 2 : n > MAXWORKERS ? MAXWORKERS : (int)n);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, DEFAULT_KEY);
  }
  lua_pop(L, 1);
  return ex;
}

static void unwaitjob (ah_sched *S, ah_task *t) {
  (void)S;
  ah_pool_abandon((job *)t->waitobj);
}

static int runk (lua_State *L, int status, lua_KContext ctx) {
  ah_task *t = getsched(L)->current;
  jobbox *bx = (jobbox *)lua_touserdata(L, (int)ctx);
  job *j = bx->j;
  int n;
  (void)status;
  if (t->wake != AH_WAKE_OK || t->mustcancel) {  /* results unwanted */
    bx->j = NULL;
    ah_pool_release(L, j);
    ah_checkwake(L, t);  /* raises */
  }
  ah_checkwake(L, t);  /* the wait is over */
  n = pushoutcome(L, j);  /* or raises the worker's error */
  bx->j = NULL;
  ah_pool_release(L, j);
  return n;
}

/* Runs the function at 'fi' with the arguments after it in the pool of
** 'ex' (NULL: the default pool), suspending the running task. */
static int runjobin (lua_State *L, executor *ex, int fi, const char *fname) {
  ah_sched *S = getsched(L);
  int n = lua_gettop(L);
  job *j;
  ah_task *t;
  checkfunction(L, fi);
  j = newjob(L, S);                   /* n + 1: its box */
  pushcode(L, fi, j);                 /* n + 2 */
  ah_encode(L, n + 2, 1, &j->in, AH_ENC_ARGS);
  ah_encode(L, fi + 1, n - fi, &j->in, AH_ENC_ARGS);
  lua_pop(L, 1);
  t = ah_current(S, L, fname);
  if (ex == NULL) ex = defaultexecutor(L, S);
  ah_pool_openasync(L, ex->P);
  j->task = t;
  if (!ah_wait(t, unwaitjob, j, "a worker thread"))
    ah_pool_submit(ex->P, j);
  else {  /* cancelled already */
    j->task = NULL;
    ah_pool_checkidle(ex->P);
  }
  return ah_suspend(L, runk, n + 1);
}

/* to_thread(fn, ...) -> what fn(...) returns, run in a worker thread */
static int l_tothread (lua_State *L) {
  return runjobin(L, NULL, 1, "to_thread");
}

/* executor{workers = n} -> executor */
static int l_executor (lua_State *L) {
  ah_sched *S = getsched(L);
  lua_Integer n;
  unsigned int avail = uv_available_parallelism();
  int isnum;
  if (lua_isnoneornil(L, 1))
    n = avail < 2 ? 2 : avail;
  else {
    luaL_checktype(L, 1, LUA_TTABLE);
    if (lua_getfield(L, 1, "workers") == LUA_TNIL)
      n = avail < 2 ? 2 : avail;
    else {
      n = lua_tointegerx(L, -1, &isnum);
      luaL_argcheck(L, isnum && n >= 1 && n <= MAXWORKERS, 1,
                    "workers must be an integer from 1 to 256");
    }
    lua_pop(L, 1);
  }
  if (n > MAXWORKERS) n = MAXWORKERS;
  newexecutor(L, S, (int)n);
  return 1;
}

/* executor:run(fn, ...) -> what fn(...) returns */
static int e_run (lua_State *L) {
  executor *ex = checkexecutor(L, 1);
  return runjobin(L, ex, 2, "run");
}

static void cancelsubmitted (void *p) {
  job *j = (job *)p;
  if (j == NULL) return;
  j->fut->p = NULL;
  ah_pool_abandon(j);
  ah_pool_release(j->S->L, j);
}

/* executor:submit(fn, ...) -> future of what fn(...) returns */
static int e_submit (lua_State *L) {
  ah_sched *S = getsched(L);
  executor *ex = checkexecutor(L, 1);
  int n = lua_gettop(L);
  jobbox *bx;
  ah_hookedfuture *hf;
  job *j;
  checkfunction(L, 2);
  j = newjob(L, S);                   /* n + 1: its box, for now */
  bx = (jobbox *)lua_touserdata(L, -1);
  pushcode(L, 2, j);
  ah_encode(L, n + 2, 1, &j->in, AH_ENC_ARGS);
  ah_encode(L, 3, n - 2, &j->in, AH_ENC_ARGS);
  lua_pop(L, 1);
  hf = (ah_hookedfuture *)lua_newuserdatauv(L, sizeof(*hf), 3);
  memset(hf, 0, sizeof(*hf));
  hf->f.tag = AH_TAG_FUTURE;
  hf->f.kind = AH_KIND_HOOKED;
  ah_setmt(L, S, AH_MT_FUTURE);
  lua_pushvalue(L, -1);
  j->futref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, 1);
  j->exref = luaL_ref(L, LUA_REGISTRYINDEX);
  ah_pool_openasync(L, ex->P);
  bx->j = NULL;  /* the future holds it now */
  hf->oncancel = cancelsubmitted;
  hf->p = j;
  j->fut = hf;
  ah_pool_submit(ex->P, j);
  return 1;
}

static void uncloser (ah_sched *S, ah_task *t) {
  executor *ex = (executor *)t->waitobj;
  (void)S;
  if (ex->P != NULL) {
    ah_pool_delcloser(ex->P, t);
  }
}

static void nowake (ah_sched *S, ah_waiter *w, ah_future *f) {
  (void)S; (void)w; (void)f;
}

static int closek (lua_State *L, int status, lua_KContext ctx) {
  ah_sched *S = getsched(L);
  executor *ex = (executor *)lua_touserdata(L, 1);
  (void)status; (void)ctx;
  ah_checkwake(L, S->current);
  endpool(L, ex, 1);
  return 0;
}

/* executor:close(): takes no more jobs, waits for those submitted (in a
** task; elsewhere it blocks), and ends the threads */
static int e_close (lua_State *L) {
  ah_sched *S = getsched(L);
  executor *ex = (executor *)luaL_checkudata(L, 1, EXECUTOR_MT);
  ah_task *t;
  lua_settop(L, 1);
  if (ex->P == NULL) return 0;
  ex->closed = 1;
  if (ah_pool_inflight(ex->P) == 0 || S->current == NULL ||
      !lua_isyieldable(L)) {
    endpool(L, ex, 1);
    return 0;
  }
  t = ah_current(S, L, "close");
  if (!ah_wait(t, uncloser, ex, "an executor's jobs")) {
    t->w.fn = nowake;
    ah_pool_addcloser(ex->P, t);
  }
  return ah_suspend(L, closek, 0);
}

static int e_gc (lua_State *L) {
  endpool(L, (executor *)lua_touserdata(L, 1), 0);
  return 0;
}

static int e_tostring (lua_State *L) {
  executor *ex = (executor *)luaL_checkudata(L, 1, EXECUTOR_MT);
  if (ex->P == NULL)
    lua_pushliteral(L, "Executor (closed)");
  else
    lua_pushfstring(L, "Executor (%d workers)", ex->nworkers);
  return 1;
}

static int e_index (lua_State *L) {
  executor *ex = (executor *)luaL_checkudata(L, 1, EXECUTOR_MT);
  const char *k = lua_tostring(L, 2);
  if (k != NULL && strcmp(k, "workers") == 0) {
    lua_pushinteger(L, ex->nworkers);
    return 1;
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(2));  /* the methods */
  return 1;
}

/* encode(...) -> string; decode(s) -> ...: the marshalling, for tests */
static int l_encode (lua_State *L) {
  int n = lua_gettop(L);
  job *j = newjob(L, NULL);  /* its buffer is freed however this ends */
  jobbox *bx = (jobbox *)lua_touserdata(L, -1);
  ah_encode(L, 1, n, &j->in, AH_ENC_ARGS);
  lua_pushlstring(L, j->in.p ? j->in.p : "", j->in.n);
  ah_pool_release(L, j);
  bx->j = NULL;
  return 1;
}

static int l_decode (lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  return ah_decode(L, s, len);
}

/* }====================================================== */


static const luaL_Reg meth[] = {
  {"run", e_run},
  {"submit", e_submit},
  {"close", e_close},
  {NULL, NULL}
};

static const luaL_Reg metameth[] = {
  {"__close", e_close},
  {"__gc", e_gc},
  {"__tostring", e_tostring},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"to_thread", l_tothread},
  {"executor", l_executor},
  {"encode", l_encode},
  {"decode", l_decode},
  {NULL, NULL}
};

int luaopen_asynchost_core_thread (lua_State *L) {
  ah_sched *S = ah_sched_get(L);
  if (luaL_newmetatable(L, JOB_MT)) {
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_newmetatable(L, EXECUTOR_MT);
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, metameth, 1);
  lua_pushlightuserdata(L, S);
  lua_newtable(L);
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, meth, 1);
  lua_pushcclosure(L, e_index, 2);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  if (lua_getfield(L, LUA_REGISTRYINDEX, CODE_KEY) != LUA_TTABLE) {
    lua_newtable(L);  /* function -> its bytecode, forgotten with it */
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, CODE_KEY);
  }
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, funcs, 1);
  return 1;
}

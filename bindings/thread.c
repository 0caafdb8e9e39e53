/*
** asynchost.core.thread: Lua functions run in worker Lua states on threads
** of our own (async.to_thread, async.executor).
**
** A job carries the function (as bytecode) and its arguments, marshalled
** (marshal.c), to a pool of worker threads, each with a Lua state of its
** own kept from job to job; the results, or the error, come back the same
** way.  Workers are our own threads, not libuv's pool: a long job must not
** hold up async.fs.  Finished jobs go on a list and a uv_async_t wakes the
** loop; that handle exists only while jobs are in flight, so an idle pool
** keeps nothing on the loop.
**
** A job nobody waits for any more (its task was cancelled, the pool shuts
** down) is interrupted the way lua.c interrupts a script on SIGINT: a
** signal (SIGURG, ignored by default) sent to its worker thread sets a
** hook in the worker's state, and the hook raises an error.  A hook set
** all the time would do without the signal, but Lua 5.4 then traces every
** instruction: loops run 3 times slower.
**
** A job is owned by two sides, and freed when both let go: the pool
** ('inpool': queued, running, or done but not yet seen by the loop) and
** the Lua side ('held': the jobbox userdata on the stack of the task that
** awaits it, or the future of submit()).  Everything but running the job
** happens on the loop thread; the pool's mutex guards the queues and the
** job's 'state'.
*/
#define _GNU_SOURCE  /* pthread_sigqueue */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "asynchost.h"
#include "lualib.h"
#include "marshal.h"

#if defined(__linux__) && defined(__GLIBC__)
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>
#define INTSIG  SIGURG  /* interrupts a worker; ignored by default */
#endif

#define EXECUTOR_MT  "asynchost.Executor"
#define JOB_MT       "asynchost.thread.job"
#define DEFAULT_KEY  "asynchost.thread.default"  /* the default executor */
#define CODE_KEY     "asynchost.thread.code"     /* function -> bytecode */
#define TB_KEY       "asynchost.thread.traceback"  /* in a worker */
#define MAXWORKERS   256
#define MAXCACHED    64     /* functions a worker keeps loaded */

enum { J_NEW, J_QUEUED, J_RUNNING, J_DONE, J_DROPPED };  /* job 'state' */

typedef struct pool pool;

typedef struct worker worker;

typedef struct job {
  struct job *next;         /* in the queue or the done list */
  worker *w;                /* running it (under the pool's mutex) */
  ah_mbuf in;               /* bytecode, then the arguments */
  ah_mbuf out;              /* 'R' and the results, or 'E' and the error */
  atomic_int stop;          /* interrupt it: nobody wants the results */
  int state;                /* J_*, under the pool's mutex */
  /* the loop thread's */
  pool *P;
  ah_sched *S;
  int inpool, held;
  ah_task *task;            /* the task waiting for it, or NULL */
  ah_hookedfuture *fut;     /* or the future of submit(), or NULL */
  int futref, exref;        /* submit(): the future and the executor */
} job;

struct worker {
  uv_thread_t tid;
  pool *P;
  lua_State *L;             /* its state, or NULL (set by the thread) */
  job *cur;                 /* the job it runs (under the mutex) */
  int ncached;              /* functions in its cache */
};

struct pool {
  uv_mutex_t mu;
  uv_cond_t cv;
  job *qhead, *qtail;       /* queued, FIFO */
  job *dhead, *dtail;       /* done, for the loop */
  int stopping;             /* workers end when the queue is empty */
  uv_async_t *async;        /* open while jobs are in flight */
  /* the loop thread's */
  ah_sched *S;
  int inflight;             /* jobs 'inpool' */
  int nwaited;              /* of those, the ones a task or future awaits */
  ah_wlist closers;         /* tasks in close(), waiting for the jobs */
  char *path, *cpath;       /* package.path and cpath for the workers */
  int nthreads;             /* started */
  worker w[1];
};

typedef struct executor {   /* the userdata */
  pool *P;                  /* NULL once closed */
  int closed;               /* takes no more jobs */
  int nworkers;
} executor;

typedef struct jobbox {     /* the userdata holding a job for a task */
  job *j;
} jobbox;

#define getsched(L)  ((ah_sched *)lua_touserdata(L, lua_upvalueindex(1)))

static void processdone (pool *P, lua_State *L, int deliver);


/* {======================================================
** Jobs: ownership
** ======================================================= */

static void freejob (job *j) {
  ah_mbuf_free(&j->in);
  ah_mbuf_free(&j->out);
  free(j);
}

/* The Lua side lets go of 'j'. */
static void release (lua_State *L, job *j) {
  if (!j->held) return;
  j->held = 0;
  luaL_unref(L, LUA_REGISTRYINDEX, j->futref);
  luaL_unref(L, LUA_REGISTRYINDEX, j->exref);
  j->futref = j->exref = LUA_NOREF;
  if (!j->inpool) freejob(j);
}

static int box_gc (lua_State *L) {
  jobbox *bx = (jobbox *)lua_touserdata(L, 1);
  if (bx->j != NULL) {
    release(L, bx->j);
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

static void freehandle (uv_handle_t *h) {
  free(h);
}

/* The handle keeps the loop alive only while someone waits. */
static void updateref (pool *P) {
  if (P->async == NULL) return;
  if (P->nwaited > 0 || P->closers.head != NULL)
    uv_ref((uv_handle_t *)P->async);
  else
    uv_unref((uv_handle_t *)P->async);
}

/* After the pool let go of jobs: with none left in flight, wake the tasks
** closing the pool and close the handle. */
static void checkidle (pool *P) {
  uv_async_t *a;
  if (P->inflight > 0) return;
  while (P->closers.head != NULL) {
    ah_waiter *w = P->closers.head;
    ah_delwaiter(&P->closers, w);
    ah_wake(ah_taskofwaiter(w), AH_WAKE_OK);
  }
  uv_mutex_lock(&P->mu);
  a = P->async;
  P->async = NULL;
  uv_mutex_unlock(&P->mu);
  if (a != NULL) uv_close((uv_handle_t *)a, freehandle);
}

/* The pool lets go of 'j' without delivering it. */
static void forget (lua_State *L, pool *P, job *j) {
  j->inpool = 0;
  P->inflight--;
  if (j->task != NULL || j->fut != NULL) P->nwaited--;
  j->task = NULL;
  if (j->fut != NULL) {
    j->fut->p = NULL;
    j->fut = NULL;
    release(L, j);
  }
  else if (!j->held) freejob(j);
}

/* The hook set by the signal: raises while the job is unwanted (so that
** a pcall in a loop does not swallow it for good), else goes away. */
static void whook (lua_State *W, lua_Debug *ar) {
  worker *w = *(worker **)lua_getextraspace(W);
  (void)ar;
  if (w->cur != NULL && atomic_load(&w->cur->stop))
    luaL_error(W, "interrupted: nobody waits for this job any more");
  lua_sethook(W, NULL, 0, 0);
}

#ifdef INTSIG
static int caninterrupt;  /* our handler of INTSIG is in place */
static uv_once_t intonce = UV_ONCE_INIT;

/* On the worker's thread, like lua.c's 'laction': just sets a hook. */
static void onintsig (int sig, siginfo_t *si, void *uc) {
  int saved = errno;
  worker *w = (worker *)si->si_value.sival_ptr;
  (void)sig; (void)uc;
  if (si->si_code == SI_QUEUE && si->si_pid == getpid() && w != NULL &&
      w->L != NULL)
    lua_sethook(w->L, whook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE |
                             LUA_MASKCOUNT, 1);
  errno = saved;
}

/* Installs the handler, unless the program handles or ignores INTSIG. */
static void installintsig (void) {
  struct sigaction sa;
  if (sigaction(INTSIG, NULL, &sa) != 0 || sa.sa_handler != SIG_DFL ||
      (sa.sa_flags & SA_SIGINFO))
    return;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = onintsig;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;  /* the job's reads go on */
  sigemptyset(&sa.sa_mask);
  if (sigaction(INTSIG, &sa, NULL) == 0) caninterrupt = 1;
}
#endif

/* Asks the worker running 'j' to stop it (under the pool's mutex). */
static void interrupt (job *j) {
  atomic_store(&j->stop, 1);
#ifdef INTSIG
  if (caninterrupt && j->w != NULL) {
    union sigval v;
    v.sival_ptr = j->w;
    pthread_sigqueue((pthread_t)j->w->tid, INTSIG, v);
  }
#endif
}

/* Nobody waits for 'j' any more: drop it if it has not started, else ask
** its worker to interrupt it.  Its results will be thrown away. */
static void abandon (job *j) {
  pool *P = j->P;
  int dropped = 0;
  if (!j->inpool) { j->task = NULL; return; }
  if (j->task != NULL || j->fut != NULL) P->nwaited--;
  j->task = NULL;
  j->fut = NULL;
  uv_mutex_lock(&P->mu);
  if (j->state == J_QUEUED) {  /* unlink it */
    job **p = &P->qhead, *prev = NULL;
    while (*p != j) { prev = *p; p = &(*p)->next; }
    *p = j->next;
    if (P->qtail == j) P->qtail = prev;
    j->state = J_DROPPED;
    dropped = 1;
  }
  else if (j->state == J_RUNNING)
    interrupt(j);
  uv_mutex_unlock(&P->mu);
  if (dropped) {
    j->inpool = 0;
    P->inflight--;
    if (!j->held) freejob(j);
    checkidle(P);
  }
  updateref(P);
}

/* }====================================================== */


/* {======================================================
** The worker threads
** ======================================================= */

/* Appends an error record with message 'msg' and nothing else. */
static void rawerror (ah_mbuf *b, const char *msg) {
  unsigned char hdr[12];
  size_t len = strlen(msg), n = 0, k = len;
  b->n = 0;
  hdr[n++] = 'E';
  hdr[n++] = 'S';
  do {  /* LEB128, as marshal.c */
    hdr[n++] = (unsigned char)((k & 0x7f) | (k > 0x7f ? 0x80 : 0));
    k >>= 7;
  } while (k > 0);
  if (!ah_mbuf_add(b, hdr, n) || !ah_mbuf_add(b, msg, len) ||
      !ah_mbuf_add(b, "NNN", 3))
    b->n = 0;  /* the loop reports an empty record */
}

/* The message handler of a job: keeps the traceback aside. */
static int wmsgh (lua_State *W) {
  luaL_traceback(W, W, NULL, 1);
  lua_setfield(W, LUA_REGISTRYINDEX, TB_KEY);
  lua_settop(W, 1);
  return 1;
}

/* Replaces the bytecode at 'i' with its function, loaded or cached. */
static void loadcode (lua_State *W, worker *w, int i) {
  size_t len;
  const char *s;
  lua_getfield(W, LUA_REGISTRYINDEX, CODE_KEY);
  lua_pushvalue(W, i);
  if (lua_rawget(W, -2) == LUA_TFUNCTION) {
    lua_replace(W, i);
    lua_pop(W, 1);
    return;
  }
  lua_pop(W, 1);
  s = lua_tolstring(W, i, &len);
  if (luaL_loadbufferx(W, s, len, "=worker", "b") != LUA_OK)
    lua_error(W);
  if (++w->ncached > MAXCACHED) {  /* start afresh */
    lua_newtable(W);
    lua_pushvalue(W, -1);
    lua_setfield(W, LUA_REGISTRYINDEX, CODE_KEY);
    lua_replace(W, -3);
    w->ncached = 1;
  }
  lua_pushvalue(W, i);
  lua_pushvalue(W, -2);
  lua_rawset(W, -4);
  lua_replace(W, i);
  lua_pop(W, 1);
}

static int wencodevalue (lua_State *W) {  /* job, value */
  job *j = (job *)lua_touserdata(W, 1);
  ah_encode(W, 2, 1, &j->out, AH_ENC_LENIENT);
  return 0;
}

/* Appends the error at 'i' as four values: message, traceback, class
** name, and the value itself (its fields, if it has a metatable) or nil
** when it cannot travel. */
static void encerror (lua_State *W, job *j, int i) {
  size_t mark;
  int top = lua_gettop(W);
  switch (lua_type(W, i)) {
    case LUA_TSTRING: lua_pushvalue(W, i); break;
    case LUA_TNUMBER: case LUA_TBOOLEAN: case LUA_TNIL:
      luaL_tolstring(W, i, NULL);
      break;
    default:
      if (luaL_getmetafield(W, i, "__tostring") != LUA_TNIL) {
        lua_pop(W, 1);
        luaL_tolstring(W, i, NULL);
      }
      else
        lua_pushfstring(W, "(error object is a %s value)",
                        luaL_typename(W, i));
  }
  lua_getfield(W, LUA_REGISTRYINDEX, TB_KEY);
  switch (luaL_getmetafield(W, i, "__name")) {
    case LUA_TNIL: lua_pushnil(W); break;  /* pushed nothing */
    case LUA_TSTRING: break;
    default: lua_pop(W, 1); lua_pushnil(W);
  }
  ah_encode(W, top + 1, 3, &j->out, AH_ENC_RESULTS);
  mark = j->out.n;
  lua_pushcfunction(W, wencodevalue);
  lua_pushlightuserdata(W, j);
  lua_pushvalue(W, i);
  if (lua_pcall(W, 2, 0, 0) != LUA_OK) {  /* it cannot travel: nil */
    j->out.n = mark;
    if (!ah_mbuf_add(&j->out, "N", 1)) luaL_error(W, "not enough memory");
  }
  lua_settop(W, top);
}

/* Runs job 1 (a light userdata): its bytecode and arguments are decoded,
** the function called, and the results or error encoded. */
static int wrun (lua_State *W) {
  job *j = (job *)lua_touserdata(W, 1);
  worker *w = *(worker **)lua_getextraspace(W);
  int n, status;
  lua_pushcfunction(W, wmsgh);  /* 2 */
  n = ah_decode(W, j->in.p, j->in.n);  /* 3: bytecode; 4...: arguments */
  loadcode(W, w, 3);
  lua_pushnil(W);
  lua_setfield(W, LUA_REGISTRYINDEX, TB_KEY);
  status = lua_pcall(W, n - 1, LUA_MULTRET, 2);
  j->out.n = 0;
  if (!ah_mbuf_add(&j->out, status == LUA_OK ? "R" : "E", 1))
    luaL_error(W, "not enough memory");
  if (status == LUA_OK)
    ah_encode(W, 3, lua_gettop(W) - 2, &j->out, AH_ENC_RESULTS);
  else
    encerror(W, j, 3);
  return 0;
}

static void runjob (lua_State *W, job *j) {
  if (W == NULL) {
    rawerror(&j->out, "cannot create the worker's Lua state: not enough "
                      "memory");
    return;
  }
  lua_settop(W, 0);
  lua_pushcfunction(W, wrun);
  lua_pushlightuserdata(W, j);
  if (lua_pcall(W, 1, 0, 0) != LUA_OK) {  /* results that cannot travel */
    const char *msg = lua_tostring(W, -1);
    rawerror(&j->out, msg ? msg : "error in the worker");
  }
  lua_settop(W, 0);
  lua_sethook(W, NULL, 0, 0);  /* of an interrupt */
}

static int winit (lua_State *W) {
  pool *P = (pool *)lua_touserdata(W, 1);
  luaL_openlibs(W);
  lua_getglobal(W, "package");
  if (P->path) {
    lua_pushstring(W, P->path);
    lua_setfield(W, -2, "path");
  }
  if (P->cpath) {
    lua_pushstring(W, P->cpath);
    lua_setfield(W, -2, "cpath");
  }
  lua_newtable(W);
  lua_setfield(W, LUA_REGISTRYINDEX, CODE_KEY);
  return 0;
}

static lua_State *newworkerstate (worker *w) {
  lua_State *W = luaL_newstate();
  if (W == NULL) return NULL;
  *(worker **)lua_getextraspace(W) = w;
  lua_pushcfunction(W, winit);
  lua_pushlightuserdata(W, w->P);
  if (lua_pcall(W, 1, 0, 0) != LUA_OK) {
    lua_close(W);
    return NULL;
  }
  return W;
}

static void workermain (void *arg) {
  worker *w = (worker *)arg;
  pool *P = w->P;
  lua_State *W = newworkerstate(w);
  w->L = W;
  uv_mutex_lock(&P->mu);
  for (;;) {
    job *j;
    while (P->qhead == NULL && !P->stopping)
      uv_cond_wait(&P->cv, &P->mu);
    if ((j = P->qhead) == NULL) break;  /* stopping, and nothing left */
    if ((P->qhead = j->next) == NULL) P->qtail = NULL;
    j->state = J_RUNNING;
    j->w = w;
    w->cur = j;
    uv_mutex_unlock(&P->mu);
    runjob(W, j);
    uv_mutex_lock(&P->mu);
    w->cur = NULL;
    j->state = J_DONE;
    j->next = NULL;
    if (P->dtail) P->dtail->next = j; else P->dhead = j;
    P->dtail = j;
    uv_async_send(P->async);  /* open: 'j' is in flight */
  }
  uv_mutex_unlock(&P->mu);
#ifdef INTSIG
  {  /* a late signal must not find the state closing */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, INTSIG);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
  }
#endif
  w->L = NULL;
  if (W != NULL) lua_close(W);
}

/* }====================================================== */


/* {======================================================
** The pool, on the loop thread
** ======================================================= */

static void ondone (uv_async_t *a) {
  pool *P = (pool *)a->data;
  processdone(P, P->S->L, 1);
}

/* Opens the handle if no job is in flight. */
static void openasync (lua_State *L, pool *P) {
  uv_async_t *a;
  int r;
  if (P->async != NULL) return;
  if ((a = (uv_async_t *)malloc(sizeof(uv_async_t))) == NULL)
    luaL_error(L, "not enough memory");
  if ((r = uv_async_init(P->S->loop, a, ondone)) != 0) {
    free(a);
    luaL_error(L, "cannot start a worker job: %s", uv_strerror(r));
  }
  a->data = P;
  uv_mutex_lock(&P->mu);
  P->async = a;
  uv_mutex_unlock(&P->mu);
  updateref(P);
}

/* Queues 'j' (the handle is open). */
static void submit (pool *P, job *j) {
  j->P = P;
  j->inpool = 1;
  P->inflight++;
  if (j->task != NULL || j->fut != NULL) P->nwaited++;
  uv_mutex_lock(&P->mu);
  j->state = J_QUEUED;
  j->next = NULL;
  if (P->qtail) P->qtail->next = j; else P->qhead = j;
  P->qtail = j;
  uv_cond_signal(&P->cv);
  uv_mutex_unlock(&P->mu);
  updateref(P);
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
static void completefuture (lua_State *L, job *j) {
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
  release(L, j);
}

/* Takes the jobs done, and wakes whoever waits for them ('deliver'), or
** just lets go of them. */
static void processdone (pool *P, lua_State *L, int deliver) {
  job *j, *next;
  uv_mutex_lock(&P->mu);
  j = P->dhead;
  P->dhead = P->dtail = NULL;
  uv_mutex_unlock(&P->mu);
  for (; j != NULL; j = next) {
    next = j->next;
    if (!deliver) { forget(L, P, j); continue; }
    j->inpool = 0;
    P->inflight--;
    if (j->task != NULL) {
      ah_task *t = j->task;
      j->task = NULL;
      P->nwaited--;
      ah_wake(t, AH_WAKE_OK);  /* its continuation takes the outcome */
    }
    else if (j->fut != NULL) {
      P->nwaited--;
      completefuture(L, j);
    }
    else if (!j->held)
      freejob(j);
  }
  checkidle(P);
  updateref(P);
}

/* Ends the pool of 'ex'.  'drain': the workers finish the queue and
** whoever waits gets the results; else queued jobs are dropped and
** running ones interrupted. */
static void endpool (lua_State *L, executor *ex, int drain) {
  pool *P = ex->P;
  job *dropped = NULL, *j, *next;
  int k;
  if (P == NULL) return;
  ex->P = NULL;
  ex->closed = 1;
  uv_mutex_lock(&P->mu);
  if (!drain) {
    dropped = P->qhead;
    P->qhead = P->qtail = NULL;
    for (k = 0; k < P->nthreads; k++)
      if (P->w[k].cur != NULL) interrupt(P->w[k].cur);
  }
  P->stopping = 1;
  uv_cond_broadcast(&P->cv);
  uv_mutex_unlock(&P->mu);
  for (k = 0; k < P->nthreads; k++)
    uv_thread_join(&P->w[k].tid);
  for (j = dropped; j != NULL; j = next) {
    next = j->next;
    j->state = J_DROPPED;
    forget(L, P, j);
  }
  processdone(P, L, drain);
  checkidle(P);  /* closes the handle */
  uv_mutex_destroy(&P->mu);
  uv_cond_destroy(&P->cv);
  free(P->path);
  free(P->cpath);
  free(P);
}

static char *copyfield (lua_State *L, int i, const char *k) {
  char *s = NULL;
  if (lua_getfield(L, i, k) == LUA_TSTRING) {
    size_t len;
    const char *v = lua_tolstring(L, -1, &len);
    if ((s = (char *)malloc(len + 1)) != NULL) memcpy(s, v, len + 1);
  }
  lua_pop(L, 1);
  return s;
}

/* Pushes a new executor with 'n' worker threads. */
static executor *newexecutor (lua_State *L, ah_sched *S, int n) {
  executor *ex = (executor *)lua_newuserdatauv(L, sizeof(executor), 0);
  pool *P;
  int k, r = 0;
  ex->P = NULL;
  ex->closed = 1;
  ex->nworkers = n;
  luaL_setmetatable(L, EXECUTOR_MT);
  P = (pool *)calloc(1, sizeof(pool) + (size_t)(n - 1) * sizeof(worker));
  if (P == NULL) luaL_error(L, "not enough memory");
  if (uv_mutex_init(&P->mu) != 0) {
    free(P);
    luaL_error(L, "cannot create a mutex");
  }
  if (uv_cond_init(&P->cv) != 0) {
    uv_mutex_destroy(&P->mu);
    free(P);
    luaL_error(L, "cannot create a condition variable");
  }
  P->S = S;
  ex->P = P;  /* from now on __gc cleans up */
#ifdef INTSIG
  uv_once(&intonce, installintsig);
#endif
  ex->closed = 0;
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, LUA_LOADLIBNAME) == LUA_TTABLE) {
    P->path = copyfield(L, -1, "path");
    P->cpath = copyfield(L, -1, "cpath");
  }
  lua_pop(L, 2);
  for (k = 0; k < n && r == 0; k++) {
    P->w[k].P = P;
    if ((r = uv_thread_create(&P->w[k].tid, workermain, &P->w[k])) == 0)
      P->nthreads++;
  }
  if (r != 0) {
    endpool(L, ex, 0);
    luaL_error(L, "cannot start worker threads: %s", uv_strerror(r));
  }
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
  abandon((job *)t->waitobj);
}

static int runk (lua_State *L, int status, lua_KContext ctx) {
  ah_task *t = getsched(L)->current;
  jobbox *bx = (jobbox *)lua_touserdata(L, (int)ctx);
  job *j = bx->j;
  int n;
  (void)status;
  if (t->wake != AH_WAKE_OK || t->mustcancel) {  /* results unwanted */
    bx->j = NULL;
    release(L, j);
    ah_checkwake(L, t);  /* raises */
  }
  ah_checkwake(L, t);  /* the wait is over */
  n = pushoutcome(L, j);  /* or raises the worker's error */
  bx->j = NULL;
  release(L, j);
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
  openasync(L, ex->P);
  j->task = t;
  if (!ah_wait(t, unwaitjob, j, "a worker thread"))
    submit(ex->P, j);
  else {  /* cancelled already */
    j->task = NULL;
    checkidle(ex->P);
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
  abandon(j);
  release(j->S->L, j);
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
  openasync(L, ex->P);
  bx->j = NULL;  /* the future holds it now */
  hf->oncancel = cancelsubmitted;
  hf->p = j;
  j->fut = hf;
  submit(ex->P, j);
  return 1;
}

static void uncloser (ah_sched *S, ah_task *t) {
  executor *ex = (executor *)t->waitobj;
  (void)S;
  if (ex->P != NULL) {
    ah_delwaiter(&ex->P->closers, &t->w);
    updateref(ex->P);
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
  if (ex->P->inflight == 0 || S->current == NULL || !lua_isyieldable(L)) {
    endpool(L, ex, 1);
    return 0;
  }
  t = ah_current(S, L, "close");
  if (!ah_wait(t, uncloser, ex, "an executor's jobs")) {
    t->w.fn = nowake;
    ah_addwaiter(&ex->P->closers, &t->w);
    updateref(ex->P);
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
  release(L, j);
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

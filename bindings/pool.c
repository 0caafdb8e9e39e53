/*
** The worker pool of asynchost.core.thread (thread.c makes the jobs and
** hands them here): the worker threads and their Lua states, the job
** queue, interruption by signal, and the uv_async_t that brings finished
** jobs back to the loop.
**
** Workers are our own threads, not libuv's pool: a long job must not
** hold up async.fs.  Each keeps its Lua state from job to job.  Finished
** jobs go on a list and a uv_async_t wakes the loop; that handle exists
** only while jobs are in flight, so an idle pool keeps nothing on the loop.
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

#if defined(__linux__) && defined(__GLIBC__)
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>
#define INTSIG  SIGURG  /* interrupts a worker; ignored by default */
#endif

#define CODE_KEY     "asynchost.thread.code"     /* bytecode -> function */
#define TB_KEY       "asynchost.thread.traceback"  /* in a worker */
#define MAXCACHED    64     /* functions a worker keeps loaded */

enum { J_NEW, J_QUEUED, J_RUNNING, J_DONE, J_DROPPED };  /* job 'state' */

typedef ah_pool pool;
typedef ah_worker worker;
typedef ah_job job;

struct ah_worker {
  uv_thread_t tid;
  pool *P;
  lua_State *L;             /* its state, or NULL (set by the thread) */
  job *cur;                 /* the job it runs (under the mutex) */
  int ncached;              /* functions in its cache */
};

struct ah_pool {
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
void ah_pool_release (lua_State *L, job *j) {
  if (!j->held) return;
  j->held = 0;
  luaL_unref(L, LUA_REGISTRYINDEX, j->futref);
  luaL_unref(L, LUA_REGISTRYINDEX, j->exref);
  j->futref = j->exref = LUA_NOREF;
  if (!j->inpool) freejob(j);
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
void ah_pool_checkidle (pool *P) {
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
    ah_pool_release(L, j);
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
void ah_pool_abandon (job *j) {
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
    ah_pool_checkidle(P);
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
void ah_pool_openasync (lua_State *L, pool *P) {
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
void ah_pool_submit (pool *P, job *j) {
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
      ah_thread_completefuture(L, j);
    }
    else if (!j->held)
      freejob(j);
  }
  ah_pool_checkidle(P);
  updateref(P);
}

/* Ends pool 'P' (its executor has let go of it).  'drain': the workers
** finish the queue and whoever waits gets the results; else queued jobs
** are dropped and running ones interrupted. */
void ah_pool_end (lua_State *L, pool *P, int drain) {
  job *dropped = NULL, *j, *next;
  int k;
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
  ah_pool_checkidle(P);  /* closes the handle */
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

/* Starts a pool of 'n' worker threads in '*pp', the field of its
** executor, or raises.  From the moment '*pp' is set, the executor's
** __gc ends the pool. */
void ah_pool_start (lua_State *L, ah_sched *S, pool **pp, int n) {
  pool *P;
  int k, r = 0;
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
  *pp = P;  /* from now on __gc cleans up */
#ifdef INTSIG
  uv_once(&intonce, installintsig);
#endif
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
    *pp = NULL;
    ah_pool_end(L, P, 0);
    luaL_error(L, "cannot start worker threads: %s", uv_strerror(r));
  }
}

/* For executor:close(): the jobs in flight, and the tasks waiting for
** them to end (ah_pool_checkidle wakes them). */
int ah_pool_inflight (pool *P) {
  return P->inflight;
}

void ah_pool_addcloser (pool *P, ah_task *t) {
  ah_addwaiter(&P->closers, &t->w);
  updateref(P);
}

void ah_pool_delcloser (pool *P, ah_task *t) {
  ah_delwaiter(&P->closers, &t->w);
  updateref(P);
}

/* }====================================================== */


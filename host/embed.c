/*
** The embedding API (include/asynchost.h): hosts, scripts as tasks, C
** futures, posting from other threads, shutting down.
*/
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"
#include "asynchost.h"       /* the internal one (bindings/) */
#include "../include/asynchost.h"
#include "host.h"

#define HOST_KEY  "asynchost.host"

typedef struct post {
  struct post *next;
  void (*fn) (ah_host *h, void *ud);
  void *ud;
} post;

struct ah_host {
  lua_State *L;
  ah_sched *S;
  uv_loop_t *loop;
  int ownloop;
  void *ud;
  char errmsg[512];
  uv_async_t async;         /* wakes the loop for posted functions */
  uv_mutex_t mutex;         /* guards the posts and 'closing' */
  post *phead, *ptail;
  ah_cfuture *futures;      /* not yet finished */
  int nfutures;
  struct watch *watches;    /* started tasks not yet ended */
  int depth;                /* > 0 inside our callbacks into the embedder */
  int closing;              /* close requested: no new work */
  int nclosing;             /* handles of ours still closing */
  int finished;             /* own loop: closed from a callback, to free */
  uv_timer_t closetimer;    /* polls the end of the tasks when closing */
  uint64_t closedeadline;
  int closeturns;           /* times the close timer ran */
  void (*closecb) (void *ud);
  void *closeud;
  lua_Alloc allocf;         /* the state's allocator, under a limit */
  void *allocud;
  size_t memused;           /* bytes, counted once a limit is set */
  size_t memlimit;          /* 0: none */
};

struct ah_cfuture {
  ah_cfuture *prev, *next;  /* in the host's list */
  ah_host *h;               /* NULL once the host is closed */
  int ref;                  /* the Lua future */
  ah_cancel_cb cancel;
  void *ud;
  int cancelled;
};

/* the Lua side of a C future: a future with a cancel hook */
typedef struct cfutud {
  ah_hookedfuture hf;
  ah_cfuture *c;
} cfutud;


const char *ah_version (void) { return AH_VERSION_STRING; }
int ah_version_num (void) { return ASYNCHOST_VERSION_NUM; }

static int fail (ah_host *h, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(h->errmsg, sizeof(h->errmsg), fmt, ap);
  va_end(ap);
  return code;
}

/* Keeps the loop alive while C futures are outstanding: their embedder
** will finish them (perhaps through ah_host_post). */
static void refasync (ah_host *h) {
  if (h->nfutures > 0 && !h->closing) uv_ref((uv_handle_t *)&h->async);
  else uv_unref((uv_handle_t *)&h->async);
}


/* {======================================================
** Creating a host
** ======================================================= */

static void onpost (uv_async_t *a);
static int endownloop (ah_host *h);

static int opener (lua_State *L) {
  ah_host *h = (ah_host *)lua_touserdata(L, 1);
  int flags = (int)lua_tointeger(L, 2);
  if (flags & AH_NOENV) {
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  h->S = ah_sched_new(L, h->loop);
  lua_pushlightuserdata(L, h);
  lua_setfield(L, LUA_REGISTRYINDEX, HOST_KEY);
  if (flags & AH_NOLIBS) {
    luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
    luaL_requiref(L, LUA_LOADLIBNAME, luaopen_package, 1);
    luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
    luaL_requiref(L, LUA_COLIBNAME, luaopen_coroutine, 1);
    /* what asynchost's Lua modules use, loadable but not global */
    luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 0);
    luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 0);
    luaL_requiref(L, LUA_DBLIBNAME, luaopen_debug, 0);
    lua_pop(L, 7);
    ah_openmodules(L);
  }
  else
    ah_openlibs(L);
  return 0;
}

/* "123", "64K", "64M", "1G" -> bytes in *size; 0 if not a size. */
static int parsesize (const char *s, size_t *size) {
  char *end;
  unsigned long long n;
  int shift = 0;
  if (*s < '0' || *s > '9') return 0;
  n = strtoull(s, &end, 10);
  switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
  }
  if (*end == 'b' || *end == 'B') end++;
  if (*end != '\0' || n > ((size_t)-1 >> 1) >> shift) return 0;
  *size = (size_t)(n << shift);
  return 1;
}

ah_host *ah_host_new (uv_loop_t *loop, int flags) {
  ah_host *h = (ah_host *)calloc(1, sizeof(ah_host));
  const char *limit;
  size_t size;
  if (h == NULL) return NULL;
  if (loop == NULL) {
    loop = (uv_loop_t *)malloc(sizeof(uv_loop_t));
    if (loop == NULL || uv_loop_init(loop) != 0) {
      free(loop);
      free(h);
      return NULL;
    }
    h->ownloop = 1;
  }
  h->loop = loop;
  if ((h->L = luaL_newstate()) == NULL) goto failed;
  lua_pushcfunction(h->L, opener);
  lua_pushlightuserdata(h->L, h);
  lua_pushinteger(h->L, flags);
  if (lua_pcall(h->L, 2, 0, 0) != LUA_OK) {
    fprintf(stderr, "asynchost: cannot create a host: %s\n",
            lua_tostring(h->L, -1));
    errno = EINVAL;  /* said why: not for lack of memory */
    goto failed;
  }
  if (!(flags & AH_NOENV) &&
      (limit = getenv("ASYNCHOST_MEMORY_LIMIT")) != NULL && *limit) {
    if (!parsesize(limit, &size)) {
      fprintf(stderr, "asynchost: ASYNCHOST_MEMORY_LIMIT='%s' is not a "
              "size (bytes, or with K, M or G: 64M)\n", limit);
      errno = EINVAL;
      goto failed;
    }
    if (size > 0) ah_host_set_memory_limit(h, size);  /* 0: none */
  }
  uv_mutex_init(&h->mutex);
  uv_async_init(loop, &h->async, onpost);
  h->async.data = h;
  uv_timer_init(loop, &h->closetimer);
  h->closetimer.data = h;
  refasync(h);
  return h;
 failed:
  if (h->L) {
    lua_close(h->L);  /* closes the scheduler's handles, if any */
    if (h->ownloop) uv_run(loop, UV_RUN_DEFAULT);
  }
  if (h->ownloop) {
    uv_loop_close(loop);
    free(loop);
  }
  free(h);
  return NULL;
}

/* The allocator of a host with a memory limit.  Only the allocations of a
** running task fail at the limit: they raise in the task, under the
** protection of its resume; the scheduler's own, between tasks, are
** never refused (an error there would be a panic). */
static void *limitalloc (void *ud, void *ptr, size_t osize, size_t nsize) {
  ah_host *h = (ah_host *)ud;
  size_t old = (ptr != NULL) ? osize : 0;
  void *p;
  if (nsize > old && h->memlimit > 0 && h->memused + (nsize - old) >
      h->memlimit && h->S != NULL && h->S->current != NULL)
    return NULL;
  p = h->allocf(h->allocud, ptr, osize, nsize);
  if (p != NULL || nsize == 0) h->memused = h->memused - old + nsize;
  return p;
}

int ah_host_set_memory_limit (ah_host *h, size_t bytes) {
  if (h->L == NULL || h->closing)
    return fail(h, AH_ECLOSED, "ah_host_set_memory_limit: the host is "
                "closing");
  if (h->allocf == NULL) {  /* count from now on, from what is in use */
    h->allocf = lua_getallocf(h->L, &h->allocud);
    h->memused = ah_host_memory(h);
    lua_setallocf(h->L, limitalloc, h);
  }
  h->memlimit = bytes;
  return AH_OK;
}

size_t ah_host_memory (ah_host *h) {
  if (h->L == NULL) return 0;
  return (size_t)lua_gc(h->L, LUA_GCCOUNT) * 1024 +
         (size_t)lua_gc(h->L, LUA_GCCOUNTB);
}

lua_State *ah_host_state (ah_host *h) { return h->L; }
uv_loop_t *ah_host_loop (ah_host *h) { return h->loop; }
void *ah_host_userdata (ah_host *h) { return h->ud; }
void ah_host_setuserdata (ah_host *h, void *ud) { h->ud = ud; }
const char *ah_host_errmsg (ah_host *h) { return h->errmsg; }
int ah_host_pending (ah_host *h) { return h->S->nlive; }

ah_host *ah_host_of (lua_State *L) {
  ah_host *h;
  lua_getfield(L, LUA_REGISTRYINDEX, HOST_KEY);
  h = (ah_host *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  return h;
}

/* }====================================================== */


/* {======================================================
** Running an own loop
** ======================================================= */

static int checkown (ah_host *h, const char *fname) {
  if (h->closing && (h->depth > 0 || !h->ownloop))
    return fail(h, AH_ECLOSED, "%s: the host is closing", fname);
  if (!h->ownloop)
    return fail(h, AH_EINVAL, "%s: the host runs on a borrowed loop "
                "(run that loop instead)", fname);
  if (h->depth > 0)
    return fail(h, AH_EINVAL, "%s: called from a callback of the host "
                "(the loop is already running)", fname);
  return AH_OK;
}

int ah_host_run (ah_host *h) {
  int r = checkown(h, "ah_host_run");
  if (r != AH_OK) return r;
  h->depth++;
  uv_run(h->loop, UV_RUN_DEFAULT);
  h->depth--;
  endownloop(h);
  return AH_OK;
}

int ah_host_step (ah_host *h, int wait) {
  int r = checkown(h, "ah_host_step");
  if (r != AH_OK) return r;
  h->depth++;
  r = uv_run(h->loop, wait ? UV_RUN_ONCE : UV_RUN_NOWAIT);
  h->depth--;
  if (endownloop(h)) return AH_ECLOSED;
  return r != 0 || (h->L != NULL && h->S->rcount > 0);
}

int ah_host_call (ah_host *h, int nargs, int nresults) {
  int r = checkown(h, "ah_host_call");
  if (r == AH_OK && (nargs < 0 || lua_gettop(h->L) < nargs + 1))
    r = fail(h, AH_EINVAL, "ah_host_call: no function to call");
  if (r != AH_OK) {  /* like lua_pcall: the message replaces the call */
    if (nargs >= 0 && lua_gettop(h->L) >= nargs + 1)
      lua_pop(h->L, nargs + 1);
    lua_pushstring(h->L, h->errmsg);
    return r;
  }
  h->depth++;
  r = ah_runtask(h->L, nargs, nresults);
  h->depth--;
  if (r != LUA_OK) {
    fail(h, AH_ERROR, "%s", lua_tostring(h->L, -1));
    return AH_ERROR;
  }
  return AH_OK;
}

/* }====================================================== */


/* {======================================================
** Scripts as tasks
** ======================================================= */

typedef struct watch {
  ah_waiter w;
  struct watch *prev, *next;  /* in the host's list */
  ah_host *h;
  ah_done_cb cb;
  void *ud;
  int ref;  /* the task */
} watch;

/* The watched task has ended: tell the embedder. */
static void ondone (ah_sched *S, ah_waiter *w, ah_future *f) {
  watch *wt = (watch *)w;
  ah_host *h = wt->h;
  lua_State *L = S->L;
  int top = lua_gettop(L), status;
  (void)f;
  if (wt->prev) wt->prev->next = wt->next; else h->watches = wt->next;
  if (wt->next) wt->next->prev = wt->prev;
  lua_rawgeti(L, LUA_REGISTRYINDEX, wt->ref);
  luaL_unref(L, LUA_REGISTRYINDEX, wt->ref);
  status = ah_taskoutcome(L, top + 1, LUA_MULTRET, 0);
  if (wt->cb != NULL) {
    h->depth++;
    wt->cb(h, status == LUA_OK ? AH_OK : AH_ERROR, L, lua_gettop(L) - top - 1,
           wt->ud);
    h->depth--;
  }
  lua_settop(L, top);
  free(wt);
}

/* stack: task (popped).  Hangs a watch on it. */
static int watchtask (ah_host *h, ah_done_cb cb, void *ud) {
  lua_State *L = h->L;
  watch *wt = (watch *)malloc(sizeof(watch));
  if (wt == NULL) {
    ah_cancel(h->S, (ah_task *)lua_touserdata(L, -1), "out of memory");
    lua_pop(L, 1);
    return fail(h, AH_ENOMEM, "not enough memory");
  }
  wt->h = h;
  wt->cb = cb;
  wt->ud = ud;
  wt->w.fn = ondone;
  wt->prev = NULL;
  wt->next = h->watches;
  if (h->watches) h->watches->prev = wt;
  h->watches = wt;
  ah_addwaiter(&((ah_future *)lua_touserdata(L, -1))->waiters, &wt->w);
  wt->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return AH_OK;
}

static int spawner (lua_State *L) {  /* function and arguments -> task */
  ah_spawn(ah_sched_get(L), L, 1, lua_gettop(L) - 1);
  return 1;
}

int ah_host_start_function (ah_host *h, int nargs, ah_done_cb cb, void *ud) {
  lua_State *L = h->L;
  if (h->closing) {
    lua_pop(L, nargs + 1);
    return fail(h, AH_ECLOSED, "the host is closing");
  }
  if (nargs < 0 || lua_gettop(L) < nargs + 1 ||
      lua_type(L, -nargs - 1) != LUA_TFUNCTION)
    return fail(h, AH_EINVAL, "ah_host_start_function: no function on the "
                "stack");
  lua_pushcfunction(L, spawner);
  lua_insert(L, -nargs - 2);
  if (lua_pcall(L, nargs + 1, 1, 0) != LUA_OK) {
    fail(h, AH_ERROR, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return AH_ERROR;
  }
  return watchtask(h, cb, ud);
}

int ah_host_start_file (ah_host *h, const char *path, ah_done_cb cb,
                        void *ud) {
  if (h->closing) return fail(h, AH_ECLOSED, "the host is closing");
  if (luaL_loadfile(h->L, path) != LUA_OK) {
    fail(h, AH_ERROR, "%s", lua_tostring(h->L, -1));
    lua_pop(h->L, 1);
    return AH_ERROR;
  }
  return ah_host_start_function(h, 0, cb, ud);
}

int ah_host_start_string (ah_host *h, const char *code, const char *name,
                          ah_done_cb cb, void *ud) {
  if (h->closing) return fail(h, AH_ECLOSED, "the host is closing");
  if (luaL_loadbuffer(h->L, code, strlen(code), name ? name : code)
      != LUA_OK) {
    fail(h, AH_ERROR, "%s", lua_tostring(h->L, -1));
    lua_pop(h->L, 1);
    return AH_ERROR;
  }
  return ah_host_start_function(h, 0, cb, ud);
}

/* }====================================================== */


/* {======================================================
** C futures
** ======================================================= */

static void unlinkfuture (ah_cfuture *c) {
  ah_host *h = c->h;
  if (h == NULL) return;
  if (c->prev) c->prev->next = c->next; else h->futures = c->next;
  if (c->next) c->next->prev = c->prev;
  h->nfutures--;
  refasync(h);
  if (c->ref != LUA_NOREF) {
    cfutud *u;
    lua_rawgeti(h->L, LUA_REGISTRYINDEX, c->ref);
    u = (cfutud *)lua_touserdata(h->L, -1);
    u->c = NULL;
    u->hf.p = NULL;  /* a later cancel from Lua calls no one */
    lua_pop(h->L, 1);
    luaL_unref(h->L, LUA_REGISTRYINDEX, c->ref);
  }
}

/* The Lua future was cancelled: tell the embedder, once. */
static void oncancel (void *p) {
  ah_cfuture *c = (ah_cfuture *)p;
  ah_host *h;
  if (c == NULL || c->cancelled) return;
  c->cancelled = 1;
  if (c->cancel != NULL) {
    h = c->h;  /* the callback may finish 'c', which frees it */
    if (h) h->depth++;
    c->cancel(c, c->ud);
    if (h) h->depth--;
  }
}

ah_cfuture *ah_future_new (lua_State *L, ah_cancel_cb cancel, void *ud) {
  ah_host *h = ah_host_of(L);
  ah_cfuture *c;
  cfutud *u;
  if (h == NULL || h->closing) return NULL;
  c = (ah_cfuture *)calloc(1, sizeof(ah_cfuture));
  if (c == NULL) return NULL;
  u = (cfutud *)lua_newuserdatauv(L, sizeof(cfutud), 3);
  memset(u, 0, sizeof(*u));
  u->hf.f.tag = AH_TAG_FUTURE;
  u->hf.f.kind = AH_KIND_HOOKED;
  u->hf.oncancel = oncancel;
  u->hf.p = c;
  u->c = c;
  ah_setmt(L, h->S, AH_MT_FUTURE);
  c->h = h;
  c->cancel = cancel;
  c->ud = ud;
  lua_pushvalue(L, -1);
  c->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  c->next = h->futures;
  if (h->futures) h->futures->prev = c;
  h->futures = c;
  h->nfutures++;
  refasync(h);
  return c;
}

static int setter (lua_State *L) {  /* future, state, values... */
  int state = (int)lua_tointeger(L, 2);
  lua_remove(L, 2);
  ah_setfuture(L, ah_sched_get(L), 1, state, lua_gettop(L) - 1);
  return 0;
}

/* Completes 'c' with the 'n' values on top, or drops them. */
static int finishfuture (ah_cfuture *c, int state, int n) {
  ah_host *h;
  if (c == NULL) return AH_EINVAL;
  h = c->h;
  if (h != NULL) {
    lua_State *L = h->L;
    ah_future *f;
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref);
    f = (ah_future *)lua_touserdata(L, -1);
    if (state != AH_PENDING && f->state == AH_PENDING) {
      lua_pushcfunction(L, setter);
      lua_insert(L, -n - 2);
      lua_insert(L, -n - 1);  /* setter, future, values */
      lua_pushinteger(L, state);
      lua_insert(L, -n - 1);  /* setter, future, state, values */
      if (lua_pcall(L, n + 2, 0, 0) != LUA_OK) {
        fail(h, AH_ERROR, "%s", lua_tostring(L, -1));
        lua_pop(L, 1);
      }
    }
    else
      lua_pop(L, n + 1);
    unlinkfuture(c);
  }
  free(c);
  return AH_OK;
}

int ah_future_resolve (ah_cfuture *f, int n) {
  return finishfuture(f, AH_DONE, n);
}

int ah_future_reject (ah_cfuture *f) {
  return finishfuture(f, AH_FAILED, 1);
}

int ah_future_reject_msg (ah_cfuture *f, const char *msg) {
  if (f == NULL) return AH_EINVAL;
  if (f->h == NULL) return finishfuture(f, AH_PENDING, 0);
  lua_pushstring(f->h->L, msg);
  return finishfuture(f, AH_FAILED, 1);
}

int ah_future_release (ah_cfuture *f) {
  return finishfuture(f, AH_PENDING, 0);
}

int ah_future_cancelled (ah_cfuture *f) { return f->cancelled; }
ah_host *ah_future_host (ah_cfuture *f) { return f->h; }

/* }====================================================== */


/* {======================================================
** Posting from other threads
** ======================================================= */

int ah_host_post (ah_host *h, void (*fn) (ah_host *h, void *ud), void *ud) {
  post *p;
  uv_mutex_lock(&h->mutex);
  if (h->closing) {
    uv_mutex_unlock(&h->mutex);
    return AH_ECLOSED;
  }
  if ((p = (post *)malloc(sizeof(post))) == NULL) {
    uv_mutex_unlock(&h->mutex);
    return AH_ENOMEM;
  }
  p->next = NULL;
  p->fn = fn;
  p->ud = ud;
  if (h->ptail) h->ptail->next = p; else h->phead = p;
  h->ptail = p;
  uv_async_send(&h->async);
  uv_mutex_unlock(&h->mutex);
  return AH_OK;
}

static void onpost (uv_async_t *a) {
  ah_host *h = (ah_host *)a->data;
  post *p;
  uv_mutex_lock(&h->mutex);
  p = h->phead;
  h->phead = h->ptail = NULL;
  uv_mutex_unlock(&h->mutex);
  while (p != NULL) {
    post *next = p->next;
    h->depth++;
    p->fn(h, p->ud);
    h->depth--;
    free(p);
    p = next;
  }
}

/* }====================================================== */


/* {======================================================
** Shutting down
** ======================================================= */

static void freehost (ah_host *h) {
  void (*cb) (void *) = h->closecb;
  void *ud = h->closeud;
  uv_mutex_destroy(&h->mutex);
  free(h);
  if (cb) cb(ud);
}

static void onhandleclosed (uv_handle_t *hd) {
  ah_host *h = (ah_host *)hd->data;
  if (--h->nclosing == 0) {
    if (!h->ownloop) freehost(h);
    else h->finished = 1;  /* ah_host_run or ah_host_step frees it */
  }
}

/* Own loop, closed from a callback: once the loop is idle again, close
** it and free the host.  Returns 1 if it did. */
static int endownloop (ah_host *h) {
  uv_loop_t *loop = h->loop;
  if (!h->finished) return 0;
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  free(loop);
  freehost(h);
  return 1;
}

/* The tasks have ended (or the grace is over): close everything. */
static void finalclose (ah_host *h) {
  ah_cfuture *c;
  post *p;
  uv_mutex_lock(&h->mutex);
  p = h->phead;
  h->phead = h->ptail = NULL;
  uv_mutex_unlock(&h->mutex);
  while (p) { post *n = p->next; free(p); p = n; }  /* never ran */
  for (c = h->futures; c != NULL; c = c->next) {  /* the embedder's now */
    c->h = NULL;
    c->ref = LUA_NOREF;
  }
  h->futures = NULL;
  if (h->S->nlive > 0) {
    ah_pushtaskdump(h->L, "asynchost: tasks still pending when the host "
                    "closed");
    fprintf(stderr, "%s\n", lua_tostring(h->L, -1));
    lua_pop(h->L, 1);
  }
  h->memlimit = 0;  /* __gc metamethods may allocate: no limit now */
  lua_close(h->L);  /* the scheduler closes its handles */
  h->L = NULL;
  while (h->watches) {  /* of tasks abandoned: they never end */
    watch *wt = h->watches;
    h->watches = wt->next;
    free(wt);
  }
  h->nclosing = 2;
  uv_close((uv_handle_t *)&h->async, onhandleclosed);
  uv_close((uv_handle_t *)&h->closetimer, onhandleclosed);
}

static void onclosetimer (uv_timer_t *t) {
  ah_host *h = (ah_host *)t->data;
  /* at its first run the cancelled tasks have not run yet: give them that
  ** one turn to clean up, even with no grace */
  if (h->S->nlive == 0 ||
      (uv_now(h->loop) >= h->closedeadline && h->closeturns++ > 0)) {
    uv_timer_stop(t);
    finalclose(h);
  }
}

int ah_host_close (ah_host *h, unsigned grace_ms, void (*cb) (void *ud),
                   void *ud) {
  ah_cfuture *c, *next;
  uv_mutex_lock(&h->mutex);
  if (h->closing) {
    uv_mutex_unlock(&h->mutex);
    return fail(h, AH_ECLOSED, "ah_host_close: already closing");
  }
  h->closing = 1;
  uv_mutex_unlock(&h->mutex);
  h->closecb = cb;
  h->closeud = ud;
  refasync(h);
  for (c = h->futures; c != NULL; c = next) {  /* stop the C operations */
    next = c->next;
    lua_rawgeti(h->L, LUA_REGISTRYINDEX, c->ref);
    ah_cancelfuture(h->L, h->S, lua_gettop(h->L), "host closing");
    lua_pop(h->L, 1);
  }
  if (h->S->nlive > 0 && h->ownloop && h->depth == 0)
    ah_settle(h->S);  /* let tasks that are ending end */
  if (h->S->nlive > 0)
    ah_cancelall(h->L, h->S, "the host closed");
  uv_update_time(h->loop);
  h->closedeadline = uv_now(h->loop) + grace_ms;
  uv_timer_start(&h->closetimer, onclosetimer, 0, 1);
  if (h->ownloop && h->depth == 0) {  /* finish now, on our own loop */
    uv_loop_t *loop = h->loop;
    while (h->L != NULL)
      uv_run(loop, UV_RUN_ONCE);
    uv_run(loop, UV_RUN_DEFAULT);  /* the close callbacks */
    uv_loop_close(loop);
    free(loop);
    freehost(h);
  }
  return AH_OK;
}

/* }====================================================== */

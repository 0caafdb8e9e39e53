/*
** asynchost.core.fs, watchers: fs.watcher() and its add, remove, poll and
** close, on uv_fs_event handles feeding one queue of events.
** lua/asynchost/fs.lua builds watch() on them (debounce, recursion).
*/
#include <stdlib.h>
#include <string.h>
#include "asynchost.h"

#define WATCHER_MT  "asynchost.fs.Watcher"

#define QMAX    65536             /* watcher: most events kept unread */

#define getsched(L)  ((ah_sched *)lua_touserdata(L, lua_upvalueindex(1)))


/* {======================================================
** Watchers: uv_fs_event handles feeding one queue of events
** ======================================================= */

typedef struct watcher watcher;

typedef struct wnode {  /* one watched path */
  uv_fs_event_t h;
  watcher *w;          /* NULL once let go (closing) */
  int isdir;           /* events name entries of the directory */
  char path[1];        /* as given (allocated longer) */
} wnode;

typedef struct wevent {
  char *path;
  int rename;          /* UV_RENAME (else UV_CHANGE) */
} wevent;

struct watcher {
  ah_sched *S;
  wnode **nodes;
  int nnodes, capnodes;
  wevent *q;           /* ring of events not read yet */
  size_t qhead, qlen, qcap;
  ah_task *waiter;
  uv_timer_t *timer;   /* poll's timeout (malloc'ed), or NULL */
  int timedout;
  int closed;
  int err;             /* an error a handle reported, or 0 */
};

static void freehandle (uv_handle_t *h) {
  free(h);
}

static void wakewaiter (watcher *w) {
  if (w->waiter != NULL) {
    ah_task *t = w->waiter;
    w->waiter = NULL;
    ah_wake(t, AH_WAKE_OK);
  }
}

static void push (watcher *w, char *path, int rename) {
  wevent *e;
  if (w->qlen > 0) {  /* the same as the last one: once is enough */
    e = &w->q[(w->qhead + w->qlen - 1) % w->qcap];
    if (e->rename == rename && strcmp(e->path, path) == 0) {
      free(path);
      return;
    }
  }
  if (w->qlen == w->qcap) {
    size_t ncap = w->qcap ? w->qcap * 2 : 16, i;
    wevent *nq;
    if (w->qcap >= QMAX ||
        (nq = (wevent *)malloc(ncap * sizeof(wevent))) == NULL) {
      free(path);  /* nobody reads: drop it */
      return;
    }
    for (i = 0; i < w->qlen; i++) nq[i] = w->q[(w->qhead + i) % w->qcap];
    free(w->q);
    w->q = nq;
    w->qhead = 0;
    w->qcap = ncap;
  }
  e = &w->q[(w->qhead + w->qlen++) % w->qcap];
  e->path = path;
  e->rename = rename;
}

/* Is 'name' the last component of 'path'?  On Linux an event about the
** watched directory itself (deleted, moved, chmod'ed) comes with that name
** (libuv names it so); it is reported as the directory.  (An entry named as
** its directory is then mistaken for it.) */
static int isself (const char *path, size_t plen, const char *name) {
  size_t nlen = strlen(name);
  while (plen > 1 && path[plen - 1] == '/') plen--;
  return nlen > 0 && nlen <= plen &&
         memcmp(path + plen - nlen, name, nlen) == 0 &&
         (nlen == plen || path[plen - nlen - 1] == '/');
}

static void onevent (uv_fs_event_t *h, const char *name, int events,
                     int status) {
  wnode *n = (wnode *)h->data;
  watcher *w = n->w;
  size_t plen = strlen(n->path);
  char *path;
  if (w == NULL) return;
  if (status < 0) {
    if (w->err == 0) w->err = status;
    wakewaiter(w);
    return;
  }
  if (n->isdir && name != NULL && !isself(n->path, plen, name)) {
    /* "dir" + "/" + name */
    int slash = plen > 0 && n->path[plen - 1] != '/';
    if ((path = (char *)malloc(plen + slash + strlen(name) + 1)) == NULL)
      return;
    memcpy(path, n->path, plen);
    if (slash) path[plen] = '/';
    strcpy(path + plen + slash, name);
  }
  else if ((path = strdup(n->path)) == NULL)
    return;
  push(w, path, (events & UV_RENAME) != 0);
  wakewaiter(w);
}

static watcher *checkwatcher (lua_State *L, int i) {
  return (watcher *)luaL_checkudata(L, i, WATCHER_MT);
}

static void closenode (wnode *n) {
  n->w = NULL;
  uv_close((uv_handle_t *)&n->h, freehandle);
}

static void closewatcher (watcher *w) {
  int i;
  if (w->closed) return;
  w->closed = 1;
  for (i = 0; i < w->nnodes; i++) closenode(w->nodes[i]);
  free(w->nodes);
  w->nodes = NULL;
  w->nnodes = w->capnodes = 0;
  while (w->qlen > 0) {
    free(w->q[w->qhead].path);
    w->qhead = (w->qhead + 1) % w->qcap;
    w->qlen--;
  }
  free(w->q);
  w->q = NULL;
  w->qcap = 0;
  if (w->timer != NULL) {
    w->timer->data = NULL;
    uv_close((uv_handle_t *)w->timer, freehandle);
    w->timer = NULL;
  }
}

/* watcher() -> a watcher watching nothing yet (in fs.c's table of
** functions, whose upvalue is the scheduler) */
int ah_fs_watcher (lua_State *L) {
  watcher *w = (watcher *)lua_newuserdatauv(L, sizeof(watcher), 0);
  memset(w, 0, sizeof(*w));
  w->S = getsched(L);
  luaL_setmetatable(L, WATCHER_MT);
  return 1;
}

/* add(path, isdir): watches path (the directory's entries if isdir) */
static int w_add (lua_State *L) {
  watcher *w = checkwatcher(L, 1);
  const char *path = ah_fs_checkpath(L, 2);
  int isdir = lua_toboolean(L, 3), r;
  wnode *n;
  if (w->closed) return luaL_error(L, "attempt to use a closed watcher");
  if (w->nnodes == w->capnodes) {
    int ncap = w->capnodes ? w->capnodes * 2 : 4;
    wnode **nn = (wnode **)realloc(w->nodes, ncap * sizeof(wnode *));
    if (nn == NULL) return luaL_error(L, "not enough memory");
    w->nodes = nn;
    w->capnodes = ncap;
  }
  if ((n = (wnode *)malloc(sizeof(wnode) + strlen(path))) == NULL)
    return luaL_error(L, "not enough memory");
  strcpy(n->path, path);
  n->isdir = isdir;
  n->w = w;
  uv_fs_event_init(w->S->loop, &n->h);
  n->h.data = n;
  /* inotify_add_watch: no I/O, the loop does not wait */
  if ((r = uv_fs_event_start(&n->h, onevent, path, 0)) < 0) {
    closenode(n);
    return ah_fs_raiseerror(L, r, path, NULL);
  }
  w->nodes[w->nnodes++] = n;
  return 0;
}

/* remove(path): stops watching path and what is under it; -> count */
static int w_remove (lua_State *L) {
  watcher *w = checkwatcher(L, 1);
  size_t len;
  const char *path = luaL_checklstring(L, 2, &len);
  int i, j = 0, n = 0;
  for (i = 0; i < w->nnodes; i++) {
    wnode *x = w->nodes[i];
    if (strncmp(x->path, path, len) == 0 &&
        (x->path[len] == '\0' || x->path[len] == '/')) {
      closenode(x);
      n++;
    }
    else w->nodes[j++] = x;
  }
  w->nnodes = j;
  lua_pushinteger(L, n);
  return 1;
}

static void ontimeout (uv_timer_t *tm) {
  watcher *w = (watcher *)tm->data;
  if (w == NULL) return;
  w->timedout = 1;
  wakewaiter(w);
}

static void unpoll (ah_sched *S, ah_task *t) {
  watcher *w = (watcher *)t->waitobj;
  (void)S;
  if (w->waiter == t) w->waiter = NULL;
  if (w->timer != NULL) uv_timer_stop(w->timer);
}

static int pollk (lua_State *L, int status, lua_KContext ctx);

static int pollstep (lua_State *L, watcher *w, int timedout) {
  lua_Number timeout = luaL_optnumber(L, 2, -1);
  ah_task *t;
  if (w->qlen > 0) {
    wevent *e = &w->q[w->qhead];
    lua_pushstring(L, e->path);
    lua_pushstring(L, e->rename ? "rename" : "change");
    free(e->path);
    w->qhead = (w->qhead + 1) % w->qcap;
    w->qlen--;
    return 2;
  }
  if (w->err != 0) {
    int err = w->err;
    w->err = 0;
    return ah_fs_raiseerror(L, err, w->nnodes ? w->nodes[0]->path : "?", NULL);
  }
  if (w->closed || timedout || timeout == 0) return 0;
  if (w->waiter != NULL)
    return luaL_error(L, "another task is already waiting on this watcher");
  t = ah_current(w->S, L, "next");
  if (!ah_wait(t, unpoll, w, "a file watcher")) {
    w->waiter = t;
    if (timeout > 0) {
      if (w->timer == NULL) {
        if ((w->timer = (uv_timer_t *)malloc(sizeof(uv_timer_t))) == NULL) {
          ah_abortwait(w->S, t);
          return luaL_error(L, "not enough memory");
        }
        uv_timer_init(w->S->loop, w->timer);
        w->timer->data = w;
      }
      w->timedout = 0;
      uv_update_time(w->S->loop);
      uv_timer_start(w->timer, ontimeout,
                     (uint64_t)(timeout > 1e9 ? 1e12 : timeout * 1000 + 0.999),
                     0);
    }
  }
  return ah_suspend(L, pollk, 0);
}

static int pollk (lua_State *L, int status, lua_KContext ctx) {
  watcher *w = (watcher *)lua_touserdata(L, 1);
  int timedout = w->timedout;
  (void)status; (void)ctx;
  w->timedout = 0;
  if (w->timer != NULL) uv_timer_stop(w->timer);
  ah_checkwake(L, w->S->current);
  return pollstep(L, w, timedout);
}

/* poll([timeout]) -> path, "change"|"rename"; nothing when closed or
** after timeout seconds without an event */
static int w_poll (lua_State *L) {
  watcher *w = checkwatcher(L, 1);
  if (!lua_isnoneornil(L, 2))
    luaL_argcheck(L, luaL_checknumber(L, 2) >= 0, 2,
                  "non-negative number expected");
  lua_settop(L, 2);
  return pollstep(L, w, 0);
}

static int w_close (lua_State *L) {
  watcher *w = checkwatcher(L, 1);
  closewatcher(w);
  wakewaiter(w);  /* it reads nothing: the end */
  return 0;
}

static int w_gc (lua_State *L) {
  watcher *w = checkwatcher(L, 1);
  w->waiter = NULL;
  closewatcher(w);
  return 0;
}

/* }====================================================== */


static const luaL_Reg watchermeth[] = {
  {"add", w_add},
  {"remove", w_remove},
  {"poll", w_poll},
  {"close", w_close},
  {NULL, NULL}
};

static const luaL_Reg watchermetameth[] = {
  {"__gc", w_gc},
  {NULL, NULL}
};

/* Makes the class of watchers (for luaopen_asynchost_core_fs). */
void ah_fs_watcherclass (lua_State *L, ah_sched *S) {
  ah_newclass(L, S, -1, WATCHER_MT, watchermeth, watchermetameth);
}

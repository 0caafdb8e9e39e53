/*
** asynchost.core.signal -- async.signal and async.wait_signal: POSIX
** signals on uv_signal, handlers run as tasks.
**
** A watcher owns a malloc'ed uv_signal_t (freed by its close callback).
** One installed by signal(name, handler) keeps itself alive (a registry
** ref) until closed, as asyncio's add_signal_handler does, but is unref'd:
** it never keeps the loop running by itself.  wait_signal(name) makes a
** watcher for the one wait, ref'd (a signal can end that wait), closed
** when the wait ends.  While any watcher of SIGINT is open, Ctrl-C is
** its: the scheduler's default (cancel the main task) stands aside.
*/
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include "asynchost.h"

#define SIGNAL_MT  "asynchost.Signal"

typedef struct watcher {
  uv_signal_t *h;      /* NULL once closed */
  ah_sched *S;
  int signum;
  int fnref;           /* the handler, or LUA_NOREF */
  int selfref;         /* while a handler is installed */
  ah_task *waiter;     /* wait_signal's task, or NULL */
} watcher;

#define getsched(L)  ((ah_sched *)lua_touserdata(L, lua_upvalueindex(1)))


/* {======================================================
** Signal names
** ======================================================= */

static const struct { const char *name; int num; } signames[] = {
  {"SIGHUP", SIGHUP}, {"SIGINT", SIGINT}, {"SIGQUIT", SIGQUIT},
  {"SIGILL", SIGILL}, {"SIGTRAP", SIGTRAP}, {"SIGABRT", SIGABRT},
  {"SIGBUS", SIGBUS}, {"SIGFPE", SIGFPE}, {"SIGKILL", SIGKILL},
  {"SIGUSR1", SIGUSR1}, {"SIGSEGV", SIGSEGV}, {"SIGUSR2", SIGUSR2},
  {"SIGPIPE", SIGPIPE}, {"SIGALRM", SIGALRM}, {"SIGTERM", SIGTERM},
  {"SIGCHLD", SIGCHLD}, {"SIGCONT", SIGCONT}, {"SIGSTOP", SIGSTOP},
  {"SIGTSTP", SIGTSTP}, {"SIGTTIN", SIGTTIN}, {"SIGTTOU", SIGTTOU},
  {"SIGURG", SIGURG}, {"SIGXCPU", SIGXCPU}, {"SIGXFSZ", SIGXFSZ},
  {"SIGVTALRM", SIGVTALRM}, {"SIGPROF", SIGPROF}, {"SIGSYS", SIGSYS},
#ifdef SIGWINCH
  {"SIGWINCH", SIGWINCH},
#endif
#ifdef SIGIO
  {"SIGIO", SIGIO},
#endif
#ifdef SIGPWR
  {"SIGPWR", SIGPWR},
#endif
#ifdef SIGSTKFLT
  {"SIGSTKFLT", SIGSTKFLT},
#endif
  {NULL, 0}
};

#define MAXSIG  64  /* Linux's real-time signals end there */

const char *ah_signame (int signum) {
  int i;
  for (i = 0; signames[i].name != NULL; i++)
    if (signames[i].num == signum) return signames[i].name;
  return NULL;
}

/* Pushes the name of 'signum' ("SIGTERM"), or its number if unnamed. */
static void pushsigname (lua_State *L, int signum) {
  const char *name = ah_signame(signum);
  if (name != NULL) lua_pushstring(L, name);
  else lua_pushinteger(L, signum);
}

/* The number of signal 's' ("SIGTERM", "TERM", any case), or 0. */
static int findsig (const char *s, size_t len) {
  char up[16];
  size_t k;
  int i;
  if (len >= sizeof(up)) return 0;
  for (k = 0; k <= len; k++)  /* with the '\0' */
    up[k] = (s[k] >= 'a' && s[k] <= 'z') ? (char)(s[k] - 'a' + 'A') : s[k];
  for (i = 0; signames[i].name != NULL; i++)
    if (strcmp(up, signames[i].name) == 0 ||
        strcmp(up, signames[i].name + 3) == 0)
      return signames[i].num;
  return 0;
}

/* The signal at 'i': a name (see findsig) or a number. */
int ah_checksignum (lua_State *L, int i) {
  const char *s;
  size_t len;
  int n;
  if (lua_type(L, i) == LUA_TNUMBER) {
    lua_Integer v;
    if (!lua_isinteger(L, i))
      luaL_argerror(L, i, "signal number must be an integer");
    v = lua_tointeger(L, i);
    luaL_argcheck(L, v >= 1 && v <= MAXSIG, i, "signal number out of range");
    return (int)v;
  }
  if (lua_type(L, i) != LUA_TSTRING)
    return luaL_typeerror(L, i, "signal name or number");
  s = lua_tolstring(L, i, &len);
  if ((n = findsig(s, len)) == 0)
    luaL_argerror(L, i, lua_pushfstring(L, "unknown signal '%s'", s));
  return n;
}

/* signum(x) -> the number of signal x (a name or a number), or nil */
static int l_signum (lua_State *L) {
  int n = 0;
  if (lua_type(L, 1) == LUA_TSTRING) {
    size_t len;
    const char *s = lua_tolstring(L, 1, &len);
    n = findsig(s, len);
  }
  else if (lua_isinteger(L, 1)) {
    lua_Integer v = lua_tointeger(L, 1);
    if (v >= 1 && v <= MAXSIG) n = (int)v;
  }
  if (n == 0) return 0;
  lua_pushinteger(L, n);
  return 1;
}

/* signame(n) -> "SIGTERM", or nil */
static int l_signame (lua_State *L) {
  const char *name = ah_signame((int)luaL_checkinteger(L, 1));
  if (name == NULL) return 0;
  lua_pushstring(L, name);
  return 1;
}

/* }====================================================== */


/* {======================================================
** Watchers
** ======================================================= */

static void freehandle (uv_handle_t *h) {
  free(h);
}

static void closewatcher (watcher *w) {
  lua_State *L = w->S->L;
  if (w->h == NULL) return;
  w->h->data = NULL;
  uv_close((uv_handle_t *)w->h, freehandle);
  w->h = NULL;
  if (w->signum == SIGINT) w->S->sigintusers--;
  if (w->fnref != LUA_NOREF) w->S->sighandlers--;
  luaL_unref(L, LUA_REGISTRYINDEX, w->fnref);
  w->fnref = LUA_NOREF;
  luaL_unref(L, LUA_REGISTRYINDEX, w->selfref);
  w->selfref = LUA_NOREF;
}

static void onsignal (uv_signal_t *h, int signum) {
  watcher *w = (watcher *)h->data;
  lua_State *L;
  int top;
  if (w == NULL) return;
  if (w->waiter != NULL) {
    ah_task *t = w->waiter;
    w->waiter = NULL;
    ah_wake(t, AH_WAKE_OK);
  }
  if (w->fnref == LUA_NOREF) return;
  L = w->S->L;
  top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, w->fnref);
  pushsigname(L, signum);
  ah_spawn(w->S, L, top + 1, 1);  /* handler(name), a task per delivery */
  lua_settop(L, top);
}

/* Pushes a new watcher of 'signum', started.  Raises on failure. */
static watcher *newwatcher (lua_State *L, ah_sched *S, int signum,
                            int arg) {
  watcher *w;
  uv_signal_t *h;
  int r;
  if (signum == SIGKILL || signum == SIGSTOP)
    luaL_argerror(L, arg, lua_pushfstring(L, "%s cannot be caught",
                                          ah_signame(signum)));
  w = (watcher *)lua_newuserdatauv(L, sizeof(watcher), 0);
  memset(w, 0, sizeof(*w));
  w->S = S;
  w->signum = signum;
  w->fnref = w->selfref = LUA_NOREF;
  luaL_setmetatable(L, SIGNAL_MT);
  if ((h = (uv_signal_t *)malloc(sizeof(uv_signal_t))) == NULL)
    luaL_error(L, "not enough memory");
  uv_signal_init(S->loop, h);
  h->data = w;
  w->h = h;
  if (signum == SIGINT) S->sigintusers++;
  if ((r = uv_signal_start(h, onsignal, signum)) < 0) {
    closewatcher(w);
    lua_pushfstring(L, "%s: %s: cannot watch signal %d", uv_err_name(r),
                    uv_strerror(r), signum);
    ah_pusherror(L, "OSError", lua_tostring(L, -1));
    lua_pushstring(L, uv_err_name(r));
    lua_setfield(L, -2, "code");
    lua_error(L);
  }
  return w;
}

static watcher *checkwatcher (lua_State *L, int i) {
  return (watcher *)luaL_checkudata(L, i, SIGNAL_MT);
}

/* signal(name, handler) -> handle: handler(name) runs as a new task at
** each delivery, until handle:close(). */
static int l_signal (lua_State *L) {
  int signum = ah_checksignum(L, 1);
  watcher *w;
  luaL_checktype(L, 2, LUA_TFUNCTION);
  w = newwatcher(L, getsched(L), signum, 1);
  uv_unref((uv_handle_t *)w->h);  /* as asyncio: not a reason to live */
  lua_pushvalue(L, 2);
  w->fnref = luaL_ref(L, LUA_REGISTRYINDEX);
  w->S->sighandlers++;
  lua_pushvalue(L, -1);
  w->selfref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

static void unwaitsignal (ah_sched *S, ah_task *t) {
  watcher *w = (watcher *)t->waitobj;
  (void)S;
  w->waiter = NULL;
  closewatcher(w);
}

static int waitk (lua_State *L, int status, lua_KContext ctx) {
  watcher *w = (watcher *)lua_touserdata(L, 2);
  (void)status; (void)ctx;
  closewatcher(w);
  ah_checkwake(L, getsched(L)->current);
  pushsigname(L, w->signum);
  return 1;
}

/* wait_signal(name) -> name: waits for one delivery. */
static int l_waitsignal (lua_State *L) {
  ah_sched *S = getsched(L);
  int signum = ah_checksignum(L, 1);
  ah_task *t = ah_current(S, L, "wait_signal");
  watcher *w;
  lua_settop(L, 1);
  w = newwatcher(L, S, signum, 1);  /* at 2: lives as long as the wait */
  if (!ah_wait(t, unwaitsignal, w, "a signal")) w->waiter = t;
  return ah_suspend(L, waitk, 0);
}

static int w_close (lua_State *L) {
  closewatcher(checkwatcher(L, 1));
  return 0;
}

static int w_gc (lua_State *L) {
  watcher *w = checkwatcher(L, 1);
  if (w->h != NULL) {  /* at lua_close: the loop is still there */
    w->h->data = NULL;
    uv_close((uv_handle_t *)w->h, freehandle);
    w->h = NULL;
    if (w->signum == SIGINT) w->S->sigintusers--;
    if (w->fnref != LUA_NOREF) w->S->sighandlers--;
  }
  return 0;
}

static int w_tostring (lua_State *L) {
  watcher *w = checkwatcher(L, 1);
  const char *name = ah_signame(w->signum);
  if (name != NULL)
    lua_pushfstring(L, "Signal handler of %s (%s)", name,
                    w->h ? "installed" : "closed");
  else
    lua_pushfstring(L, "Signal handler of signal %d (%s)", w->signum,
                    w->h ? "installed" : "closed");
  return 1;
}

/* }====================================================== */


static const luaL_Reg meth[] = {
  {"close", w_close},
  {NULL, NULL}
};

static const luaL_Reg metameth[] = {
  {"__close", w_close},
  {"__gc", w_gc},
  {"__tostring", w_tostring},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"signal", l_signal},
  {"wait_signal", l_waitsignal},
  {"signum", l_signum},
  {"signame", l_signame},
  {NULL, NULL}
};

int luaopen_asynchost_core_signal (lua_State *L) {
  ah_sched *S = ah_sched_get(L);
  ah_newclass(L, S, -1, SIGNAL_MT, meth, metameth);
  lua_newtable(L);
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, funcs, 1);
  return 1;
}

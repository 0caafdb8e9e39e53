/*
** asynchost.core.process -- child processes on uv_spawn; their pipes are
** the streams of asynchost.core.net (on uv_pipe_t).
**
** A Process userdata owns a malloc'ed uv_process_t.  While the child runs
** the userdata keeps itself alive (a registry ref), so the exit callback
** always finds it and libuv reaps the child even if Lua dropped every
** reference; the callback closes the handle, once, and wakes the tasks
** in wait().  Its user values hold the stdin, stdout and stderr streams
** and the command's name.  run(), the timeout and <close> are Lua
** (lua/asynchost/process.lua).
*/
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "asynchost.h"

#define PROC_MT  "asynchost.Process"

typedef struct proc {
  uv_process_t *h;    /* NULL once closed */
  ah_sched *S;
  int pid;
  int exited;
  int termsig;        /* the signal that ended it, or 0 */
  int64_t status;     /* its exit status */
  int selfref;        /* while it runs */
  ah_wlist waiters;   /* tasks in wait() */
} proc;

enum { UVAL_STDIN = 1, UVAL_STDOUT, UVAL_STDERR, UVAL_CMD };  /* user values */

#define getsched(L)  ((ah_sched *)lua_touserdata(L, lua_upvalueindex(1)))

static proc *checkproc (lua_State *L, int i) {
  return (proc *)luaL_checkudata(L, i, PROC_MT);
}

static void freehandle (uv_handle_t *h) {
  free(h);
}


/* {======================================================
** Spawning
** ======================================================= */

/* Pushes the environment for the child: the strings "NAME=value" of the
** table at 'env' (false values left out), after those of our own
** environment not named in it if 'inherit'.  Pushes the anchor of the
** strings and the array; returns the array. */
static char **buildenv (lua_State *L, int env, int inherit) {
  extern char **environ;
  char **envp;
  int n = 0, i;
  lua_newtable(L);  /* anchors the strings */
  if (inherit) {
    char **e;
    for (e = environ; *e != NULL; e++) {
      const char *eq = strchr(*e, '=');
      if (eq == NULL) continue;
      lua_pushlstring(L, *e, (size_t)(eq - *e));
      if (lua_rawget(L, env) == LUA_TNIL) {
        lua_pushstring(L, *e);
        lua_rawseti(L, -3, ++n);
      }
      lua_pop(L, 1);
    }
  }
  lua_pushnil(L);
  while (lua_next(L, env)) {
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L, "environment variable names must be strings");
    if (lua_toboolean(L, -1)) {
      const char *v = lua_tostring(L, -1);
      if (v == NULL)
        luaL_error(L, "value of environment variable '%s' must be a string",
                   lua_tostring(L, -2));
      lua_pushfstring(L, "%s=%s", lua_tostring(L, -2), v);
      lua_rawseti(L, -4, ++n);
    }
    lua_pop(L, 1);
  }
  envp = (char **)lua_newuserdatauv(L, (size_t)(n + 1) * sizeof(char *), 0);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -2, i);
    envp[i - 1] = (char *)lua_tostring(L, -1);
    lua_pop(L, 1);  /* the anchor keeps it */
  }
  envp[n] = NULL;
  return envp;
}

/* Sets up the child's descriptor 'fd' from field 'name' of the options at
** 3: "pipe" (pushes a stream; returns 1), "inherit" (the default), "null",
** or a descriptor of ours to hand over.  Returns 0 if it pushed nothing. */
static int setstdio (lua_State *L, ah_sched *S, uv_stdio_container_t *c,
                     int fd, const char *name) {
  const char *mode;
  lua_getfield(L, 3, name);
  if (lua_isinteger(L, -1)) {
    lua_Integer d = lua_tointeger(L, -1);
    if (d < 0 || d > 0x7fffffff)
      luaL_error(L, "%s: invalid file descriptor", name);
    c->flags = UV_INHERIT_FD;
    c->data.fd = (int)d;
  }
  else {
    mode = luaL_optstring(L, -1, "inherit");
    if (strcmp(mode, "inherit") == 0) {
      c->flags = UV_INHERIT_FD;
      c->data.fd = fd;
    }
    else if (strcmp(mode, "null") == 0)
      c->flags = UV_IGNORE;  /* libuv opens /dev/null for 0, 1 and 2 */
    else if (strcmp(mode, "pipe") == 0) {
      c->flags = (uv_stdio_flags)(UV_CREATE_PIPE |
                                  (fd == 0 ? UV_READABLE_PIPE
                                           : UV_WRITABLE_PIPE));
      lua_pop(L, 1);
      c->data.stream = ah_pushpipestream(L, S);
      return 1;
    }
    else
      luaL_error(L, "%s: invalid mode '%s'", name, mode);
  }
  lua_pop(L, 1);
  return 0;
}

static void onexit (uv_process_t *h, int64_t status, int termsig) {
  proc *p = (proc *)h->data;
  ah_waiter *w;
  if (p == NULL) return;
  p->exited = 1;
  p->status = status;
  p->termsig = termsig;
  h->data = NULL;
  uv_close((uv_handle_t *)h, freehandle);
  p->h = NULL;
  while ((w = p->waiters.head) != NULL) {
    ah_delwaiter(&p->waiters, w);
    ah_wake(ah_taskofwaiter(w), AH_WAKE_OK);
  }
  luaL_unref(p->S->L, LUA_REGISTRYINDEX, p->selfref);
  p->selfref = LUA_NOREF;
}

/* Closes the stream at 'i' (with its own close method). */
static void closestream (lua_State *L, int i) {
  lua_getfield(L, i, "close");
  lua_pushvalue(L, i);
  lua_call(L, 1, 0);
}

/* What spawning failed on: 'cwd' when it is not a directory we can enter,
** else the program. */
static const char *culprit (ah_sched *S, const char *file, const char *cwd,
                            int *err) {
  uv_fs_t req;
  int r;
  if (cwd == NULL) return file;
  r = uv_fs_stat(S->loop, &req, cwd, NULL);
  if (r == 0 && !S_ISDIR(req.statbuf.st_mode)) r = UV_ENOTDIR;
  uv_fs_req_cleanup(&req);
  if (r < 0) { *err = r; return cwd; }
  return file;
}

/* spawn(file, args, opts) -> process.  args: array of strings (argv[1]
** on); opts: cwd, env (name -> value), inherit_env, stdin, stdout,
** stderr (see setstdio). */
static int l_spawn (lua_State *L) {
  ah_sched *S = getsched(L);
  const char *file = luaL_checkstring(L, 1);
  const char *cwd;
  uv_process_options_t o;
  uv_stdio_container_t stdio[3];
  int pipeat[3];  /* stack index of each pipe's stream, or 0 */
  char **argv;
  proc *p;
  int n, i, r, pi;
  static const char *const names[] = {"stdin", "stdout", "stderr"};
  memset(&o, 0, sizeof(o));
  memset(stdio, 0, sizeof(stdio));
  lua_settop(L, 3);
  if (!lua_isnil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  if (lua_isnil(L, 3)) { lua_newtable(L); lua_replace(L, 3); }
  luaL_checktype(L, 3, LUA_TTABLE);
  n = lua_isnil(L, 2) ? 0 : (int)lua_rawlen(L, 2);
  argv = (char **)lua_newuserdatauv(L, (size_t)(n + 2) * sizeof(char *), 0);
  argv[0] = (char *)file;
  for (i = 1; i <= n; i++) {
    if (lua_rawgeti(L, 2, i) != LUA_TSTRING)
      return luaL_argerror(L, 2, "array of strings expected");
    argv[i] = (char *)lua_tostring(L, -1);
    lua_pop(L, 1);  /* the table keeps it */
  }
  argv[n + 1] = NULL;
  lua_getfield(L, 3, "cwd");  /* 5 */
  cwd = lua_isnil(L, 5) ? NULL : luaL_checkstring(L, 5);
  if (lua_getfield(L, 3, "env") == LUA_TTABLE) {  /* 6 */
    lua_getfield(L, 3, "inherit_env");
    i = lua_toboolean(L, -1);
    lua_pop(L, 1);
    o.env = buildenv(L, 6, i);  /* 7, 8 */
  }
  for (i = 0; i < 3; i++)
    pipeat[i] = setstdio(L, S, &stdio[i], i, names[i]) ? lua_gettop(L) : 0;
  p = (proc *)lua_newuserdatauv(L, sizeof(proc), 4);
  pi = lua_gettop(L);
  memset(p, 0, sizeof(*p));
  p->S = S;
  p->selfref = LUA_NOREF;
  luaL_setmetatable(L, PROC_MT);
  if ((p->h = (uv_process_t *)malloc(sizeof(uv_process_t))) == NULL)
    return luaL_error(L, "not enough memory");
  p->h->data = p;
  o.exit_cb = onexit;
  o.file = file;
  o.args = argv;
  o.cwd = cwd;
  o.stdio_count = 3;
  o.stdio = stdio;
  if ((r = uv_spawn(S->loop, p->h, &o)) < 0) {
    const char *what;
    uv_close((uv_handle_t *)p->h, freehandle);  /* initialized all the same */
    p->h = NULL;
    for (i = 0; i < 3; i++)
      if (pipeat[i]) closestream(L, pipeat[i]);
    what = culprit(S, file, cwd, &r);
    ah_pushoserror(L, r, what, NULL);
    lua_pushstring(L, file);
    lua_setfield(L, -2, "cmd");
    return lua_error(L);
  }
  p->pid = p->h->pid;
  for (i = 0; i < 3; i++) {
    if (pipeat[i]) lua_pushvalue(L, pipeat[i]); else lua_pushnil(L);
    lua_setiuservalue(L, pi, UVAL_STDIN + i);
  }
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, pi, UVAL_CMD);
  lua_pushvalue(L, pi);
  p->selfref = luaL_ref(L, LUA_REGISTRYINDEX);  /* until it exits */
  return 1;
}

/* }====================================================== */


/* {======================================================
** Processes
** ======================================================= */

/* Pushes code, signal: the exit status and nil, or -signum and the
** signal's name when a signal ended it. */
static int pushstatus (lua_State *L, proc *p) {
  if (p->termsig != 0) {
    const char *name = ah_signame(p->termsig);
    lua_pushinteger(L, -p->termsig);
    if (name) lua_pushstring(L, name); else lua_pushinteger(L, p->termsig);
  }
  else {
    lua_pushinteger(L, (lua_Integer)p->status);
    lua_pushnil(L);
  }
  return 2;
}

static void unwaitproc (ah_sched *S, ah_task *t) {
  (void)S;
  ah_delwaiter(&((proc *)t->waitobj)->waiters, &t->w);
}

static int waitk (lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  ah_checkwake(L, getsched(L)->current);
  return pushstatus(L, (proc *)lua_touserdata(L, 1));
}

/* wait() -> code, signal: waits for the child's exit. */
static int p_wait (lua_State *L) {
  proc *p = checkproc(L, 1);
  ah_task *t;
  lua_settop(L, 1);
  if (p->exited) return pushstatus(L, p);
  t = ah_current(getsched(L), L, "wait");
  if (p->h == NULL)  /* collected at lua_close: it can never exit */
    return luaL_error(L, "attempt to wait for a closed process");
  if (!ah_wait(t, unwaitproc, p, "a process")) {
    t->w.fn = NULL;
    ah_addwaiter(&p->waiters, &t->w);
  }
  return ah_suspend(L, waitk, 0);
}

/* kill([sig = "SIGTERM"]): sends sig; nothing once the child has exited */
static int p_kill (lua_State *L) {
  proc *p = checkproc(L, 1);
  int signum = lua_isnoneornil(L, 2) ? SIGTERM : ah_checksignum(L, 2);
  int r;
  if (p->h == NULL) return 0;
  if ((r = uv_process_kill(p->h, signum)) < 0 && r != UV_ESRCH) {
    lua_pushfstring(L, "process %d", p->pid);
    ah_pushoserror(L, r, lua_tostring(L, -1), NULL);
    return lua_error(L);
  }
  return 0;
}

static const char *const fields[] = {"stdin", "stdout", "stderr", "cmd",
                                     "pid", "returncode", NULL};

/* __index: the fields, then the methods (upvalue 2) */
static int p_index (lua_State *L) {
  proc *p = checkproc(L, 1);
  int k;
  if (lua_type(L, 2) == LUA_TSTRING) {
    const char *key = lua_tostring(L, 2);
    for (k = 0; fields[k] != NULL; k++)
      if (strcmp(key, fields[k]) == 0) break;
    switch (k) {
      case 0: case 1: case 2: case 3:
        lua_getiuservalue(L, 1, UVAL_STDIN + k);
        return 1;
      case 4:
        lua_pushinteger(L, p->pid);
        return 1;
      case 5:
        if (!p->exited) return 0;
        pushstatus(L, p);
        lua_pop(L, 1);
        return 1;
    }
  }
  lua_pushvalue(L, 2);
  lua_gettable(L, lua_upvalueindex(2));
  return 1;
}

static int p_gc (lua_State *L) {
  proc *p = (proc *)lua_touserdata(L, 1);
  if (p->h != NULL) {  /* at lua_close, still running: let it be */
    p->h->data = NULL;
    uv_close((uv_handle_t *)p->h, freehandle);
    p->h = NULL;
  }
  return 0;
}

static int p_tostring (lua_State *L) {
  proc *p = checkproc(L, 1);
  lua_getiuservalue(L, 1, UVAL_CMD);
  if (!p->exited)
    lua_pushfstring(L, "Process %d (%s, running)", p->pid,
                    lua_tostring(L, -1));
  else if (p->termsig != 0) {
    const char *name = ah_signame(p->termsig);
    lua_pushfstring(L, "Process %d (%s, killed by %s)", p->pid,
                    lua_tostring(L, -1), name ? name : "a signal");
  }
  else
    lua_pushfstring(L, "Process %d (%s, exited with code %d)", p->pid,
                    lua_tostring(L, -1), (int)p->status);
  return 1;
}

/* getpid() -> our own process id */
static int l_getpid (lua_State *L) {
  lua_pushinteger(L, (lua_Integer)uv_os_getpid());
  return 1;
}

/* }====================================================== */


static const luaL_Reg meth[] = {
  {"wait", p_wait},
  {"kill", p_kill},
  {NULL, NULL}
};

static const luaL_Reg metameth[] = {
  {"__gc", p_gc},
  {"__tostring", p_tostring},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"spawn", l_spawn},
  {"getpid", l_getpid},
  {NULL, NULL}
};

int luaopen_asynchost_core_process (lua_State *L) {
  ah_sched *S = ah_sched_get(L);
  ah_newclass(L, S, -1, PROC_MT, meth, metameth);
  luaL_getmetatable(L, PROC_MT);
  lua_newtable(L);  /* stack: metatable, module */
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, funcs, 1);
  lua_getfield(L, -2, "__index");
  lua_setfield(L, -2, "methods");  /* process.lua adds its own */
  lua_pushlightuserdata(L, S);
  lua_getfield(L, -3, "__index");
  lua_pushcclosure(L, p_index, 2);
  lua_setfield(L, -3, "__index");
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "Process");  /* process.lua adds __close */
  lua_remove(L, -2);
  return 1;
}

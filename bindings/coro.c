/*
** asynchost.core.coroutine: the coroutine library and pcall/xpcall as seen
** from tasks.
**
** An await inside a coroutine the user made (coroutine.wrap inside a task,
** a generator that sleeps) yields AH_YIELDMARK.  Our resume sees it and
** yields it on, up to the task, which the scheduler suspends; when the
** task is woken, resume resumes the user coroutine in turn.  Meanwhile the
** user coroutine is "passing": its status reads "normal" and it cannot be
** resumed by anybody else.
**
** pcall and xpcall behave as Lua's, and also note when they catch the
** CancelledError of the running task: its next await raises it again
** (see docs/cancellation.md), so a swallowed cancellation cannot make a
** timeout or a task group wait forever.
*/
#include "lualib.h"
#include "asynchost.h"

#define PASSING_KEY  "asynchost.passing"

static ah_task *taskof (lua_State *co) {
  return *(ah_task **)lua_getextraspace(co);
}

static void setpassing (lua_State *L, int coidx, int on) {
  coidx = lua_absindex(L, coidx);
  lua_getfield(L, LUA_REGISTRYINDEX, PASSING_KEY);
  lua_pushvalue(L, coidx);
  if (on) lua_pushboolean(L, 1); else lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

static int ispassing (lua_State *L, int coidx) {
  int r;
  coidx = lua_absindex(L, coidx);
  lua_getfield(L, LUA_REGISTRYINDEX, PASSING_KEY);
  lua_pushvalue(L, coidx);
  r = lua_rawget(L, -2) != LUA_TNIL;
  lua_pop(L, 2);
  return r;
}

/* The running task caught its own cancellation (error at top): note it. */
static void notecatch (lua_State *L) {
  ah_sched *S = ah_sched_get(L);
  ah_task *t = S->current;
  if (t != NULL && t->ncancel > 0 && ah_iscancellederror(L, -1))
    t->swallowed = 1;
}


/* {======================================================
** resume and wrap
** ======================================================= */

static lua_State *getco (lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  luaL_argexpected(L, co, 1, "coroutine");
  return co;
}

/* Why 'co' cannot be resumed by the user, or NULL. */
static const char *cannotresume (lua_State *L, lua_State *co, int coidx) {
  if (taskof(co) != NULL)
    return "cannot resume a task's coroutine (tasks are resumed by "
           "the scheduler)";
  if (ispassing(L, coidx))
    return "cannot resume non-suspended coroutine";
  switch (lua_status(co)) {
    case LUA_YIELD: return NULL;
    case LUA_OK:
      if (L == co) return "cannot resume non-suspended coroutine";
      {
        lua_Debug ar;
        if (lua_getstack(co, 0, &ar))
          return "cannot resume non-suspended coroutine";
        if (lua_gettop(co) == 0)
          return "cannot resume dead coroutine";
      }
      return NULL;
    default:
      return "cannot resume dead coroutine";
  }
}

static int resumek (lua_State *L, int status, lua_KContext ctx);

/* Resumes the coroutine at 'coidx' with the 'narg' values on top.
** Returns the number of results pushed, or -1 with the error on top; or
** yields on, for a runtime await ('wrap' tells what to continue with). */
static int auxresume (lua_State *L, int coidx, int narg, int wrap) {
  lua_State *co = lua_tothread(L, coidx);
  int status, nres;
  const char *why = cannotresume(L, co, coidx);
  if (why != NULL) {
    lua_pop(L, narg);
    lua_pushstring(L, why);
    return -1;
  }
  if (!lua_checkstack(co, narg)) {
    lua_pop(L, narg);
    lua_pushliteral(L, "too many arguments to resume");
    return -1;
  }
  lua_xmove(L, co, narg);
  status = lua_resume(co, L, narg, &nres);
  while (status == LUA_YIELD && nres == 1 &&
         lua_touserdata(co, -1) == AH_YIELDMARK) {  /* an await */
    lua_pop(co, 1);
    if (lua_isyieldable(L)) {  /* pass it on, up to the task */
      setpassing(L, coidx, 1);
      lua_pushlightuserdata(L, AH_YIELDMARK);
      return lua_yieldk(L, 1, wrap, resumek);  /* does not return */
    }
    else {  /* we cannot suspend: the await fails inside 'co' */
      ah_sched *S = ah_sched_get(L);
      ah_task *t = S->current;
      ah_abortwait(S, t);
      lua_pushliteral(L, "attempt to await across a C-call boundary (a "
                      "coroutine awaited while resumed from a metamethod, a "
                      "table.sort comparator or another C function)");
      ah_setextra(L, t, "wakeerror");
      t->wake = AH_WAKE_ERROR;
      status = lua_resume(co, L, 0, &nres);
    }
  }
  if (status == LUA_OK || status == LUA_YIELD) {
    if (!lua_checkstack(L, nres + 1)) {
      lua_pop(co, nres);
      lua_pushliteral(L, "too many results to resume");
      return -1;
    }
    lua_xmove(co, L, nres);
    return nres;
  }
  lua_xmove(co, L, 1);  /* the error */
  return -1;
}

static int finishresume (lua_State *L, int r) {
  if (r < 0) {
    notecatch(L);
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
  }
  lua_pushboolean(L, 1);
  lua_insert(L, -(r + 1));
  return r + 1;
}

static int finishwrap (lua_State *L, int r) {
  if (r < 0) {
    lua_State *co = lua_tothread(L, lua_upvalueindex(1));
    int stat = lua_status(co);
    if (stat != LUA_OK && stat != LUA_YIELD) {  /* it died of an error */
      lua_resetthread(co);  /* close its to-be-closed variables */
      if (lua_type(L, -1) == LUA_TSTRING) {  /* add where, as Lua does */
        luaL_where(L, 1);
        lua_insert(L, -2);
        lua_concat(L, 2);
      }
    }
    return lua_error(L);
  }
  return r;
}

/* Continues a resume or a wrapped call after the task was woken. */
static int resumek (lua_State *L, int status, lua_KContext wrap) {
  int coidx = wrap ? lua_upvalueindex(1) : 1;
  int narg = lua_gettop(L) - (wrap ? 0 : 1);
  int r;
  (void)status;
  setpassing(L, coidx, 0);
  r = auxresume(L, coidx, narg, (int)wrap);
  return wrap ? finishwrap(L, r) : finishresume(L, r);
}

static int l_resume (lua_State *L) {
  getco(L);
  return finishresume(L, auxresume(L, 1, lua_gettop(L) - 1, 0));
}

static int auxwrap (lua_State *L) {
  return finishwrap(L, auxresume(L, lua_upvalueindex(1), lua_gettop(L), 1));
}

static int l_wrap (lua_State *L) {
  lua_State *co;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  co = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushcclosure(L, auxwrap, 1);
  return 1;
}

/* }====================================================== */


/* {======================================================
** The rest of the library, honest about tasks
** ======================================================= */

static int l_yield (lua_State *L) {
  if (taskof(L) != NULL)  /* a task's own coroutine: like the main chunk */
    return luaL_error(L, "attempt to yield from outside a coroutine");
  return lua_yield(L, lua_gettop(L));
}

static int l_isyieldable (lua_State *L) {
  lua_State *co = lua_isnone(L, 1) ? L : getco(L);
  lua_pushboolean(L, taskof(co) == NULL && lua_isyieldable(co));
  return 1;
}

static int l_status (lua_State *L) {
  lua_State *co = getco(L);
  if (L != co && ispassing(L, 1)) {
    lua_pushliteral(L, "normal");
    return 1;
  }
  lua_getfield(L, lua_upvalueindex(1), "status");  /* Lua's own */
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  return 1;
}

static int l_close (lua_State *L) {
  lua_State *co = getco(L);
  if (taskof(co) != NULL)
    return luaL_error(L, "cannot close a task's coroutine "
                         "(use task:cancel())");
  if (ispassing(L, 1))
    return luaL_error(L, "cannot close a normal coroutine");
  lua_getfield(L, lua_upvalueindex(1), "close");
  lua_pushvalue(L, 1);
  lua_call(L, 1, LUA_MULTRET);
  return lua_gettop(L) - 1;
}

/* }====================================================== */


/* {======================================================
** pcall and xpcall
** ======================================================= */

static int finishpcall (lua_State *L, int status, lua_KContext extra) {
  if (status != LUA_OK && status != LUA_YIELD) {
    notecatch(L);
    lua_pushboolean(L, 0);
    lua_pushvalue(L, -2);
    return 2;
  }
  return lua_gettop(L) - (int)extra;
}

static int l_pcall (lua_State *L) {
  int status;
  luaL_checkany(L, 1);
  lua_pushboolean(L, 1);  /* first result if no errors */
  lua_insert(L, 1);
  status = lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, 0, finishpcall);
  return finishpcall(L, status, 0);
}

/* Lua's own pcall (for the library's scopes, which handle cancellations
** themselves) */
static int finishraw (lua_State *L, int status, lua_KContext extra) {
  (void)extra;
  if (status != LUA_OK && status != LUA_YIELD) {
    lua_pushboolean(L, 0);
    lua_pushvalue(L, -2);
    return 2;
  }
  return lua_gettop(L);
}

static int l_rawpcall (lua_State *L) {
  int status;
  luaL_checkany(L, 1);
  lua_pushboolean(L, 1);
  lua_insert(L, 1);
  status = lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, 0, finishraw);
  return finishraw(L, status, 0);
}

/* error(message [, level]): Lua's, except that re-raising the running
** task's CancelledError withdraws the note that it was caught (so that
** the cleanup it unwinds through may await). */
static int l_error (lua_State *L) {
  int level = (int)luaL_optinteger(L, 2, 1);
  lua_settop(L, 1);
  if (lua_type(L, 1) == LUA_TSTRING && level > 0) {
    luaL_where(L, level);
    lua_pushvalue(L, 1);
    lua_concat(L, 2);
  }
  else if (lua_type(L, 1) == LUA_TTABLE) {
    ah_task *t = ah_sched_get(L)->current;
    if (t != NULL && t->swallowed && ah_iscancellederror(L, 1))
      t->swallowed = 0;
  }
  return lua_error(L);
}

static int l_xpcall (lua_State *L) {
  int status, n = lua_gettop(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_pushboolean(L, 1);  /* first result */
  lua_pushvalue(L, 1);    /* function */
  lua_rotate(L, 3, 2);    /* move them below the arguments */
  status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, finishpcall);
  return finishpcall(L, status, 2);
}

/* }====================================================== */


static const luaL_Reg cofuncs[] = {
  {"resume", l_resume},
  {"wrap", l_wrap},
  {"yield", l_yield},
  {"isyieldable", l_isyieldable},
  {"status", l_status},
  {"close", l_close},
  {NULL, NULL}
};

/* Returns {coroutine = {resume, wrap, yield, isyieldable, status, close},
** pcall, xpcall, error, rawpcall}; 'install()' puts them in place of the
** standard ones (the other coroutine functions stay Lua's own). */
static int l_install (lua_State *L) {
  lua_getglobal(L, "coroutine");
  if (lua_istable(L, -1)) {
    lua_getfield(L, lua_upvalueindex(1), "coroutine");
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_settable(L, -5);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lua_getfield(L, lua_upvalueindex(1), "pcall");
  lua_setglobal(L, "pcall");
  lua_getfield(L, lua_upvalueindex(1), "xpcall");
  lua_setglobal(L, "xpcall");
  lua_getfield(L, lua_upvalueindex(1), "error");
  lua_setglobal(L, "error");
  return 0;
}

int luaopen_asynchost_core_coroutine (lua_State *L) {
  lua_newtable(L);  /* weak-keyed set of passing coroutines */
  lua_newtable(L);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, PASSING_KEY);
  lua_newtable(L);  /* the module */
  lua_newtable(L);
  lua_pushcfunction(L, luaopen_coroutine);  /* a fresh copy of Lua's own */
  lua_call(L, 0, 1);
  luaL_setfuncs(L, cofuncs, 1);
  lua_setfield(L, -2, "coroutine");
  lua_pushcfunction(L, l_pcall);
  lua_setfield(L, -2, "pcall");
  lua_pushcfunction(L, l_xpcall);
  lua_setfield(L, -2, "xpcall");
  lua_pushcfunction(L, l_rawpcall);
  lua_setfield(L, -2, "rawpcall");
  lua_pushcfunction(L, l_error);
  lua_setfield(L, -2, "error");
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, l_install, 1);
  lua_setfield(L, -2, "install");
  return 1;
}

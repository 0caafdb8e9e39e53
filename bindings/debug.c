/*
** Debug mode of asynchost.core.trace (ASYNCHOST_DEBUG, 'asynchost
** --debug'): steps and callbacks that hold the loop past the threshold
** (a count hook notes where), task results that nobody retrieved,
** resources collected while still open (and the tracked objects --top
** lists), and more on each task for the task dumps.
**
** trace.c makes the ah_trace and runs the scheduler's hooks, calling in
** here for the debug parts; the other callers, like trace.c's, call only
** behind 'if (S->trace)'.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "asynchost.h"

#define TRACKED_KEY  "asynchost.tracked"  /* registry: obj -> {kind...} */


/* {======================================================
** Slow steps and results nobody retrieved
** ======================================================= */

/* debug: a count hook on the tasks' coroutines (and the coroutines they
** make) notes where the step is once it runs past the threshold */
void ah_trace_sampler (lua_State *L, lua_Debug *ar) {
  ah_task *t = *(ah_task **)lua_getextraspace(L);
  ah_sched *S = t ? t->S : ah_sched_get(L);
  ah_trace *T = S->trace;
  uint64_t now;
  (void)ar;
  if (T == NULL || T->steptask == NULL || T->sample != NULL) return;
  now = uv_hrtime();
  if (now - T->stepstart <= T->slow) return;
  luaL_traceback(L, L, NULL, 0);
  luaL_gsub(L, lua_tostring(L, -1), "\n", "\n    ");
  T->sample = ah_trace_dupstr(lua_tostring(L, -1));
  T->sampleat = ah_trace_ms(now - T->stepstart);
  lua_pop(L, 2);
}

/* Says that a step of 't' held the loop for 'd' ns. */
void ah_trace_reportslow (ah_trace *T, ah_task *t, uint64_t d, int status) {
  lua_State *L = T->S->L;
  ah_pushtask(L, t);
  ah_pushname(L, -1);
  ah_pushspawnsite(L, -2);
  fprintf(stderr, "asynchost: debug: task '%s' (spawned at %s) held the "
          "loop for %.1f ms (threshold %.0f ms)\n", lua_tostring(L, -2),
          lua_tostring(L, -1), ah_trace_ms(d), ah_trace_ms(T->slow));
  lua_pop(L, 3);
  if (T->sample != NULL)
    fprintf(stderr, "  where it was %.1f ms into the step:\n    %s\n",
            T->sampleat, T->sample);
  if (status == LUA_YIELD) {
    luaL_traceback(L, t->co, NULL, 0);
    luaL_gsub(L, lua_tostring(L, -1), "\n", "\n    ");
    fprintf(stderr, "  where the step ended (the await that gave the loop "
            "back):\n    %s\n", lua_tostring(L, -1));
    lua_pop(L, 2);
  }
  else
    fputs("  (the task ended in that step)\n", stderr);
  fflush(stderr);
}

/* Debug mode on, with the threshold from ASYNCHOST_SLOW if set. */
void ah_trace_setdebug (ah_trace *T) {
  const char *slow = getenv("ASYNCHOST_SLOW");
  T->flags |= AH_TRACE_DEBUG;
  if (slow != NULL && *slow != '\0') {
    char *end;
    double s = strtod(slow, &end);
    if (*end == '\0' && s >= 0 && s < 1e6)
      T->slow = (uint64_t)(s * 1e9);
    else
      fprintf(stderr, "asynchost: ASYNCHOST_SLOW=%s is not a number of "
              "seconds: the threshold stays %.0f ms\n", slow,
              ah_trace_ms(T->slow));
  }
}

/* A task is collected: in debug mode, say so if it returned something
** that nobody looked at (nobody awaited it). */
void ah_trace_taskgc (lua_State *L, ah_sched *S, int i) {
  ah_task *t = (ah_task *)lua_touserdata(L, i);
  int nil;
  if (!(S->trace->flags & AH_TRACE_DEBUG) || t->f.state != AH_DONE ||
      t->f.observed)
    return;
  ah_pushfirstresult(L, i);
  nil = lua_isnil(L, -1);
  lua_pop(L, 1);
  if (nil) return;
  t->f.observed = 1;
  ah_pushname(L, i);
  ah_pushspawnsite(L, i);
  fprintf(stderr, "asynchost: debug: task '%s' (spawned at %s) returned a "
          "result that nobody retrieved (it was never awaited)\n",
          lua_tostring(L, -2), lua_tostring(L, -1));
  fflush(stderr);
  lua_pop(L, 2);
}

/* }====================================================== */


/* {======================================================
** Tracked objects: resources (debug mode) and queues (--top)
** ======================================================= */

/* Was the object being made made by asynchost's own Lua library for its
** own use (the shared session of http.get)?  Then the caller of the
** binding's Lua wrapper is library code too. */
static int libmade (lua_State *L) {
  lua_Debug ar;
  int level, nlua = 0;
  for (level = 0; lua_getstack(L, level, &ar); level++) {
    lua_getinfo(L, "S", &ar);
    if (strcmp(ar.what, "C") == 0) continue;
    if (++nlua == 2)
      return ah_islibrary(ar.source);
  }
  return 0;
}

/* Pushes the table of tracked objects (weak keys). */
void ah_trace_pushtracked (lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, TRACKED_KEY) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, TRACKED_KEY);
}

void ah_trace_track (lua_State *L, ah_sched *S, int i, const char *kind,
                     int resource) {
  int f = S->trace->flags;
  lua_Debug ar;
  int level;
  i = lua_absindex(L, i);
  if (resource ? !(f & AH_TRACE_DEBUG) || libmade(L) : !(f & AH_TRACE_TOP))
    return;
  ah_trace_pushtracked(L);
  lua_pushvalue(L, i);
  lua_createtable(L, 0, 3);
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "kind");
  for (level = 1; lua_getstack(L, level, &ar); level++) {  /* first Lua */
    lua_getinfo(L, "Sl", &ar);
    if (ar.currentline > 0) {
      lua_pushfstring(L, "%s:%d", ar.short_src, ar.currentline);
      lua_setfield(L, -2, "site");
      break;
    }
  }
  if (resource) {
    luaL_traceback(L, L, NULL, 1);
    lua_setfield(L, -2, "traceback");
  }
  lua_settable(L, -3);
  lua_pop(L, 1);
}

/* The object at 'i' is collected while still open. */
void ah_trace_unclosed (lua_State *L, ah_sched *S, int i) {
  int top = lua_gettop(L);
  (void)S;
  i = lua_absindex(L, i);
  ah_trace_pushtracked(L);
  lua_pushvalue(L, i);
  if (lua_gettable(L, -2) == LUA_TTABLE &&
      lua_getfield(L, -1, "traceback") == LUA_TSTRING) {
    lua_getfield(L, -2, "kind");
    luaL_gsub(L, lua_tostring(L, -2), "\n", "\n    ");
    fprintf(stderr, "asynchost: debug: %s never closed (still open when "
            "collected or at exit); made here:\n    %s\n",
            lua_tostring(L, -2), lua_tostring(L, -1));
    fflush(stderr);
    lua_pop(L, 3);
    lua_pushvalue(L, i);  /* reported once */
    lua_pushnil(L);
    lua_settable(L, -4);
  }
  lua_settop(L, top);
}

/* }====================================================== */


/* {======================================================
** Dumps
** ======================================================= */

void ah_trace_pushdumpinfo (lua_State *L, ah_task *t) {
  ah_sched *S = t->S;
  double age = (double)(uv_now(S->loop) - t->born) / 1e3;
  const char *name = NULL;
  char buf[300];
  if (t->f.state == AH_PENDING && t->waitwhat != NULL && t->waitref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->waitref);
    if (ah_tofuture(S, L, -1) != NULL && ((ah_future *)lua_touserdata(L, -1))->istask) {
      ah_pushname(L, -1);
      lua_remove(L, -2);
      name = lua_tostring(L, -1);
    }
    else lua_pop(L, 1);
  }
  if (name != NULL) {  /* the awaited task's name, below */
    snprintf(buf, sizeof(buf), " '%.200s'; age %.2f s", name, age);
    lua_pop(L, 1);
  }
  else if (t->f.state == AH_PENDING && t->waitwhat && t->heapidx >= 0) {
    uint64_t now = uv_hrtime();
    double left = t->deadline > now ? (double)(t->deadline - now) / 1e9 : 0;
    snprintf(buf, sizeof(buf), " (%.3f s left); age %.2f s", left, age);
  }
  else
    snprintf(buf, sizeof(buf), "; age %.2f s", age);
  lua_pushstring(L, buf);
}

/* }====================================================== */

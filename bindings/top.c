/*
** The live dashboard of 'asynchost --top', part of asynchost.core.trace:
** its timer and Ctrl-C handler, the terminal, the drawing (the lines come
** from the Lua module asynchost.top) and its figures (also
** core.trace.stats()).  trace.c owns the ah_trace and starts and stops
** the dashboard.
*/
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include "asynchost.h"

#define TOPMS        500      /* dashboard refresh, ms */


/* {======================================================
** The live dashboard (--top): a timer draws on stderr, a tty, in the
** alternate screen; the top rows are the dashboard, the rest scrolls the
** script's own output
** ======================================================= */

static void termsize (ah_trace *T) {
  struct winsize w;
  if (ioctl(2, TIOCGWINSZ, &w) == 0 && w.ws_row > 0 && w.ws_col > 0) {
    T->rows = w.ws_row;
    T->cols = w.ws_col;
  }
  else {
    T->rows = 24;
    T->cols = 80;
  }
}

/* Sets the scroll region below the dashboard (moves the cursor). */
static void setregion (ah_trace *T) {
  T->drows = T->rows >= 16 ? (T->rows * 2 / 3 < 30 ? T->rows * 2 / 3 : 30)
                           : T->rows;
  if (T->drows < T->rows)
    fprintf(stderr, "\033[%d;%dr\033[%d;1H", T->drows + 1, T->rows,
            T->drows + 1);
}

/* Pushes the figures of the dashboard (also core.trace.stats()). */
void ah_top_pushstats (lua_State *L, ah_trace *T, int maxtasks) {
  ah_sched *S = T->S;
  int k, running = 0, ready = 0, waiting = 0, ntasks = 0;
  uint64_t nowms = uv_now(S->loop);
  lua_createtable(L, 0, 24);
  lua_pushnumber(L, (lua_Number)(uv_hrtime() - S->t0) / 1e9);
  lua_setfield(L, -2, "elapsed");
  lua_newtable(L);  /* waits: kind -> tasks waiting now */
  lua_newtable(L);  /* tasks: a few, for the list */
  lua_rawgeti(L, LUA_REGISTRYINDEX, S->liveref);
  for (k = 1; k <= S->nlive; k++) {
    ah_task *t;
    lua_rawgeti(L, -1, k);
    t = (ah_task *)lua_touserdata(L, -1);
    if (t->f.state != AH_PENDING) {  /* ending (its hook runs) */
      lua_pop(L, 1);
      continue;
    }
    if (t == S->current) running++;
    else if (t->waitwhat != NULL && !t->queued) {
      waiting++;
      lua_getfield(L, -4, t->waitwhat);
      lua_pushinteger(L, lua_tointeger(L, -1) + 1);
      lua_setfield(L, -6, t->waitwhat);
      lua_pop(L, 1);
    }
    else ready++;
    if (ntasks < maxtasks) {
      lua_createtable(L, 0, 3);
      ah_pushname(L, -2);
      lua_setfield(L, -2, "name");
      ah_pushwait(L, t);
      lua_setfield(L, -2, "state");
      lua_pushnumber(L, (lua_Number)(nowms - t->born) / 1e3);
      lua_setfield(L, -2, "age");
      lua_rawseti(L, -4, ++ntasks);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lua_setfield(L, -3, "tasks");
  lua_setfield(L, -2, "waits");
  lua_createtable(L, 0, T->nwaits);  /* completed waits by kind */
  for (k = 0; k < T->nwaits; k++) {
    lua_pushinteger(L, T->waits[k].n);
    lua_setfield(L, -2, T->waits[k].what);
  }
  lua_setfield(L, -2, "completed");
#define SETINT(name, v)  (lua_pushinteger(L, (v)), lua_setfield(L, -2, name))
  SETINT("live", running + ready + waiting);
  SETINT("running", running);
  SETINT("ready", ready);
  SETINT("waiting", waiting);
  SETINT("spawned", T->spawned);
  SETINT("steps", T->steps);
  SETINT("done", T->ended[AH_DONE]);
  SETINT("failed", T->ended[AH_FAILED]);
  SETINT("cancelled", T->ended[AH_CANCELLED]);
  SETINT("rows", T->drows);
  SETINT("cols", T->cols);
#undef SETINT
  lua_pushnumber(L, ah_trace_ms(T->lag));
  lua_setfield(L, -2, "lag");
  lua_pushnumber(L, ah_trace_ms(T->maxlag));
  lua_setfield(L, -2, "maxlag");
  ah_trace_pushtracked(L);
  lua_setfield(L, -2, "tracked");
}

/* Renders the dashboard with asynchost.top: a table of lines on top, or
** nil (and the dashboard stops) on an error. */
static int render (ah_trace *T, int final) {
  lua_State *L = T->S->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, T->renderref);
  ah_top_pushstats(L, T, T->drows);
  lua_pushboolean(L, final);
  lua_setfield(L, -2, "final");
  if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_istable(L, -1)) {
    fprintf(stderr, "asynchost: the --top dashboard failed: %s\n",
            lua_isstring(L, -1) ? lua_tostring(L, -1) : "no lines");
    lua_pop(L, 1);
    return 0;
  }
  return 1;
}

/* Keeps the lines on top (popped) as plain text for the exit. */
static void keepframe (ah_trace *T, lua_State *L) {
  luaL_Buffer b;
  int k, n = (int)lua_rawlen(L, -1), lines = lua_gettop(L);
  luaL_buffinit(L, &b);
  for (k = 1; k <= n; k++) {
    lua_rawgeti(L, lines, k);
    luaL_addvalue(&b);
    luaL_addchar(&b, '\n');
  }
  luaL_pushresult(&b);
  free(T->lastframe);
  T->lastframe = ah_trace_dupstr(lua_tostring(L, -1));
  lua_pop(L, 2);
}

static void drawtop (ah_trace *T) {
  lua_State *L = T->S->L;
  int top = lua_gettop(L), k, n, rows = T->rows, cols = T->cols;
  luaL_Buffer b;
  termsize(T);
  if (T->rows != rows || T->cols != cols) setregion(T);
  if (!render(T, 0)) {
    lua_settop(L, top);
    ah_top_stop(T, 0);
    return;
  }
  n = (int)lua_rawlen(L, -1);
  luaL_buffinit(L, &b);
  luaL_addstring(&b, "\0337");  /* save the cursor (the script's output) */
  for (k = 1; k <= T->drows; k++) {
    lua_pushfstring(L, "\033[%d;1H", k);
    luaL_addvalue(&b);
    if (k <= n) {
      lua_rawgeti(L, top + 1, k);
      luaL_addvalue(&b);
    }
    luaL_addstring(&b, "\033[K");
  }
  luaL_addstring(&b, "\0338");
  luaL_pushresult(&b);
  fwrite(lua_tostring(L, -1), 1, lua_rawlen(L, -1), stderr);
  fflush(stderr);
  lua_pop(L, 1);
  keepframe(T, L);
  lua_settop(L, top);
}

static void ontop (uv_timer_t *h) {
  ah_trace *T = (ah_trace *)h->data;
  uint64_t now = uv_hrtime();
  if (T->lastfire != 0) {  /* how late the timer fired: the loop's lag */
    uint64_t due = T->lastfire + (uint64_t)TOPMS * 1000000u;
    T->lag = now > due ? now - due : 0;
    if (T->lag > T->maxlag) T->maxlag = T->lag;
  }
  T->lastfire = now;
  drawtop(T);
}

static void ontopint (uv_signal_t *h, int signum) {
  ah_trace *T = (ah_trace *)h->data;
  (void)signum;
  if (T->S->sigintusers == 0 && T->topon)  /* Ctrl-C: the terminal back */
    ah_top_stop(T, 0);
}

#define RESTORE  "\033[r\033[?25h\033[?1049l"

/* Leaves the dashboard: the terminal as it was, then the last frame. */
void ah_top_stop (ah_trace *T, int uselua) {
  lua_State *L = T->S->L;
  if (!T->topon) return;
  T->topon = 0;
  if (T->timer) uv_timer_stop(T->timer);
  fputs(RESTORE, stderr);
  if (uselua && render(T, 1))
    keepframe(T, L);
  if (T->lastframe) {
    fputs(T->lastframe, stderr);
  }
  fflush(stderr);
}

int ah_top_start (lua_State *L, ah_trace *T) {
  ah_sched *S = T->S;
  if (T->topon || T->timer) return 1;
  if (!isatty(2)) {
    fputs("asynchost: --top needs a terminal on stderr: no dashboard\n",
          stderr);
    return 1;
  }
  lua_getglobal(L, "require");
  lua_pushliteral(L, "asynchost.top");
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) return 0;
  lua_getfield(L, -1, "render");
  lua_remove(L, -2);
  T->renderref = luaL_ref(L, LUA_REGISTRYINDEX);
  T->timer = (uv_timer_t *)malloc(sizeof(uv_timer_t));
  T->sigint = (uv_signal_t *)malloc(sizeof(uv_signal_t));
  if (T->timer == NULL || T->sigint == NULL) {
    free(T->timer); free(T->sigint);
    T->timer = NULL; T->sigint = NULL;
    lua_pushliteral(L, "not enough memory");
    return 0;
  }
  uv_timer_init(S->loop, T->timer);
  uv_signal_init(S->loop, T->sigint);
  T->timer->data = T->sigint->data = T;
  uv_timer_start(T->timer, ontop, TOPMS, TOPMS);
  uv_unref((uv_handle_t *)T->timer);
  uv_signal_start(T->sigint, ontopint, SIGINT);
  uv_unref((uv_handle_t *)T->sigint);
  T->flags |= AH_TRACE_TOP;
  T->topon = 1;
  termsize(T);
  fputs("\033[?1049h\033[H\033[2J\033[?25l", stderr);
  setregion(T);
  drawtop(T);
  T->lastfire = uv_hrtime();
  return 1;
}

/* }====================================================== */

/*
** embed_example: a program with a libuv loop of its own that hosts a Lua
** script with asynchost.
**
**   embed_example script.lua
**
** What an embedder does, in the order of this file:
**   1. runs its own loop, with its own handles (here a ticker);
**   2. gives Lua an asynchronous operation written in C (slow_double): a
**      future, finished later from a libuv callback, stopped if cancelled;
**   3. creates a host on its loop (the host adds handles to the loop but
**      never runs it), and starts the script as a task;
**   4. when the script is done, closes the host and its own handles, and
**      the loop ends by itself.
*/
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>
#include "lua.h"
#include "lauxlib.h"
#include "asynchost.h"

static uv_loop_t loop;      /* ours: the host borrows it */
static uv_timer_t ticker;   /* ours: prints a tick every 100 ms */
static uint64_t start;      /* uv_now at start, for the timestamps */
static int nticks;
static int scriptok;        /* the script returned without error */
static int hostclosed;      /* the close callback ran */

static unsigned long ms (void) {  /* milliseconds since start */
  return (unsigned long)(uv_now(&loop) - start);
}


/* {======================================================
** 1. The embedder's own handle
** ======================================================= */

static void ontick (uv_timer_t *t) {
  (void)t;
  printf("[C]   %4lu ms  tick %d\n", ms(), ++nticks);
}

/* }====================================================== */


/* {======================================================
** 2. An asynchronous operation in C: slow_double(x, ms)
**
** Returns a future that resolves to x * 2 after 'ms' milliseconds.  The
** operation is a uv_timer; the future is its link to the awaiting task.
** ======================================================= */

typedef struct doubling {
  uv_timer_t timer;     /* timer.data == this struct */
  ah_cfuture *f;
  lua_Integer x;
} doubling;

/* uv_close finishes later: free the struct only then */
static void freedoubling (uv_handle_t *hd) {
  free(hd->data);
}

/* The operation completed: resolve the future with its result. */
static void ondoubled (uv_timer_t *t) {
  doubling *d = (doubling *)t->data;
  /* values go on top of the host's state, then resolve pops them */
  lua_State *L = ah_host_state(ah_future_host(d->f));
  lua_pushinteger(L, d->x * 2);
  ah_future_resolve(d->f, 1);  /* also frees the future: don't touch it */
  uv_close((uv_handle_t *)t, freedoubling);
}

/* The task awaiting the future was cancelled (a timeout, task:cancel(),
** or the host closing): stop the operation and release the future. */
static void oncancel (ah_cfuture *f, void *ud) {
  doubling *d = (doubling *)ud;
  printf("[C]   %4lu ms  slow_double(%lld) cancelled\n", ms(),
         (long long)d->x);
  uv_timer_stop(&d->timer);
  ah_future_release(f);
  uv_close((uv_handle_t *)&d->timer, freedoubling);
}

static int slow_double (lua_State *L) {
  lua_Integer x = luaL_checkinteger(L, 1);
  lua_Integer delay = luaL_checkinteger(L, 2);
  doubling *d;
  luaL_argcheck(L, delay >= 0, 2, "non-negative number expected");
  d = (doubling *)malloc(sizeof(doubling));
  if (d == NULL)
    return luaL_error(L, "not enough memory");
  d->x = x;
  d->f = ah_future_new(L, oncancel, d);  /* pushes the future */
  if (d->f == NULL) {
    free(d);
    return luaL_error(L, "cannot create a future");
  }
  uv_timer_init(ah_host_loop(ah_host_of(L)), &d->timer);
  d->timer.data = d;
  uv_timer_start(&d->timer, ondoubled, (uint64_t)delay, 0);
  return 1;  /* the future: Lua awaits it */
}

/* }====================================================== */


/* {======================================================
** 3 and 4. The host: start the script, close when it is done
** ======================================================= */

static void onclosed (void *ud) {
  (void)ud;
  hostclosed = 1;
  printf("[C]   %4lu ms  host closed\n", ms());
}

/* The script's task ended: its results (or its error) are on top of L. */
static void ondone (ah_host *h, int status, lua_State *L, int nres,
                    void *ud) {
  (void)ud;
  if (status == AH_OK) {
    scriptok = 1;
    if (nres > 0 && lua_type(L, -nres) == LUA_TSTRING)
      printf("[C]   %4lu ms  script returned: %s\n", ms(),
             lua_tostring(L, -nres));
    else
      printf("[C]   %4lu ms  script returned %d values\n", ms(), nres);
  }
  else  /* the message, with its traceback */
    fprintf(stderr, "[C]   script failed: %s\n", lua_tostring(L, -1));
  /* Shut down: the host (its close completes on coming turns of our
  ** loop) and our own ticker.  Then nothing is left and uv_run returns. */
  ah_host_close(h, 1000, onclosed, NULL);
  uv_timer_stop(&ticker);
  uv_close((uv_handle_t *)&ticker, NULL);
}

int main (int argc, char **argv) {
  ah_host *h;
  lua_State *L;
  if (argc != 2) {
    fprintf(stderr, "usage: %s script.lua\n", argv[0]);
    return EXIT_FAILURE;
  }
  printf("[C]   asynchost %s\n", ah_version());
  uv_loop_init(&loop);
  start = uv_now(&loop);
  uv_timer_init(&loop, &ticker);
  uv_timer_start(&ticker, ontick, 100, 100);
  h = ah_host_new(&loop, 0);  /* borrows our loop */
  if (h == NULL) {
    fprintf(stderr, "cannot create the host\n");
    return EXIT_FAILURE;
  }
  L = ah_host_state(h);
  lua_pushcfunction(L, slow_double);  /* a global for the script */
  lua_setglobal(L, "slow_double");
  if (ah_host_start_file(h, argv[1], ondone, NULL) != AH_OK) {
    fprintf(stderr, "%s\n", ah_host_errmsg(h));  /* e.g. a syntax error */
    ah_host_close(h, 0, onclosed, NULL);
    uv_close((uv_handle_t *)&ticker, NULL);
  }
  uv_run(&loop, UV_RUN_DEFAULT);  /* until every handle is closed */
  if (uv_loop_close(&loop) != 0 || !hostclosed) {
    fprintf(stderr, "the loop did not close cleanly\n");
    return EXIT_FAILURE;
  }
  if (!scriptok) {
    printf("[C]   shut down (the script failed)\n");
    return EXIT_FAILURE;
  }
  printf("[C]   shut down cleanly\n");
  return EXIT_SUCCESS;
}

/* }====================================================== */

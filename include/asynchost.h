/*
** asynchost: host Lua scripts with async primitives on a libuv loop.
**
** A host is one Lua state whose tasks run on a libuv loop: the embedder's
** own loop (the host only adds handles to it and never runs it), or a loop
** of the host's own (then ah_host_run/ah_host_step/ah_host_call run it).
**
**   ah_host *h = ah_host_new(loop, 0);      // loop: yours, or NULL
**   ah_host_start_file(h, "script.lua", on_done, NULL);
**   ...                                      // your uv_run(loop, ...)
**   ah_host_close(h, on_closed, NULL);       // cancels, cleans up, frees
**
** The C side of an asynchronous operation is a future: a lua_CFunction
** creates it with ah_future_new (which pushes it, to be returned to Lua,
** where it is awaited like any other), and later resolves or rejects it
** from any of the embedder's callbacks on the loop thread.  From another
** thread, use ah_host_post to run a function on the loop thread first.
**
** Functions returning int return AH_OK (0) or a negative AH_E* code; the
** message of the last failure is ah_host_errmsg(h).  Nothing here calls
** exit() or abort().  All functions but ah_host_post must be called from
** the loop's thread.  asynchost owns LUA_EXTRASPACE of its states' threads.
** Loading its networking (async.net, async.http) sets SIGPIPE to ignored
** if it has the default disposition (a write to a departed peer is then an
** error, not the end of the process); a handler of yours is left alone.
*/
#ifndef ASYNCHOST_H
#define ASYNCHOST_H

#include <stddef.h>
#include <uv.h>
#include "lua.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ASYNCHOST_VERSION_MAJOR  0
#define ASYNCHOST_VERSION_MINOR  1
#define ASYNCHOST_VERSION_PATCH  0
#define ASYNCHOST_VERSION_NUM  (ASYNCHOST_VERSION_MAJOR * 10000 + \
                                ASYNCHOST_VERSION_MINOR * 100 + \
                                ASYNCHOST_VERSION_PATCH)

/* The version of the library linked at run time ("0.1.0", 100). */
const char *ah_version (void);
int ah_version_num (void);

/* result codes */
#define AH_OK       0
#define AH_ERROR   (-1)   /* a Lua error: see ah_host_errmsg */
#define AH_ENOMEM  (-2)
#define AH_EINVAL  (-3)   /* a bad argument or a call at the wrong time */
#define AH_ECLOSED (-4)   /* the host is closing or closed */

typedef struct ah_host ah_host;
typedef struct ah_cfuture ah_cfuture;

/* flags of ah_host_new */
#define AH_NOENV    1     /* ignore LUA_PATH/LUA_CPATH (like lua -E) and
                             ASYNCHOST_MEMORY_LIMIT */
#define AH_NOLIBS   2     /* open no standard library (asynchost's only) */


/* {======================================================
** Hosts
** ======================================================= */

/* Creates a host on 'loop' (NULL: a loop of its own), with the standard
** libraries and asynchost's modules open.  NULL when out of memory or
** when the loop cannot be created.  Unless AH_NOENV, the environment
** variable ASYNCHOST_MEMORY_LIMIT (bytes, or with K, M or G: "64M") sets
** the memory limit below; NULL (with a message on stderr) if it is not a
** size. */
ah_host *ah_host_new (uv_loop_t *loop, int flags);

lua_State *ah_host_state (ah_host *h);  /* its main thread */
uv_loop_t *ah_host_loop (ah_host *h);
void *ah_host_userdata (ah_host *h);
void ah_host_setuserdata (ah_host *h, void *ud);

/* The message of the last failure of a call on 'h' ("" if none). */
const char *ah_host_errmsg (ah_host *h);

/* The host of a Lua state made by ah_host_new (from a lua_CFunction). */
ah_host *ah_host_of (lua_State *L);

/* Number of tasks of the host that have not ended. */
int ah_host_pending (ah_host *h);

/* Limits the memory of the host's Lua state to 'bytes' (0: no limit).  An
** allocation of a running task that would go past the limit fails: the
** task gets Lua's memory error ("not enough memory"), which its awaiter
** may catch; the runtime's own work between tasks is never refused, so
** the host does not panic.  Memory malloc'ed by C code (libuv, libcurl,
** read buffers) is not counted.  AH_OK, or AH_ECLOSED. */
int ah_host_set_memory_limit (ah_host *h, size_t bytes);

/* Bytes the host's Lua state uses now. */
size_t ah_host_memory (ah_host *h);

/* Own loop only.  ah_host_run runs the loop until nothing is left to do;
** ah_host_step runs one turn (waiting for events if 'wait') and returns
** nonzero while there is more to do, or a negative AH_E* code. */
int ah_host_run (ah_host *h);
int ah_host_step (ah_host *h, int wait);

/* Own loop only: runs the function below 'nargs' arguments on the state's
** stack as a task and runs the loop until the task ends, like lua_pcall:
** AH_OK with 'nresults' results, or AH_ERROR with the message (with its
** traceback) on the stack.  A run that deadlocks ends with an error naming
** what every task waits on. */
int ah_host_call (ah_host *h, int nargs, int nresults);

/* }====================================================== */


/* {======================================================
** Scripts as tasks
** ======================================================= */

/* Called once when a started task ends: 'status' is AH_OK with the task's
** 'nres' results on top of L's stack, or AH_ERROR with one value on top:
** its error message with the traceback (the chain of awaiting tasks
** included).  The callback may use the values; the host pops them. */
typedef void (*ah_done_cb) (ah_host *h, int status, lua_State *L, int nres,
                            void *ud);

/* Load a file / a string / take the function below 'nargs' arguments on
** top of the state's stack, and start it as a task on the next loop turn.
** A syntax error is AH_ERROR (nothing started).  'cb' may be NULL. */
int ah_host_start_file (ah_host *h, const char *path, ah_done_cb cb,
                        void *ud);
int ah_host_start_string (ah_host *h, const char *code, const char *name,
                          ah_done_cb cb, void *ud);
int ah_host_start_function (ah_host *h, int nargs, ah_done_cb cb, void *ud);

/* }====================================================== */


/* {======================================================
** Futures: the embedder's asynchronous operations, awaited from Lua
** ======================================================= */

/* Called (once, on the loop thread) when the task awaiting the future is
** cancelled, or the future itself is; the operation should stop.  The
** future must still be finished with one of the calls below (the cancel
** callback itself may do it).  Until then it keeps the loop alive, as an
** unfinished libuv request would. */
typedef void (*ah_cancel_cb) (ah_cfuture *f, void *ud);

/* Creates a future and pushes it on L (to return it to Lua).  NULL (and
** nothing pushed) when out of memory.  'cancel' may be NULL. */
ah_cfuture *ah_future_new (lua_State *L, ah_cancel_cb cancel, void *ud);

/* Every future is finished exactly once by one of these, which also free
** the handle.  resolve takes the 'n' values on top of the host's state's
** stack (popped) as the results of the await; reject takes the error value
** on top (popped); reject_msg raises a plain message; release finishes
** nothing (a cancelled future, or one nobody awaits any more).  After a
** cancellation, resolve and reject only pop their values.  Return AH_OK or
** AH_EINVAL (NULL future). */
int ah_future_resolve (ah_cfuture *f, int n);
int ah_future_reject (ah_cfuture *f);
int ah_future_reject_msg (ah_cfuture *f, const char *msg);
int ah_future_release (ah_cfuture *f);

int ah_future_cancelled (ah_cfuture *f);  /* was the cancel callback run? */
ah_host *ah_future_host (ah_cfuture *f);

/* }====================================================== */


/* {======================================================
** Threads and shutting down
** ======================================================= */

/* From any thread: runs fn(h, ud) on the loop thread on a coming turn.
** AH_OK, AH_ENOMEM, or AH_ECLOSED once the host is closing (fn then never
** runs; the caller keeps 'ud'). */
int ah_host_post (ah_host *h, void (*fn) (ah_host *h, void *ud), void *ud);

/* Shuts the host down: cancels its tasks, lets them clean up (they may
** still await; every task gets at least one loop turn, and after
** 'grace_ms' those left are abandoned, reported, and get no done callback),
** closes its handles, closes the Lua state and frees the host, then calls
** cb(ud) (may be NULL).  With its own loop this happens before
** ah_host_close returns; with a borrowed loop it happens on the coming
** turns of the embedder's loop, whose other handles are untouched.  Safe
** to call from a done callback or a posted function. */
int ah_host_close (ah_host *h, unsigned grace_ms, void (*cb) (void *ud),
                   void *ud);

/* }====================================================== */

#ifdef __cplusplus
}
#endif

#endif

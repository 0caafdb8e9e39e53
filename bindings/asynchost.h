/*
** What the C files of asynchost share, and nothing else.
**
** The core model (see docs/design.md):
** - A future is pending until it is done (values), failed (an error value)
**   or cancelled.  Whoever waits on it hangs an ah_waiter on its list;
**   completion calls each waiter once, in FIFO order.
** - A task is a future driving one coroutine.  A suspended task has exactly
**   one wait, described by a hook that undoes it (stop the timer, unlink
**   the waiter...).  Completing the wait (ah_wake) or cancelling the task
**   ends it, once: the hook is cleared and the task goes to the ready queue.
** - The scheduler runs the ready queue from a uv_check handle, one batch per
**   loop turn: what becomes ready while a batch runs waits for the next turn.
*/
/*
** asynchost owns LUA_EXTRASPACE of the threads of its states: a task's
** coroutine keeps its ah_task there, every other thread NULL.
*/
#ifndef AH_INTERNAL_H
#define AH_INTERNAL_H

#include <stdint.h>
#include <uv.h>
#include "lua.h"
#include "lauxlib.h"

#ifndef AH_VERSION_STRING
#define AH_VERSION_STRING "0.1.0"
#endif

#define AH_TASK_MT    "asynchost.Task"
#define AH_FUTURE_MT  "asynchost.Future"
#define AH_SCHED_KEY  "asynchost.sched"

/* the metatables of asynchost's userdata (ah_sched.mt) */
enum { AH_MT_TASK, AH_MT_FUTURE, AH_MT_SEM, AH_MT_BSEM, AH_MT_LOCK,
       AH_MT_EVENT, AH_MT_QUEUE, AH_NMT };

typedef struct ah_sched ah_sched;
typedef struct ah_future ah_future;
typedef struct ah_task ah_task;
typedef struct ah_waiter ah_waiter;
typedef struct ah_trace ah_trace;

/* states of a future (and so of a task) */
enum { AH_PENDING, AH_DONE, AH_FAILED, AH_CANCELLED };

/* how a suspended task was woken */
enum { AH_WAKE_OK, AH_WAKE_CANCEL, AH_WAKE_ERROR };

/* Called once when the future it hangs on completes; 'f' is already done.
** Runs with the scheduler's main state on top; must not raise. */
typedef void (*ah_waitfn) (ah_sched *S, ah_waiter *w, ah_future *f);

struct ah_waiter {
  ah_waiter *prev, *next;  /* in the future's list */
  ah_waitfn fn;
};

typedef struct ah_wlist {  /* waiters, FIFO */
  ah_waiter *head, *tail;
} ah_wlist;

/* Undoes the wait of a suspended task that is being cancelled. */
typedef void (*ah_unwaitfn) (ah_sched *S, ah_task *t);

enum { AH_KIND_FUTURE, AH_KIND_TASK, AH_KIND_GATHER, AH_KIND_HOOKED };

/* First field of every asynchost userdata: Lua code cannot forge the
** bytes of a full userdata, so its size and this tag identify ours much
** faster than comparing metatables (on every put, get and await). */
#define AH_TAG_FUTURE  0x41486675u  /* "AHfu" */
#define AH_TAG_SYNC    0x41487379u  /* "AHsy" */
#define AH_TAG_QUEUE   0x41487175u  /* "AHqu" */
#define AH_TAG_NET     0x41486e74u  /* "AHnt" */
#define AH_TAG_HTTP    0x41486874u  /* "AHht" */
#define AH_TAG_CURL    0x41486375u  /* "AHcu" */

/* Is the value at 'i' one of our userdata of at least 'size' bytes whose
** tag is 'tag'?  Then returns it, else NULL. */
#define ah_totagged(L,i,tag,size)  ah_totagged_(L, i, tag, sizeof(size))
void *ah_totagged_ (lua_State *L, int i, unsigned int tag, size_t size);

struct ah_future {
  unsigned int tag;         /* AH_TAG_FUTURE */
  unsigned char istask;
  unsigned char kind;       /* AH_KIND_* */
  unsigned char state;      /* AH_PENDING ... */
  unsigned char retrieved;  /* its error was seen (awaited, exception()) */
  unsigned char hascb;      /* Lua done callbacks in the extras table */
  unsigned char observed;   /* awaited, gathered, result() or a callback */
  int nres;                 /* number of results, or 1 for the error */
  ah_wlist waiters;
};

/* a future whose cancellation calls back into C (the embedder's) */
typedef struct ah_hookedfuture {
  ah_future f;
  void (*oncancel) (void *p);
  void *p;
} ah_hookedfuture;

struct ah_task {
  ah_future f;
  lua_State *co;            /* its coroutine (user value 1 keeps it alive) */
  ah_sched *S;
  /* the current wait */
  ah_unwaitfn unwait;       /* NULL when not waiting */
  const char *waitwhat;     /* for dumps: "sleep", "a task"... */
  void *waitobj;            /* what the wait is on, for 'unwait' */
  ah_waiter w;              /* hangs on what it waits for */
  uint64_t deadline;        /* of a sleep, uv_hrtime() units */
  uint64_t born;            /* uv_now() at the spawn, for dumps */
  int waitref;              /* registry ref of the awaited future */
  int heapidx;              /* in the timer heap, or -1 */
  int liveidx;              /* in the live-task table, or 0 */
  int spawnline;            /* line of the spawn call */
  unsigned int seq;         /* spawn order; tie-break of equal deadlines */
  unsigned int gen;         /* bumped at every wait: wake-ups are single-use */
  unsigned short ncancel;   /* cancel requests in force (cancelling()) */
  unsigned char wake;       /* AH_WAKE_* of the last wake-up */
  unsigned char queued;     /* in the ready queue */
  unsigned char started;
  unsigned char mustcancel; /* raise CancelledError at the next await */
  unsigned char swallowed;  /* a CancelledError was caught by pcall */
  unsigned char outcome;    /* state its body ended with */
};

struct ah_sched {
  lua_State *L;             /* the main thread */
  uv_loop_t *loop;
  int ownloop;              /* we created 'loop' and must close it */
  uv_check_t check;         /* runs the ready queue */
  uv_idle_t idle;           /* active while tasks are ready: poll won't block */
  uv_timer_t timer;         /* the earliest deadline of the timer heap */
  uv_signal_t sigint;
  ah_task *current;         /* the running task */
  ah_task **ready;          /* ring buffer of ready tasks */
  size_t rhead, rcount, rcap;
  ah_task **heap;           /* min-heap on (deadline, seq) */
  int nheap, heapcap;
  unsigned int seq;
  int liveref;              /* registry ref of the live-task array */
  int nlive;                /* tasks not yet done */
  int cbref;                /* registry ref of the done-callback queue */
  int cbhead, cbtail;
  int closing;              /* handles being closed */
  int interrupted;          /* SIGINT count */
  int sigintusers;          /* async.signal watchers of SIGINT: while any
                            ** is open, Ctrl-C is theirs (signal.c) */
  int sighandlers;          /* async.signal handlers installed: while any
                            ** is, a stuck main task waits for a signal
                            ** rather than being reported as a deadlock */
  ah_task *main;            /* task run by ah_runtask, for SIGINT */
  uint64_t t0;              /* uv_hrtime() at creation: loop_time() origin */
  ah_trace *trace;          /* non-NULL: trace.c's hooks are on */
  const void *mt[AH_NMT];   /* our metatables, to know our userdata fast */
  int mtref[AH_NMT];        /* and their registry refs, to set them fast */
};

/* what an await yields, so that user coroutines pass it on */
#define AH_YIELDMARK  ((void *)&ah_yieldmark)
extern const char ah_yieldmark;

/* sched.c: the scheduler */
ah_sched *ah_sched_get (lua_State *L);
ah_sched *ah_sched_new (lua_State *L, uv_loop_t *loop);
void ah_sched_close (ah_sched *S);
void ah_closewalk (uv_handle_t *h, void *arg);
void ah_regmt (lua_State *L, ah_sched *S, int k);
void ah_newclass (lua_State *L, ah_sched *S, int k, const char *name,
                  const luaL_Reg *meth, const luaL_Reg *metameth);
void ah_setmt (lua_State *L, ah_sched *S, int k);
int ah_ismt (lua_State *L, ah_sched *S, int i, int k);
void ah_noidle (uv_idle_t *h);
void ah_ready (ah_sched *S, ah_task *t);
int ah_wait (ah_task *t, ah_unwaitfn unwait, void *obj, const char *what);
void ah_wake (ah_task *t, int how);
int ah_suspend (lua_State *L, lua_KFunction k, lua_KContext ctx);
void ah_checkwake (lua_State *L, ah_task *t);
int ah_cancelpending (ah_task *t);
ah_task *ah_current (ah_sched *S, lua_State *L, const char *fname);
void ah_abortwait (ah_sched *S, ah_task *t);
void ah_sleep (ah_task *t, double seconds);
int ah_runtask1 (lua_State *L, int nargs, int nresults, int raw);
int ah_runtask (lua_State *L, int nargs, int nresults);
void ah_shutdown (lua_State *L);
void ah_settle (ah_sched *S);

/* task.c: futures and tasks */
ah_future *ah_tofuture (ah_sched *S, lua_State *L, int i);  /* or NULL */
ah_task *ah_checktask (ah_sched *S, lua_State *L, int i);
ah_task *ah_spawn (ah_sched *S, lua_State *L, int base, int nargs);
void ah_step (ah_sched *S, ah_task *t);
int ah_cancel (ah_sched *S, ah_task *t, const char *msg);
int ah_cancelfuture (lua_State *L, ah_sched *S, int i, const char *msg);
void ah_cancelall (lua_State *L, ah_sched *S, const char *why);
void ah_unawait (ah_sched *S, ah_task *t);
void ah_addwaiter (ah_wlist *l, ah_waiter *w);
void ah_delwaiter (ah_wlist *l, ah_waiter *w);
void ah_completed (lua_State *L, ah_sched *S, int i);
void ah_setfuture (lua_State *L, ah_sched *S, int i, int state, int n);
int ah_pushresults (lua_State *L, int i);
void ah_pusherrorvalue (lua_State *L, int i);
void ah_runcallbacks (ah_sched *S);
int ah_msgh (lua_State *L);
int ah_tracemsgh (lua_State *L);
void ah_pushtask (lua_State *L, ah_task *t);
int ah_getextra (lua_State *L, int i, const char *k);
void ah_setextraat (lua_State *L, int i, const char *k);
void ah_pushextra (lua_State *L, ah_task *t, const char *k);
void ah_setextra (lua_State *L, ah_task *t, const char *k);
void ah_pushname (lua_State *L, int i);
void ah_settaskname (lua_State *L, int i, const char *name);
void ah_pushwait (lua_State *L, ah_task *t);
void ah_pushstory (lua_State *L, int i);
void ah_pushtaskdump (lua_State *L, const char *title);
int ah_taskoutcome (lua_State *L, int i, int nresults, int raw);
const char *ah_statename (int state);
ah_task *ah_taskofwaiter (ah_waiter *w);

/* errors (classes of asynchost.errors) */
void ah_pusherror (lua_State *L, const char *cls, const char *msg);
int ah_isa (lua_State *L, int i, const char *cls);
int ah_iscancellederror (lua_State *L, int i);
void ah_pushcancelled (lua_State *L, ah_task *t);

/* net.c: a stream on a fresh uv_pipe_t (for uv_spawn) */
uv_stream_t *ah_pushpipestream (lua_State *L, ah_sched *S);

/* signal.c: signal names ("SIGTERM", "TERM") and numbers */
int ah_checksignum (lua_State *L, int i);
const char *ah_signame (int signum);  /* NULL if unknown */

/* trace.c: hooks of tracing, debug mode and --top, each called only
** behind 'if (S->trace)' so that they cost nothing when off */
void ah_trace_spawn (lua_State *L, ah_sched *S, ah_task *t);
void ah_trace_resume (ah_sched *S, ah_task *t);
void ah_trace_suspend (ah_sched *S, ah_task *t, int status);
void ah_trace_done (ah_sched *S, ah_task *t);
void ah_trace_detail (ah_sched *S, ah_task *t, const char *fmt, ...);
void ah_trace_cbbegin (lua_State *L, ah_sched *S, int fn);
void ah_trace_cbend (ah_sched *S, const char *what);
void ah_trace_taskgc (lua_State *L, ah_sched *S, int i);
/* resources (sessions, streams, files: 'resource' 1) are reported in debug
** mode when collected while open, with where they were made; queues
** ('resource' 0) are listed by --top */
void ah_trace_track (lua_State *L, ah_sched *S, int i, const char *kind,
                     int resource);
void ah_trace_unclosed (lua_State *L, ah_sched *S, int i);
/* for dumps: pushes more about the wait of 't' and its age */
void ah_trace_pushdumpinfo (lua_State *L, ah_task *t);
/* set-up: debug mode from ASYNCHOST_DEBUG (the scheduler's creation) and
** the executable's options; SIGQUIT dumps the tasks (the executable) */
#define AH_TRACE_RECORD  1   /* write a trace file at the end */
#define AH_TRACE_DEBUG   2   /* debug mode */
#define AH_TRACE_TOP     4   /* the live dashboard */
int ah_trace_open (lua_State *L, const char *path, int flags);
void ah_trace_fromenv (lua_State *L, ah_sched *S);
void ah_trace_sigquit (lua_State *L);

/* core.c */
void ah_openclasses (lua_State *L, ah_sched *S);
void ah_cancelgather (lua_State *L, ah_sched *S, int i, const char *msg);

int luaopen_asynchost_core (lua_State *L);
int luaopen_asynchost_core_coroutine (lua_State *L);
int luaopen_asynchost_core_sync (lua_State *L);
int luaopen_asynchost_core_queue (lua_State *L);
int luaopen_asynchost_core_net (lua_State *L);
int luaopen_asynchost_core_http (lua_State *L);
int luaopen_asynchost_core_curl (lua_State *L);
int luaopen_asynchost_core_fs (lua_State *L);
int luaopen_asynchost_core_process (lua_State *L);
int luaopen_asynchost_core_signal (lua_State *L);
int luaopen_asynchost_core_thread (lua_State *L);
int luaopen_asynchost_core_trace (lua_State *L);

#endif

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

#include <stdatomic.h>
#include <stdio.h>
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
       AH_MT_EVENT, AH_MT_QUEUE,
       AH_MT_TASKGC, AH_MT_FUTUREGC,  /* the same, with a finalizer */
       AH_NMT };

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
  lua_State *co;            /* its coroutine (user value 1 keeps it alive);
                               NULL once done (task.c, keepresults) */
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

/* An entry of the timer heap: the key sits beside the task so that
** sifting reads the heap's own array, not 100,000 scattered tasks. */
typedef struct ah_heapent {
  uint64_t deadline;        /* = t->deadline */
  ah_task *t;
} ah_heapent;

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
  ah_heapent *heap;         /* 4-ary min-heap on (deadline, seq) */
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
void ah_pushfirstresult (lua_State *L, int i);
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
void ah_pushspawnsite (lua_State *L, int i);  /* "file:line" or "?" */
int ah_taskoutcome (lua_State *L, int i, int nresults, int raw);
const char *ah_statename (int state);
ah_task *ah_taskofwaiter (ah_waiter *w);

/* errors (classes of asynchost.errors) */
void ah_pusherror (lua_State *L, const char *cls, const char *msg);
int ah_isa (lua_State *L, int i, const char *cls);
/* fs.c: OSError (FileNotFoundError...) for libuv error 'err' on 'path'
** ("ENOENT: no such file or directory: data/x.txt"; dest: "a -> b") */
void ah_pushoserror (lua_State *L, int err, const char *path,
                     const char *dest);
/* sched.c: is chunk name 'src' a file of asynchost's own Lua library? */
int ah_islibrary (const char *src);
int ah_iscancellederror (lua_State *L, int i);
void ah_pushcancelled (lua_State *L, ah_task *t);

/* net.c: a stream on a fresh uv_pipe_t (for uv_spawn) */
uv_stream_t *ah_pushpipestream (lua_State *L, ah_sched *S);

/* net.c and netserver.c (asynchost.core.net): the stream object, shared
** by streams (net.c) and by connect and servers (netserver.c) */
#define AH_STREAM_MT  "asynchost.Stream"
#define AH_SERVER_MT  "asynchost.Server"

typedef struct ah_stream {
  unsigned int tag;        /* AH_TAG_NET */
  int isserver;
  uv_stream_t *h;          /* a uv_tcp_t or a uv_pipe_t; NULL once closed */
  ah_sched *S;
  int selfref;             /* while writes or a shutdown are pending */
  int pending;             /* writes and shutdowns in flight */
  char *buf;               /* what arrived and was not read yet */
  size_t off, len, cap;    /* buf[off .. off+len) is unread */
  int eof;                 /* the peer is done writing */
  int rerr;                /* a read error (libuv code), or 0 */
  int werr;                /* a write error, or 0 */
  int reading;             /* uv_read_start is on */
  int readall;             /* a read() waits for the end: ignore HIWATER */
  int closing;             /* close() asked: after the writes, close */
  ah_task *reader, *drainer;
  int handlerref;          /* server: the function run for each client */
  char peerhost[64];       /* for error messages */
  int peerport;
  double timeout;          /* of each read, seconds; < 0: none */
  uv_timer_t *rtimer;      /* the read timeout (malloc'ed), or NULL */
  int timedout;            /* the current read ran out of time */
} ah_stream;

/* net.c, for netserver.c */
ah_stream *ah_tostream (lua_State *L, int i, int server);
ah_stream *ah_newstream (lua_State *L, ah_sched *S, int isserver);
void ah_closestream (ah_stream *s);  /* closes the handle now */
void ah_holdstream (lua_State *L, ah_stream *s, int i);  /* keep alive */
void ah_unholdstream (ah_stream *s);
void ah_notepeer (ah_stream *s);
int ah_raiseneterror (lua_State *L, int err, const char *host, int port);
int ah_streamaddr (lua_State *L, int server, int peer);  /* address, peer */
int ah_streamgc (lua_State *L);
/* netserver.c, for net.c's luaopen: the Server class; connect and listen
** go in the table on top */
void ah_openservers (lua_State *L, ah_sched *S);

/* fs.c, fsfile.c, fswatch.c: the module asynchost.core.fs.  fs.c has the
** requests, path functions, errors and luaopen; fsfile.c open files;
** fswatch.c watchers */
#define AH_FS_CHUNK  (64 * 1024)   /* a read of unknown length */
#define AH_FS_MAXIO  (1u << 30)    /* most bytes in one read or write */
int ah_fs_raiseerror (lua_State *L, int err, const char *path,
                      const char *dest);  /* OSError or subclass, on path */
const char *ah_fs_checkpath (lua_State *L, int i);  /* a string, strictly */
void ah_fs_closelater (uv_loop_t *loop, uv_file fd);  /* nobody waits */
void ah_fs_newfile (lua_State *L, ah_sched *S, uv_file fd,
                    const char *path);  /* takes fd unless it raises */
void ah_fs_fileclass (lua_State *L, ah_sched *S);
int ah_fs_watcher (lua_State *L);  /* upvalue 1: the scheduler */
void ah_fs_watcherclass (lua_State *L, ah_sched *S);

/* signal.c: signal names ("SIGTERM", "TERM") and numbers */
int ah_checksignum (lua_State *L, int i);
const char *ah_signame (int signum);  /* NULL if unknown */

/* marshal.c: plain Lua values to bytes and back, for the worker threads
** (thread.c, pool.c) and the fuzz target (tests/fuzz_marshal.c) */
/* how ah_encode names a value it refuses */
enum { AH_ENC_ARGS,      /* 'bad argument #k to ...' (k is its index) */
       AH_ENC_RESULTS,   /* 'cannot return ... (result #k)' */
       AH_ENC_LENIENT }; /* a table with a metatable: its fields only */

typedef struct ah_mbuf {  /* malloc'ed bytes */
  char *p;
  size_t n, cap;
} ah_mbuf;

int ah_mbuf_add (ah_mbuf *b, const void *s, size_t n);  /* 0: no memory */
void ah_mbuf_free (ah_mbuf *b);
void ah_encode (lua_State *L, int first, int n, ah_mbuf *b, int how);
int ah_decode (lua_State *L, const char *p, size_t len);

/* thread.c and pool.c: async.to_thread and executors (thread.c) run jobs
** in the worker pool of pool.c */
typedef struct ah_pool ah_pool;
typedef struct ah_worker ah_worker;

typedef struct ah_job {
  struct ah_job *next;      /* in the queue or the done list */
  ah_worker *w;             /* running it (under the pool's mutex) */
  ah_mbuf in;               /* bytecode, then the arguments */
  ah_mbuf out;              /* 'R' and the results, or 'E' and the error */
  atomic_int stop;          /* interrupt it: nobody wants the results */
  int state;                /* pool.c's J_*, under the pool's mutex */
  /* the loop thread's */
  ah_pool *P;
  ah_sched *S;
  int inpool, held;
  ah_task *task;            /* the task waiting for it, or NULL */
  ah_hookedfuture *fut;     /* or the future of submit(), or NULL */
  int futref, exref;        /* submit(): the future and the executor */
} ah_job;

void ah_pool_start (lua_State *L, ah_sched *S, ah_pool **pp, int n);
void ah_pool_end (lua_State *L, ah_pool *P, int drain);
void ah_pool_openasync (lua_State *L, ah_pool *P);
void ah_pool_submit (ah_pool *P, ah_job *j);
void ah_pool_checkidle (ah_pool *P);
void ah_pool_abandon (ah_job *j);
void ah_pool_release (lua_State *L, ah_job *j);
int ah_pool_inflight (ah_pool *P);
void ah_pool_addcloser (ah_pool *P, ah_task *t);
void ah_pool_delcloser (ah_pool *P, ah_task *t);
void ah_thread_completefuture (lua_State *L, ah_job *j);  /* thread.c */

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

/* trace.c and top.c (the --top dashboard): the one ah_trace of a
** scheduler, made by trace.c; trace.c's 'trec' and 'tspan' (struct
** ah_trec, ah_tspan) are its recording */
typedef struct ah_wcount {    /* waits of one kind that ended */
  const char *what;
  lua_Integer n;
} ah_wcount;

struct ah_trace {
  ah_sched *S;
  int flags;                  /* AH_TRACE_* */
  struct ah_trace **box;      /* the userdata's pointer to us, or NULL */
  int nclosing;               /* our handles being closed */
  /* recording */
  FILE *out;
  char *path, *head, *tail;   /* tail != NULL: HTML around the JSON */
  int written;
  unsigned int seq0;          /* spawn number of the first recorded task */
  struct ah_trec *tasks;
  size_t ntasks, captasks;
  struct ah_tspan *spans;
  size_t nspans, capspans;
  char *srcs[64];             /* interned chunk names */
  int nsrcs;
  /* counters */
  lua_Integer spawned, steps, ended[4];
  ah_wcount waits[32];
  int nwaits;
  /* the step or callback running */
  ah_task *steptask;
  uint64_t stepstart, cbstart;
  char *detail;               /* of the wait the step is starting */
  char *sample;               /* debug: traceback once past the threshold */
  double sampleat;            /* ms into the step */
  char cbsite[200];
  /* debug */
  uint64_t slow;              /* threshold, ns */
  /* --top */
  uv_timer_t *timer;
  uv_signal_t *sigint;
  int topon, renderref, drows, rows, cols;
  uint64_t lastfire, lag, maxlag;
  char *lastframe;            /* plain text, for the exit */
};

char *ah_trace_dupstr (const char *s);  /* malloc'ed copy, or NULL */
double ah_trace_ms (uint64_t ns);
void ah_trace_pushtracked (lua_State *L);  /* obj -> {kind...}, weak keys */
/* debug.c (debug mode; also ah_trace_taskgc, _track, _unclosed,
** _pushdumpinfo and _pushtracked above), for trace.c: the count hook
** that notes where a slow step is, the report of a slow step, and debug
** mode on (threshold from ASYNCHOST_SLOW) */
void ah_trace_sampler (lua_State *L, lua_Debug *ar);
void ah_trace_reportslow (ah_trace *T, ah_task *t, uint64_t d, int status);
void ah_trace_setdebug (ah_trace *T);
/* top.c: starts the dashboard (1, or 0 with a message on the stack),
** leaves it (the terminal as it was, then the last frame; 'uselua' 0:
** no Lua, as from atexit), pushes its figures (core.trace.stats()) */
int ah_top_start (lua_State *L, ah_trace *T);
void ah_top_stop (ah_trace *T, int uselua);
void ah_top_pushstats (lua_State *L, ah_trace *T, int maxtasks);

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

/*
** asynchost.core.queue: Queue, LifoQueue and PriorityQueue.
**
** Items live in the queue's user value 1 (a Lua table): a ring buffer for
** Queue, a stack for LifoQueue, a binary heap for PriorityQueue (with the
** priorities in user value 2 and the arrival numbers in user value 3, so
** equal priorities come out first in, first out).  A bounded Queue of at
** most UVRING items keeps its ring in its user values themselves instead,
** one lookup less on every put and get (the hot path of producers and
** consumers).
**
** Waiters are served FIFO and cannot be overtaken: a getter woken for an
** item has that item reserved until it runs (a new get() does not take
** it), likewise a woken putter has its free slot.  A woken getter that is
** cancelled before it runs takes nothing: the item stays in the queue and
** goes to the next getter (asyncio's rule).
*/
#include <string.h>
#include "asynchost.h"

#define QUEUE_MT  "asynchost.Queue"

enum { FIFO, LIFO, PRIO };

#define UVRING  4096  /* largest maxsize whose ring is in the user values */
static const char *const kindnames[] = {"Queue", "LifoQueue", "PriorityQueue"};

typedef struct queue {
  unsigned int tag;        /* AH_TAG_QUEUE */
  int kind;
  int uvring;              /* FIFO: the ring is the user values 1..cap */
  int shutdown;            /* 0, or 1 once shut down */
  lua_Integer maxsize;     /* <= 0: unbounded */
  lua_Integer count;       /* items in the queue */
  lua_Integer head;        /* FIFO: 0-based position of the first item */
  lua_Integer cap;         /* FIFO: size of the ring */
  lua_Integer seq;         /* PRIO: arrival counter */
  lua_Integer unfinished;  /* put but not yet task_done */
  lua_Integer rget;        /* items reserved for woken getters */
  lua_Integer rput;        /* slots reserved for woken putters */
  ah_wlist getters, putters, joiners;
} queue;

#define getsched(L)  ((ah_sched *)lua_touserdata(L, lua_upvalueindex(1)))

static queue *checkqueue (lua_State *L, int i) {
  queue *q = (queue *)ah_totagged(L, i, AH_TAG_QUEUE, queue);
  if (q == NULL) luaL_typeerror(L, i, "queue");
  return q;
}

static int isfull (queue *q) {
  return q->maxsize > 0 && q->count + q->rput >= q->maxsize;
}

static void raiseclass (lua_State *L, const char *cls, const char *msg) {
  ah_pusherror(L, cls, msg);
  lua_error(L);
}


/* {======================================================
** Storage: stack top holds the item (and the priority for PRIO)
** ======================================================= */

/* Moves the ring to a table twice as big, in order. */
static void growring (lua_State *L, queue *q) {
  lua_Integer ncap = q->cap ? q->cap * 2 : 16, k;
  lua_getiuservalue(L, 1, 1);
  lua_createtable(L, (int)ncap, 0);
  for (k = 0; k < q->count; k++) {
    lua_rawgeti(L, -2, (q->head + k) % q->cap + 1);
    lua_rawseti(L, -2, k + 1);
  }
  lua_setiuservalue(L, 1, 1);
  lua_pop(L, 1);
  q->head = 0;
  q->cap = ncap;
}

/* PRIO: is entry a before entry b?  (items table at 'it', keys 'ky', seqs
** 'sq') */
static int before (lua_State *L, int ky, int sq, lua_Integer a,
                   lua_Integer b) {
  int r;
  lua_rawgeti(L, ky, a);
  lua_rawgeti(L, ky, b);
  if (lua_compare(L, -2, -1, LUA_OPLT)) r = 1;
  else if (lua_compare(L, -1, -2, LUA_OPLT)) r = 0;
  else {  /* equal priorities: first come, first served */
    lua_Integer sa, sb;
    lua_rawgeti(L, sq, a);
    lua_rawgeti(L, sq, b);
    sa = lua_tointeger(L, -2);
    sb = lua_tointeger(L, -1);
    lua_pop(L, 2);
    r = sa < sb;
  }
  lua_pop(L, 2);
  return r;
}

static void swapslots (lua_State *L, int base, lua_Integer a, lua_Integer b) {
  int k;
  for (k = 0; k < 3; k++) {
    lua_rawgeti(L, base + k, a);
    lua_rawgeti(L, base + k, b);
    lua_rawseti(L, base + k, a);
    lua_rawseti(L, base + k, b);
  }
}

static void pushtables (lua_State *L) {
  lua_getiuservalue(L, 1, 1);
  lua_getiuservalue(L, 1, 2);
  lua_getiuservalue(L, 1, 3);
}

/* Adds the item (below it the priority, for PRIO) on top; pops them. */
static void additem (lua_State *L, queue *q) {
  switch (q->kind) {
    case FIFO:
      if (q->uvring) {  /* bounded: never more than cap items */
        lua_setiuservalue(L, 1, (int)((q->head + q->count) % q->cap + 1));
        break;
      }
      if (q->count == q->cap) growring(L, q);
      lua_getiuservalue(L, 1, 1);
      lua_insert(L, -2);
      lua_rawseti(L, -2, (q->head + q->count) % q->cap + 1);
      lua_pop(L, 1);
      break;
    case LIFO:
      lua_getiuservalue(L, 1, 1);
      lua_insert(L, -2);
      lua_rawseti(L, -2, q->count + 1);
      lua_pop(L, 1);
      break;
    default: {  /* stack: priority, item */
      int base = lua_gettop(L) + 1;
      lua_Integer i = q->count + 1;
      lua_compare(L, base - 2, base - 2, LUA_OPLT);  /* raises if unorderable */
      pushtables(L);
      if (q->count > 0) {  /* and if not comparable with the others (root) */
        lua_rawgeti(L, base + 1, 1);
        lua_compare(L, base - 2, -1, LUA_OPLT);
        lua_pop(L, 1);
      }
      lua_pushvalue(L, base - 1);
      lua_rawseti(L, base, i);
      lua_pushvalue(L, base - 2);
      lua_rawseti(L, base + 1, i);
      lua_pushinteger(L, ++q->seq);
      lua_rawseti(L, base + 2, i);
      q->count++;  /* stored: counted even if a comparison below fails */
      q->unfinished++;
      while (i > 1 && before(L, base + 1, base + 2, i, i / 2)) {
        swapslots(L, base, i, i / 2);
        i /= 2;
      }
      lua_settop(L, base - 3);
      return;
    }
  }
  q->count++;
  q->unfinished++;
}

/* Pushes the next item (and its priority, for PRIO); returns how many. */
static int takeitem (lua_State *L, queue *q) {
  int n = 1;
  if (q->uvring) {
    int slot = (int)q->head + 1;
    lua_getiuservalue(L, 1, slot);
    lua_pushnil(L);
    lua_setiuservalue(L, 1, slot);  /* let the item go */
    q->head = (q->head + 1) % q->cap;
    if (--q->count == 0) q->head = 0;
    return 1;
  }
  lua_getiuservalue(L, 1, 1);
  switch (q->kind) {
    case FIFO: {
      lua_Integer slot = q->head + 1;
      lua_rawgeti(L, -1, slot);
      lua_pushnil(L);
      lua_rawseti(L, -3, slot);  /* let the item go */
      q->head = (q->head + 1) % q->cap;
      lua_remove(L, -2);
      break;
    }
    case LIFO:
      lua_rawgeti(L, -1, q->count);
      lua_pushnil(L);
      lua_rawseti(L, -3, q->count);
      lua_remove(L, -2);
      break;
    default: {
      int base, k;
      lua_Integer i = 1, last = q->count;
      lua_pop(L, 1);
      base = lua_gettop(L) + 1;
      pushtables(L);
      lua_rawgeti(L, base, 1);      /* the item */
      lua_rawgeti(L, base + 1, 1);  /* its priority */
      for (k = 0; k < 3; k++) {  /* the last entry goes to the root */
        lua_rawgeti(L, base + k, last);
        lua_rawseti(L, base + k, 1);
        lua_pushnil(L);
        lua_rawseti(L, base + k, last);
      }
      q->count--;
      for (;;) {  /* sift it down */
        lua_Integer c = 2 * i;
        if (c > q->count) break;
        if (c + 1 <= q->count && before(L, base + 1, base + 2, c + 1, c)) c++;
        if (!before(L, base + 1, base + 2, c, i)) break;
        swapslots(L, base, i, c);
        i = c;
      }
      lua_rotate(L, base, 2);  /* item, priority, tables */
      lua_settop(L, base + 1);
      return 2;
    }
  }
  q->count--;
  if (q->count == 0 && q->kind == FIFO) q->head = 0;
  return n;
}

/* }====================================================== */


/* {======================================================
** Waiting
** ======================================================= */

static void unqueue (ah_sched *S, ah_task *t) {
  (void)S;
  ah_delwaiter((ah_wlist *)t->waitobj, &t->w);
}

static int waitlist (lua_State *L, ah_wlist *l, const char *fname,
                     const char *what, lua_KFunction k) {
  ah_task *t = ah_current(getsched(L), L, fname);
  if (!ah_wait(t, unqueue, l, what)) {
    t->w.fn = NULL;
    ah_addwaiter(l, &t->w);
  }
  return ah_suspend(L, k, 0);
}

/* Wakes the oldest waiter of 'l'; returns 1 if there was one. */
static int wakeone (ah_wlist *l) {
  ah_waiter *w = l->head;
  if (w == NULL) return 0;
  ah_delwaiter(l, w);
  ah_wake(ah_taskofwaiter(w), AH_WAKE_OK);
  return 1;
}

/* After an item arrived (or shutdown): wake getters for free items. */
static void wakegetters (queue *q) {
  while (q->getters.head != NULL &&
         (q->count > q->rget || q->shutdown)) {
    wakeone(&q->getters);
    q->rget++;
  }
}

static void wakeputters (queue *q) {
  while (q->putters.head != NULL &&
         (q->maxsize <= 0 || q->count + q->rput < q->maxsize ||
          q->shutdown)) {
    wakeone(&q->putters);
    q->rput++;
  }
}

/* }====================================================== */


/* {======================================================
** put and get
** ======================================================= */

/* queue, item [, priority] -> the item (and priority) at the top */
static void pushentry (lua_State *L, queue *q) {
  if (q->kind == PRIO) {
    if (lua_isnoneornil(L, 3)) lua_pushvalue(L, 2);  /* the item itself */
    else lua_pushvalue(L, 3);
  }
  lua_pushvalue(L, 2);
}

static int putk (lua_State *L, int status, lua_KContext ctx) {
  queue *q = (queue *)lua_touserdata(L, 1);
  ah_task *t = getsched(L)->current;
  (void)status; (void)ctx;
  if (t->wake == AH_WAKE_OK) {  /* woken by a get: a slot was reserved */
    q->rput--;
    if (t->mustcancel) wakeputters(q);  /* cancelled since: pass it on */
  }
  ah_checkwake(L, t);
  if (q->shutdown) raiseclass(L, "QueueShutDown", "queue is shut down");
  pushentry(L, q);
  additem(L, q);
  wakegetters(q);
  return 0;
}

/* A NaN priority is unordered: it would break the heap's order. */
static void checkprio (lua_State *L, queue *q) {
  int i = lua_isnoneornil(L, 3) ? 2 : 3;  /* else the item is its own */
  if (q->kind == PRIO && lua_type(L, i) == LUA_TNUMBER &&
      lua_tonumber(L, i) != lua_tonumber(L, i))
    luaL_argerror(L, i, "priority is NaN");
}

static int q_put (lua_State *L) {
  queue *q = checkqueue(L, 1);
  luaL_checkany(L, 2);
  checkprio(L, q);
  if (q->shutdown) raiseclass(L, "QueueShutDown", "queue is shut down");
  if (isfull(q) || q->putters.head != NULL) {
    lua_settop(L, 3);
    return waitlist(L, &q->putters, "put", "a full queue", putk);
  }
  if (q->uvring) {  /* the hot path */
    lua_settop(L, 2);
    lua_setiuservalue(L, 1, (int)((q->head + q->count) % q->cap + 1));
    q->count++;
    q->unfinished++;
  }
  else if (q->kind == FIFO && q->count < q->cap) {
    lua_getiuservalue(L, 1, 1);
    lua_pushvalue(L, 2);
    lua_rawseti(L, -2, (q->head + q->count) % q->cap + 1);
    q->count++;
    q->unfinished++;
  }
  else {
    lua_settop(L, 3);
    pushentry(L, q);
    additem(L, q);
  }
  if (q->getters.head != NULL) wakegetters(q);
  return 0;
}

static int q_putnowait (lua_State *L) {
  queue *q = checkqueue(L, 1);
  luaL_checkany(L, 2);
  checkprio(L, q);
  lua_settop(L, 3);
  if (q->shutdown) raiseclass(L, "QueueShutDown", "queue is shut down");
  if (isfull(q)) raiseclass(L, "QueueFull", "queue is full");
  pushentry(L, q);
  additem(L, q);
  wakegetters(q);
  return 0;
}

static int getk (lua_State *L, int status, lua_KContext ctx) {
  queue *q = (queue *)lua_touserdata(L, 1);
  ah_task *t = getsched(L)->current;
  int n;
  (void)status; (void)ctx;
  if (t->wake == AH_WAKE_OK) {  /* woken by a put: an item was reserved */
    q->rget--;
    if (t->mustcancel) wakegetters(q);  /* cancelled since: the item stays,
                                           for the next getter */
  }
  ah_checkwake(L, t);
  if (q->count == 0)  /* woken by shutdown */
    raiseclass(L, "QueueShutDown", "queue is shut down");
  n = takeitem(L, q);
  wakeputters(q);
  return n;
}

static int q_get (lua_State *L) {
  queue *q = checkqueue(L, 1);
  int n;
  lua_settop(L, 1);
  if (q->count <= q->rget || q->getters.head != NULL) {
    if (q->shutdown && q->count <= q->rget)
      raiseclass(L, "QueueShutDown", "queue is shut down");
    return waitlist(L, &q->getters, "get", "an empty queue", getk);
  }
  if (q->uvring)
    n = takeitem(L, q);
  else if (q->kind == FIFO) {  /* returns the top, the item */
    lua_Integer slot = q->head + 1;
    lua_getiuservalue(L, 1, 1);
    lua_rawgeti(L, 2, slot);
    lua_pushnil(L);
    lua_rawseti(L, 2, slot);  /* let the item go */
    q->head = (q->head + 1) % q->cap;
    if (--q->count == 0) q->head = 0;
    n = 1;
  }
  else
    n = takeitem(L, q);
  if (q->putters.head != NULL) wakeputters(q);
  return n;
}

static int q_getnowait (lua_State *L) {
  queue *q = checkqueue(L, 1);
  int n;
  lua_settop(L, 1);
  if (q->count <= q->rget) {
    if (q->shutdown) raiseclass(L, "QueueShutDown", "queue is shut down");
    raiseclass(L, "QueueEmpty", "queue is empty");
  }
  n = takeitem(L, q);
  wakeputters(q);
  return n;
}

/* }====================================================== */


/* {======================================================
** task_done, join, shutdown, inspection
** ======================================================= */

static int q_taskdone (lua_State *L) {
  queue *q = checkqueue(L, 1);
  if (q->unfinished <= 0)
    return luaL_error(L, "task_done() called too many times");
  if (--q->unfinished == 0)
    while (wakeone(&q->joiners)) ;
  return 0;
}

static int joink (lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  ah_checkwake(L, getsched(L)->current);
  return 0;
}

static int q_join (lua_State *L) {
  queue *q = checkqueue(L, 1);
  lua_settop(L, 1);
  if (q->unfinished == 0) return 0;
  return waitlist(L, &q->joiners, "join", "a queue's join", joink);
}

/* shutdown([immediate]): puts raise QueueShutDown from now on; gets too
** once the queue is empty (at once if 'immediate', which drops the
** items). */
static int q_shutdown (lua_State *L) {
  queue *q = checkqueue(L, 1);
  int immediate = lua_toboolean(L, 2);
  lua_settop(L, 1);
  q->shutdown = 1;
  if (immediate) {
    while (q->count > 0) {
      lua_settop(L, 1);
      takeitem(L, q);
      if (q->unfinished > 0) q->unfinished--;
    }
    lua_settop(L, 1);
    if (q->unfinished == 0)
      while (wakeone(&q->joiners)) ;
  }
  wakegetters(q);
  wakeputters(q);
  return 0;
}

static int q_qsize (lua_State *L) {
  lua_pushinteger(L, checkqueue(L, 1)->count);
  return 1;
}

static int q_empty (lua_State *L) {
  lua_pushboolean(L, checkqueue(L, 1)->count == 0);
  return 1;
}

static int q_full (lua_State *L) {
  queue *q = checkqueue(L, 1);
  lua_pushboolean(L, q->maxsize > 0 && q->count >= q->maxsize);
  return 1;
}

static int q_maxsize (lua_State *L) {
  lua_pushinteger(L, checkqueue(L, 1)->maxsize);
  return 1;
}

static int q_isshutdown (lua_State *L) {
  lua_pushboolean(L, checkqueue(L, 1)->shutdown);
  return 1;
}

static int countlist (ah_wlist *l) {
  int n = 0;
  ah_waiter *w;
  for (w = l->head; w != NULL; w = w->next) n++;
  return n;
}

static int q_tostring (lua_State *L) {
  queue *q = checkqueue(L, 1);
  int ng = countlist(&q->getters), np = countlist(&q->putters);
  lua_pushfstring(L, "%s (%d item%s", kindnames[q->kind], (int)q->count,
                  q->count == 1 ? "" : "s");
  if (q->maxsize > 0) lua_pushfstring(L, ", maxsize %d", (int)q->maxsize);
  else lua_pushliteral(L, "");
  lua_pushfstring(L, ", %d getter%s, %d putter%s waiting%s)", ng,
                  ng == 1 ? "" : "s", np, np == 1 ? "" : "s",
                  q->shutdown ? ", shut down" : "");
  lua_concat(L, 3);
  return 1;
}

static int newqueue (lua_State *L, int kind) {
  lua_Integer maxsize = luaL_optinteger(L, 1, 0);
  queue *q;
  int ntables = (kind == PRIO) ? 3 : 1, k;
  int uvring = (kind == FIFO && maxsize > 0 && maxsize <= UVRING);
  q = (queue *)lua_newuserdatauv(L, sizeof(queue),
                                 uvring ? (int)maxsize : ntables);
  memset(q, 0, sizeof(*q));
  q->tag = AH_TAG_QUEUE;
  q->kind = kind;
  q->uvring = uvring;
  q->maxsize = maxsize < 0 ? 0 : maxsize;
  ah_setmt(L, getsched(L), AH_MT_QUEUE);
  if (uvring)
    q->cap = maxsize;
  else if (kind == FIFO) {  /* a growing ring */
    q->cap = 16;
    lua_createtable(L, (int)q->cap, 0);
    lua_setiuservalue(L, -2, 1);
  }
  else
    for (k = 1; k <= ntables; k++) {
      lua_newtable(L);
      lua_setiuservalue(L, -2, k);
    }
  if (getsched(L)->trace)  /* --top lists the queues */
    ah_trace_track(L, getsched(L), -1, kindnames[kind], 0);
  return 1;
}

static int l_queue (lua_State *L) { return newqueue(L, FIFO); }
static int l_lifoqueue (lua_State *L) { return newqueue(L, LIFO); }
static int l_prioqueue (lua_State *L) { return newqueue(L, PRIO); }

/* }====================================================== */


static const luaL_Reg meth[] = {
  {"put", q_put},
  {"get", q_get},
  {"put_nowait", q_putnowait},
  {"get_nowait", q_getnowait},
  {"task_done", q_taskdone},
  {"join", q_join},
  {"shutdown", q_shutdown},
  {"is_shutdown", q_isshutdown},
  {"qsize", q_qsize},
  {"empty", q_empty},
  {"full", q_full},
  {"maxsize", q_maxsize},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"Queue", l_queue},
  {"LifoQueue", l_lifoqueue},
  {"PriorityQueue", l_prioqueue},
  {NULL, NULL}
};

int luaopen_asynchost_core_queue (lua_State *L) {
  ah_sched *S = ah_sched_get(L);
  luaL_newmetatable(L, QUEUE_MT);
  ah_regmt(L, S, AH_MT_QUEUE);
  lua_newtable(L);
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, meth, 1);
  lua_setfield(L, -2, "__index");
  lua_pushlightuserdata(L, S);
  lua_pushcclosure(L, q_tostring, 1);
  lua_setfield(L, -2, "__tostring");
  lua_pushlightuserdata(L, S);
  lua_pushcclosure(L, q_qsize, 1);
  lua_setfield(L, -2, "__len");
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, funcs, 1);
  return 1;
}

/*
** asynchost.core.sync: Semaphore, BoundedSemaphore, Lock and Event.
**
** Waiters queue FIFO on the primitive (each on its task's waiter node).
** A release hands the permit straight to the oldest waiter, which cannot
** be overtaken; a waiter cancelled after it was handed the permit but
** before it ran passes the permit on and raises CancelledError (as in
** asyncio), so no permit is ever lost.  acquire() returns the primitive itself,
** whose __close releases it: local guard <close> = sem:acquire().
*/
#include "asynchost.h"

#define SEM_MT    "asynchost.Semaphore"
#define BSEM_MT   "asynchost.BoundedSemaphore"
#define LOCK_MT   "asynchost.Lock"
#define EVENT_MT  "asynchost.Event"

typedef struct sem {
  unsigned int tag;     /* AH_TAG_SYNC */
  ah_wlist waiters;
  lua_Integer value;    /* permits available */
  lua_Integer bound;    /* initial value, for BoundedSemaphore */
  ah_task *owner;       /* Lock only: the holder */
  int kind;             /* 0 semaphore, 1 bounded, 2 lock, 3 event */
} sem;

static const char *const mtnames[] = {SEM_MT, BSEM_MT, LOCK_MT, EVENT_MT};
static const char *const kindnames[] = {"Semaphore", "BoundedSemaphore",
                                        "Lock", "Event"};

#define getsched(L)  ((ah_sched *)lua_touserdata(L, lua_upvalueindex(1)))

static sem *checksem (lua_State *L, int i) {
  sem *s = (sem *)ah_totagged(L, i, AH_TAG_SYNC, sem);
  if (s == NULL || s->kind == 3)
    luaL_typeerror(L, i, "Semaphore or Lock");
  return s;
}

static sem *newsem (lua_State *L, int kind, lua_Integer value) {
  sem *s = (sem *)lua_newuserdatauv(L, sizeof(sem), 0);
  s->tag = AH_TAG_SYNC;
  s->waiters.head = s->waiters.tail = NULL;
  s->value = s->bound = value;
  s->owner = NULL;
  s->kind = kind;
  ah_setmt(L, getsched(L), AH_MT_SEM + kind);
  return s;
}

static void unqueue (ah_sched *S, ah_task *t) {
  (void)S;
  ah_delwaiter(&((sem *)t->waitobj)->waiters, &t->w);
}

/* Queues the running task on 's' and suspends it. */
static int waiton (lua_State *L, sem *s, const char *fname, lua_KFunction k) {
  ah_task *t = ah_current(getsched(L), L, fname);
  static const char *const what[] = {"a semaphore", "a semaphore", "a lock",
                                     "an event"};
  if (!ah_wait(t, unqueue, s, what[s->kind])) {
    t->w.fn = NULL;
    ah_addwaiter(&s->waiters, &t->w);
  }
  return ah_suspend(L, k, 0);
}

/* Wakes the oldest waiter of 's', handing it what it waited for. */
static ah_task *wakeone (sem *s) {
  ah_waiter *w = s->waiters.head;
  ah_task *t;
  if (w == NULL) return NULL;
  ah_delwaiter(&s->waiters, w);
  t = ah_taskofwaiter(w);
  ah_wake(t, AH_WAKE_OK);
  return t;
}


/* {======================================================
** Semaphores and locks
** ======================================================= */

static int acquirek (lua_State *L, int status, lua_KContext ctx) {
  ah_task *t = getsched(L)->current;
  (void)status; (void)ctx;
  if (t->wake == AH_WAKE_OK && t->mustcancel) {  /* handed the permit, then */
    sem *s = (sem *)lua_touserdata(L, 1);        /* cancelled: pass it on */
    ah_task *next = wakeone(s);
    if (next == NULL) { s->value++; s->owner = NULL; }
    else if (s->kind == 2) s->owner = next;
  }
  ah_checkwake(L, t);
  lua_settop(L, 1);
  return 1;
}

static int s_acquire (lua_State *L) {
  sem *s = checksem(L, 1);
  lua_settop(L, 1);
  if (s->value > 0 && s->waiters.head == NULL) {  /* free: no suspension */
    s->value--;
    if (s->kind == 2) s->owner = getsched(L)->current;
    return 1;
  }
  if (s->kind == 2 && s->owner != NULL && s->owner == getsched(L)->current)
    return luaL_error(L, "lock is already held by this task (locks are "
                         "not reentrant)");
  return waiton(L, s, "acquire", acquirek);
}

static int s_release (lua_State *L) {
  sem *s = checksem(L, 1);
  ah_task *t;
  if (s->kind == 2) {
    ah_task *cur = getsched(L)->current;
    if (s->value > 0)
      return luaL_error(L, "attempt to release an unlocked lock");
    if (s->owner != cur)
      return luaL_error(L, "lock released by a task that does not hold it");
  }
  if ((t = wakeone(s)) != NULL) {  /* hand the permit over */
    if (s->kind == 2) s->owner = t;
    return 0;
  }
  if (s->kind == 1 && s->value >= s->bound)
    return luaL_error(L, "BoundedSemaphore released too many times");
  if (s->value == LUA_MAXINTEGER)
    return luaL_error(L, "Semaphore released too many times (value would "
                         "overflow)");
  s->value++;
  s->owner = NULL;
  return 0;
}

/* __close(guard, err): release, whatever the error */
static int s_close (lua_State *L) {
  lua_settop(L, 1);
  return s_release(L);
}

/* lock:owned(): held by the running task? */
static int s_owned (lua_State *L) {
  sem *s = checksem(L, 1);
  lua_pushboolean(L, s->kind == 2 && s->value == 0 &&
                     s->owner == getsched(L)->current && s->owner != NULL);
  return 1;
}

static int s_locked (lua_State *L) {
  sem *s = checksem(L, 1);
  lua_pushboolean(L, s->value == 0 || s->waiters.head != NULL);
  return 1;
}

static int s_value (lua_State *L) {
  lua_pushinteger(L, checksem(L, 1)->value);
  return 1;
}

static int s_tostring (lua_State *L) {
  sem *s = checksem(L, 1);
  int n = 0;
  ah_waiter *w;
  for (w = s->waiters.head; w != NULL; w = w->next) n++;
  if (s->kind == 2)
    lua_pushfstring(L, "Lock (%s, %d waiting)",
                    s->value ? "unlocked" : "locked", n);
  else
    lua_pushfstring(L, "%s (value %d, %d waiting)", kindnames[s->kind],
                    (int)s->value, n);
  return 1;
}

static lua_Integer checkvalue (lua_State *L, const char *fname) {
  lua_Integer v = luaL_optinteger(L, 1, 1);
  if (v < 0)
    luaL_error(L, "bad argument #1 to '%s' (non-negative integer expected)",
               fname);
  return v;
}

static int l_semaphore (lua_State *L) {
  newsem(L, 0, checkvalue(L, "Semaphore"));
  return 1;
}

static int l_bsemaphore (lua_State *L) {
  newsem(L, 1, checkvalue(L, "BoundedSemaphore"));
  return 1;
}

static int l_lock (lua_State *L) {
  newsem(L, 2, 1);
  return 1;
}

/* }====================================================== */


/* {======================================================
** Event
** ======================================================= */

static sem *checkevent (lua_State *L, int i) {
  sem *s = (sem *)ah_totagged(L, i, AH_TAG_SYNC, sem);
  if (s == NULL || s->kind != 3)
    luaL_typeerror(L, i, "Event");
  return s;
}

static int waitk (lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  ah_checkwake(L, getsched(L)->current);
  lua_pushboolean(L, 1);
  return 1;
}

static int e_wait (lua_State *L) {
  sem *e = checkevent(L, 1);
  lua_settop(L, 1);
  if (e->value) {
    lua_pushboolean(L, 1);
    return 1;
  }
  return waiton(L, e, "wait", waitk);
}

static int e_set (lua_State *L) {
  sem *e = checkevent(L, 1);
  if (!e->value) {
    e->value = 1;
    while (wakeone(e) != NULL) ;
  }
  return 0;
}

static int e_clear (lua_State *L) {
  checkevent(L, 1)->value = 0;
  return 0;
}

static int e_isset (lua_State *L) {
  lua_pushboolean(L, checkevent(L, 1)->value != 0);
  return 1;
}

static int e_tostring (lua_State *L) {
  sem *e = checkevent(L, 1);
  lua_pushfstring(L, "Event (%s)", e->value ? "set" : "unset");
  return 1;
}

static int l_event (lua_State *L) {
  newsem(L, 3, 0);
  return 1;
}

/* }====================================================== */


static const luaL_Reg semmeth[] = {
  {"acquire", s_acquire},
  {"release", s_release},
  {"locked", s_locked},
  {"owned", s_owned},
  {"value", s_value},
  {NULL, NULL}
};

static const luaL_Reg eventmeth[] = {
  {"wait", e_wait},
  {"set", e_set},
  {"clear", e_clear},
  {"is_set", e_isset},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"Semaphore", l_semaphore},
  {"BoundedSemaphore", l_bsemaphore},
  {"Lock", l_lock},
  {"Event", l_event},
  {NULL, NULL}
};

static const luaL_Reg semmetameth[] = {
  {"__tostring", s_tostring},
  {"__close", s_close},
  {NULL, NULL}
};

static const luaL_Reg eventmetameth[] = {
  {"__tostring", e_tostring},
  {NULL, NULL}
};

int luaopen_asynchost_core_sync (lua_State *L) {
  ah_sched *S = ah_sched_get(L);
  int k;
  for (k = 0; k < 3; k++)
    ah_newclass(L, S, AH_MT_SEM + k, mtnames[k], semmeth, semmetameth);
  ah_newclass(L, S, AH_MT_EVENT, mtnames[3], eventmeth, eventmetameth);
  lua_newtable(L);
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, funcs, 1);
  return 1;
}

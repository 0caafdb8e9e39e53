/*
** asynchost.core.trace -- seeing what the tasks do: a trace of every task
** (Chrome/Perfetto trace-event JSON, or a self-contained HTML timeline),
** debug mode (slow steps, results nobody awaited, resources left open:
** reported by debug.c), the live dashboard of 'asynchost --top' (drawn by
** top.c), and more in the task dumps (debug.c).
**
** The scheduler calls the hooks below only behind 'if (S->trace)': with
** all of this off, S->trace is NULL and nothing else runs.  One ah_trace
** serves the three uses; its flags say which are on.  The trace is kept in
** C memory and written without Lua (so also from atexit, after os.exit).
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <signal.h>
#include "asynchost.h"

#define TRACE_KEY    "asynchost.trace"    /* registry: our userdata */
#define TRACE_MT     "asynchost.Trace"
#define MARKER       "__ASYNCHOST_TRACE_JSON__"  /* in the HTML template */
#define SAMPLECOUNT  1000     /* debug: instructions between time checks */

/* The recording: ah_trace (in asynchost.h, shared with top.c) holds
** arrays of these. */
typedef struct ah_trec {      /* a task, by spawn number */
  uint64_t created, started, ended;  /* uv_hrtime(); 0: not yet */
  uint64_t waitstart;
  const char *waitwhat;       /* the wait in progress, or NULL */
  char *detail;               /* of that wait (malloc'ed), or NULL */
  char *name;                 /* malloc'ed, or NULL for Task-<seq> */
  const char *src;            /* where it was spawned (interned), or NULL */
  int line;
  unsigned int parent;        /* spawn number of its spawner, or 0 */
  unsigned char outcome;
} trec;

typedef struct ah_tspan {     /* a wait, a step or a callback */
  unsigned int seq;           /* the task; 0: the loop's callbacks */
  const char *what;           /* a wait's kind; NULL: a step */
  char *detail;               /* malloc'ed, or NULL */
  uint64_t start, end;
} tspan;

static ah_trace *exittrace;   /* the executable's, for atexit */

static void onexit (void);


/* {======================================================
** Helpers
** ======================================================= */

char *ah_trace_dupstr (const char *s) {
  size_t n = strlen(s) + 1;
  char *p = (char *)malloc(n);
  if (p) memcpy(p, s, n);
  return p;
}

double ah_trace_ms (uint64_t ns) { return (double)ns / 1e6; }

/* The record of 't', or NULL if it is not recorded. */
static trec *rec (ah_trace *T, ah_task *t) {
  size_t i;
  if (!(T->flags & AH_TRACE_RECORD) || t->seq < T->seq0) return NULL;
  i = t->seq - T->seq0;
  return i < T->ntasks ? &T->tasks[i] : NULL;
}

static void recordingfailed (ah_trace *T) {
  fputs("asynchost: not enough memory for the trace: tracing stops\n",
        stderr);
  T->flags &= ~AH_TRACE_RECORD;
}

static void addspan (ah_trace *T, unsigned int seq, const char *what,
                     char *detail, uint64_t start, uint64_t end) {
  tspan *sp;
  if (T->nspans == T->capspans) {
    size_t ncap = T->capspans ? T->capspans * 2 : 1024;
    tspan *n = (tspan *)realloc(T->spans, ncap * sizeof(tspan));
    if (n == NULL) { free(detail); recordingfailed(T); return; }
    T->spans = n;
    T->capspans = ncap;
  }
  sp = &T->spans[T->nspans++];
  sp->seq = seq; sp->what = what; sp->detail = detail;
  sp->start = start; sp->end = end;
}

/* The interned copy of chunk name 's' (NULL when the table is full). */
static const char *intern (ah_trace *T, const char *s) {
  int i;
  for (i = 0; i < T->nsrcs; i++)
    if (strcmp(T->srcs[i], s) == 0) return T->srcs[i];
  if (T->nsrcs == (int)(sizeof(T->srcs) / sizeof(T->srcs[0]))) return NULL;
  return (T->srcs[T->nsrcs] = ah_trace_dupstr(s)) ? T->srcs[T->nsrcs++] : NULL;
}

static void countwait (ah_trace *T, const char *what) {
  int i;
  for (i = 0; i < T->nwaits; i++)
    if (T->waits[i].what == what || strcmp(T->waits[i].what, what) == 0) {
      T->waits[i].n++;
      return;
    }
  if (T->nwaits < (int)(sizeof(T->waits) / sizeof(T->waits[0]))) {
    T->waits[T->nwaits].what = what;
    T->waits[T->nwaits++].n = 1;
  }
}

/* Pushes the name of the task at 'i' if it was given one; else 0. */
static int pushgivenname (lua_State *L, int i) {
  i = lua_absindex(L, i);
  if (ah_getextra(L, i, "name") == LUA_TSTRING) return 1;
  lua_pop(L, 1);
  return 0;
}

/* Remembers the name of 't' (a live task) in its record. */
static void notename (ah_trace *T, trec *r, ah_task *t) {
  lua_State *L = T->S->L;
  ah_pushtask(L, t);
  if (pushgivenname(L, -1)) {
    const char *s = lua_tostring(L, -1);
    if (r->name == NULL || strcmp(r->name, s) != 0) {
      free(r->name);
      r->name = ah_trace_dupstr(s);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* }====================================================== */


/* {======================================================
** Hooks of the scheduler
** ======================================================= */

void ah_trace_spawn (lua_State *L, ah_sched *S, ah_task *t) {
  ah_trace *T = S->trace;
  trec *r;
  T->spawned++;
  if (!(T->flags & AH_TRACE_RECORD) || t->seq < T->seq0) return;
  if (T->ntasks == T->captasks) {
    size_t ncap = T->captasks ? T->captasks * 2 : 256;
    trec *n = (trec *)realloc(T->tasks, ncap * sizeof(trec));
    if (n == NULL) { recordingfailed(T); return; }
    T->tasks = n;
    T->captasks = ncap;
  }
  while (T->ntasks < (size_t)(t->seq - T->seq0))  /* spawned while full */
    memset(&T->tasks[T->ntasks++], 0, sizeof(trec));
  r = &T->tasks[T->ntasks++];
  memset(r, 0, sizeof(*r));
  r->created = uv_hrtime();
  r->parent = S->current ? S->current->seq : 0;
  r->outcome = AH_PENDING;
  ah_pushtask(L, t);
  if (lua_getiuservalue(L, -1, 2) == LUA_TFUNCTION) {
    lua_Debug ar;
    lua_getinfo(L, ">S", &ar);
    r->src = intern(T, ar.short_src);
    r->line = t->spawnline;
  }
  else lua_pop(L, 1);
  lua_pop(L, 1);
}

void ah_trace_resume (ah_sched *S, ah_task *t) {
  ah_trace *T = S->trace;
  uint64_t now = uv_hrtime();
  trec *r = rec(T, t);
  if (t->waitwhat != NULL) countwait(T, t->waitwhat);  /* a wait ended */
  if (r != NULL) {
    if (r->started == 0) {
      r->started = now;
      notename(T, r, t);
    }
    if (r->waitwhat != NULL) {
      addspan(T, t->seq, r->waitwhat, r->detail, r->waitstart, now);
      r->waitwhat = NULL;
      r->detail = NULL;
    }
  }
  T->steps++;
  T->steptask = t;
  T->stepstart = now;
  free(T->detail); T->detail = NULL;
  free(T->sample); T->sample = NULL;
  if ((T->flags & AH_TRACE_DEBUG) && lua_gethook(t->co) == NULL)
    lua_sethook(t->co, ah_trace_sampler, LUA_MASKCOUNT, SAMPLECOUNT);
}

/* What a recorded wait is on, beyond its kind: a sleep's length, the
** name of the awaited task.  NULL if nothing more. */
static char *autodetail (ah_trace *T, ah_task *t) {
  lua_State *L = T->S->L;
  char buf[160];
  if (t->heapidx >= 0) {
    uint64_t now = uv_hrtime();
    snprintf(buf, sizeof(buf), "%.3f s", t->deadline > now
             ? (double)(t->deadline - now) / 1e9 : 0.0);
    return ah_trace_dupstr(buf);
  }
  if (t->waitref != LUA_NOREF) {
    ah_future *f;
    char *d = NULL;
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->waitref);
    f = ah_tofuture(T->S, L, -1);
    if (f != NULL && f->istask) {
      ah_pushname(L, -1);
      snprintf(buf, sizeof(buf), "'%.150s'", lua_tostring(L, -1));
      d = ah_trace_dupstr(buf);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return d;
  }
  return NULL;
}

void ah_trace_suspend (ah_sched *S, ah_task *t, int status) {
  ah_trace *T = S->trace;
  uint64_t now = uv_hrtime();
  trec *r = rec(T, t);
  if (r != NULL) {
    addspan(T, t->seq, NULL, NULL, T->stepstart, now);
    if (status == LUA_YIELD && t->waitwhat != NULL) {
      r->waitwhat = t->waitwhat;
      r->waitstart = now;
      free(r->detail);
      r->detail = T->detail ? T->detail : autodetail(T, t);
      T->detail = NULL;
    }
  }
  if ((T->flags & AH_TRACE_DEBUG) && now - T->stepstart > T->slow)
    ah_trace_reportslow(T, t, now - T->stepstart, status);
  T->steptask = NULL;
  free(T->detail); T->detail = NULL;
  free(T->sample); T->sample = NULL;
}

void ah_trace_done (ah_sched *S, ah_task *t) {
  ah_trace *T = S->trace;
  trec *r = rec(T, t);
  T->ended[t->f.state]++;
  if (r != NULL) {
    r->ended = uv_hrtime();
    r->outcome = t->f.state;
    notename(T, r, t);
    if (r->waitwhat != NULL) {  /* cancelled before it could run again */
      addspan(T, t->seq, r->waitwhat, r->detail, r->waitstart, r->ended);
      r->waitwhat = NULL;
      r->detail = NULL;
    }
  }
  if (T->topon && t == S->main)  /* the script ended: the dashboard too */
    ah_top_stop(T, 1);
}

void ah_trace_detail (ah_sched *S, ah_task *t, const char *fmt, ...) {
  ah_trace *T = S->trace;
  char buf[512];
  va_list ap;
  if (!(T->flags & AH_TRACE_RECORD) || t != T->steptask) return;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  free(T->detail);
  T->detail = ah_trace_dupstr(buf);
}

void ah_trace_cbbegin (lua_State *L, ah_sched *S, int fn) {
  ah_trace *T = S->trace;
  T->cbstart = uv_hrtime();
  if (T->flags & AH_TRACE_DEBUG) {
    lua_Debug ar;
    lua_pushvalue(L, fn);
    lua_getinfo(L, ">S", &ar);
    snprintf(T->cbsite, sizeof(T->cbsite), "%s:%d", ar.short_src,
             ar.linedefined);
  }
}

void ah_trace_cbend (ah_sched *S, const char *what) {
  ah_trace *T = S->trace;
  uint64_t now = uv_hrtime();
  if (T->flags & AH_TRACE_RECORD)
    addspan(T, 0, what, NULL, T->cbstart, now);
  if ((T->flags & AH_TRACE_DEBUG) && now - T->cbstart > T->slow) {
    fprintf(stderr, "asynchost: debug: %s (function defined at %s) held "
            "the loop for %.1f ms (threshold %.0f ms)\n", what, T->cbsite,
            ah_trace_ms(now - T->cbstart), ah_trace_ms(T->slow));
    fflush(stderr);
  }
}

/* }====================================================== */


/* {======================================================
** Writing the trace: Chrome trace-event JSON (Perfetto, chrome://tracing)
** ======================================================= */

/* Length of the valid UTF-8 sequence at 's' (a byte >= 0x80), or 0. */
static int utf8len (const unsigned char *s) {
  int n = (*s >= 0xf0 && *s < 0xf5) ? 4 : (*s >= 0xe0) ? 3
        : (*s >= 0xc2 && *s < 0xe0) ? 2 : 0;
  int k;
  if (*s >= 0xf5) return 0;
  for (k = 1; k < n; k++)
    if ((s[k] & 0xc0) != 0x80) return 0;
  return n;
}

/* 's' as a JSON string; bytes that are not UTF-8 become U+FFFD. */
static void putstr (FILE *f, const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  fputc('"', f);
  while (*p) {
    unsigned char c = *p;
    int n;
    if (c == '"' || c == '\\') { fputc('\\', f); fputc(c, f); p++; }
    else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
      fprintf(f, "\\u%04x", c);  /* '<': safe inside an HTML <script> */
      p++;
    }
    else if (c < 0x80) { fputc(c, f); p++; }
    else if ((n = utf8len(p)) > 0) { fwrite(p, 1, (size_t)n, f); p += n; }
    else { fputs("\\ufffd", f); p++; }
  }
  fputc('"', f);
}

static void puttaskname (FILE *f, trec *r, unsigned int seq) {
  char buf[32];
  if (r->name) putstr(f, r->name);
  else {
    snprintf(buf, sizeof(buf), "Task-%u", seq);
    putstr(f, buf);
  }
}

static const char *const outcomes[] = {"pending", "done", "failed",
                                       "cancelled"};

static void writejson (ah_trace *T, FILE *f) {
  uint64_t t0 = T->S->t0, now = uv_hrtime();
  size_t i;
  int first = 1;
#define US(x)  ((double)((x) - t0) / 1e3)
#define SEP()  (first ? (first = 0, "") : ",\n")
  fputs("{\"displayTimeUnit\":\"ms\",\"otherData\":{\"generator\":"
        "\"asynchost " AH_VERSION_STRING "\"},\"traceEvents\":[\n", f);
  fprintf(f, "%s{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":1,\"tid\":0,"
          "\"args\":{\"name\":\"asynchost\"}}", SEP());
  fprintf(f, "%s{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":0,"
          "\"args\":{\"name\":\"loop callbacks\"}}", SEP());
  for (i = 0; i < T->ntasks; i++) {
    trec *r = &T->tasks[i];
    unsigned int seq = T->seq0 + (unsigned int)i;
    uint64_t end = r->ended ? r->ended : now;
    if (r->created == 0) continue;
    fprintf(f, "%s{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,"
            "\"tid\":%u,\"args\":{\"name\":", SEP(), seq);
    puttaskname(f, r, seq);
    fprintf(f, "}},\n{\"name\":\"thread_sort_index\",\"ph\":\"M\",\"pid\":1,"
            "\"tid\":%u,\"args\":{\"sort_index\":%u}}", seq, seq);
    fprintf(f, ",\n{\"name\":");
    puttaskname(f, r, seq);
    fprintf(f, ",\"cat\":\"task\",\"ph\":\"X\",\"pid\":1,\"tid\":%u,"
            "\"ts\":%.3f,\"dur\":%.3f,\"args\":{\"task\":%u,\"parent\":%u,"
            "\"outcome\":\"%s\"", seq, US(r->created),
            (double)(end - r->created) / 1e3, seq, r->parent,
            outcomes[r->outcome]);
    if (r->src) {
      char buf[300];
      snprintf(buf, sizeof(buf), "%s:%d", r->src, r->line);
      fputs(",\"spawned_at\":", f);
      putstr(f, buf);
    }
    fputs("}}", f);
    if (r->parent >= T->seq0 && r->parent - T->seq0 < T->ntasks &&
        r->started != 0) {  /* parent -> child */
      fprintf(f, ",\n{\"name\":\"spawn\",\"cat\":\"spawn\",\"ph\":\"s\","
              "\"id\":%u,\"pid\":1,\"tid\":%u,\"ts\":%.3f}", seq, r->parent,
              US(r->created));
      fprintf(f, ",\n{\"name\":\"spawn\",\"cat\":\"spawn\",\"ph\":\"f\","
              "\"bp\":\"e\",\"id\":%u,\"pid\":1,\"tid\":%u,\"ts\":%.3f}", seq,
              seq, US(r->started));
    }
    if (r->waitwhat != NULL)  /* still waiting */
      addspan(T, seq, r->waitwhat,
              r->detail ? ah_trace_dupstr(r->detail) : NULL,
              r->waitstart, now);
  }
  for (i = 0; i < T->nspans; i++) {
    tspan *sp = &T->spans[i];
    fprintf(f, "%s{\"name\":", SEP());
    if (sp->what == NULL) putstr(f, "run");
    else if (sp->detail == NULL) putstr(f, sp->what);
    else {
      char buf[700];
      snprintf(buf, sizeof(buf), "%s %s", sp->what, sp->detail);
      putstr(f, buf);
    }
    fprintf(f, ",\"cat\":\"%s\",\"ph\":\"X\",\"pid\":1,\"tid\":%u,"
            "\"ts\":%.3f,\"dur\":%.3f", sp->what == NULL ? "step"
            : sp->seq == 0 ? "callback" : "wait", sp->seq, US(sp->start),
            (double)(sp->end - sp->start) / 1e3);
    if (sp->what != NULL && sp->seq != 0) {
      fputs(",\"args\":{\"wait\":", f);
      putstr(f, sp->what);
      if (sp->detail) {
        fputs(",\"detail\":", f);
        putstr(f, sp->detail);
      }
      fputs("}", f);
    }
    fputs("}", f);
  }
  fputs("\n]}\n", f);
#undef US
#undef SEP
}

/* Writes the trace file, once.  No Lua here (atexit calls it). */
static void writetrace (ah_trace *T) {
  FILE *f = T->out;
  if (T->written || f == NULL) return;
  T->written = 1;
  if (T->tail != NULL) fputs(T->head, f);
  writejson(T, f);
  if (T->tail != NULL) fputs(T->tail, f);
  if (fclose(f) != 0)
    fprintf(stderr, "asynchost: cannot write the trace to '%s'\n", T->path);
  else
    fprintf(stderr, "asynchost: trace written to %s (%zu tasks)\n", T->path,
            T->ntasks);
  fflush(stderr);
  T->out = NULL;
}

/* Names given to tasks still running (the Lua state is sound here). */
static void refreshnames (ah_trace *T) {
  lua_State *L = T->S->L;
  int k;
  lua_rawgeti(L, LUA_REGISTRYINDEX, T->S->liveref);
  for (k = 1; k <= T->S->nlive; k++) {
    ah_task *t;
    trec *r;
    lua_rawgeti(L, -1, k);
    t = (ah_task *)lua_touserdata(L, -1);
    lua_pop(L, 1);
    if ((r = rec(T, t)) != NULL) notename(T, r, t);
  }
  lua_pop(L, 1);
}

/* }====================================================== */


/* {======================================================
** Opening and closing
** ======================================================= */

/* The dashboard's timer and signal handle are closed: the last frees T. */
static void freehandle (uv_handle_t *h) {
  ah_trace *T = (ah_trace *)h->data;
  free(h);
  if (--T->nclosing == 0) free(T);
}

/* Collected with the state (or never, after os.exit: see onexit). */
static int tracegc (lua_State *L) {
  ah_trace **box = (ah_trace **)lua_touserdata(L, 1);
  ah_trace *T = *box;
  size_t i;
  int k;
  if (T == NULL) return 0;
  *box = NULL;
  if (exittrace == T) exittrace = NULL;
  ah_top_stop(T, 1);
  if (T->flags & AH_TRACE_RECORD) refreshnames(T);
  writetrace(T);
  T->S->trace = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, T->renderref);
  for (i = 0; i < T->ntasks; i++) {
    free(T->tasks[i].name);
    free(T->tasks[i].detail);
  }
  for (i = 0; i < T->nspans; i++) free(T->spans[i].detail);
  for (k = 0; k < T->nsrcs; k++) free(T->srcs[k]);
  free(T->tasks); free(T->spans); free(T->path); free(T->head);
  free(T->detail); free(T->sample); free(T->lastframe);
  if (T->timer) {
    T->nclosing = 2;
    uv_close((uv_handle_t *)T->timer, freehandle);
    uv_close((uv_handle_t *)T->sigint, freehandle);
  }
  else free(T);
  return 0;
}

static void onexit (void) {  /* os.exit: no Lua from here */
  ah_trace *T = exittrace;
  exittrace = NULL;
  if (T == NULL) return;
  ah_top_stop(T, 0);
  writetrace(T);
}

/* The trace of the scheduler of L, made if needed. */
static ah_trace *gettrace (lua_State *L, ah_sched *S) {
  ah_trace *T, **box;
  if (S->trace != NULL) return S->trace;
  T = (ah_trace *)calloc(1, sizeof(ah_trace));
  if (T == NULL) luaL_error(L, "not enough memory");
  T->S = S;
  T->renderref = LUA_NOREF;
  T->slow = 100 * 1000000u;
  box = (ah_trace **)lua_newuserdatauv(L, sizeof(ah_trace *), 0);
  *box = T;
  T->box = box;
  if (luaL_newmetatable(L, TRACE_MT)) {
    lua_pushcfunction(L, tracegc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, TRACE_KEY);
  S->trace = T;
  return T;
}

void ah_trace_fromenv (lua_State *L, ah_sched *S) {
  const char *d = getenv("ASYNCHOST_DEBUG");
  if (d != NULL && *d != '\0' && strcmp(d, "0") != 0)
    ah_trace_setdebug(gettrace(L, S));
}

static int endswith (const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Starts recording into the file at 'path'. */
static int startrecord (lua_State *L, ah_trace *T, const char *path) {
  if (T->flags & AH_TRACE_RECORD) return 1;
  if (T->written || T->path != NULL) {
    lua_pushliteral(L, "a trace was recorded already (one per run)");
    return 0;
  }
  if (endswith(path, ".html") || endswith(path, ".htm")) {
    const char *tpl, *mark;
    lua_getglobal(L, "require");
    lua_pushliteral(L, "asynchost.trace");
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) return 0;
    lua_getfield(L, -1, "html");
    tpl = lua_tostring(L, -1);
    if (tpl == NULL || (mark = strstr(tpl, MARKER)) == NULL) {
      lua_pushliteral(L, "asynchost.trace has no HTML template");
      return 0;
    }
    T->head = (char *)malloc(strlen(tpl) + 2);
    if (T->head == NULL) {
      lua_pushliteral(L, "not enough memory");
      return 0;
    }
    memcpy(T->head, tpl, (size_t)(mark - tpl));
    T->head[mark - tpl] = '\0';
    T->tail = T->head + (mark - tpl) + 1;
    strcpy(T->tail, mark + strlen(MARKER));
    lua_pop(L, 2);
  }
  if ((T->out = fopen(path, "w")) == NULL) {
    lua_pushfstring(L, "cannot open the trace file '%s': %s", path,
                    strerror(errno));
    return 0;
  }
  T->path = ah_trace_dupstr(path);
  T->seq0 = T->S->seq + 1;
  T->flags |= AH_TRACE_RECORD;
  return 1;
}

/* The executable's options: records into 'path' (AH_TRACE_RECORD), debug
** mode, the dashboard.  Returns 1, or 0 with a message on the stack. */
int ah_trace_open (lua_State *L, const char *path, int flags) {
  ah_sched *S = ah_sched_get(L);
  ah_trace *T = gettrace(L, S);
  static int atexitdone = 0;
  if (flags & AH_TRACE_DEBUG) ah_trace_setdebug(T);
  if ((flags & AH_TRACE_RECORD) && !startrecord(L, T, path)) return 0;
  if ((flags & AH_TRACE_TOP) && !ah_top_start(L, T)) return 0;
  if (flags & (AH_TRACE_RECORD | AH_TRACE_TOP)) {
    exittrace = T;
    if (!atexitdone) atexitdone = (atexit(onexit) == 0);
  }
  return 1;
}

/* }====================================================== */


/* {======================================================
** SIGQUIT (Ctrl-\) prints the task dump and the program goes on
** ======================================================= */

static int dumper (lua_State *L) {
  ah_sched *S = ah_sched_get(L);
  lua_pushfstring(L, "asynchost: SIGQUIT: %d live task(s):", S->nlive);
  ah_pushtaskdump(L, lua_tostring(L, -1));
  return 1;
}

static void onsigquit (uv_signal_t *h, int signum) {
  ah_sched *S = (ah_sched *)h->data;
  lua_State *L = S->L;
  (void)signum;
  lua_pushcfunction(L, dumper);
  if (lua_pcall(L, 0, 1, 0) == LUA_OK)
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
  else
    fprintf(stderr, "asynchost: SIGQUIT: cannot dump the tasks: %s\n",
            lua_tostring(L, -1));
  fflush(stderr);
  lua_pop(L, 1);
}

static void freesig (uv_handle_t *h) { free(h); }

static int sigquitgc (lua_State *L) {
  uv_signal_t **box = (uv_signal_t **)lua_touserdata(L, 1);
  if (*box != NULL) {
    uv_close((uv_handle_t *)*box, freesig);
    *box = NULL;
  }
  return 0;
}

void ah_trace_sigquit (lua_State *L) {
  ah_sched *S = ah_sched_get(L);
  uv_signal_t **box = (uv_signal_t **)lua_newuserdatauv(L, sizeof(*box), 0);
  *box = (uv_signal_t *)malloc(sizeof(uv_signal_t));
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, sigquitgc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, "asynchost.sigquit");
  if (*box == NULL) return;
  uv_signal_init(S->loop, *box);
  (*box)->data = S;
  uv_signal_start(*box, onsigquit, SIGQUIT);
  uv_unref((uv_handle_t *)*box);
}

/* }====================================================== */


/* {======================================================
** The Lua module: open(path | nil, flags), write(), stats()
** ======================================================= */

/* open([path], [flags]): flags is a string of words "debug", "top" */
static int l_open (lua_State *L) {
  const char *path = luaL_optstring(L, 1, NULL);
  const char *fl = luaL_optstring(L, 2, "");
  int flags = path ? AH_TRACE_RECORD : 0;
  if (strstr(fl, "debug")) flags |= AH_TRACE_DEBUG;
  if (strstr(fl, "top")) flags |= AH_TRACE_TOP;
  lua_settop(L, 2);
  if (!ah_trace_open(L, path, flags)) return lua_error(L);
  return 0;
}

/* write(): writes the trace now (then recording stops) */
static int l_write (lua_State *L) {
  ah_sched *S = ah_sched_get(L);
  ah_trace *T = S->trace;
  if (T == NULL || !(T->flags & AH_TRACE_RECORD))
    return luaL_error(L, "no trace is being recorded");
  refreshnames(T);
  writetrace(T);
  T->flags &= ~AH_TRACE_RECORD;
  return 0;
}

/* stats() -> the figures of the dashboard, or nil when nothing is on */
static int l_stats (lua_State *L) {
  ah_sched *S = ah_sched_get(L);
  if (S->trace == NULL) lua_pushnil(L);
  else ah_top_pushstats(L, S->trace, (int)luaL_optinteger(L, 1, 20));
  return 1;
}

/* flags() -> recording, debug, top */
static int l_flags (lua_State *L) {
  ah_sched *S = ah_sched_get(L);
  int f = S->trace ? S->trace->flags : 0;
  lua_pushboolean(L, f & AH_TRACE_RECORD);
  lua_pushboolean(L, f & AH_TRACE_DEBUG);
  lua_pushboolean(L, f & AH_TRACE_TOP);
  return 3;
}

static const luaL_Reg funcs[] = {
  {"open", l_open},
  {"write", l_write},
  {"stats", l_stats},
  {"flags", l_flags},
  {NULL, NULL}
};

int luaopen_asynchost_core_trace (lua_State *L) {
  luaL_newlib(L, funcs);
  return 1;
}

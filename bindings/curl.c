/*
** asynchost.core.curl: HTTP transfers on libcurl's multi interface,
** driven by the loop: curl tells which sockets to watch (one uv_poll
** each) and when to call it back (one uv_timer per session); no thread
** per request.  A session is one multi handle, so its connections are
** pooled (kept alive) across requests.
**
**   local s = core.session(max_connections, max_per_host)
**   local status, headers, body, url, elapsed, reused =
**     s:perform(method, url, headerlist, body, opts)
**
** A task waits on each transfer; cancelling it removes the transfer from
** the multi handle at once (the connection is closed, the pool stays
** sound).
*/
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <dlfcn.h>
#define CURL_DISABLE_TYPECHECK  /* the calls below go through pointers */
#include <curl/curl.h>
#include "asynchost.h"


/* {======================================================
** libcurl, loaded when the first session is made
** =======================================================
** libcurl and the 30-odd libraries it needs (TLS, LDAP, SSH, Kerberos...)
** took ~7 ms to map and relocate at every start of the executable, for
** programs that mostly make no HTTP request (start-up: 9 ms against
** lua5.4's 1.4 ms).  So the functions below are looked up with dlopen and
** dlsym the first time a session is made, once per process.
*/

#define CURLFUNCS(X) \
  X(CURLcode, global_init, (long)) \
  X(CURL *, easy_init, (void)) \
  X(void, easy_cleanup, (CURL *)) \
  X(void, easy_reset, (CURL *)) \
  X(CURLcode, easy_setopt, (CURL *, CURLoption, ...)) \
  X(CURLcode, easy_getinfo, (CURL *, CURLINFO, ...)) \
  X(CURLcode, easy_pause, (CURL *, int)) \
  X(const char *, easy_strerror, (CURLcode)) \
  X(CURLM *, multi_init, (void)) \
  X(CURLMcode, multi_cleanup, (CURLM *)) \
  X(CURLMcode, multi_setopt, (CURLM *, CURLMoption, ...)) \
  X(CURLMcode, multi_add_handle, (CURLM *, CURL *)) \
  X(CURLMcode, multi_remove_handle, (CURLM *, CURL *)) \
  X(CURLMcode, multi_socket_action, (CURLM *, curl_socket_t, int, int *)) \
  X(CURLMcode, multi_assign, (CURLM *, curl_socket_t, void *)) \
  X(CURLMsg *, multi_info_read, (CURLM *, int *)) \
  X(struct curl_slist *, slist_append, (struct curl_slist *, const char *)) \
  X(void, slist_free_all, (struct curl_slist *))

#define FIELD(ret, name, args)  ret (*name) args;
static struct { CURLFUNCS(FIELD) } api;
#undef FIELD

static uv_once_t loadonce = UV_ONCE_INIT;
static char loaderror[256];  /* why libcurl could not be loaded, or "" */

static void loadcurl (void) {
  void *lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) {
    snprintf(loaderror, sizeof(loaderror), "%s", dlerror());
    return;
  }
#define LOOKUP(ret, name, args) \
  if ((*(void **)&api.name = dlsym(lib, "curl_" #name)) == NULL) { \
    snprintf(loaderror, sizeof(loaderror), "libcurl.so.4 lacks curl_%s", \
             #name); \
    return; \
  }
  CURLFUNCS(LOOKUP)
#undef LOOKUP
  /* once per process, before any other thread uses curl */
  if (api.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    snprintf(loaderror, sizeof(loaderror), "curl_global_init failed");
}

/* Loads libcurl if not done yet; raises an error if it cannot be. */
static void needcurl (lua_State *L) {
  uv_once(&loadonce, loadcurl);
  if (loaderror[0] != '\0')
    luaL_error(L, "the HTTP client needs libcurl: %s", loaderror);
}

#undef curl_easy_setopt  /* curl.h's argument-count checks */
#undef curl_easy_getinfo
#undef curl_multi_setopt
#define curl_global_init api.global_init
#define curl_easy_init api.easy_init
#define curl_easy_cleanup api.easy_cleanup
#define curl_easy_reset api.easy_reset
#define curl_easy_setopt api.easy_setopt
#define curl_easy_getinfo api.easy_getinfo
#define curl_easy_pause api.easy_pause
#define curl_easy_strerror api.easy_strerror
#define curl_multi_init api.multi_init
#define curl_multi_cleanup api.multi_cleanup
#define curl_multi_setopt api.multi_setopt
#define curl_multi_add_handle api.multi_add_handle
#define curl_multi_remove_handle api.multi_remove_handle
#define curl_multi_socket_action api.multi_socket_action
#define curl_multi_assign api.multi_assign
#define curl_multi_info_read api.multi_info_read
#define curl_slist_append api.slist_append
#define curl_slist_free_all api.slist_free_all

/* }====================================================== */

#define SESSION_MT  "asynchost.HttpSession"
#define BODY_MT     "asynchost.HttpBody"
#define PAUSEAT     (1024 * 1024)  /* streaming: pause curl above this */

typedef struct buf {
  char *p;
  size_t n, cap;
} buf;

typedef struct xfer xfer;

typedef struct session {
  unsigned int tag;       /* AH_TAG_CURL */
  CURLM *multi;           /* NULL once closed */
  ah_sched *S;
  uv_timer_t *timer;      /* curl's timeout (malloc'ed) */
  xfer *xfers;            /* in flight */
  int selfref;            /* while transfers are in flight */
  lua_Integer requests, reused, bytes;
  CURL *spare[32];        /* easy handles to reuse (reset) */
  int nspare;
} session;

typedef struct sockctx {
  uv_poll_t poll;
  curl_socket_t fd;
  session *s;
} sockctx;

struct xfer {
  xfer *prev, *next;      /* in the session's list */
  session *s;
  CURL *easy;
  ah_task *t;             /* the waiting task */
  struct curl_slist *hdrs;
  int bodyref;            /* the request body (a Lua string), or LUA_NOREF */
  buf body, head;
  CURLcode result;
  int done, closed;
  int stream;             /* the body is handed out in chunks */
  int started;            /* stream: the request returned (body began) */
  int paused;             /* stream: curl paused, the reader is behind */
  int oserr;              /* errno of a socket() that failed, or 0 */
  char errbuf[CURL_ERROR_SIZE];
};

/* the body of a streamed response: owns its transfer once it began */
typedef struct body {
  unsigned int tag;       /* AH_TAG_CURL + 1 */
  xfer *x;                /* NULL once finished and freed */
} body;

#define getsched(L)  ((ah_sched *)lua_touserdata(L, lua_upvalueindex(1)))

static int append (buf *b, const char *p, size_t n) {
  if (b->n + n > b->cap) {
    size_t ncap = b->cap ? b->cap : 4096;
    char *np;
    while (ncap < b->n + n) ncap *= 2;
    if ((np = (char *)realloc(b->p, ncap)) == NULL) return -1;
    b->p = np;
    b->cap = ncap;
  }
  memcpy(b->p + b->n, p, n);
  b->n += n;
  return 0;
}

static session *checksession (lua_State *L) {
  session *s = (session *)ah_totagged(L, 1, AH_TAG_CURL, session);
  if (s == NULL) luaL_typeerror(L, 1, "HTTP session");
  return s;
}


/* {======================================================
** Transfers
** ======================================================= */

static size_t onbody (char *p, size_t size, size_t n, void *ud) {
  xfer *x = (xfer *)ud;
  if (x->stream && x->body.n >= PAUSEAT) {  /* the reader is behind */
    x->paused = 1;
    return CURL_WRITEFUNC_PAUSE;
  }
  if (append(&x->body, p, size * n) != 0) return 0;
  if (x->stream && x->t != NULL) ah_wake(x->t, AH_WAKE_OK);  /* data! */
  return size * n;
}

static size_t onheader (char *p, size_t size, size_t n, void *ud) {
  xfer *x = (xfer *)ud;
  if (n * size > 5 && memcmp(p, "HTTP/", 5) == 0)
    x->head.n = 0;  /* a new response (after a redirect): its headers only */
  return append(&x->head, p, size * n) == 0 ? size * n : 0;
}

static void freexfer (lua_State *L, xfer *x) {
  session *s = x->s;
  if (x->prev) x->prev->next = x->next; else if (s) s->xfers = x->next;
  if (x->next) x->next->prev = x->prev;
  if (x->easy) {
    if (s && s->multi) curl_multi_remove_handle(s->multi, x->easy);
    if (s && s->multi && s->nspare < 32 && x->done) {  /* reuse it */
      curl_easy_reset(x->easy);
      s->spare[s->nspare++] = x->easy;
    }
    else
      curl_easy_cleanup(x->easy);
  }
  curl_slist_free_all(x->hdrs);
  luaL_unref(L, LUA_REGISTRYINDEX, x->bodyref);
  free(x->body.p);
  free(x->head.p);
  free(x);
  if (s && s->xfers == NULL && s->selfref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, s->selfref);
    s->selfref = LUA_NOREF;
  }
}

/* curl's socket(), to know why it failed (EMFILE...), which curl does not
** tell; close-on-exec, as libuv's, so that children do not inherit it. */
static curl_socket_t opensocket (void *ud, curlsocktype purpose,
                                 struct curl_sockaddr *a) {
  xfer *x = (xfer *)ud;
  int type = a->socktype;
  curl_socket_t fd;
  (void)purpose;
#ifdef SOCK_CLOEXEC
  type |= SOCK_CLOEXEC;
#endif
  if ((fd = socket(a->family, type, a->protocol)) == CURL_SOCKET_BAD)
    x->oserr = errno;
  return fd;
}

/* Transfers that ended: wake their tasks. */
static void checkdone (session *s) {
  CURLMsg *m;
  int left;
  while (s->multi && (m = curl_multi_info_read(s->multi, &left)) != NULL) {
    xfer *x;
    if (m->msg != CURLMSG_DONE) continue;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
    x->result = m->data.result;
    x->done = 1;
    curl_multi_remove_handle(s->multi, x->easy);
    if (x->t != NULL) ah_wake(x->t, AH_WAKE_OK);
  }
}

/* }====================================================== */


/* {======================================================
** Sockets and the timer, for curl
** ======================================================= */

static void freepoll (uv_handle_t *h) {
  free(h->data);
}

static void onpoll (uv_poll_t *h, int status, int events) {
  sockctx *c = (sockctx *)h->data;
  session *s = c->s;  /* curl may remove this very socket below */
  int flags = 0, running;
  if (s == NULL || s->multi == NULL) return;
  if (status < 0) flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  curl_multi_socket_action(s->multi, c->fd, flags, &running);
  checkdone(s);
}

static int onsocket (CURL *e, curl_socket_t fd, int what, void *ud,
                     void *sockp) {
  session *s = (session *)ud;
  sockctx *c = (sockctx *)sockp;
  int events = 0;
  (void)e;
  if (what == CURL_POLL_REMOVE) {
    if (c != NULL) {
      uv_poll_stop(&c->poll);
      c->s = NULL;
      uv_close((uv_handle_t *)&c->poll, freepoll);
      curl_multi_assign(s->multi, fd, NULL);
    }
    return 0;
  }
  if (c == NULL) {
    if ((c = (sockctx *)malloc(sizeof(sockctx))) == NULL) return -1;
    c->fd = fd;
    c->s = s;
    uv_poll_init_socket(s->S->loop, &c->poll, fd);
    c->poll.data = c;
    curl_multi_assign(s->multi, fd, c);
  }
  if (what & CURL_POLL_IN) events |= UV_READABLE;
  if (what & CURL_POLL_OUT) events |= UV_WRITABLE;
  uv_poll_start(&c->poll, events, onpoll);
  return 0;
}

static void ontimer (uv_timer_t *h) {
  session *s = (session *)h->data;
  int running;
  if (s == NULL || s->multi == NULL) return;
  curl_multi_socket_action(s->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  checkdone(s);
}

static int ontimeout (CURLM *m, long ms, void *ud) {
  session *s = (session *)ud;
  (void)m;
  if (ms < 0) uv_timer_stop(s->timer);
  else uv_timer_start(s->timer, ontimer, (uint64_t)ms, 0);
  return 0;
}

/* }====================================================== */


/* {======================================================
** perform
** ======================================================= */

/* The task gave up: abort the transfer now. */
static void unperform (ah_sched *S, ah_task *t) {
  xfer *x = (xfer *)t->waitobj;
  x->t = NULL;
  freexfer(S->L, x);
}

static const char *errclass (CURLcode c) {
  switch (c) {
    case CURLE_COULDNT_RESOLVE_HOST: case CURLE_COULDNT_RESOLVE_PROXY:
      return "DNSError";
    case CURLE_COULDNT_CONNECT: return "ConnectionRefusedError";
    case CURLE_OPERATION_TIMEDOUT: return "TimeoutError";
    case CURLE_TOO_MANY_REDIRECTS: return "TooManyRedirects";
    case CURLE_SSL_CONNECT_ERROR: case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM: case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
      return "TLSError";
    case CURLE_RECV_ERROR: case CURLE_SEND_ERROR: case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
      return "ConnectionResetError";
    default: return "ConnectionError";
  }
}

static const char *curlcodename (CURLcode c) {
  switch (c) {
    case CURLE_COULDNT_RESOLVE_HOST: return "CURLE_COULDNT_RESOLVE_HOST";
    case CURLE_COULDNT_CONNECT: return "CURLE_COULDNT_CONNECT";
    case CURLE_OPERATION_TIMEDOUT: return "CURLE_OPERATION_TIMEDOUT";
    case CURLE_TOO_MANY_REDIRECTS: return "CURLE_TOO_MANY_REDIRECTS";
    case CURLE_SSL_CONNECT_ERROR: return "CURLE_SSL_CONNECT_ERROR";
    case CURLE_PEER_FAILED_VERIFICATION:
      return "CURLE_PEER_FAILED_VERIFICATION";
    case CURLE_RECV_ERROR: return "CURLE_RECV_ERROR";
    case CURLE_SEND_ERROR: return "CURLE_SEND_ERROR";
    case CURLE_GOT_NOTHING: return "CURLE_GOT_NOTHING";
    case CURLE_PARTIAL_FILE: return "CURLE_PARTIAL_FILE";
    case CURLE_URL_MALFORMAT: return "CURLE_URL_MALFORMAT";
    case CURLE_UNSUPPORTED_PROTOCOL: return "CURLE_UNSUPPORTED_PROTOCOL";
    default: return "CURLE_ERROR";
  }
}

/* stack: session, method, url, headers, body, opts, [xfer light] */
static int performk (lua_State *L, int status, lua_KContext ctx) {
  ah_sched *S = getsched(L);
  xfer *x = (xfer *)ctx;
  session *s;
  ah_task *t = S->current;
  long code = 0, connects = 0;
  char *url = NULL;
  double total = 0;
  (void)status;
  if (x == NULL || t->wake == AH_WAKE_CANCEL)  /* unperform freed it */
    ah_checkwake(L, t);
  if (t->mustcancel || x->closed) {  /* done or closed, then cancelled */
    int closed = x->closed;
    x->t = NULL;
    freexfer(L, x);
    if (closed && !ah_cancelpending(t)) {
      ah_pusherror(L, "ConnectionError", "the HTTP session was closed");
      return lua_error(L);
    }
    ah_checkwake(L, t);
  }
  ah_checkwake(L, t);
  s = x->s;
  if (x->result != CURLE_OK) {
    const char *u = lua_tostring(L, 3);
    const char *cls = errclass(x->result);
    char oname[32] = "", ostr[128] = "";
    long oserr = x->oserr;  /* the errno of a failed socket or connect */
    if (oserr == 0) curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &oserr);
    if (oserr > 0) {
      uv_err_name_r(-(int)oserr, oname, sizeof(oname));
      uv_strerror_r(-(int)oserr, ostr, sizeof(ostr));
      if (oserr == EMFILE || oserr == ENFILE)  /* not "refused" */
        cls = "ConnectionError";
    }
    lua_pushfstring(L, "%s: %s: %s%s%s%s", curlcodename(x->result),
                    curl_easy_strerror(x->result), u,
                    x->errbuf[0] ? " (" : "", x->errbuf,
                    x->errbuf[0] ? ")" : "");
    if (oname[0]) {
      lua_pushfstring(L, " [%s: %s]", oname, ostr);
      lua_concat(L, 2);
    }
    ah_pusherror(L, cls, lua_tostring(L, -1));
    lua_pushstring(L, curlcodename(x->result));
    lua_setfield(L, -2, "code");
    if (oname[0]) {
      lua_pushstring(L, oname);
      lua_setfield(L, -2, "oserror");
    }
    lua_pushvalue(L, 3);
    lua_setfield(L, -2, "url");
    freexfer(L, x);
    return lua_error(L);
  }
  curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_getinfo(x->easy, CURLINFO_EFFECTIVE_URL, &url);
  curl_easy_getinfo(x->easy, CURLINFO_TOTAL_TIME, &total);
  curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &connects);
  s->requests++;
  if (connects == 0) s->reused++;
  s->bytes += (lua_Integer)x->body.n;
  lua_pushinteger(L, code);
  lua_pushlstring(L, x->head.p ? x->head.p : "", x->head.n);
  lua_pushlstring(L, x->body.p ? x->body.p : "", x->body.n);
  lua_pushstring(L, url ? url : lua_tostring(L, 3));
  lua_pushnumber(L, total);
  lua_pushboolean(L, connects == 0);
  x->t = NULL;
  if (x->stream) {  /* the body object takes the transfer over */
    body *b;
    lua_pushliteral(L, "");
    lua_replace(L, -5);  /* the body so far is read through b */
    b = (body *)lua_newuserdatauv(L, sizeof(body), 1);
    b->tag = AH_TAG_CURL + 1;
    b->x = x;
    x->started = 1;
    luaL_setmetatable(L, BODY_MT);
    lua_pushvalue(L, 1);  /* keep the session alive with its body */
    lua_setiuservalue(L, -2, 1);
    return 7;
  }
  freexfer(L, x);
  return 6;
}

/* {======================================================
** Streamed bodies
** ======================================================= */

static body *checkbody (lua_State *L) {
  body *b = (body *)ah_totagged(L, 1, AH_TAG_CURL + 1, body);
  if (b == NULL) luaL_typeerror(L, 1, "HTTP body");
  return b;
}

static void unbodyread (ah_sched *S, ah_task *t) {
  xfer *x = (xfer *)t->waitobj;
  (void)S;
  x->t = NULL;
}

static int bodyreadk (lua_State *L, int status, lua_KContext ctx);

/* read() -> the next chunk (what arrived), or nil at the end */
static int b_read (lua_State *L) {
  ah_sched *S = getsched(L);
  body *b = checkbody(L);
  xfer *x = b->x;
  ah_task *t;
  lua_settop(L, 1);
  if (x == NULL) { lua_pushnil(L); return 1; }
  if (x->body.n > 0) {
    lua_pushlstring(L, x->body.p, x->body.n);
    x->body.n = 0;
    if (x->paused && !x->done && x->s->multi) {  /* room again */
      x->paused = 0;
      curl_easy_pause(x->easy, CURLPAUSE_CONT);
    }
    return 1;
  }
  if (x->done || x->closed) {
    CURLcode r = x->result;
    int closed = x->closed;
    b->x = NULL;
    freexfer(L, x);
    if (closed) {
      ah_pusherror(L, "ConnectionError", "the HTTP session was closed");
      return lua_error(L);
    }
    if (r != CURLE_OK) {
      lua_pushfstring(L, "%s: %s (while reading the body)", curlcodename(r),
                      curl_easy_strerror(r));
      ah_pusherror(L, "ConnectionResetError", lua_tostring(L, -1));
      return lua_error(L);
    }
    lua_pushnil(L);
    return 1;
  }
  if (x->t != NULL)
    return luaL_error(L, "another task is already reading this body");
  t = ah_current(S, L, "read");
  if (!ah_wait(t, unbodyread, x, "an HTTP body")) x->t = t;
  return ah_suspend(L, bodyreadk, 0);
}

static int bodyreadk (lua_State *L, int status, lua_KContext ctx) {
  body *b = (body *)lua_touserdata(L, 1);
  (void)status; (void)ctx;
  if (b->x) b->x->t = NULL;
  ah_checkwake(L, getsched(L)->current);
  return b_read(L);
}

/* close(): stops the transfer (what was not read is dropped) */
static int b_close (lua_State *L) {
  body *b = (body *)lua_touserdata(L, 1);
  if (b->x != NULL) {
    xfer *x = b->x;
    b->x = NULL;
    x->t = NULL;
    freexfer(L, x);
  }
  return 0;
}

/* }====================================================== */

static long optlong (lua_State *L, int t, const char *k, long def) {
  long v = def;
  if (lua_getfield(L, t, k) != LUA_TNIL) v = (long)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

static double optnum (lua_State *L, int t, const char *k, double def) {
  double v = def;
  if (lua_getfield(L, t, k) != LUA_TNIL) v = (double)lua_tonumber(L, -1);
  lua_pop(L, 1);
  return v;
}

/* perform(method, url, headers (array of "Name: value"), body|nil, opts)
** -> status, raw headers, body, final url, seconds, reused */
static int s_perform (lua_State *L) {
  ah_sched *S = getsched(L);
  session *s = checksession(L);
  const char *method = luaL_checkstring(L, 2);
  const char *url = luaL_checkstring(L, 3);
  size_t blen = 0, k, nh;
  const char *body;
  xfer *x;
  ah_task *t;
  double timeout, ctimeout;
  luaL_checktype(L, 4, LUA_TTABLE);
  body = luaL_optlstring(L, 5, NULL, &blen);
  luaL_checktype(L, 6, LUA_TTABLE);
  lua_settop(L, 6);
  if (s->multi == NULL) return luaL_error(L, "attempt to use a closed session");
  t = ah_current(S, L, "request");
  if ((x = (xfer *)calloc(1, sizeof(xfer))) == NULL ||
      (x->easy = (s->nspare > 0) ? s->spare[--s->nspare]
                                 : curl_easy_init()) == NULL) {
    free(x);
    return luaL_error(L, "not enough memory");
  }
  x->s = s;
  x->bodyref = LUA_NOREF;
  nh = lua_rawlen(L, 4);
  for (k = 1; k <= nh; k++) {
    struct curl_slist *n;
    lua_rawgeti(L, 4, (lua_Integer)k);
    n = curl_slist_append(x->hdrs, lua_tostring(L, -1));
    lua_pop(L, 1);
    if (n != NULL) x->hdrs = n;
  }
  curl_easy_setopt(x->easy, CURLOPT_URL, url);
  curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
  curl_easy_setopt(x->easy, CURLOPT_ERRORBUFFER, x->errbuf);
  curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(x->easy, CURLOPT_OPENSOCKETFUNCTION, opensocket);
  curl_easy_setopt(x->easy, CURLOPT_OPENSOCKETDATA, x);
  curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, onbody);
  curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(x->easy, CURLOPT_HEADERFUNCTION, onheader);
  curl_easy_setopt(x->easy, CURLOPT_HEADERDATA, x);
  curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->hdrs);
  curl_easy_setopt(x->easy, CURLOPT_ACCEPT_ENCODING, "");
  if (strcmp(method, "HEAD") == 0)
    curl_easy_setopt(x->easy, CURLOPT_NOBODY, 1L);
  else if (strcmp(method, "GET") != 0 || body != NULL)
    curl_easy_setopt(x->easy, CURLOPT_CUSTOMREQUEST, method);
  if (body != NULL) {
    lua_pushvalue(L, 5);
    x->bodyref = luaL_ref(L, LUA_REGISTRYINDEX);
    curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)blen);
    curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, body);
  }
  timeout = optnum(L, 6, "timeout", 0);
  ctimeout = optnum(L, 6, "connect_timeout", 0);
  /* in whole ms, at least 1 (0 is none); 1e9 s and more (inf): none */
  if (timeout > 0 && timeout < 1e9)
    curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, (long)ceil(timeout * 1000));
  if (ctimeout > 0 && ctimeout < 1e9)
    curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)ceil(ctimeout * 1000));
  curl_easy_setopt(x->easy, CURLOPT_FOLLOWLOCATION,
                   optlong(L, 6, "follow", 1));
  curl_easy_setopt(x->easy, CURLOPT_MAXREDIRS, optlong(L, 6, "max_redirects", 10));
  if (!optlong(L, 6, "verify", 1)) {
    curl_easy_setopt(x->easy, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(x->easy, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  x->stream = (int)optlong(L, 6, "stream", 0);
  if (lua_getfield(L, 6, "user_agent") == LUA_TSTRING)
    curl_easy_setopt(x->easy, CURLOPT_USERAGENT, lua_tostring(L, -1));
  lua_pop(L, 1);
  if (ah_wait(t, unperform, x, "an HTTP request")) {  /* cancelled first */
    freexfer(L, x);
    return ah_suspend(L, performk, 0);  /* which raises CancelledError */
  }
  if (curl_multi_add_handle(s->multi, x->easy) != CURLM_OK) {
    t->unwait = NULL;
    freexfer(L, x);
    return luaL_error(L, "cannot start the HTTP request");
  }
  x->t = t;
  if (S->trace) ah_trace_detail(S, t, "%s %s", method, url);
  x->next = s->xfers;
  if (s->xfers) s->xfers->prev = x;
  s->xfers = x;
  if (s->selfref == LUA_NOREF) {  /* in flight: keep the session alive */
    lua_pushvalue(L, 1);
    s->selfref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  return ah_suspend(L, performk, (lua_KContext)x);
}

/* }====================================================== */


/* {======================================================
** Sessions
** ======================================================= */

static void freetimer (uv_handle_t *h) {
  free(h);
}

/* close(): aborts the transfers in flight (their tasks get an error) and
** closes the pooled connections. */
static int s_close (lua_State *L) {
  session *s = (session *)lua_touserdata(L, 1);
  xfer *x;
  if (s->multi == NULL) return 0;
  for (x = s->xfers; x != NULL; x = x->next) {
    x->closed = 1;
    if (x->easy) curl_multi_remove_handle(s->multi, x->easy);
    if (x->t != NULL) {
      ah_task *t = x->t;
      t->unwait = NULL;  /* woken by us, not cancelled */
      t->wake = AH_WAKE_OK;
      ah_ready(s->S, t);
    }
  }
  while (s->nspare > 0)
    curl_easy_cleanup(s->spare[--s->nspare]);
  curl_multi_cleanup(s->multi);  /* closes the sockets (REMOVE callbacks) */
  s->multi = NULL;
  if (s->timer) {
    s->timer->data = NULL;
    uv_close((uv_handle_t *)s->timer, freetimer);
    s->timer = NULL;
  }
  return 0;
}

/* Collected: only when the state closes (tasks waiting on transfers keep
** the session alive otherwise); nobody will take the transfers back. */
static int s_gc (lua_State *L) {
  session *s = (session *)lua_touserdata(L, 1);
  if (s->S->trace && s->multi != NULL)
    ah_trace_unclosed(L, s->S, 1);  /* debug mode: say it leaked */
  while (s->xfers != NULL) {
    s->xfers->t = NULL;
    freexfer(L, s->xfers);
  }
  return s_close(L);
}

static int s_stats (lua_State *L) {
  session *s = checksession(L);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, s->requests);
  lua_setfield(L, -2, "requests");
  lua_pushinteger(L, s->reused);
  lua_setfield(L, -2, "reused");
  lua_pushinteger(L, s->requests - s->reused);
  lua_setfield(L, -2, "connections");
  lua_pushinteger(L, s->bytes);
  lua_setfield(L, -2, "bytes");
  return 1;
}

/* session([max_connections], [max_per_host]) */
static int l_session (lua_State *L) {
  ah_sched *S = getsched(L);
  long maxc = (long)luaL_optinteger(L, 1, 0), maxh = (long)luaL_optinteger(L, 2, 0);
  session *s;
  needcurl(L);
  s = (session *)lua_newuserdatauv(L, sizeof(session), 0);
  memset(s, 0, sizeof(*s));
  s->tag = AH_TAG_CURL;
  s->S = S;
  s->selfref = LUA_NOREF;
  luaL_setmetatable(L, SESSION_MT);
  if ((s->multi = curl_multi_init()) == NULL ||
      (s->timer = (uv_timer_t *)malloc(sizeof(uv_timer_t))) == NULL)
    return luaL_error(L, "cannot create an HTTP session");
  uv_timer_init(S->loop, s->timer);
  s->timer->data = s;
  curl_multi_setopt(s->multi, CURLMOPT_SOCKETFUNCTION, onsocket);
  curl_multi_setopt(s->multi, CURLMOPT_SOCKETDATA, s);
  curl_multi_setopt(s->multi, CURLMOPT_TIMERFUNCTION, ontimeout);
  curl_multi_setopt(s->multi, CURLMOPT_TIMERDATA, s);
  if (maxc > 0) curl_multi_setopt(s->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, maxc);
  /* keep idle connections for reuse: curl's cache otherwise shrinks with
  ** the number of transfers in flight (one easy handle per request) */
  curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, maxc > 0 ? maxc : 128L);
  if (maxh > 0) curl_multi_setopt(s->multi, CURLMOPT_MAX_HOST_CONNECTIONS, maxh);
  if (S->trace)  /* debug mode: where it was made, if it leaks */
    ah_trace_track(L, S, -1, "HTTP session", 1);
  return 1;
}

/* }====================================================== */


static const luaL_Reg meth[] = {
  {"perform", s_perform},
  {"stats", s_stats},
  {"close", s_close},
  {NULL, NULL}
};

static const luaL_Reg metameth[] = {
  {"__close", s_close},
  {"__gc", s_gc},
  {NULL, NULL}
};

static const luaL_Reg bodymeth[] = {
  {"read", b_read},
  {"close", b_close},
  {NULL, NULL}
};

static const luaL_Reg bodymetameth[] = {
  {"__close", b_close},
  {"__gc", b_close},
  {NULL, NULL}
};

int luaopen_asynchost_core_curl (lua_State *L) {
  ah_sched *S = ah_sched_get(L);
  lua_getglobal(L, "require");  /* net ignores SIGPIPE; curl needs it too */
  lua_pushliteral(L, "asynchost.core.net");
  lua_call(L, 1, 0);
  ah_newclass(L, S, -1, SESSION_MT, meth, metameth);
  ah_newclass(L, S, -1, BODY_MT, bodymeth, bodymetameth);
  lua_newtable(L);
  lua_pushlightuserdata(L, S);
  lua_pushcclosure(L, l_session, 1);
  lua_setfield(L, -2, "session");
  return 1;
}

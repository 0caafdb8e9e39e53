/*
** asynchost.core.net: TCP streams, asyncio-streams style.  This file holds
** the stream object, reading, writing, closing, pipe streams and luaopen;
** connecting and servers are in netserver.c.
**
** A stream buffers what arrives (reading stops above a high-water mark:
** the peer is slowed down rather than our memory filled) and hands it out
** by read(n), readuntil(sep), readexactly(n) and readline().  write()
** queues data without waiting (the string itself is queued, no copy);
** drain() waits while more than a high-water mark is queued.
**
** The libuv handle lives in malloc'ed memory, freed by its close
** callback; the userdata points to it.  While writes (or a graceful
** close) are pending the userdata keeps itself alive with a registry ref,
** so their callbacks always find it.  At most one task waits on a
** stream's reads, and one on its drain.
*/
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include "asynchost.h"

#define HIWATER   (256 * 1024)  /* read buffer: stop reading above this */
#define CHUNK     (64 * 1024)   /* read buffer: room offered to libuv */
#define WHIWATER  (64 * 1024)   /* write queue: drain waits above this */
#define LIMIT     (64 * 1024)   /* readuntil: longest data without 'sep' */

enum { OP_READ, OP_READALL, OP_UNTIL, OP_EXACTLY, OP_LINE };

#define getsched(L)  ((ah_sched *)lua_touserdata(L, lua_upvalueindex(1)))

ah_stream *ah_tostream (lua_State *L, int i, int server) {
  ah_stream *s = (ah_stream *)ah_totagged(L, i, AH_TAG_NET, ah_stream);
  if (s == NULL || s->isserver != server)
    luaL_typeerror(L, i, server ? "server" : "stream");
  return s;
}

static ah_stream *checkopen (lua_State *L, int i) {
  ah_stream *s = ah_tostream(L, i, 0);
  if (s->h == NULL && !s->closing)
    luaL_error(L, "attempt to use a closed stream");
  return s;
}


/* {======================================================
** Errors
** ======================================================= */

/* Pushes a ConnectionError (or subclass) for libuv error 'err'. */
static void pushneterror (lua_State *L, int err, const char *host, int port) {
  const char *cls = "ConnectionError";
  if (err == UV_ECONNREFUSED) cls = "ConnectionRefusedError";
  else if (err == UV_ECONNRESET || err == UV_EPIPE) cls = "ConnectionResetError";
  else if (err == UV_EAI_NONAME || err == UV_EAI_AGAIN || err == UV_EAI_FAIL ||
           err == UV_EAI_NODATA)
    cls = "DNSError";
  if (host != NULL)
    lua_pushfstring(L, "%s: %s: %s:%d", uv_err_name(err), uv_strerror(err),
                    host, port);
  else
    lua_pushfstring(L, "%s: %s", uv_err_name(err), uv_strerror(err));
  ah_pusherror(L, cls, lua_tostring(L, -1));
  lua_remove(L, -2);
  lua_pushstring(L, uv_err_name(err));
  lua_setfield(L, -2, "code");
  if (host != NULL) {
    lua_pushstring(L, host);
    lua_setfield(L, -2, "host");
    lua_pushinteger(L, port);
    lua_setfield(L, -2, "port");
  }
}

int ah_raiseneterror (lua_State *L, int err, const char *host, int port) {
  pushneterror(L, err, host, port);
  return lua_error(L);
}

/* An error of stream 's', naming its peer. */
static int raisestreamerror (lua_State *L, ah_stream *s, int err) {
  return ah_raiseneterror(L, err, s->peerhost[0] ? s->peerhost : NULL,
                          s->peerport);
}

/* Remembers the peer's address, for the messages of later errors. */
void ah_notepeer (ah_stream *s) {
  struct sockaddr_storage a;
  int len = (int)sizeof(a);
  if (s->h == NULL || s->h->type != UV_TCP ||
      uv_tcp_getpeername((uv_tcp_t *)s->h, (struct sockaddr *)&a, &len) != 0)
    return;
  if (a.ss_family == AF_INET6) {
    uv_ip6_name((struct sockaddr_in6 *)&a, s->peerhost, sizeof(s->peerhost));
    s->peerport = ntohs(((struct sockaddr_in6 *)&a)->sin6_port);
  }
  else {
    uv_ip4_name((struct sockaddr_in *)&a, s->peerhost, sizeof(s->peerhost));
    s->peerport = ntohs(((struct sockaddr_in *)&a)->sin_port);
  }
}

/* }====================================================== */


/* {======================================================
** Handles and lifetime
** ======================================================= */

static void freehandle (uv_handle_t *h) {
  free(h);
}

void ah_holdstream (lua_State *L, ah_stream *s, int i) {
  if (s->pending++ == 0) {
    lua_pushvalue(L, i);
    s->selfref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
}

void ah_unholdstream (ah_stream *s) {
  if (--s->pending == 0) {
    luaL_unref(s->S->L, LUA_REGISTRYINDEX, s->selfref);
    s->selfref = LUA_NOREF;
  }
}

static void wakereader (ah_stream *s) {
  if (s->reader != NULL) {
    ah_task *t = s->reader;
    s->reader = NULL;
    ah_wake(t, AH_WAKE_OK);
  }
}

static void wakedrainer (ah_stream *s) {
  if (s->drainer != NULL) {
    ah_task *t = s->drainer;
    s->drainer = NULL;
    ah_wake(t, AH_WAKE_OK);
  }
}

/* Closes the handle now (pending writes are cancelled). */
static void closetimer (ah_stream *s) {
  if (s->rtimer != NULL) {
    s->rtimer->data = NULL;
    uv_close((uv_handle_t *)s->rtimer, freehandle);
    s->rtimer = NULL;
  }
}

void ah_closestream (ah_stream *s) {
  closetimer(s);
  if (s->h == NULL) return;
  s->h->data = NULL;  /* no callback reaches 's' from now on */
  uv_close((uv_handle_t *)s->h, freehandle);
  s->h = NULL;
  s->reading = 0;
  s->closing = 0;
  wakereader(s);
  wakedrainer(s);
}

int ah_streamgc (lua_State *L) {
  ah_stream *s = (ah_stream *)lua_touserdata(L, 1);
  if (s->S->trace && s->h != NULL && !s->closing)
    ah_trace_unclosed(L, s->S, 1);  /* debug mode: say it leaked */
  closetimer(s);
  if (s->h != NULL) {
    s->h->data = NULL;
    uv_close((uv_handle_t *)s->h, freehandle);
    s->h = NULL;
  }
  if (s->handlerref != LUA_NOREF && s->handlerref != 0)
    luaL_unref(L, LUA_REGISTRYINDEX, s->handlerref);
  free(s->buf);
  s->buf = NULL;
  return 0;
}

/* Pushes a new stream userdata, without a handle yet. */
static ah_stream *initstream (lua_State *L, ah_sched *S, int isserver) {
  ah_stream *s = (ah_stream *)lua_newuserdatauv(L, sizeof(ah_stream), 0);
  memset(s, 0, sizeof(*s));
  s->tag = AH_TAG_NET;
  s->isserver = isserver;
  s->S = S;
  s->selfref = s->handlerref = LUA_NOREF;
  s->timeout = -1;
  luaL_setmetatable(L, isserver ? AH_SERVER_MT : AH_STREAM_MT);
  return s;
}

/* Pushes a new stream userdata (not yet connected) with a fresh handle. */
ah_stream *ah_newstream (lua_State *L, ah_sched *S, int isserver) {
  ah_stream *s = initstream(L, S, isserver);
  uv_tcp_t *h = (uv_tcp_t *)malloc(sizeof(uv_tcp_t));
  if (h == NULL) luaL_error(L, "not enough memory");
  uv_tcp_init(S->loop, h);
  s->h = (uv_stream_t *)h;
  s->h->data = s;
  if (S->trace)  /* debug mode: where it was made, if it leaks */
    ah_trace_track(L, S, -1, isserver ? "TCP server" : "TCP stream", 1);
  return s;
}

/* Pushes a new stream on a fresh uv_pipe_t (for a child's stdio, given to
** uv_spawn) and returns that handle. */
uv_stream_t *ah_pushpipestream (lua_State *L, ah_sched *S) {
  ah_stream *s = initstream(L, S, 0);
  uv_pipe_t *h = (uv_pipe_t *)malloc(sizeof(uv_pipe_t));
  if (h == NULL) luaL_error(L, "not enough memory");
  uv_pipe_init(S->loop, h, 0);
  s->h = (uv_stream_t *)h;
  s->h->data = s;
  return s->h;
}

/* }====================================================== */


/* {======================================================
** Reading
** ======================================================= */

static void onalloc (uv_handle_t *h, size_t hint, uv_buf_t *b) {
  ah_stream *s = (ah_stream *)h->data;
  (void)hint;
  b->base = NULL;
  b->len = 0;
  if (s == NULL) return;
  if (s->off > 0 && s->off + s->len + CHUNK > s->cap) {  /* compact */
    memmove(s->buf, s->buf + s->off, s->len);
    s->off = 0;
  }
  if (s->off + s->len + CHUNK > s->cap) {
    size_t ncap = s->cap ? s->cap : CHUNK;
    char *nb;
    while (ncap < s->off + s->len + CHUNK) ncap *= 2;
    if ((nb = (char *)realloc(s->buf, ncap)) == NULL) return;  /* ENOBUFS */
    s->buf = nb;
    s->cap = ncap;
  }
  b->base = s->buf + s->off + s->len;
  b->len = s->cap - s->off - s->len;
}

static void onread (uv_stream_t *h, ssize_t n, const uv_buf_t *b) {
  ah_stream *s = (ah_stream *)h->data;
  (void)b;
  if (s == NULL || n == 0) return;
  if (n > 0) {
    s->len += (size_t)n;
    if (s->len >= HIWATER && !s->readall) {  /* slow reader: push back */
      uv_read_stop(h);
      s->reading = 0;
    }
  }
  else {
    if (n == UV_EOF) s->eof = 1;
    else s->rerr = (int)n;
    uv_read_stop(h);
    s->reading = 0;
  }
  wakereader(s);
}

/* Keeps data coming while the buffer is below the high-water mark. */
static void wantdata (ah_stream *s) {
  if (s->h != NULL && !s->reading && !s->eof && !s->rerr &&
      (s->len < HIWATER / 2 || s->readall)) {
    if (uv_read_start((uv_stream_t *)s->h, onalloc, onread) == 0)
      s->reading = 1;
  }
}

/* Pushes n bytes from the buffer and consumes them. */
static void take (lua_State *L, ah_stream *s, size_t n) {
  lua_pushlstring(L, s->buf + s->off, n);
  s->off += n;
  s->len -= n;
  if (s->len == 0) s->off = 0;
  wantdata(s);
}

static const char *findsep (ah_stream *s, const char *sep, size_t seplen) {
  const char *p = s->buf + s->off, *end = p + s->len;
  if (seplen == 0 || s->len < seplen) return NULL;
  while ((p = (const char *)memchr(p, sep[0], (size_t)(end - p) - seplen + 1))
         != NULL) {
    if (memcmp(p, sep, seplen) == 0) return p;
    p++;
    if ((size_t)(end - p) < seplen) break;
  }
  return NULL;
}

static void pushincomplete (lua_State *L, ah_stream *s, lua_Integer expected) {
  size_t got = s->len;
  if (expected >= 0)
    lua_pushfstring(L, "connection closed after %d of %d bytes", (int)got,
                    (int)expected);
  else
    lua_pushfstring(L, "connection closed after %d bytes, before the "
                    "separator", (int)got);
  ah_pusherror(L, "IncompleteReadError", lua_tostring(L, -1));
  lua_remove(L, -2);
  take(L, s, got);
  lua_setfield(L, -2, "partial");
  if (expected >= 0) {
    lua_pushinteger(L, expected);
    lua_setfield(L, -2, "expected");
  }
}

/* Tries to complete read operation 'op' (arguments at 2...) with what is
** buffered.  Returns the number of results, or -1 to wait for more. */
static int tryread (lua_State *L, ah_stream *s, int op) {
  size_t seplen;
  const char *sep, *at;
  if (s->rerr && s->len == 0)
    return raisestreamerror(L, s, s->rerr);
  switch (op) {
    case OP_READ: {
      lua_Integer n = luaL_checkinteger(L, 2);
      if (s->len > 0) {
        take(L, s, (size_t)n < s->len ? (size_t)n : s->len);
        return 1;
      }
      if (s->eof || s->h == NULL) { lua_pushnil(L); return 1; }
      return -1;
    }
    case OP_READALL:
      if (s->eof || s->h == NULL || s->rerr) {
        s->readall = 0;
        take(L, s, s->len);
        return 1;
      }
      s->readall = 1;  /* buffer it all: the end must come */
      return -1;
    case OP_EXACTLY: {
      lua_Integer n = luaL_checkinteger(L, 2);
      if ((lua_Integer)s->len >= n) { take(L, s, (size_t)n); return 1; }
      if (s->eof || s->h == NULL) {
        pushincomplete(L, s, n);
        return lua_error(L);
      }
      return -1;
    }
    default: {  /* OP_UNTIL, OP_LINE */
      sep = (op == OP_LINE) ? "\n" : luaL_checklstring(L, 2, &seplen);
      if (op == OP_LINE) seplen = 1;
      if ((at = findsep(s, sep, seplen)) != NULL) {
        take(L, s, (size_t)(at - (s->buf + s->off)) + seplen);
        return 1;
      }
      if (s->eof || s->h == NULL) {
        if (op == OP_LINE) {  /* the last line, or nil */
          if (s->len == 0) lua_pushnil(L); else take(L, s, s->len);
          return 1;
        }
        pushincomplete(L, s, -1);
        return lua_error(L);
      }
      if (s->len > LIMIT) {
        ah_pusherror(L, "LimitOverrunError", "separator not found in the "
                     "first 65536 bytes");
        return lua_error(L);
      }
      return -1;
    }
  }
}

static void onreadtimeout (uv_timer_t *tm) {
  ah_stream *s = (ah_stream *)tm->data;
  if (s == NULL || s->reader == NULL) return;
  s->timedout = 1;
  wakereader(s);
}

/* Starts the read timeout, if the stream has one, for a waiting read. */
static void armread (ah_stream *s) {
  if (s->timeout < 0) return;
  if (s->rtimer == NULL) {
    if ((s->rtimer = (uv_timer_t *)malloc(sizeof(uv_timer_t))) == NULL)
      return;
    uv_timer_init(s->S->loop, s->rtimer);
    s->rtimer->data = s;
  }
  uv_update_time(s->S->loop);
  uv_timer_start(s->rtimer, onreadtimeout,
                 (uint64_t)(s->timeout * 1000 + 0.999), 0);
}

static void disarmread (ah_stream *s) {
  if (s->rtimer != NULL) uv_timer_stop(s->rtimer);
}

static void unread (ah_sched *S, ah_task *t) {
  ah_stream *s = (ah_stream *)t->waitobj;
  (void)S;
  if (s->reader == t) s->reader = NULL;
  s->readall = 0;
  disarmread(s);
}

/* Raises TimeoutError if the read that just woke ran out of time. */
static void checktimeout (lua_State *L, ah_stream *s) {
  if (!s->timedout) return;
  s->timedout = 0;
  lua_pushfstring(L, "read timed out after %f s", s->timeout);
  ah_pusherror(L, "TimeoutError", lua_tostring(L, -1));
  lua_error(L);
}

static int readk (lua_State *L, int status, lua_KContext op) {
  ah_sched *S = getsched(L);
  ah_stream *s = (ah_stream *)lua_touserdata(L, 1);
  int n;
  (void)status;
  disarmread(s);
  if (s->timedout && ah_cancelpending(S->current)) s->timedout = 0;
  ah_checkwake(L, S->current);
  checktimeout(L, s);
  if ((n = tryread(L, s, (int)op)) >= 0) return n;
  if (s->rerr)  /* nothing more will come: the data is short */
    return raisestreamerror(L, s, s->rerr);
  if (s->reader != NULL)
    return luaL_error(L, "another task is already reading this stream");
  {
    ah_task *t = ah_current(S, L, "read");
    if (!ah_wait(t, unread, s, "a stream read")) s->reader = t;
  }
  wantdata(s);
  armread(s);
  return ah_suspend(L, readk, op);
}

static int startread (lua_State *L, int op, int nargs) {
  ah_stream *s = ah_tostream(L, 1, 0);
  int n;
  lua_settop(L, nargs + 1);
  if ((n = tryread(L, s, op)) >= 0) return n;
  if (s->rerr)  /* nothing more will come: the data is short */
    return raisestreamerror(L, s, s->rerr);
  if (s->reader != NULL)
    return luaL_error(L, "another task is already reading this stream");
  {
    ah_task *t = ah_current(getsched(L), L, "read");
    if (!ah_wait(t, unread, s, "a stream read")) s->reader = t;
  }
  wantdata(s);
  armread(s);
  return ah_suspend(L, readk, op);
}

/* read([n]): up to n bytes (at least 1), nil at the end; no n: everything
** until the end. */
static int s_read (lua_State *L) {
  if (lua_isnoneornil(L, 2)) return startread(L, OP_READALL, 0);
  luaL_argcheck(L, luaL_checkinteger(L, 2) > 0, 2, "positive integer expected");
  return startread(L, OP_READ, 1);
}

static int s_readexactly (lua_State *L) {
  ah_tostream(L, 1, 0);  /* 'stream.readexactly(42)' names the stream first */
  luaL_argcheck(L, luaL_checkinteger(L, 2) >= 0, 2,
                "non-negative integer expected");
  return startread(L, OP_EXACTLY, 1);
}

static int s_readuntil (lua_State *L) {
  size_t len;
  ah_tostream(L, 1, 0);
  luaL_checklstring(L, 2, &len);
  luaL_argcheck(L, len > 0, 2, "empty separator");
  return startread(L, OP_UNTIL, 1);
}

static int s_readline (lua_State *L) {
  return startread(L, OP_LINE, 0);
}

/* settimeout([seconds]): each later read waits at most that long, then
** raises TimeoutError (the stream stays usable); nil: no limit. */
static int s_settimeout (lua_State *L) {
  ah_stream *s = ah_tostream(L, 1, 0);
  if (lua_isnoneornil(L, 2)) s->timeout = -1;
  else {
    lua_Number t = luaL_checknumber(L, 2);
    luaL_argcheck(L, t >= 0, 2, "non-negative number expected");
    s->timeout = t > 1e9 ? 1e9 : (double)t;
  }
  return 0;
}

/* }====================================================== */


/* {======================================================
** Writing
** ======================================================= */

typedef struct wreq {
  uv_write_t req;
  ah_stream *s;
  int strref;  /* the string being written */
} wreq;

static void ondrained (ah_stream *s) {
  if (s->h != NULL &&
      uv_stream_get_write_queue_size((uv_stream_t *)s->h) <= WHIWATER / 2)
    wakedrainer(s);
}


static void onwrite (uv_write_t *req, int status) {
  wreq *w = (wreq *)req->data;
  ah_stream *s = w->s;
  luaL_unref(s->S->L, LUA_REGISTRYINDEX, w->strref);
  free(w);
  if (status < 0 && status != UV_ECANCELED && s->werr == 0)
    s->werr = status;
  if (s->drainer != NULL && (status < 0 || s->h == NULL)) wakedrainer(s);
  else ondrained(s);
  ah_unholdstream(s);
}

/* write(data): queues data; never waits (drain() does). */
static int s_write (lua_State *L) {
  ah_stream *s = checkopen(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  wreq *w;
  uv_buf_t b;
  int r;
  if (s->closing) return luaL_error(L, "attempt to write to a closing stream");
  if (s->werr) return raisestreamerror(L, s, s->werr);
  if (len == 0) return 0;
  if ((w = (wreq *)malloc(sizeof(wreq))) == NULL)
    return luaL_error(L, "not enough memory");
  w->s = s;
  w->req.data = w;
  lua_pushvalue(L, 2);
  w->strref = luaL_ref(L, LUA_REGISTRYINDEX);
  b = uv_buf_init((char *)data, (unsigned int)len);
  if ((r = uv_write(&w->req, (uv_stream_t *)s->h, &b, 1, onwrite)) < 0) {
    luaL_unref(L, LUA_REGISTRYINDEX, w->strref);
    free(w);
    return raisestreamerror(L, s, r);
  }
  ah_holdstream(L, s, 1);
  return 0;
}

static void undrain (ah_sched *S, ah_task *t) {
  ah_stream *s = (ah_stream *)t->waitobj;
  (void)S;
  if (s->drainer == t) s->drainer = NULL;
}

static int drainready (lua_State *L, ah_stream *s) {
  if (s->werr) return raisestreamerror(L, s, s->werr);
  return s->h == NULL ||
         uv_stream_get_write_queue_size((uv_stream_t *)s->h) <= WHIWATER;
}

static int draink (lua_State *L, int status, lua_KContext ctx) {
  ah_sched *S = getsched(L);
  ah_stream *s = (ah_stream *)lua_touserdata(L, 1);
  (void)status; (void)ctx;
  ah_checkwake(L, S->current);
  if (drainready(L, s)) return 0;
  {
    ah_task *t = ah_current(S, L, "drain");
    if (!ah_wait(t, undrain, s, "a stream drain")) s->drainer = t;
  }
  return ah_suspend(L, draink, 0);
}

/* drain(): waits while more than the high-water mark is queued. */
static int s_drain (lua_State *L) {
  ah_stream *s = ah_tostream(L, 1, 0);
  lua_settop(L, 1);
  if (drainready(L, s)) return 0;
  if (s->drainer != NULL)
    return luaL_error(L, "another task is already draining this stream");
  {
    ah_task *t = ah_current(getsched(L), L, "drain");
    if (!ah_wait(t, undrain, s, "a stream drain")) s->drainer = t;
  }
  return ah_suspend(L, draink, 0);
}

/* }====================================================== */


/* {======================================================
** Closing and addresses
** ======================================================= */

typedef struct sreq {
  uv_shutdown_t req;
  ah_stream *s;
} sreq;

static void onshutdown (uv_shutdown_t *req, int status) {
  sreq *r = (sreq *)req->data;
  ah_stream *s = r->s;
  (void)status;
  free(r);
  if (s->closing) ah_closestream(s);
  ah_unholdstream(s);
}

/* Sends what is queued, then the end of the stream (FIN). */
static int shutdownwrites (lua_State *L, ah_stream *s) {
  sreq *r = (sreq *)malloc(sizeof(sreq));
  if (r == NULL) return UV_ENOMEM;
  r->s = s;
  r->req.data = r;
  if (uv_shutdown(&r->req, (uv_stream_t *)s->h, onshutdown) < 0) {
    free(r);
    return -1;
  }
  ah_holdstream(L, s, 1);
  return 0;
}

/* close(): sends what was written, then closes; never waits. */
static int s_close (lua_State *L) {
  ah_stream *s = ah_tostream(L, 1, 0);
  if (s->h == NULL || s->closing) return 0;
  if (s->pending > 0 && !s->eof && shutdownwrites(L, s) == 0) {
    s->closing = 1;  /* closed by onshutdown */
    if (s->reading) { uv_read_stop((uv_stream_t *)s->h); s->reading = 0; }
    wakereader(s);
  }
  else
    ah_closestream(s);
  return 0;
}

/* reset(): closes at once with a RST (SO_LINGER 0), dropping what is
** queued: the peer's reads and writes fail with ECONNRESET. */
static int s_reset (lua_State *L) {
  ah_stream *s = ah_tostream(L, 1, 0);
  struct linger l;
  uv_os_fd_t fd;
  if (s->h == NULL) return 0;
  l.l_onoff = 1;
  l.l_linger = 0;
  if (uv_fileno((uv_handle_t *)s->h, &fd) == 0)
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  ah_closestream(s);
  return 0;
}

/* write_eof(): no more writes; the peer reads the end of the stream. */
static int s_writeeof (lua_State *L) {
  ah_stream *s = checkopen(L, 1);
  int r;
  if ((r = shutdownwrites(L, s)) < 0 && r != -1)
    return ah_raiseneterror(L, r, NULL, 0);
  return 0;
}

static int pushaddr (lua_State *L, const struct sockaddr_storage *a) {
  char host[64];
  int port;
  if (a->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)a;
    uv_ip6_name(a6, host, sizeof(host));
    port = ntohs(a6->sin6_port);
  }
  else {
    const struct sockaddr_in *a4 = (const struct sockaddr_in *)a;
    uv_ip4_name(a4, host, sizeof(host));
    port = ntohs(a4->sin_port);
  }
  lua_pushstring(L, host);
  lua_pushinteger(L, port);
  return 2;
}

int ah_streamaddr (lua_State *L, int server, int peer) {
  ah_stream *s = ah_tostream(L, 1, server);
  struct sockaddr_storage a;
  int len = (int)sizeof(a), r;
  if (s->h == NULL) return luaL_error(L, "attempt to use a closed %s",
                                      server ? "server" : "stream");
  if (s->h->type != UV_TCP) return 0;  /* a pipe has no address */
  r = peer ? uv_tcp_getpeername((uv_tcp_t *)s->h, (struct sockaddr *)&a, &len)
           : uv_tcp_getsockname((uv_tcp_t *)s->h, (struct sockaddr *)&a, &len);
  if (r < 0) return ah_raiseneterror(L, r, NULL, 0);
  return pushaddr(L, &a);
}

static int s_address (lua_State *L) { return ah_streamaddr(L, 0, 0); }
static int s_peer (lua_State *L) { return ah_streamaddr(L, 0, 1); }

static int s_tostring (lua_State *L) {
  ah_stream *s = ah_tostream(L, 1, 0);
  if (s->h == NULL)
    lua_pushliteral(L, "Stream (closed)");
  else
    lua_pushfstring(L, "Stream (%d bytes buffered%s)", (int)s->len,
                    s->eof ? ", at end" : "");
  return 1;
}

/* }====================================================== */


static const luaL_Reg streammeth[] = {
  {"read", s_read},
  {"readline", s_readline},
  {"readuntil", s_readuntil},
  {"readexactly", s_readexactly},
  {"settimeout", s_settimeout},
  {"write", s_write},
  {"drain", s_drain},
  {"write_eof", s_writeeof},
  {"close", s_close},
  {"reset", s_reset},
  {"address", s_address},
  {"peer", s_peer},
  {NULL, NULL}
};

static const luaL_Reg streammetameth[] = {
  {"__tostring", s_tostring},
  {"__close", s_close},
  {"__gc", ah_streamgc},
  {NULL, NULL}
};

/* A write to a socket whose peer has gone raises SIGPIPE, which kills the
** process unless ignored (libuv leaves that to the program; Node and
** Python ignore it): ignore it, unless the program has a handler, so the
** write fails with EPIPE and becomes a ConnectionResetError instead. */
static void ignoresigpipe (void) {
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    sigaction(SIGPIPE, &sa, NULL);
  }
}

int luaopen_asynchost_core_net (lua_State *L) {
  ah_sched *S = ah_sched_get(L);
  ignoresigpipe();
  ah_newclass(L, S, -1, AH_STREAM_MT, streammeth, streammetameth);
  lua_newtable(L);
  ah_openservers(L, S);  /* the Server class; connect and listen */
  return 1;
}

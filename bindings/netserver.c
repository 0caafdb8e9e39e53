/*
** asynchost.core.net, connecting and listening: connect() resolves the
** name (uv_getaddrinfo) and tries each address in turn until one
** connects; listen() binds a server whose accept loop runs the handler in
** a task of its own for each client.  Also the server's methods and the
** module's functions.  The stream object itself is in net.c.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "asynchost.h"

#define getsched(L)  ((ah_sched *)lua_touserdata(L, lua_upvalueindex(1)))


/* {======================================================
** Connecting
** ======================================================= */

typedef struct job {  /* a connect in progress, owned by the task's frame */
  uv_getaddrinfo_t gai;
  uv_connect_t conn;
  struct addrinfo *ai, *next;  /* addresses to try */
  ah_task *t;                  /* NULL once the task gave up */
  int status;
  int port;
  int refs;                    /* libuv requests in flight + the frame */
} job;

static void unjob (job *j) {
  if (--j->refs == 0) {
    if (j->ai) uv_freeaddrinfo(j->ai);
    free(j);
  }
}

static void ongai (uv_getaddrinfo_t *req, int status, struct addrinfo *ai) {
  job *j = (job *)req->data;
  j->ai = ai;  /* freed with the job */
  j->next = ai;
  j->status = status;
  if (j->t != NULL) ah_wake(j->t, AH_WAKE_OK);
  unjob(j);
}

static void onconnect (uv_connect_t *req, int status) {
  job *j = (job *)req->data;
  j->status = status;
  if (j->t != NULL) ah_wake(j->t, AH_WAKE_OK);
  unjob(j);
}

/* The task gave up (cancelled): libuv's callbacks will find no task. */
static void unconnect (ah_sched *S, ah_task *t) {
  job *j = (job *)t->waitobj;
  (void)S;
  j->t = NULL;
  uv_cancel((uv_req_t *)&j->gai);  /* if still queued; harmless else */
}

/* stack: host, port, job (lightuserdata), stream (once connecting) */
static int connectk (lua_State *L, int status, lua_KContext ctx);

static int trynext (lua_State *L, job *j) {
  ah_sched *S = getsched(L);
  const char *host = lua_tostring(L, 1);
  ah_task *t;
  ah_stream *s;
  int r;
  while (j->next != NULL && j->next->ai_family != AF_INET &&
         j->next->ai_family != AF_INET6)
    j->next = j->next->ai_next;
  if (j->next == NULL) {  /* no address left to try */
    int err = j->status < 0 ? j->status : UV_EAI_NONAME, port = j->port;
    unjob(j);
    return ah_raiseneterror(L, err, host, port);
  }
  lua_settop(L, 3);
  s = ah_newstream(L, S, 0);
  t = ah_current(S, L, "connect");
  if (ah_wait(t, unconnect, j, "a connection")) {
    return ah_suspend(L, connectk, 1);
  }
  j->conn.data = j;
  if ((r = uv_tcp_connect(&j->conn, (uv_tcp_t *)s->h, j->next->ai_addr,
                           onconnect)) < 0) {
    t->unwait = NULL;
    j->status = r;
    j->next = j->next->ai_next;
    ah_closestream(s);
    return trynext(L, j);
  }
  j->refs++;
  j->t = t;
  j->next = j->next->ai_next;
  return ah_suspend(L, connectk, 1);
}

/* ctx 0: the name is resolved; 1: a connection attempt ended */
static int connectk (lua_State *L, int status, lua_KContext ctx) {
  job *j = (job *)lua_touserdata(L, 3);
  ah_task *t = getsched(L)->current;
  (void)status;
  j->t = NULL;
  if (ah_cancelpending(t)) {  /* give up: the stream (if any) closes */
    if (lua_gettop(L) >= 4) ah_closestream((ah_stream *)lua_touserdata(L, 4));
    unjob(j);
    ah_checkwake(L, t);
  }
  ah_checkwake(L, t);
  if (ctx == 0) {
    if (j->status < 0) {
      int err = j->status, port = j->port;
      unjob(j);
      return ah_raiseneterror(L, err, lua_tostring(L, 1), port);
    }
    return trynext(L, j);
  }
  if (j->status == 0) {  /* connected */
    ah_stream *s = (ah_stream *)lua_touserdata(L, 4);
    /* as asyncio: small writes go out at once */
    uv_tcp_nodelay((uv_tcp_t *)s->h, 1);
    ah_notepeer(s);
    unjob(j);
    return 1;
  }
  ah_closestream((ah_stream *)lua_touserdata(L, 4));
  if (j->next == NULL) {
    int err = j->status;
    const char *host = lua_tostring(L, 1);
    int port = j->port;
    unjob(j);
    return ah_raiseneterror(L, err, host, port);
  }
  return trynext(L, j);
}

/* connect(host, port) -> stream */
static int l_connect (lua_State *L) {
  ah_sched *S = getsched(L);
  const char *host = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  char service[16];
  struct addrinfo hints;
  ah_task *t;
  job *j;
  int r;
  luaL_argcheck(L, port > 0 && port < 65536, 2, "port out of range");
  t = ah_current(S, L, "connect");
  lua_settop(L, 2);
  if ((j = (job *)calloc(1, sizeof(job))) == NULL)
    return luaL_error(L, "not enough memory");
  j->port = (int)port;
  j->refs = 1;  /* the frame's */
  lua_pushlightuserdata(L, j);
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  snprintf(service, sizeof(service), "%d", (int)port);
  if (ah_wait(t, unconnect, j, "a name lookup"))
    return ah_suspend(L, connectk, 0);
  j->gai.data = j;
  if ((r = uv_getaddrinfo(S->loop, &j->gai, ongai, host, service, &hints))
      < 0) {
    t->unwait = NULL;
    unjob(j);
    return ah_raiseneterror(L, r, host, (int)port);
  }
  j->refs++;
  j->t = t;
  return ah_suspend(L, connectk, 0);
}

/* }====================================================== */


/* {======================================================
** Servers
** ======================================================= */

static void onconnection (uv_stream_t *server, int status) {
  ah_stream *v = (ah_stream *)server->data;
  lua_State *L;
  ah_sched *S;
  ah_stream *s;
  int top;
  if (v == NULL) return;
  S = v->S;
  L = S->L;
  if (status < 0) {
    fprintf(stderr, "asynchost: a server could not accept a connection: "
            "%s\n", uv_strerror(status));
    return;
  }
  top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, v->handlerref);
  s = ah_newstream(L, S, 0);
  if (uv_accept(server, (uv_stream_t *)s->h) < 0) {
    ah_closestream(s);
    lua_settop(L, top);
    return;
  }
  /* as asyncio: small writes go out at once */
  uv_tcp_nodelay((uv_tcp_t *)s->h, 1);
  ah_notepeer(s);
  ah_spawn(S, L, top + 1, 1);  /* handler(stream), in a task of its own */
  lua_settop(L, top);
}

/* listen(handler, host, port, backlog) -> server */
static int l_listen (lua_State *L) {
  ah_sched *S = getsched(L);
  const char *host = luaL_checkstring(L, 2);
  lua_Integer port = luaL_checkinteger(L, 3);
  int backlog = (int)luaL_optinteger(L, 4, 511), r;
  struct addrinfo hints, *ai = NULL;
  uv_getaddrinfo_t req;
  char service[16];
  ah_stream *v;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_argcheck(L, port >= 0 && port < 65536, 3, "port out of range");
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  snprintf(service, sizeof(service), "%d", (int)port);
  /* synchronous: a server is set up once, and usually on a literal */
  if ((r = uv_getaddrinfo(S->loop, &req, NULL, host, service, &hints)) < 0)
    return ah_raiseneterror(L, r, host, (int)port);
  ai = req.addrinfo;
  v = ah_newstream(L, S, 1);
  if ((r = uv_tcp_bind((uv_tcp_t *)v->h, ai->ai_addr, 0)) < 0 ||
      (r = uv_listen((uv_stream_t *)v->h, backlog, onconnection)) < 0) {
    uv_freeaddrinfo(ai);
    ah_closestream(v);
    return ah_raiseneterror(L, r, host, (int)port);
  }
  uv_freeaddrinfo(ai);
  lua_pushvalue(L, 1);
  v->handlerref = luaL_ref(L, LUA_REGISTRYINDEX);
  ah_holdstream(L, v, lua_gettop(L));  /* a listening server stays alive */
  return 1;
}

/* server:close(): stops listening (connections go on) */
static int v_close (lua_State *L) {
  ah_stream *v = ah_tostream(L, 1, 1);
  if (v->h == NULL) return 0;
  ah_closestream(v);
  ah_unholdstream(v);
  return 0;
}

static int v_address (lua_State *L) { return ah_streamaddr(L, 1, 0); }

static int v_tostring (lua_State *L) {
  ah_stream *v = ah_tostream(L, 1, 1);
  lua_pushstring(L, v->h ? "Server (listening)" : "Server (closed)");
  return 1;
}

/* }====================================================== */


static const luaL_Reg servermeth[] = {
  {"close", v_close},
  {"address", v_address},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"connect", l_connect},
  {"listen", l_listen},
  {NULL, NULL}
};

static const luaL_Reg servermetameth[] = {
  {"__tostring", v_tostring},
  {"__close", v_close},
  {"__gc", ah_streamgc},
  {NULL, NULL}
};

/* Makes the Server class and sets connect and listen in the table on top
** (the module's, made by luaopen_asynchost_core_net). */
void ah_openservers (lua_State *L, ah_sched *S) {
  ah_newclass(L, S, -1, AH_SERVER_MT, servermeth, servermetameth);
  lua_pushlightuserdata(L, S);
  luaL_setfuncs(L, funcs, 1);
}

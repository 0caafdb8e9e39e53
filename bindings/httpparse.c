/*
** asynchost.core.http: HTTP/1.1 requests from bytes, with http-parser
** (nodejs/http-parser, Debian's libhttp-parser).
**
**   local p = core.parser(max_header, max_body)
**   local err = p:feed(data)     -- nil, or why the stream is not HTTP
**   local req = p:take()         -- a complete request, or nil
**
** A request is {method, target, version, headers = {lowercased name =
** value, repeated ones joined by ", "}, header_list = {{name, value}...},
** body, keep_alive, upgrade}.  Chunked bodies arrive decoded.  Pipelined
** requests are queued in order.  Past 'max_header' bytes of request line
** and headers, or 'max_body' bytes of body, feed() fails (413/431 cases).
*/
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include <http_parser.h>
#include "asynchost.h"

#define PARSER_MT  "asynchost.HttpParser"

typedef struct buf {
  char *p;
  size_t n, cap;
} buf;

typedef struct hparser {
  unsigned int tag;          /* AH_TAG_HTTP */
  http_parser p;
  lua_State *L;              /* during feed(): the state table is at 'st' */
  int st;
  int inmsg;                 /* a request has begun and not ended */
  int lastvalue;             /* the last header piece was a value */
  int err;                   /* ERR_* of ours, or 0 */
  size_t headerbytes, maxheader, maxbody;
  buf url, field, value, body;
} hparser;

enum { ERR_NONE, ERR_HEADER, ERR_BODY, ERR_MEM };

static int append (buf *b, const char *s, size_t n) {
  if (b->n + n > b->cap) {
    size_t ncap = b->cap ? b->cap : 256;
    char *np;
    while (ncap < b->n + n) ncap *= 2;
    if ((np = (char *)realloc(b->p, ncap)) == NULL) return -1;
    b->p = np;
    b->cap = ncap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  return 0;
}

static hparser *self (http_parser *p) {
  return (hparser *)((char *)p - offsetof(hparser, p));
}

/* stack at 'st': state table {cur = request being built, done = {...}} */
static void pushcur (hparser *h) {
  lua_getfield(h->L, h->st, "cur");
}

static int counthead (hparser *h, size_t n) {
  h->headerbytes += n;
  if (h->headerbytes > h->maxheader) { h->err = ERR_HEADER; return 1; }
  return 0;
}

/* A complete header (field and value) is in the buffers: store it. */
static void flushheader (hparser *h) {
  lua_State *L = h->L;
  size_t k;
  if (h->field.n == 0) return;
  pushcur(h);
  lua_getfield(L, -1, "header_list");
  lua_createtable(L, 2, 0);
  lua_pushlstring(L, h->field.p, h->field.n);
  lua_rawseti(L, -2, 1);
  lua_pushlstring(L, h->value.p ? h->value.p : "", h->value.n);
  lua_rawseti(L, -2, 2);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  lua_pop(L, 1);
  lua_getfield(L, -1, "headers");
  for (k = 0; k < h->field.n; k++)
    h->field.p[k] = (char)tolower((unsigned char)h->field.p[k]);
  lua_pushlstring(L, h->field.p, h->field.n);
  if (lua_rawget(L, -2) == LUA_TSTRING) {  /* repeated: join */
    lua_pushliteral(L, ", ");
    lua_pushlstring(L, h->value.p ? h->value.p : "", h->value.n);
    lua_concat(L, 3);
  }
  else {
    lua_pop(L, 1);
    lua_pushlstring(L, h->value.p ? h->value.p : "", h->value.n);
  }
  lua_pushlstring(L, h->field.p, h->field.n);
  lua_insert(L, -2);
  lua_rawset(L, -3);
  lua_pop(L, 2);
  h->field.n = h->value.n = 0;
}

static int onbegin (http_parser *p) {
  hparser *h = self(p);
  lua_State *L = h->L;
  h->inmsg = 1;
  h->headerbytes = 0;
  h->url.n = h->field.n = h->value.n = h->body.n = 0;
  h->lastvalue = 0;
  lua_createtable(L, 0, 8);
  lua_newtable(L);
  lua_setfield(L, -2, "headers");
  lua_newtable(L);
  lua_setfield(L, -2, "header_list");
  lua_setfield(L, h->st, "cur");
  return 0;
}

static int onurl (http_parser *p, const char *at, size_t n) {
  hparser *h = self(p);
  if (counthead(h, n)) return 1;
  if (append(&h->url, at, n)) { h->err = ERR_MEM; return 1; }
  return 0;
}

static int onfield (http_parser *p, const char *at, size_t n) {
  hparser *h = self(p);
  if (counthead(h, n)) return 1;
  if (h->lastvalue) { flushheader(h); h->lastvalue = 0; }
  if (append(&h->field, at, n)) { h->err = ERR_MEM; return 1; }
  return 0;
}

static int onvalue (http_parser *p, const char *at, size_t n) {
  hparser *h = self(p);
  if (counthead(h, n)) return 1;
  h->lastvalue = 1;
  if (append(&h->value, at, n)) { h->err = ERR_MEM; return 1; }
  return 0;
}

static int onheaders (http_parser *p) {
  hparser *h = self(p);
  lua_State *L = h->L;
  flushheader(h);
  pushcur(h);
  lua_pushstring(L, http_method_str((enum http_method)p->method));
  lua_setfield(L, -2, "method");
  lua_pushlstring(L, h->url.p ? h->url.p : "", h->url.n);
  lua_setfield(L, -2, "target");
  lua_pushfstring(L, "%d.%d", (int)p->http_major, (int)p->http_minor);
  lua_setfield(L, -2, "version");
  lua_pushboolean(L, http_should_keep_alive(p));
  lua_setfield(L, -2, "keep_alive");
  lua_pop(L, 1);
  if (p->content_length != (uint64_t)-1 && p->content_length > h->maxbody) {
    h->err = ERR_BODY;  /* refuse before reading it */
    return -1;
  }
  return 0;
}

static int onbody (http_parser *p, const char *at, size_t n) {
  hparser *h = self(p);
  if (h->body.n + n > h->maxbody) { h->err = ERR_BODY; return 1; }
  if (append(&h->body, at, n)) { h->err = ERR_MEM; return 1; }
  return 0;
}

static int oncomplete (http_parser *p) {
  hparser *h = self(p);
  lua_State *L = h->L;
  pushcur(h);
  lua_pushlstring(L, h->body.p ? h->body.p : "", h->body.n);
  lua_setfield(L, -2, "body");
  lua_pushboolean(L, p->upgrade);
  lua_setfield(L, -2, "upgrade");
  lua_getfield(L, h->st, "done");
  lua_insert(L, -2);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  lua_pop(L, 1);
  lua_pushnil(L);
  lua_setfield(L, h->st, "cur");
  h->inmsg = 0;
  h->body.n = 0;
  return 0;
}

static const http_parser_settings settings = {
  onbegin, onurl, NULL, onfield, onvalue, onheaders, onbody, oncomplete,
  NULL, NULL
};

static hparser *checkparser (lua_State *L) {
  hparser *h = (hparser *)ah_totagged(L, 1, AH_TAG_HTTP, hparser);
  if (h == NULL) luaL_typeerror(L, 1, "HTTP parser");
  return h;
}

/* feed(data) -> nil, or the reason the bytes are not acceptable HTTP:
** "header too large", "body too large", or http-parser's error name. */
static int p_feed (lua_State *L) {
  hparser *h = checkparser(L);
  size_t len, n;
  const char *data = luaL_checklstring(L, 2, &len);
  lua_settop(L, 2);
  if (h->err != ERR_NONE || HTTP_PARSER_ERRNO(&h->p) != HPE_OK) {
    lua_pushliteral(L, "parser already failed");
    return 1;
  }
  lua_getiuservalue(L, 1, 1);
  h->L = L;
  h->st = 3;
  n = http_parser_execute(&h->p, &settings, data, len);
  h->L = NULL;
  if (h->err == ERR_HEADER) lua_pushliteral(L, "header too large");
  else if (h->err == ERR_BODY) lua_pushliteral(L, "body too large");
  else if (h->err == ERR_MEM) lua_pushliteral(L, "not enough memory");
  else if (HTTP_PARSER_ERRNO(&h->p) != HPE_OK)
    lua_pushstring(L, http_errno_name(HTTP_PARSER_ERRNO(&h->p)));
  else if (n != len && !h->p.upgrade)
    lua_pushliteral(L, "unparsed bytes");
  else
    return 0;
  return 1;
}

/* take() -> the oldest complete request, or nil */
static int p_take (lua_State *L) {
  lua_Integer n, i;
  checkparser(L);
  lua_getiuservalue(L, 1, 1);
  lua_getfield(L, -1, "done");
  n = (lua_Integer)lua_rawlen(L, -1);
  if (n == 0) { lua_pushnil(L); return 1; }
  lua_rawgeti(L, -1, 1);
  for (i = 1; i < n; i++) {  /* pipelined requests are few: shift them */
    lua_rawgeti(L, -2, i + 1);
    lua_rawseti(L, -3, i);
  }
  lua_pushnil(L);
  lua_rawseti(L, -3, n);
  return 1;
}

/* busy() -> is a request partly received? */
static int p_busy (lua_State *L) {
  lua_pushboolean(L, checkparser(L)->inmsg);
  return 1;
}

static int p_gc (lua_State *L) {
  hparser *h = (hparser *)lua_touserdata(L, 1);
  free(h->url.p); free(h->field.p); free(h->value.p); free(h->body.p);
  memset(&h->url, 0, 4 * sizeof(buf));
  return 0;
}

/* parser([max_header = 16 KiB], [max_body = 1 MiB]) */
static int l_parser (lua_State *L) {
  lua_Integer mh = luaL_optinteger(L, 1, 16 * 1024);
  lua_Integer mb = luaL_optinteger(L, 2, 1024 * 1024);
  hparser *h;
  luaL_argcheck(L, mh > 0, 1, "positive integer expected");
  luaL_argcheck(L, mb >= 0, 2, "non-negative integer expected");
  h = (hparser *)lua_newuserdatauv(L, sizeof(hparser), 1);
  memset(h, 0, sizeof(*h));
  h->tag = AH_TAG_HTTP;
  h->maxheader = (size_t)mh;
  h->maxbody = (size_t)mb;
  http_parser_init(&h->p, HTTP_REQUEST);
  luaL_setmetatable(L, PARSER_MT);
  lua_createtable(L, 0, 3);
  lua_newtable(L);
  lua_setfield(L, -2, "done");
  lua_setiuservalue(L, -2, 1);
  return 1;
}

static const luaL_Reg meth[] = {
  {"feed", p_feed},
  {"take", p_take},
  {"busy", p_busy},
  {NULL, NULL}
};

int luaopen_asynchost_core_http (lua_State *L) {
  luaL_newmetatable(L, PARSER_MT);
  luaL_newlib(L, meth);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, p_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushcfunction(L, l_parser);
  lua_setfield(L, -2, "parser");
  return 1;
}

/*
** Marshalling: the plain values that travel between a Lua state and a
** worker's (nil, booleans, integers, floats, strings, tables of those) as
** bytes, and back.  A message is a sequence of values, each a tag byte:
**
**   'N' nil   'F' false   'T' true
**   'I' 8 bytes of lua_Integer    'D' 8 bytes of lua_Number (NaN, inf)
**   'S' size, bytes               (binary-safe)
**   '{' na, nh, then na values (keys 1..na), then nh key-value pairs
**   'R' k                         the k-th table of the message (0-based)
**
** Sizes are unsigned LEB128.  Tables are numbered in the order they start,
** so a table met twice (shared, or a cycle) is sent once and referred to
** after: the copy has the same shape.  A table with a metatable, and
** functions, userdata and threads are refused; so is nesting deeper than
** MAXDEPTH.  Both sides are one process: numbers keep the native layout.
** The decoder trusts nothing (tests/fuzz_marshal.c feeds it anything).
*/
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "lauxlib.h"
#include "asynchost.h"

#define MAXDEPTH  100

int ah_mbuf_add (ah_mbuf *b, const void *s, size_t n) {
  if (b->cap - b->n < n) {
    size_t ncap = b->cap ? b->cap : 64;
    char *np;
    while (ncap - b->n < n) {
      if (ncap > ((size_t)-1) / 2) return 0;
      ncap *= 2;
    }
    if ((np = (char *)realloc(b->p, ncap)) == NULL) return 0;
    b->p = np;
    b->cap = ncap;
  }
  if (n > 0) memcpy(b->p + b->n, s, n);
  b->n += n;
  return 1;
}

void ah_mbuf_free (ah_mbuf *b) {
  free(b->p);
  b->p = NULL;
  b->n = b->cap = 0;
}


/* {======================================================
** Encoding
** ======================================================= */

typedef struct enc {
  lua_State *L;
  ah_mbuf *b;
  int how;                  /* AH_ENC_* */
  int first, pos;           /* index of the first value, of the current */
  int seen;                 /* stack index of table -> number, or 0 */
  lua_Integer ntables;
  int depth;
  int key[MAXDEPTH];        /* stack index of each level's key, -1 when
                               the key itself is encoded, or 0 ... */
  lua_Integer ikey[MAXDEPTH];  /* ... for an array item: its index */
} enc;

static void put (enc *e, const void *s, size_t n) {
  if (!ah_mbuf_add(e->b, s, n))
    luaL_error(e->L, "not enough memory");
}

static void puttag (enc *e, char tag) {
  put(e, &tag, 1);
}

static void putsize (enc *e, lua_Unsigned n) {
  unsigned char buf[10];
  int k = 0;
  do {
    buf[k++] = (unsigned char)((n & 0x7f) | (n > 0x7f ? 0x80 : 0));
    n >>= 7;
  } while (n > 0);
  put(e, buf, (size_t)k);
}

/* Pushes where the refused value is: "", ".a[2].b", ".a<key>". */
static void pushpath (enc *e) {
  lua_State *L = e->L;
  luaL_Buffer B;
  int d;
  luaL_buffinit(L, &B);
  for (d = 0; d < e->depth; d++) {
    int k = e->key[d];
    if (k < 0)  /* a key itself */
      lua_pushliteral(L, "<key>");
    else if (k == 0)
      lua_pushfstring(L, "[%I]", e->ikey[d]);
    else if (lua_type(L, k) == LUA_TSTRING) {
      size_t len;
      const char *s = lua_tolstring(L, k, &len), *c;
      int ident = (len > 0 && !(*s >= '0' && *s <= '9'));
      for (c = s; c < s + len && ident; c++)
        ident = (*c == '_' || (*c >= 'a' && *c <= 'z') ||
                 (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9'));
      lua_pushfstring(L, ident ? ".%s" : "[\"%s\"]", s);
    }
    else if (lua_type(L, k) == LUA_TNUMBER || lua_type(L, k) == LUA_TBOOLEAN) {
      lua_pushfstring(L, "[%s]", luaL_tolstring(L, k, NULL));
      lua_remove(L, -2);
    }
    else
      lua_pushfstring(L, "[%s]", luaL_typename(L, k));
    luaL_addvalue(&B);
  }
  luaL_pushresult(&B);
}

/* Raises the error for a value that cannot travel: 'what' it is. */
static void refuse (enc *e, const char *what) {
  lua_State *L = e->L;
  const char *where;
  pushpath(e);
  where = lua_tostring(L, -1);
  if (e->how == AH_ENC_ARGS) {
    lua_pushfstring(L, "cannot pass %s%s%s to a worker thread", what,
                    *where ? " at " : "", where);
    luaL_argerror(L, e->pos, lua_tostring(L, -1));
  }
  luaL_error(L, "cannot return %s%s%s from a worker thread (result #%d)",
             what, *where ? " at " : "", where, e->pos - e->first + 1);
}

static void encvalue (enc *e, int i);

static int isarraykey (lua_State *L, int i, lua_Unsigned na) {
  return lua_isinteger(L, i) &&
         (lua_Unsigned)lua_tointeger(L, i) - 1 < na;
}

static void enctable (enc *e, int i) {
  lua_State *L = e->L;
  lua_Unsigned na, nh = 0, k;
  int top = lua_gettop(L);
  if ((e->how != AH_ENC_LENIENT || e->depth > 0) && lua_getmetatable(L, i)) {
    lua_pop(L, 1);
    refuse(e, "a table with a metatable");
  }
  if (e->seen == 0) {  /* the first table: say how to find it again */
    lua_newtable(L);
    e->seen = ++top;
  }
  lua_pushvalue(L, i);
  if (lua_rawget(L, e->seen) == LUA_TNUMBER) {  /* met before */
    puttag(e, 'R');
    putsize(e, (lua_Unsigned)lua_tointeger(L, -1));
    lua_settop(L, top);
    return;
  }
  lua_pop(L, 1);
  if (e->depth >= MAXDEPTH)
    refuse(e, "tables nested more than 100 levels deep");
  luaL_checkstack(L, 6, "tables nested too deep");
  lua_pushvalue(L, i);
  lua_pushinteger(L, e->ntables++);
  lua_rawset(L, e->seen);
  na = (lua_Unsigned)lua_rawlen(L, i);
  lua_pushnil(L);
  while (lua_next(L, i)) {
    lua_pop(L, 1);
    if (!isarraykey(L, -1, na)) nh++;
  }
  puttag(e, '{');
  putsize(e, na);
  putsize(e, nh);
  e->depth++;
  for (k = 1; k <= na; k++) {
    e->key[e->depth - 1] = 0;
    e->ikey[e->depth - 1] = (lua_Integer)k;
    lua_rawgeti(L, i, (lua_Integer)k);
    encvalue(e, top + 1);
    lua_pop(L, 1);
  }
  lua_pushnil(L);
  while (lua_next(L, i)) {  /* key at top + 1, value at top + 2 */
    if (!isarraykey(L, top + 1, na)) {
      e->key[e->depth - 1] = -1;
      encvalue(e, top + 1);
      e->key[e->depth - 1] = top + 1;
      encvalue(e, top + 2);
    }
    lua_pop(L, 1);
  }
  e->depth--;
  lua_settop(L, top);
}

static void encvalue (enc *e, int i) {
  lua_State *L = e->L;
  switch (lua_type(L, i)) {
    case LUA_TNIL: puttag(e, 'N'); break;
    case LUA_TBOOLEAN: puttag(e, lua_toboolean(L, i) ? 'T' : 'F'); break;
    case LUA_TNUMBER:
      if (lua_isinteger(L, i)) {
        lua_Integer v = lua_tointeger(L, i);
        puttag(e, 'I');
        put(e, &v, sizeof(v));
      }
      else {
        lua_Number v = lua_tonumber(L, i);
        puttag(e, 'D');
        put(e, &v, sizeof(v));
      }
      break;
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, i, &len);
      puttag(e, 'S');
      putsize(e, (lua_Unsigned)len);
      put(e, s, len);
      break;
    }
    case LUA_TTABLE: enctable(e, i); break;
    case LUA_TFUNCTION: refuse(e, "a function"); break;
    case LUA_TTHREAD: refuse(e, "a coroutine"); break;
    default: refuse(e, "a userdata"); break;
  }
}

/* Appends the 'n' values from index 'first' to 'b'; raises (the buffer
** then holds part of them) if one cannot travel. */
void ah_encode (lua_State *L, int first, int n, ah_mbuf *b, int how) {
  enc e;
  int top = lua_gettop(L), k;
  e.L = L;
  e.b = b;
  e.how = how;
  e.first = first = lua_absindex(L, first);
  e.seen = 0;
  e.ntables = 0;
  e.depth = 0;
  for (k = 0; k < n; k++) {
    e.pos = first + k;
    encvalue(&e, first + k);
  }
  lua_settop(L, top);
}

/* }====================================================== */


/* {======================================================
** Decoding
** ======================================================= */

typedef struct dec {
  lua_State *L;
  const unsigned char *p, *end;
  int tables;               /* stack index of the tables met, or 0 */
  lua_Integer ntables;
  int depth;
} dec;

static void corrupt (dec *d, const char *why) {
  luaL_error(d->L, "corrupt marshalled data (%s)", why);
}

static lua_Unsigned getsize (dec *d) {
  lua_Unsigned n = 0;
  int shift = 0;
  for (;;) {
    unsigned char c;
    if (d->p >= d->end) corrupt(d, "truncated");
    c = *d->p++;
    if (shift == 63 && (c & 0x7e)) corrupt(d, "size too large");
    n |= (lua_Unsigned)(c & 0x7f) << shift;
    if (!(c & 0x80)) return n;
    if ((shift += 7) > 63) corrupt(d, "size too large");
  }
}

static void need (dec *d, lua_Unsigned n) {
  if ((lua_Unsigned)(d->end - d->p) < n) corrupt(d, "truncated");
}

static void decvalue (dec *d);

/* A size hint for lua_createtable: no more than the items left could
** fill (each takes a byte at least). */
static int hint (dec *d, lua_Unsigned n, int per) {
  lua_Unsigned left = (lua_Unsigned)(d->end - d->p) / (lua_Unsigned)per;
  if (n > left) n = left;
  return n > (1u << 24) ? (1 << 24) : (int)n;
}

static void dectable (dec *d) {
  lua_State *L = d->L;
  lua_Unsigned na = getsize(d), nh = getsize(d), k;
  if (d->depth >= MAXDEPTH) corrupt(d, "tables nested too deep");
  luaL_checkstack(L, 4, "tables nested too deep");
  lua_createtable(L, hint(d, na, 1), hint(d, nh, 2));
  lua_pushvalue(L, -1);
  lua_rawseti(L, d->tables, ++d->ntables);
  d->depth++;
  for (k = 1; k <= na; k++) {
    decvalue(d);
    lua_rawseti(L, -2, (lua_Integer)k);
  }
  for (k = 0; k < nh; k++) {
    decvalue(d);
    if (lua_isnil(L, -1)) corrupt(d, "nil key");
    if (lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1) &&
        isnan(lua_tonumber(L, -1)))
      corrupt(d, "NaN key");
    decvalue(d);
    lua_rawset(L, -3);
  }
  d->depth--;
}

static void decvalue (dec *d) {
  lua_State *L = d->L;
  if (d->p >= d->end) corrupt(d, "truncated");
  switch (*d->p++) {
    case 'N': lua_pushnil(L); break;
    case 'F': lua_pushboolean(L, 0); break;
    case 'T': lua_pushboolean(L, 1); break;
    case 'I': {
      lua_Integer v;
      need(d, sizeof(v));
      memcpy(&v, d->p, sizeof(v));
      d->p += sizeof(v);
      lua_pushinteger(L, v);
      break;
    }
    case 'D': {
      lua_Number v;
      need(d, sizeof(v));
      memcpy(&v, d->p, sizeof(v));
      d->p += sizeof(v);
      lua_pushnumber(L, v);
      break;
    }
    case 'S': {
      lua_Unsigned len = getsize(d);
      need(d, len);
      lua_pushlstring(L, (const char *)d->p, (size_t)len);
      d->p += len;
      break;
    }
    case '{':
      if (d->tables == 0) corrupt(d, "unexpected table");
      dectable(d);
      break;
    case 'R': {
      lua_Unsigned k = getsize(d);
      if (k >= (lua_Unsigned)d->ntables) corrupt(d, "bad table reference");
      lua_rawgeti(L, d->tables, (lua_Integer)k + 1);
      break;
    }
    default: corrupt(d, "unknown tag");
  }
}

/* Pushes the values of the message p[0 .. len) and returns their number;
** raises if the bytes are not such a message. */
int ah_decode (lua_State *L, const char *p, size_t len) {
  dec d;
  int n = 0;
  if (len == 0) return 0;  /* and 'p' may be NULL */
  d.L = L;
  d.p = (const unsigned char *)p;
  d.end = d.p + len;
  d.tables = 0;
  d.ntables = 0;
  d.depth = 0;
  if (memchr(p, '{', len) != NULL) {  /* tables are numbered */
    lua_newtable(L);
    d.tables = lua_gettop(L);
  }
  while (d.p < d.end) {
    luaL_checkstack(L, 2, "too many values");
    decvalue(&d);
    n++;
  }
  if (d.tables) lua_remove(L, d.tables);
  return n;
}

/* }====================================================== */

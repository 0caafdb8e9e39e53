/*
** libFuzzer target for the value marshalling of async.to_thread
** (bindings/marshal.c): arbitrary bytes go through the decoder, which must
** refuse them with a Lua error or give values; whatever it gives must
** encode again, and decode to the same shape (types, integer or float,
** NaN, the bytes of strings, shared tables and cycles).  Built with clang
** (-fsanitize=fuzzer,address,undefined) when ASYNCHOST_FUZZ is on:
**
**   build-fuzz/fuzz_marshal -max_total_time=15 tests/fuzz/marshal  (test run)
**   build-fuzz/fuzz_marshal -jobs=2 tests/fuzz/marshal             (by hand)
*/
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"
#include "asynchost.h"

static lua_State *L;

static int same (lua_State *L, int a, int b, int map);

/* Are tables a and b the same shape?  'map' pairs the tables of the
** first message with the second's. */
static int sametable (lua_State *L, int a, int b, int map) {
  int na = 0, nb = 0, ok = 1;
  lua_pushvalue(L, a);
  if (lua_rawget(L, map) != LUA_TNIL) {  /* paired already */
    ok = lua_rawequal(L, -1, b);
    lua_pop(L, 1);
    return ok;
  }
  lua_pop(L, 1);
  lua_pushvalue(L, a);
  lua_pushvalue(L, b);
  lua_rawset(L, map);
  luaL_checkstack(L, 6, "too deep");
  lua_pushnil(L);
  while (ok && lua_next(L, a)) {  /* key at -2, value at -1 */
    na++;
    if (lua_type(L, -2) != LUA_TTABLE) {  /* table keys: counted only */
      int top = lua_gettop(L);
      lua_pushvalue(L, -2);
      lua_rawget(L, b);
      ok = !lua_isnil(L, -1) && same(L, top, top + 1, map);
      lua_settop(L, top);
    }
    lua_pop(L, 1);
  }
  if (!ok) { lua_pop(L, 1); return 0; }
  lua_pushnil(L);
  while (lua_next(L, b)) { nb++; lua_pop(L, 1); }
  return na == nb;
}

static int same (lua_State *L, int a, int b, int map) {
  if (lua_type(L, a) != lua_type(L, b)) return 0;
  switch (lua_type(L, a)) {
    case LUA_TNUMBER:
      if (lua_isinteger(L, a) != lua_isinteger(L, b)) return 0;
      if (lua_isinteger(L, a))
        return lua_tointeger(L, a) == lua_tointeger(L, b);
      else {
        lua_Number x = lua_tonumber(L, a), y = lua_tonumber(L, b);
        return memcmp(&x, &y, sizeof(x)) == 0;  /* NaN, -0.0 */
      }
    case LUA_TTABLE: return sametable(L, a, b, map);
    default: return lua_rawequal(L, a, b);  /* nil, booleans, strings */
  }
}

static int decode (lua_State *L) {  /* data, size */
  const char *p = (const char *)lua_touserdata(L, 1);
  size_t len = (size_t)lua_tointeger(L, 2);
  lua_settop(L, 0);
  return ah_decode(L, p, len);
}

static int encode (lua_State *L) {  /* buffer, values... */
  ah_mbuf *b = (ah_mbuf *)lua_touserdata(L, 1);
  ah_encode(L, 2, lua_gettop(L) - 1, b, AH_ENC_ARGS);
  return 0;
}

static int compare (lua_State *L) {  /* n values, then n values */
  int n = lua_gettop(L) / 2, k, ok = 1, map;
  lua_newtable(L);
  map = lua_gettop(L);
  for (k = 1; ok && k <= n; k++)
    ok = same(L, k, n + k, map);
  lua_pushboolean(L, ok);
  return 1;
}

static int test (const uint8_t *data, size_t size) {
  ah_mbuf b = {NULL, 0, 0};
  int n, k, ok;
  lua_settop(L, 0);
  lua_pushcfunction(L, decode);
  lua_pushlightuserdata(L, (void *)data);
  lua_pushinteger(L, (lua_Integer)size);
  if (lua_pcall(L, 2, LUA_MULTRET, 0) != LUA_OK) {  /* refused: fine */
    lua_settop(L, 0);
    return 1;
  }
  n = lua_gettop(L);  /* 1..n: the values */
  if (!lua_checkstack(L, n + 8)) {  /* too many to copy: skip */
    lua_settop(L, 0);
    return 1;
  }
  lua_pushcfunction(L, encode);
  lua_pushlightuserdata(L, &b);
  for (k = 1; k <= n; k++) lua_pushvalue(L, k);
  ok = lua_pcall(L, n + 1, 0, 0) == LUA_OK;  /* what decodes encodes... */
  if (!ok && strstr(lua_tostring(L, -1), "nested more than") != NULL) {
    /* ... but for the depth limit: following the tables in another order
    ** than the message's can go deeper */
    ah_mbuf_free(&b);
    lua_settop(L, 0);
    return 1;
  }
  if (ok) {
    int top = lua_gettop(L);
    lua_pushcfunction(L, decode);
    lua_pushlightuserdata(L, b.p);
    lua_pushinteger(L, (lua_Integer)b.n);
    ok = lua_pcall(L, 2, LUA_MULTRET, 0) == LUA_OK &&
         lua_gettop(L) - top == n;
    if (ok) {
      lua_pushcfunction(L, compare);
      lua_insert(L, 1);
      ok = lua_pcall(L, 2 * n, 1, 0) == LUA_OK && lua_toboolean(L, -1);
    }
  }
  ah_mbuf_free(&b);
  lua_settop(L, 0);
  return ok;
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  if (L == NULL) {
    L = luaL_newstate();
    luaL_openlibs(L);
  }
  if (!test(data, size))  /* a round trip that fails is a bug */
    __builtin_trap();
  lua_gc(L, LUA_GCSTEP, 0);
  return 0;
}

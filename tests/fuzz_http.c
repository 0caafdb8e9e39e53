/*
** libFuzzer target for the HTTP request path: arbitrary bytes, cut into
** up to three pieces at points the input chooses, fed to the parser of
** asynchost.core.http (bindings/httpparse.c) with tight limits, then every
** complete request taken out and its fields read.  Built with clang
** (-fsanitize=fuzzer,address,undefined) when ASYNCHOST_FUZZ is on:
**
**   build-fuzz/fuzz_http -max_total_time=20 tests/fuzz/http   (test run)
**   build-fuzz/fuzz_http -jobs=2 tests/fuzz/http              (by hand)
*/
#include <stdint.h>
#include <stddef.h>
#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

int luaopen_asynchost_core_http (lua_State *L);

static lua_State *L;

static int run (lua_State *L) {
  const char *data = (const char *)lua_touserdata(L, 1);
  size_t size = (size_t)lua_tointeger(L, 2), cut1, cut2;
  int parser;
  lua_getfield(L, LUA_REGISTRYINDEX, "fuzz.http");
  lua_getfield(L, -1, "parser");
  lua_pushinteger(L, 512);   /* max_header */
  lua_pushinteger(L, 1024);  /* max_body */
  lua_call(L, 2, 1);
  parser = lua_gettop(L);
  cut1 = size > 0 ? (unsigned char)data[0] % (size + 1) : 0;
  cut2 = size > 1 ? cut1 + (unsigned char)data[1] % (size - cut1 + 1) : cut1;
  {
    size_t from[3] = {0, cut1, cut2}, to[3] = {cut1, cut2, size};
    int k;
    for (k = 0; k < 3; k++) {
      lua_getfield(L, parser, "feed");
      lua_pushvalue(L, parser);
      lua_pushlstring(L, data + from[k], to[k] - from[k]);
      lua_call(L, 2, 1);
      if (!lua_isnil(L, -1)) { lua_pop(L, 1); break; }  /* rejected */
      lua_pop(L, 1);
      for (;;) {  /* take what is complete and look at it */
        lua_getfield(L, parser, "take");
        lua_pushvalue(L, parser);
        lua_call(L, 1, 1);
        if (lua_isnil(L, -1)) { lua_pop(L, 1); break; }
        lua_getfield(L, -1, "method");
        lua_getfield(L, -2, "target");
        lua_getfield(L, -3, "body");
        lua_getfield(L, -4, "headers");
        lua_pushnil(L);
        while (lua_next(L, -2)) lua_pop(L, 1);
        lua_pop(L, 5);
      }
    }
  }
  return 0;
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  if (L == NULL) {
    L = luaL_newstate();
    luaL_openlibs(L);
    luaL_requiref(L, "fuzz.http", luaopen_asynchost_core_http, 0);
    lua_setfield(L, LUA_REGISTRYINDEX, "fuzz.http");
  }
  lua_pushcfunction(L, run);
  lua_pushlightuserdata(L, (void *)data);
  lua_pushinteger(L, (lua_Integer)size);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK)  /* a Lua error is a bug too */
    __builtin_trap();
  lua_gc(L, LUA_GCSTEP, 0);
  return 0;
}

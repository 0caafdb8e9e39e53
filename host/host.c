/*
** Opening a state for asynchost: the standard libraries, the C modules
** (preloaded) and the Lua library embedded at build time (a searcher that
** comes right after package.preload, so the executable is self-contained).
*/
#include <string.h>
#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"
#include "asynchost.h"
#include "host.h"

typedef struct ah_embedded {
  const char *name;       /* module name: "asynchost.tasks" */
  const char *path;       /* chunk name: "@asynchost/tasks.lua" */
  const unsigned char *src;
  size_t len;
} ah_embedded;

extern const ah_embedded ah_embedded_lua[];  /* embedded.c, generated */

static const luaL_Reg cmodules[] = {
  {"asynchost.core", luaopen_asynchost_core},
  {"asynchost.core.coroutine", luaopen_asynchost_core_coroutine},
  {"asynchost.core.sync", luaopen_asynchost_core_sync},
  {"asynchost.core.queue", luaopen_asynchost_core_queue},
  {"asynchost.core.net", luaopen_asynchost_core_net},
  {"asynchost.core.http", luaopen_asynchost_core_http},
  {"asynchost.core.curl", luaopen_asynchost_core_curl},
  {"asynchost.core.fs", luaopen_asynchost_core_fs},
  {"asynchost.core.process", luaopen_asynchost_core_process},
  {"asynchost.core.signal", luaopen_asynchost_core_signal},
  {"asynchost.core.thread", luaopen_asynchost_core_thread},
  {"asynchost.core.trace", luaopen_asynchost_core_trace},
  {NULL, NULL}
};

static int searchembedded (lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  const ah_embedded *e;
  for (e = ah_embedded_lua; e->name != NULL; e++) {
    if (strcmp(e->name, name) == 0) {
      if (luaL_loadbufferx(L, (const char *)e->src, e->len, e->path, "t")
          != LUA_OK)
        return luaL_error(L, "error loading embedded module '%s':\n\t%s",
                          name, lua_tostring(L, -1));
      lua_pushstring(L, e->path + 1);
      return 2;
    }
  }
  lua_pushfstring(L, "no embedded module '%s'", name);
  return 1;
}

/* Makes the modules of asynchost loadable by 'require'. */
void ah_openmodules (lua_State *L) {
  const luaL_Reg *m;
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  for (m = cmodules; m->name != NULL; m++) {
    lua_pushcfunction(L, m->func);
    lua_setfield(L, -2, m->name);
  }
  lua_pop(L, 1);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchers");
  lua_getglobal(L, "table");
  lua_getfield(L, -1, "insert");
  lua_pushvalue(L, -3);
  lua_pushinteger(L, 2);  /* right after package.preload */
  lua_pushcfunction(L, searchembedded);
  lua_call(L, 3, 0);
  lua_pop(L, 3);
}

void ah_openlibs (lua_State *L) {
  luaL_openlibs(L);
  ah_openmodules(L);
  /* awaits pass through user coroutines from the start */
  luaL_requiref(L, "asynchost.core.coroutine",
                luaopen_asynchost_core_coroutine, 0);
  lua_getfield(L, -1, "install");
  lua_call(L, 0, 0);
  lua_pop(L, 1);
}

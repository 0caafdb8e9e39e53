/*
** asynchost.core.thread -- async.to_thread: Lua functions run in worker Lua states on other threads.
** (Scaffold: being written.)
*/
#include "asynchost.h"

int luaopen_asynchost_core_thread (lua_State *L) {
  lua_newtable(L);
  return 1;
}

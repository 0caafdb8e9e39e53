/*
** asynchost.core.process -- async.process: child processes on uv_spawn, their pipes as streams.
** (Scaffold: being written.)
*/
#include "asynchost.h"

int luaopen_asynchost_core_process (lua_State *L) {
  lua_newtable(L);
  return 1;
}

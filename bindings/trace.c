/*
** asynchost.core.trace -- tracing: task spans and waits, written as a Chrome/Perfetto trace.
** (Scaffold: being written.)
*/
#include "asynchost.h"

int luaopen_asynchost_core_trace (lua_State *L) {
  lua_newtable(L);
  return 1;
}

/*
** asynchost.core.signal -- async.signal: POSIX signals on uv_signal, handlers run as tasks.
** (Scaffold: being written.)
*/
#include "asynchost.h"

int luaopen_asynchost_core_signal (lua_State *L) {
  lua_newtable(L);
  return 1;
}

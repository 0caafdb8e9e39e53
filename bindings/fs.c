/*
** asynchost.core.fs -- async.fs: files and directories on libuv's fs requests; watching with uv_fs_event.
** (Scaffold: being written.)
*/
#include "asynchost.h"

int luaopen_asynchost_core_fs (lua_State *L) {
  lua_newtable(L);
  return 1;
}

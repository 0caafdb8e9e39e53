rockspec_format = "3.0"
package = "asynchost"
version = "scm-1"

source = {
  url = "git+file://.",
}

description = {
  summary = "asyncio for Lua 5.4, on libuv",
  detailed = [[
Tasks, sleep, gather, wait_for, timeouts, cancellation, task groups,
semaphores, locks and events with the semantics of Python's asyncio,
written in C on a libuv event loop.  This rock installs the Lua module
(require "asynchost", driven by async.run); the asynchost executable,
whose main chunk already runs in a task, is built with CMake.
]],
  labels = {"async", "asyncio", "coroutines", "libuv"},
}

dependencies = {
  "lua >= 5.4, < 5.5",
}

external_dependencies = {
  LIBUV = {
    header = "uv.h",
  },
}

build = {
  type = "builtin",
  modules = {
    -- "asynchost.init" rather than "asynchost": that key belongs to the C
    -- module below.  Either way the file lands in asynchost/init.lua,
    -- which require "asynchost" finds through the ?/init.lua path entry.
    ["asynchost.init"] = "lua/asynchost/init.lua",
    ["asynchost.tasks"] = "lua/asynchost/tasks.lua",
    ["asynchost.errors"] = "lua/asynchost/errors.lua",
    ["asynchost.busted"] = "lua/asynchost/busted.lua",
    -- One library, asynchost.so, for three C modules: it exports
    -- luaopen_asynchost_core, luaopen_asynchost_core_coroutine and
    -- luaopen_asynchost_core_sync, which Lua's all-in-one loader finds
    -- when asynchost.core* are required.
    asynchost = {
      sources = {
        "bindings/sched.c",
        "bindings/task.c",
        "bindings/core.c",
        "bindings/coro.c",
        "bindings/sync.c", "bindings/queue.c", "bindings/net.c", "bindings/httpparse.c", "bindings/curl.c",
      },
      defines = {
        "_POSIX_C_SOURCE=200809L",
        'AH_VERSION_STRING="0.1.0"',
      },
      incdirs = {"bindings", "$(LIBUV_INCDIR)"},
      libraries = {"uv", "http_parser", "curl"},
      libdirs = {"$(LIBUV_LIBDIR)"},
    },
  },
}

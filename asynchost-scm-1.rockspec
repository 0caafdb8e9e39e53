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
    ["asynchost.busted"] = "lua/asynchost/busted.lua",
    ["asynchost.check"] = "lua/asynchost/check.lua",
    ["asynchost.errors"] = "lua/asynchost/errors.lua",
    ["asynchost.faults"] = "lua/asynchost/faults.lua",
    ["asynchost.fs"] = "lua/asynchost/fs.lua",
    ["asynchost.generator"] = "lua/asynchost/generator.lua",
    ["asynchost.hints.lab1"] = "lua/asynchost/hints/lab1.lua",
    ["asynchost.hints.lab2"] = "lua/asynchost/hints/lab2.lua",
    ["asynchost.hints.lab3"] = "lua/asynchost/hints/lab3.lua",
    ["asynchost.hints.lab4"] = "lua/asynchost/hints/lab4.lua",
    ["asynchost.html"] = "lua/asynchost/html.lua",
    ["asynchost.http.init"] = "lua/asynchost/http/init.lua",
    ["asynchost.http.server"] = "lua/asynchost/http/server.lua",
    ["asynchost.init"] = "lua/asynchost/init.lua",
    ["asynchost.lab"] = "lua/asynchost/lab.lua",
    ["asynchost.net"] = "lua/asynchost/net.lua",
    ["asynchost.process"] = "lua/asynchost/process.lua",
    ["asynchost.queue"] = "lua/asynchost/queue.lua",
    ["asynchost.signal"] = "lua/asynchost/signal.lua",
    ["asynchost.sync"] = "lua/asynchost/sync.lua",
    ["asynchost.tasks"] = "lua/asynchost/tasks.lua",
    ["asynchost.testserver"] = "lua/asynchost/testserver.lua",
    ["asynchost.thread"] = "lua/asynchost/thread.lua",
    ["asynchost.top"] = "lua/asynchost/top.lua",
    ["asynchost.trace"] = "lua/asynchost/trace.lua",
    ["asynchost.utils"] = "lua/asynchost/utils.lua",
    -- One library, asynchost.so, for all the C modules: it exports
    -- luaopen_asynchost_core, luaopen_asynchost_core_coroutine,
    -- luaopen_asynchost_core_fs..., which Lua's all-in-one loader finds
    -- when asynchost.core* are required.  Keep the sources in step with
    -- AH_CORE_SOURCES in CMakeLists.txt.
    asynchost = {
      sources = {
        "bindings/sched.c",
        "bindings/task.c",
        "bindings/core.c",
        "bindings/coro.c",
        "bindings/sync.c",
        "bindings/queue.c",
        "bindings/net.c",
        "bindings/httpparse.c",
        "bindings/curl.c",
        "bindings/fs.c",
        "bindings/process.c",
        "bindings/signal.c",
        "bindings/thread.c",
        "bindings/marshal.c",
        "bindings/trace.c",
        "bindings/fsfile.c",
        "bindings/fswatch.c",
        "bindings/pool.c",
        "bindings/top.c",
        "bindings/netserver.c",
        "bindings/debug.c",
      },
      defines = {
        "_POSIX_C_SOURCE=200809L",
        'AH_VERSION_STRING="0.1.0"',
      },
      incdirs = {"bindings", "$(LIBUV_INCDIR)"},  -- curl/curl.h: Debian keeps it where gcc looks
      libraries = {"uv", "http_parser", "m"},  -- libcurl: dlopen'ed (curl.c)
      libdirs = {"$(LIBUV_LIBDIR)"},
    },
  },
}

--- async.to_thread and async.executor: Lua functions run in worker Lua
-- states on threads of their own, so CPU-bound work does not stop the loop.
-- See docs/threads.md.  Everything is in C (bindings/thread.c).
local core = require "asynchost.core.thread"

local M = {
  --- to_thread(fn, ...) -> what fn(...) returns, computed in a worker of
  -- the default pool; fn is a function without upvalues (but _ENV) or a
  -- source string, the arguments and results plain values.
  to_thread = core.to_thread,
  --- executor{workers = n} -> a pool of its own: :run(fn, ...),
  -- :submit(fn, ...) -> future, :close() (also <close>), .workers
  executor = core.executor,
}

return M

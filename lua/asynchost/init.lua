--- asynchost: asyncio for Lua.  local async = require "asynchost"
--
-- The public API, assembled from the C core (asynchost.core*) and the Lua
-- modules beside this file.  See docs/api.md.
local core = require "asynchost.core"
local coro = require "asynchost.core.coroutine"
local sync = require "asynchost.core.sync"
local errors = require "asynchost.errors"
local tasks = require "asynchost.tasks"

coro.install()  -- awaits pass through user coroutines; see coro.c

local M = {
  _VERSION = core._VERSION,
  -- tasks and time
  run = core.run,
  spawn = core.spawn,
  create_task = core.spawn,
  sleep = core.sleep,
  await = core.await,
  current_task = core.current_task,
  all_tasks = core.all_tasks,
  loop_time = core.loop_time,
  call_later = core.call_later,
  Future = core.Future,
  dump_tasks = core.dump_tasks,
  isatty = core.isatty,  -- isatty(fd): is 0/1/2 a terminal?
  -- combinators
  gather = tasks.gather,
  wait = tasks.wait,
  as_completed = tasks.as_completed,
  wait_for = tasks.wait_for,
  timeout = tasks.timeout,
  shield = tasks.shield,
  task_group = tasks.task_group,
  isfuture = tasks.isfuture,
  -- sync
  Semaphore = sync.Semaphore,
  BoundedSemaphore = sync.BoundedSemaphore,
  Lock = sync.Lock,
  Event = sync.Event,
}

for name, cls in pairs(errors) do M[name] = cls end

-- The pure-Lua parts of the API: Condition and Barrier, the utilities
-- (retry, RateLimiter, map), async generators, and the queues' module.
for _, modname in ipairs{"asynchost.sync", "asynchost.utils",
                         "asynchost.generator", "asynchost.queue"} do
  for name, value in pairs(require(modname)) do
    assert(M[name] == nil, modname .. " redefines async." .. name)
    M[name] = value
  end
end

M.net = require "asynchost.net"  -- TCP streams: async.net.connect/listen
M.http = require "asynchost.http"  -- async.http.server
M.fs = require "asynchost.fs"  -- files, directories, watch
M.process = require "asynchost.process"  -- child processes

local thread = require "asynchost.thread"  -- worker Lua states
M.to_thread = thread.to_thread
M.executor = thread.executor

local signal = require "asynchost.signal"  -- POSIX signals
M.signal = signal.signal
M.wait_signal = signal.wait_signal

return M

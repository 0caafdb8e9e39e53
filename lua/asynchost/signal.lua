--- async.signal and async.wait_signal: POSIX signals (bindings/signal.c).
--
--   local h <close> = async.signal("SIGUSR1", function(name)
--     print("got " .. name)        -- a new task at each delivery
--   end)
--   local name = async.wait_signal("TERM")   -- awaits one delivery
--
-- Names are "SIGTERM" or "TERM" (any case), or numbers.  An installed
-- handler stays until handle:close() (or <close>) and does not keep the
-- program alive by itself.  While a handler of SIGINT is installed (or a
-- task waits in wait_signal("SIGINT")), Ctrl-C is delivered to it instead
-- of cancelling the main task.  See docs/process.md.
local core = require "asynchost.core.signal"

local M = {}

--- signal(name, handler) -> handle with close(); handler(name) runs as a
-- task at each delivery.
M.signal = core.signal

--- wait_signal(name) -> name: suspends the task until one delivery.
M.wait_signal = core.wait_signal

--- signum(name or number) -> number or nil; signame(number) -> name or nil
M.signum = core.signum
M.signame = core.signame

return M

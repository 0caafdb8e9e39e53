-- script.lua: run by embed_example (main.c), which defines the global
-- slow_double(x, ms), an operation written in C that returns a future.
--
-- The script runs as a task: it can await at top level, and what it
-- returns goes to the C done callback.
local async = require "asynchost"

local function ms_since(t0)
  return math.floor((async.loop_time() - t0) * 1000 + 0.5)
end

-- 1. A C future is awaited like any task or future.
local t0 = async.loop_time()
local one = async.await(slow_double(21, 100))
print(("[lua] %4d ms  slow_double(21, 100) = %d"):format(ms_since(t0), one))

-- 2. C operations overlap with each other and with Lua's own waits:
-- three 200 ms operations and a 150 ms sleep take 200 ms, not 750.
t0 = async.loop_time()
local r = async.gather(
  slow_double(1, 200),
  slow_double(2, 200),
  slow_double(3, 200),
  function() async.sleep(0.15); return "slept" end)
local took = ms_since(t0)
print(("[lua] %4d ms  gather: %d %d %d %s"):format(took, r[1], r[2], r[3],
                                                 r[4]))
assert(took < 400, "the operations did not overlap")

-- 3. A time limit: wait_for cancels the slow operation after 50 ms, which
-- runs its C cancel callback (it stops the timer), and raises TimeoutError.
t0 = async.loop_time()
local ok, err = pcall(async.wait_for, slow_double(5, 1000), 0.05)
print(("[lua] %4d ms  wait_for: %s %s"):format(ms_since(t0), ok, err))
assert(not ok and async.TimeoutError:is(err))

return ("gathered %d, %d, %d in %d ms; the slow one timed out")
  :format(r[1], r[2], r[3], took)

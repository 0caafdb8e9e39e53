-- W1 spawn (asynchost): N tasks, each does one sleep(0) (one trip through the loop) and returns its index;
-- gather all (in order); check count and sum. Same workload as the peers' w1_spawn_*.{py,js,lua}
-- (definition: W1 in the peers' bench README). Prints one RESULT line; exits 1 if the check fails.
-- The main chunk runs inside asynchost's main task, so it can call gather directly.
local async = require "asynchost"
local spawn, sleep, now = async.spawn, async.sleep, async.loop_time
local N = tonumber(arg and arg[1]) or 100000   -- the runner passes no argument: N = 100,000

local function task(i)
  sleep(0)
  return i
end

local t0 = now()                     -- timed: from just before the first task is created ...
local tasks = {}
for i = 0, N - 1 do tasks[i + 1] = spawn(task, i) end
local res = async.gather(tasks)
local dt = now() - t0                -- ... until gather returns

local s = 0
for k = 1, #res do s = s + res[k] end
local expect = N * (N - 1) // 2
local ok = (#res == N and s == expect) and 1 or 0
print(string.format(
  "RESULT w=W1 rt=asynchost n=%d count=%d sum=%d expect=%d ok=%d inner_s=%.6f metric=%.3f unit=us/task",
  N, #res, s, expect, ok, dt, dt / N * 1e6))
if ok ~= 1 then os.exit(1) end

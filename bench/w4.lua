-- W4 semaphore (asynchost): N tasks behind a Semaphore(100); each acquires, does one sleep(0) inside,
-- releases and returns its index; gather; check count, sum and that the peak number of tasks inside is
-- exactly 100. Same workload as the peers' w4_semaphore_*.{py,js,lua}. Prints one RESULT line; exits 1 if
-- the check fails. W4 - W1 ~ the semaphore's cost.
local async = require "asynchost"
local spawn, sleep, now = async.spawn, async.sleep, async.loop_time
local N = tonumber(arg and arg[1]) or 100000   -- the runner passes no argument: N = 100,000
local LIMIT = 100

local sem = async.Semaphore(LIMIT)   -- created before the timed section, as in the peers
local inside, max_inside = 0, 0

local function task(i)
  do
    local guard <close> = sem:acquire()   -- released when the block ends (like `async with sem:`)
    inside = inside + 1
    if inside > max_inside then max_inside = inside end
    sleep(0)
    inside = inside - 1
  end
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
local ok = (#res == N and s == expect and max_inside == LIMIT) and 1 or 0
print(string.format(
  "RESULT w=W4 rt=asynchost n=%d count=%d sum=%d expect=%d max_inside=%d ok=%d inner_s=%.6f metric=%.3f unit=us/task",
  N, #res, s, expect, max_inside, ok, dt, dt / N * 1e6))
if ok ~= 1 then os.exit(1) end

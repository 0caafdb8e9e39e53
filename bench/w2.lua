-- W2 timers (asynchost): N tasks, task i sleeps delay_ms = (i*7919) % 1000 ms (0..999, each value exactly
-- 100 times; 0 -> sleep(0)) and returns i; gather; check count, sum and inner_s >= 0.999 s.
-- Per-op: KiB per sleeping task = (VmHWM at the end - VmRSS just before spawning, after a full GC) / N.
-- Same workload as the peers' w2_timers_*.{py,js,lua}. Prints one RESULT line; exits 1 if the check fails.
local async = require "asynchost"
local spawn, sleep, now = async.spawn, async.sleep, async.loop_time
local N = tonumber(arg and arg[1]) or 100000   -- the runner passes no argument: N = 100,000

-- /proc/self/status field in kB (VmRSS, VmHWM), as the peers read it
local function status_kb(field)
  local f = assert(io.open("/proc/self/status"))
  for line in f:lines() do
    local v = line:match("^" .. field .. ":%s+(%d+)")
    if v then f:close(); return tonumber(v) end
  end
  f:close()
end

local function task(i)
  local d = (i * 7919) % 1000
  if d == 0 then sleep(0) else sleep(d / 1000) end
  return i
end

collectgarbage("collect")
local rss0 = status_kb("VmRSS")
local t0 = now()                     -- timed: from just before the first task is created ...
local tasks = {}
for i = 0, N - 1 do tasks[i + 1] = spawn(task, i) end
local res = async.gather(tasks)
local dt = now() - t0                -- ... until gather returns
local hwm = status_kb("VmHWM")

local s = 0
for k = 1, #res do s = s + res[k] end
local expect = N * (N - 1) // 2
local maxd = 0
for i = 0, N - 1 do local d = (i * 7919) % 1000; if d > maxd then maxd = d end end
local ok = (#res == N and s == expect and dt >= maxd / 1000) and 1 or 0
print(string.format(
  "RESULT w=W2 rt=asynchost n=%d count=%d sum=%d expect=%d ok=%d inner_s=%.6f metric=%.3f unit=KiB/task rss0_kib=%d hwm_kib=%d",
  N, #res, s, expect, ok, dt, (hwm - rss0) / N, rss0, hwm))
if ok ~= 1 then os.exit(1) end

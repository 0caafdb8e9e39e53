-- W2's phases (not a benchmark of the runner): the same 100,000 sleepers as bench/w2.lua, printing
-- when spawning ended, when the last task started its sleep, when the last one was due and
-- returned, and when gather returned, all from the first spawn; plus the worst lateness of the
-- 999 ms sleepers. `STOPGC=1` stops the collector for the run, to see what it costs.
--   build-rel/asynchost bench/w2phases.lua        (/usr/bin/time -f '%U user' for the CPU)
local async = require "asynchost"
local spawn, sleep, now = async.spawn, async.sleep, async.loop_time
local N = tonumber(arg and arg[1]) or 100000
local laststart, lastdue, lastend, maxlate = 0, 0, 0, 0

local function task(i)
  local d = (i * 7919) % 1000 / 1000
  local t = now()
  if t > laststart then laststart = t end
  if t + d > lastdue then lastdue = t + d end
  sleep(d)
  local e = now()
  if d > 0.99 and e - t - d > maxlate then maxlate = e - t - d end
  if e > lastend then lastend = e end
  return i
end

collectgarbage("collect")
if os.getenv("STOPGC") then collectgarbage("stop") end
local t0 = now()
local tasks = {}
for i = 0, N - 1 do tasks[i + 1] = spawn(task, i) end
local t1 = now()
async.gather(tasks)
local t2 = now()
print(("spawned %.3f s  last start %.3f  last due %.3f  last return %.3f  gather %.3f  "
       .. "worst lateness of the 999 ms sleeps %.1f ms"):format(t1 - t0, laststart - t0,
       lastdue - t0, lastend - t0, t2 - t0, maxlate * 1000))

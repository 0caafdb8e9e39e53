--- Lab 2, example 2: running tasks concurrently.
--
-- Run it:  asynchost exercises/lab2/examples/concurrent_tasks.lua
--
-- gather waits for several and returns their results in order; as_completed
-- hands them over as they finish; wait_for gives up after a while; a task
-- group keeps its tasks in a scope; a semaphore limits how many run at once;
-- cancel stops a task where it waits.
local async = require "asynchost"

local SCALE = tonumber(os.getenv("LAB_TIME_SCALE")) or 1
local function sleep(s) async.sleep(s * SCALE) end

local function job(name, seconds)
  sleep(seconds)
  return name
end

local function timed(label, fn)
  local t0 = async.loop_time()
  local r = fn()
  print(("%-28s %.2f s  %s"):format(label, async.loop_time() - t0, r))
end

timed("gather (1, 0.5, 0.8 s):", function()
  local r = async.gather(function() return job("a", 1) end,
                         function() return job("b", 0.5) end,
                         function() return job("c", 0.8) end)
  return table.concat(r, " ")   -- in the order given: a b c
end)

timed("as_completed:", function()
  local tasks = {async.spawn(job, "a", 1), async.spawn(job, "b", 0.5),
                 async.spawn(job, "c", 0.8)}
  local order = {}
  for t in async.as_completed(tasks) do order[#order + 1] = t:result() end
  return table.concat(order, " ")  -- fastest first: b c a
end)

timed("wait_for (limit 0.3 s):", function()
  local ok, err = pcall(async.wait_for, function() return job("slow", 5) end,
                        0.3 * SCALE)
  return tostring(err)
end)

timed("task group:", function()
  local done = {}
  do
    local tg <close> = async.task_group()
    for i = 1, 3 do
      tg:spawn(function()
        local name = job("t" .. i, 0.2 * i)
        done[#done + 1] = name  -- not `done[#done + 1] = job(...)`: the
      end)                      -- index would be taken before the wait
    end
  end  -- the scope waits for its three tasks
  return table.concat(done, " ")
end)

timed("6 jobs, semaphore of 2:", function()
  local sem = async.Semaphore(2)
  local jobs = {}
  for i = 1, 6 do
    jobs[i] = function()
      local _ <close> = sem:acquire()
      return job("j" .. i, 0.2)
    end
  end
  return table.concat(async.gather(jobs), " ")  -- 3 rounds of 0.2 s
end)

timed("cancel:", function()
  local t = async.spawn(job, "never", 10)
  sleep(0.1)
  t:cancel()
  local ok, err = pcall(async.await, t)
  return ("%s, cancelled: %s"):format(tostring(err), tostring(t:cancelled()))
end)

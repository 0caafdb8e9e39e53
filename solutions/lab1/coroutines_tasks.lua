--- Lab 1, exercise 2: coroutines and tasks (solution).
--
-- Run it:  asynchost solutions/lab1/coroutines_tasks.lua
-- Faster:  LAB_TIME_SCALE=0.1 asynchost solutions/lab1/coroutines_tasks.lua
--
-- A function is just a function until async.spawn makes it a task: then it
-- runs on its own, can be watched (done, cancelled, result) and cancelled.
-- A cancelled task gets CancelledError at the await where it stands, and
-- its cleanup (a <close> variable here) still runs.
local async = require "asynchost"

local M = {}

-- Every delay of this file is in "lab seconds", multiplied by time_scale
-- (LAB_TIME_SCALE, default 1; the specs set the field to run faster).
M.time_scale = tonumber(os.getenv("LAB_TIME_SCALE")) or 1

local function sleep(s) async.sleep(s * M.time_scale) end

--- Names of the workers whose cleanup ran, in order (for the curious and
-- for the specs).
M.cleaned_up = {}

--- Works for `duration` seconds; returns a message. Whatever ends it
-- (normal end, error, cancellation), it cleans up.
function M.background_worker(name, duration)
  if type(name) ~= "string" then
    error("bad argument #1 to 'background_worker' (string expected, got "
          .. type(name) .. ")", 2)
  end
  if type(duration) ~= "number" or duration < 0 then
    error("bad argument #2 to 'background_worker' (non-negative number "
          .. "expected)", 2)
  end
  local _ <close> = setmetatable({}, {__close = function()
    M.cleaned_up[#M.cleaned_up + 1] = name
  end})
  sleep(duration)  -- the "work": a cancellation raises CancelledError here
  return ("%s finished after %.1f s"):format(name, duration)
end

--- Starts `count` workers as tasks, named worker-1..worker-N; worker i
-- works i * `step` seconds (step: default 0.6). Returns the tasks.
function M.create_multiple_tasks(count, step)
  if math.type(count) ~= "integer" or count < 0 then
    error("bad argument #1 to 'create_multiple_tasks' (non-negative "
          .. "integer expected)", 2)
  end
  step = step or 0.6
  local tasks = {}
  for i = 1, count do
    local name = "worker-" .. i
    local t = async.spawn(M.background_worker, name, i * step)
    t:set_name(name)
    tasks[i] = t
  end
  return tasks
end

-- "done", "failed", "cancelled" or "running"
local function state(t)
  if not t:done() then return "running" end
  if t:cancelled() then return "cancelled" end
  if t:exception() ~= nil then return "failed" end
  return "done"
end
M.state = state

--- Prints the progress of `tasks` every `interval` seconds (default 0.5)
-- until all are done; returns a summary {done = n, failed = n, cancelled
-- = n, results = {[i] = first result or error}}.
function M.monitor_tasks(tasks, interval)
  interval = interval or 0.5
  local t0 = async.loop_time()
  local pending = #tasks
  while pending > 0 do
    local finished = {}
    pending = 0
    for _, t in ipairs(tasks) do
      if t:done() then finished[#finished + 1] = t:get_name()
      else pending = pending + 1 end
    end
    print(("  [%5.2f s] %d/%d done%s"):format(async.loop_time() - t0,
          #tasks - pending, #tasks, #finished > 0 and
          (": " .. table.concat(finished, ", ")) or ""))
    if pending > 0 then
      -- wake up at the next tick, or as soon as everything is done
      async.wait(tasks, {timeout = interval * M.time_scale})
    end
  end
  local summary = {done = 0, failed = 0, cancelled = 0, results = {}}
  for i, t in ipairs(tasks) do
    local s = state(t)
    summary[s] = summary[s] + 1
    if s == "done" then summary.results[i] = t:result()
    elseif s == "failed" then summary.results[i] = t:exception() end
  end
  return summary
end

--- Lets `tasks` run for `timeout` seconds, then cancels those still
-- running and waits for their cleanup. Returns two arrays of task names:
-- the completed ones and the cancelled ones.
function M.cancel_tasks_after_timeout(tasks, timeout)
  if #tasks == 0 then return {}, {} end
  local _, pending = async.wait(tasks, {timeout = timeout * M.time_scale})
  for _, t in ipairs(pending) do t:cancel("timed out") end
  if #pending > 0 then async.wait(pending) end  -- their cleanup runs
  local completed, cancelled = {}, {}
  for _, t in ipairs(tasks) do
    if t:cancelled() then cancelled[#cancelled + 1] = t:get_name()
    else completed[#completed + 1] = t:get_name() end
  end
  return completed, cancelled
end

function M.main()
  print("Monitoring 5 tasks:")
  local summary = M.monitor_tasks(M.create_multiple_tasks(5))
  print(("Done: %d, failed: %d, cancelled: %d"):format(summary.done,
        summary.failed, summary.cancelled))
  for _, r in ipairs(summary.results) do print("  " .. tostring(r)) end

  print("Cancelling 3 tasks after 1.5 s:")
  M.cleaned_up = {}
  local completed, cancelled =
    M.cancel_tasks_after_timeout(M.create_multiple_tasks(3), 1.5)
  print("  completed: " .. table.concat(completed, ", "))
  print("  cancelled: " .. table.concat(cancelled, ", "))
  print("  cleaned up: " .. table.concat(M.cleaned_up, ", "))
end

-- Run as a script (not when a spec loads the file): the demo.
if arg and arg[0] and arg[0]:match("coroutines_tasks%.lua$") then
  M.main()
end
return M

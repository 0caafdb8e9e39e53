--- Lab 1, exercise 2: coroutines and tasks (exercise).
--
-- Fill in every function that raises a TODO error: exercises/lab1/README.md
-- says what each must do. Check your work with
--   asynchost lab check lab1/coroutines_tasks
-- or LAB_DIR=exercises busted --lua=asynchost --filter='lab1/coroutines_tasks' spec/labs/lab1_spec.lua
--
-- Run it:  asynchost exercises/lab1/coroutines_tasks.lua
-- Faster:  LAB_TIME_SCALE=0.1 asynchost exercises/lab1/coroutines_tasks.lua
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

-- Each unfinished function raises this: the message names the function
-- and where the instructions are.
local function todo(name)
  error(("TODO(ex2): implement %s — see exercises/lab1/README.md")
        :format(name), 2)
end

--- Names of the workers whose cleanup ran, in order (for the curious and
-- for the specs).
M.cleaned_up = {}

--- Works for `duration` seconds; returns a message. Whatever ends it
-- (normal end, error, cancellation), it cleans up.
function M.background_worker(name, duration)
  todo("background_worker")
end

--- Starts `count` workers as tasks, named worker-1..worker-N; worker i
-- works i * `step` seconds (step: default 0.6). Returns the tasks.
function M.create_multiple_tasks(count, step)
  todo("create_multiple_tasks")
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
  todo("monitor_tasks")
end

--- Lets `tasks` run for `timeout` seconds, then cancels those still
-- running and waits for their cleanup. Returns two arrays of task names:
-- the completed ones and the cancelled ones.
function M.cancel_tasks_after_timeout(tasks, timeout)
  todo("cancel_tasks_after_timeout")
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

--- Lab 2, exercise 1: your first async function (solution).
--
-- Run it:  asynchost solutions/lab2/exercise_1.lua
-- Faster:  LAB_TIME_SCALE=0.1 asynchost solutions/lab2/exercise_1.lua
--
-- The same three "fetches" of one second each, twice: first with a
-- blocking wait, which holds the whole program, so they take three
-- seconds; then as tasks that wait with async.sleep, which lets the others
-- run meanwhile, so they take one.
local async = require "asynchost"

local M = {}

-- Every delay of this file is in "lab seconds", multiplied by time_scale
-- (LAB_TIME_SCALE, default 1; the specs set the field to run faster).
M.time_scale = tonumber(os.getenv("LAB_TIME_SCALE")) or 1

--- Waits `seconds` without letting anything else run (like a blocking
-- sleep or a slow system call would): never do this in async code.
function M.blocking_sleep(seconds)
  local deadline = async.loop_time() + seconds * M.time_scale
  while async.loop_time() < deadline do end  -- the loop is stuck here
end

--- The synchronous fetch: prints, blocks for `delay` (default 1), prints.
function M.fetch_data_sync(name, delay)
  print(("Fetching %s..."):format(name))
  M.blocking_sleep(delay or 1)
  print(("Got %s"):format(name))
  return "result of " .. name
end

--- The asynchronous fetch: the same, but waiting with async.sleep.
function M.fetch_data(name, delay)
  print(("Fetching %s..."):format(name))
  async.sleep((delay or 1) * M.time_scale)
  print(("Got %s"):format(name))
  return "result of " .. name
end

--- Fetches each name in turn, synchronously; returns the results.
function M.main_sync(names, delay)
  local results = {}
  for i, name in ipairs(names) do
    results[i] = M.fetch_data_sync(name, delay)
  end
  return results
end

--- Fetches every name at once (one task each) and waits for all; returns
-- the results in the order of names.
function M.main_async(names, delay)
  local tasks = {}
  for i, name in ipairs(names) do
    tasks[i] = async.spawn(M.fetch_data, name, delay)
  end
  local r = async.gather(tasks)
  r.n = nil
  return r
end

function M.main()
  local names = {"data1", "data2", "data3"}
  print("=== Synchronous Version ===")
  local t0 = async.loop_time()
  M.main_sync(names)
  print(("Total time: %.2fs"):format(async.loop_time() - t0))
  print()
  print("=== Asynchronous Version ===")
  t0 = async.loop_time()
  M.main_async(names)
  print(("Total time: %.2fs"):format(async.loop_time() - t0))
end

-- Run as a script (not when a spec loads the file): the demo.
if arg and arg[0] and arg[0]:match("exercise_1%.lua$") then
  M.main()
end
return M

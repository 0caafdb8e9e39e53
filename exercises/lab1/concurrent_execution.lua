--- Lab 1, exercise 3: concurrent execution (exercise).
--
-- Fill in every function that raises a TODO error: exercises/lab1/README.md
-- says what each must do. Check your work with
--   asynchost lab check lab1/concurrent_execution
-- or LAB_DIR=exercises busted --lua=asynchost --filter='lab1/concurrent_execution' spec/labs/lab1_spec.lua
--
-- Run it:  asynchost exercises/lab1/concurrent_execution.lua
-- Faster:  LAB_TIME_SCALE=0.1 asynchost exercises/lab1/concurrent_execution.lua
--
-- A "job" is a function of no arguments that does some work and returns a
-- result. The same jobs are run four ways: one after the other, all at
-- once with gather (results in input order), all at once with
-- as_completed (results in the order they finish), and at most N at a
-- time behind a semaphore.  Waiting overlaps; computing does not: a job
-- that computes without awaiting holds the loop until it is done.
local async = require "asynchost"

local M = {}

-- Every delay of this file is in "lab seconds", multiplied by time_scale
-- (LAB_TIME_SCALE, default 1; the specs set the field to run faster).
M.time_scale = tonumber(os.getenv("LAB_TIME_SCALE")) or 1

local function sleep(s) async.sleep(s * M.time_scale) end

-- Each unfinished function raises this: the message names the function
-- and where the instructions are.
local function todo(name)
  error(("TODO(ex3): implement %s — see exercises/lab1/README.md")
        :format(name), 2)
end

--- I/O-like work: waits `duration` seconds; returns {name, duration}.
function M.simulate_work(name, duration)
  todo("simulate_work")
end

--- CPU-like work: sums the squares of 1..n without ever awaiting, so
-- nothing else runs meanwhile. Returns {name, result}.
function M.simulate_cpu_work(name, n)
  todo("simulate_cpu_work")
end

--- `count` jobs of simulate_work named task_0..task_<count-1>, each
-- lasting between `low` and `high` seconds (default 0.5 and 2.0), drawn
-- from `seed` (the same seed gives the same durations). Returns the jobs
-- and their durations.
function M.make_jobs(count, low, high, seed)
  low, high = low or 0.5, high or 2.0
  local x = seed or 1  -- a small LCG: math.random's state is left alone
  local jobs, durations = {}, {}
  for i = 1, count do
    x = (x * 1103515245 + 12345) % 2147483648
    local d = low + (high - low) * (x / 2147483648)
    d = math.floor(d * 100 + 0.5) / 100
    local name = "task_" .. (i - 1)
    durations[i] = d
    jobs[i] = function() return M.simulate_work(name, d) end
  end
  return jobs, durations
end

--- Runs the jobs one after the other; returns their results in order.
function M.run_sequential(jobs)
  todo("run_sequential")
end

--- Runs every job at once, with async.gather; returns their results in
-- input order.
function M.run_concurrent_gather(jobs)
  todo("run_concurrent_gather")
end

--- Runs every job at once and collects the results as they finish
-- (async.as_completed): the fastest job's result comes first.
function M.run_concurrent_as_completed(jobs)
  todo("run_concurrent_as_completed")
end

--- Runs the jobs with at most `max_concurrent` at a time (a semaphore);
-- returns their results in input order.
function M.rate_limited_tasks(jobs, max_concurrent)
  todo("rate_limited_tasks")
end

--- Runs `jobs` with each strategy; returns {{name, seconds, results}...}.
function M.compare_strategies(jobs, max_concurrent)
  local strategies = {
    {"sequential", M.run_sequential},
    {"gather", M.run_concurrent_gather},
    {"as_completed", M.run_concurrent_as_completed},
    {"semaphore(" .. (max_concurrent or 3) .. ")", function(j)
      return M.rate_limited_tasks(j, max_concurrent or 3)
    end},
  }
  local out = {}
  for i, s in ipairs(strategies) do
    local t0 = async.loop_time()
    local results = s[2](jobs)
    out[i] = {name = s[1], seconds = async.loop_time() - t0,
              results = results}
  end
  return out
end

local function names(results)
  local t = {}
  for i, r in ipairs(results) do t[i] = r.name end
  return table.concat(t, " ")
end

function M.main()
  local jobs, durations = M.make_jobs(10, 0.5, 2.0, 42)
  local total, longest = 0, 0
  for _, d in ipairs(durations) do
    total, longest = total + d, math.max(longest, d)
  end
  print(("10 jobs of 0.5-2.0 s: %.2f s in all, the longest %.2f s")
        :format(total, longest))
  for _, s in ipairs(M.compare_strategies(jobs, 3)) do
    print(("%-13s %2d results in %5.2f s: %s"):format(s.name .. ":",
          #s.results, s.seconds, names(s.results)))
  end

  -- Computing does not overlap: two CPU jobs "at once" take as long as
  -- both one after the other, and a sleeping task waits for them.
  local t0 = async.loop_time()
  local ticker = async.spawn(function()
    sleep(0.01)
    return async.loop_time() - t0
  end)
  local r = async.gather(
    function() return M.simulate_cpu_work("cpu_a", 3000000) end,
    function() return M.simulate_cpu_work("cpu_b", 3000000) end)
  print(("2 CPU jobs with gather: %.2f s (%s, %s); a 0.01 s sleep woke " ..
         "after %.2f s"):format(async.loop_time() - t0, r[1].name, r[2].name,
         async.await(ticker)))
end

-- Run as a script (not when a spec loads the file): the demo.
if arg and arg[0] and arg[0]:match("concurrent_execution%.lua$") then
  M.main()
end
return M

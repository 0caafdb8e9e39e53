--- Lab 3: asynchronous programming for DevOps scripts (solution).
--
-- Run it:  asynchost solutions/lab3/main.lua
-- Faster:  LAB_TIME_SCALE=0.1 asynchost solutions/lab3/main.lua
--
-- Five demos, one after the other: simple tasks, web requests, error
-- handling, timeouts and cancellation, async patterns.  The web requests
-- go to asynchost's test server, started here on a free local port:
-- nothing leaves the machine.  The helpers (fetch_url, run_tasks,
-- retry_async, timeout_after, async_map, rate_limited, get_timestamp) are
-- in helpers/async_utils.lua, next to this file.
local async = require "asynchost"
local testserver = require "asynchost.testserver"

-- helpers/async_utils.lua is found next to this file, wherever it is run
-- from (package.path is left alone: a spec may load two copies of the lab)
local HERE = debug.getinfo(1, "S").source:match("^@(.-)[^/]*$") or ""
local utils = assert(loadfile(HERE .. "helpers/async_utils.lua"))()
local fetch_url, run_tasks, retry_async = utils.fetch_url, utils.run_tasks,
                                          utils.retry_async
local timeout_after, rate_limited = utils.timeout_after, utils.rate_limited
local get_timestamp = utils.get_timestamp

local M = {utils = utils}

-- Every delay below is in "lab seconds", multiplied by time_scale
-- (LAB_TIME_SCALE, default 1; the specs set the field to run faster).
M.time_scale = tonumber(os.getenv("LAB_TIME_SCALE")) or 1

local function sleep(s) async.sleep(s * M.time_scale) end
local function uniform(a, b) return a + (b - a) * math.random() end
local function now() return async.loop_time() end

-- The error classes of the error-handling demo.
M.ValueError = async.Error:extend("ValueError")
M.RuntimeError = async.Error:extend("RuntimeError")
M.ConnectionError = async.ConnectionError

---------------------------------------------------------------------------
-- 1. Simple tasks

--- Sleeps `duration` lab seconds; returns {task_id, duration}.
function M.sleep_task(task_id, duration)
  print(("Task %d starting, will sleep for %.2fs"):format(task_id, duration))
  sleep(duration)
  print(("Task %d completed after %.2fs"):format(task_id, duration))
  return {task_id = task_id, duration = duration}
end

--- Runs sleep_task(i, durations[i]) one after the other: results, seconds.
function M.run_sequentially(durations)
  local t0, results = now(), {}
  for i, d in ipairs(durations) do
    results[i] = M.sleep_task(i, d)
  end
  return results, now() - t0
end

--- The same, all at once with gather: results, seconds.
function M.run_concurrently(durations)
  local t0, jobs = now(), {}
  for i, d in ipairs(durations) do
    jobs[i] = function() return M.sleep_task(i, d) end
  end
  local results = async.gather(jobs)
  return results, now() - t0
end

local function random_durations(n, lo, hi)
  local t = {}
  for i = 1, n do t[i] = uniform(lo, hi) end
  return t
end

function M.demo_simple_tasks()
  print("\n=== Simple Tasks Demo ===")
  print("Creating and running simple async tasks...")
  print("\nRunning tasks sequentially...")
  local _, seq = M.run_sequentially(random_durations(5, 0.5, 3.0))
  print(("Sequential execution took %.2f seconds"):format(seq))
  print("\nRunning tasks concurrently...")
  local _, conc = M.run_concurrently(random_durations(5, 0.5, 3.0))
  print(("Concurrent execution took %.2f seconds"):format(conc))
  if conc > 0 then
    print(("Concurrent execution was %.2fx faster!"):format(seq / conc))
  end
  return "Simple tasks completed", {sequential = seq, concurrent = conc}
end

---------------------------------------------------------------------------
-- 2. Web requests

--- The demo's URLs on the test server at base_url: three delays (1, 2, 3
-- lab seconds), then /json, /uuid and /headers.
function M.demo_urls(base_url)
  local urls = {}
  for i, s in ipairs{1, 2, 3} do
    urls[i] = ("%s/delay/%g"):format(base_url, s * M.time_scale)
  end
  for _, p in ipairs{"/json", "/uuid", "/headers"} do
    urls[#urls + 1] = base_url .. p
  end
  return urls
end

--- fetch_url on each url in turn, through one session: results, seconds.
function M.fetch_sequentially(urls, session)
  local t0, results = now(), {}
  for i, url in ipairs(urls) do
    results[i] = fetch_url(url, session)
    print(("Fetched %s in %.2fs"):format(url, results[i].elapsed))
  end
  return results, now() - t0
end

--- fetch_url on every url at once: results (in order), seconds.
function M.fetch_concurrently(urls, session)
  local t0, jobs = now(), {}
  for i, url in ipairs(urls) do
    jobs[i] = function() return fetch_url(url, session) end
  end
  local results = async.gather(jobs)
  return results, now() - t0
end

function M.demo_web_requests(base_url)
  print("\n=== Web Requests Demo ===")
  print("Fetching multiple URLs asynchronously...")
  local urls = M.demo_urls(base_url)
  print("\nFetching URLs sequentially...")
  local seq
  do
    local session <close> = async.http.session{}
    seq = select(2, M.fetch_sequentially(urls, session))
  end
  print(("Sequential fetching took %.2f seconds"):format(seq))
  print("\nFetching URLs concurrently...")
  local results, conc
  do
    local session <close> = async.http.session{}
    results, conc = M.fetch_concurrently(urls, session)
  end
  print(("Concurrent fetching took %.2f seconds"):format(conc))
  print("\nResults:")
  for _, r in ipairs(results) do
    print(("URL: %s, Status: %s, Time: %.2fs"):format(r.url, r.status,
                                                     r.elapsed))
  end
  if conc > 0 then
    print(("Concurrent fetching was %.2fx faster!"):format(seq / conc))
  end
  return ("Fetched %d URLs"):format(#urls),
         {sequential = seq, concurrent = conc, results = results}
end

---------------------------------------------------------------------------
-- 3. Error handling

--- Works for 0.1 to 1 lab second, then fails with probability
-- fail_probability (a ValueError, RuntimeError or ConnectionError).
function M.unreliable_task(task_id, fail_probability)
  fail_probability = fail_probability or 0.5
  print(("Task %d starting (fail probability: %g)"):format(task_id,
                                                          fail_probability))
  sleep(uniform(0.1, 1.0))
  if math.random() < fail_probability then
    local pick = math.random(3)
    local err = pick == 1 and M.ValueError("value error occurred")
             or pick == 2 and M.RuntimeError("runtime error occurred")
             or M.ConnectionError("connection error occurred")
    print(("Task %d failed with %s"):format(task_id,
                                            getmetatable(err).__name))
    error(err)
  end
  print(("Task %d completed successfully"):format(task_id))
  return "Result from task " .. task_id
end

--- Runs the functions of `fns` together; their results in order, where
-- an error takes the place of the result of the function that raised it.
function M.gather_results(fns)
  return async.gather(fns, {return_exceptions = true})
end

function M.demo_error_handling()
  print("\n=== Error Handling Demo ===")
  print("Demonstrating error handling in async code...")

  print("\nExample 1: Basic pcall")
  local ok, res = pcall(M.unreliable_task, 1, 0.8)
  if ok then print("Got result: " .. res)
  else print("Caught error: " .. tostring(res)) end

  print("\nExample 2: Multiple tasks with gather and return_exceptions")
  local fns = {}
  for i = 2, 4 do fns[#fns + 1] = function() return M.unreliable_task(i, 0.6) end end
  local results = M.gather_results(fns)
  for i = 1, results.n do
    local r = results[i]
    if async.Error:is(r) then
      print(("Task %d raised %s"):format(i + 1, tostring(r)))
    else
      print(("Task %d succeeded: %s"):format(i + 1, r))
    end
  end

  print("\nExample 3: Using retry_async")
  ok, res = pcall(retry_async, function() return M.unreliable_task(5, 0.7) end,
                  3, 0.5 * M.time_scale, 2)
  if ok then print("After retries, got result: " .. res)
  else print("All retries failed with: " .. tostring(res)) end
  return "Error handling completed"
end

---------------------------------------------------------------------------
-- 4. Timeouts and cancellation

--- Works `duration` lab seconds in steps of 0.5, reporting progress;
-- says so when it is cancelled (and lets the cancellation go on).
function M.long_running_task(task_id, duration)
  print(("Task %d starting, will run for %.2fs"):format(task_id, duration))
  local ok, err = pcall(function()
    local steps = math.floor(duration * 2)
    for i = 1, steps do
      sleep(0.5)
      print(("Task %d progress: %.0f%%"):format(task_id, i / steps * 100))
    end
  end)
  if not ok then
    if async.CancelledError:is(err) then
      print(("Task %d was cancelled"):format(task_id))  -- cleanup goes here
    end
    error(err, 0)  -- re-raised: the task ends cancelled
  end
  print(("Task %d completed successfully"):format(task_id))
  return "Result from task " .. task_id
end

--- Starts fn as a task, lets it run `delay` seconds, cancels it and waits
-- for it to end.  Returns "cancelled", or "done" and its results if it
-- finished first.
function M.cancel_after(fn, delay)
  local task = async.spawn(fn)
  async.sleep(delay)
  print("Cancelling the task...")
  task:cancel()
  local r = table.pack(pcall(async.await, task))
  if r[1] then return "done", table.unpack(r, 2, r.n) end
  if async.CancelledError:is(r[2]) then return "cancelled" end
  error(r[2], 0)
end

--- Cancels every task of the array `tasks` and waits for all of them to
-- end; returns what each ended with, in order (a CancelledError for the
-- cancelled ones).
function M.shutdown(tasks)
  for i, t in ipairs(tasks) do
    print(("Cancelling task %d..."):format(i))
    t:cancel()
  end
  return async.gather(tasks, {return_exceptions = true})
end

function M.demo_timeouts_and_cancellation()
  print("\n=== Timeouts and Cancellation Demo ===")
  print("Demonstrating timeouts and task cancellation...")

  print("\nExample 1: Using timeout_after")
  local ok, res = pcall(timeout_after,
                        function() return M.long_running_task(1, 5.0) end,
                        2.0 * M.time_scale)
  if ok then print("Got result: " .. res)
  elseif async.TimeoutError:is(res) then print("Task timed out: " .. res.message)
  else error(res, 0) end

  print("\nExample 2: Manual task cancellation")
  local outcome = M.cancel_after(function() return M.long_running_task(2, 10.0) end,
                                 3.0 * M.time_scale)
  if outcome == "cancelled" then print("Task was successfully cancelled") end

  print("\nExample 3: Graceful shutdown with cancellation")
  local tasks = {}
  for i = 3, 5 do
    local d = uniform(3.0, 8.0)
    tasks[#tasks + 1] = async.spawn(M.long_running_task, i, d)
  end
  sleep(2.0)
  print("\nStarting graceful shutdown...")
  local results = M.shutdown(tasks)
  for i = 1, results.n do
    local r = results[i]
    if async.CancelledError:is(r) then
      print(("Task %d was cancelled"):format(i + 2))
    elseif type(r) == "string" and r:find("^Result") then
      print(("Task %d completed: %s"):format(i + 2, r))
    else
      print(("Task %d failed: %s"):format(i + 2, tostring(r)))
    end
  end
  return "Timeouts and cancellation demo completed"
end

---------------------------------------------------------------------------
-- 5. Async patterns

--- Works `duration` lab seconds, saying when it starts and ends.
function M.demo_task(task_id, duration)
  print(("%s - Task %d starting, will take %.2fs"):format(get_timestamp(),
                                                          task_id, duration))
  sleep(duration)
  print(("%s - Task %d completed"):format(get_timestamp(), task_id))
  return "Result from task " .. task_id
end

-- What the producer puts once per consumer when it is done (a queue can
-- carry nil too, but a named value reads better).
local STOP = setmetatable({}, {__tostring = function() return "STOP" end})

--- A producer puts n_items items ("Item 1"...) into a queue, 0.1 to 0.5
-- lab seconds apart; n_consumers consumers take them and work 0.5 to 1.5
-- lab seconds on each.  Returns the records {item, consumer} in the order
-- they were finished.
function M.producer_consumer(n_items, n_consumers)
  local queue, finished = async.Queue(), {}

  local function producer()
    for i = 1, n_items do
      local item = "Item " .. i
      queue:put(item)
      print(("%s - Producer: added %s to the queue"):format(get_timestamp(),
                                                          item))
      sleep(uniform(0.1, 0.5))
    end
    for _ = 1, n_consumers do queue:put(STOP) end  -- one per consumer
  end

  local function consumer(id)
    while true do
      local item = queue:get()
      if item == STOP then
        print(("%s - Consumer %d: received the stop signal")
              :format(get_timestamp(), id))
        queue:task_done()
        return
      end
      print(("%s - Consumer %d: processing %s"):format(get_timestamp(), id,
                                                      item))
      sleep(uniform(0.5, 1.5))
      queue:task_done()
      finished[#finished + 1] = {item = item, consumer = id}
      print(("%s - Consumer %d: finished %s"):format(get_timestamp(), id,
                                                    item))
    end
  end

  local producer_task = async.spawn(producer)
  local consumers = {}
  for i = 1, n_consumers do consumers[i] = async.spawn(consumer, i) end
  async.await(producer_task)
  async.gather(consumers)
  return finished
end

function M.demo_async_patterns()
  print("\n=== Async Patterns Demo ===")
  print("Demonstrating common async patterns...")

  print("\nExample 1: Using run_tasks for concurrency control")
  local fns = {}
  for i = 1, 10 do
    local d = uniform(0.5, 2.0)
    fns[i] = function() return M.demo_task(i, d) end
  end
  print(("Running %d tasks with max concurrency of 3..."):format(#fns))
  local results = run_tasks(fns, 3)
  print(("All tasks completed, got %d results"):format(results.n))

  print("\nExample 2: Producer-consumer with async.Queue")
  print("Starting producer-consumer example...")
  M.producer_consumer(10, 3)
  print("Producer-consumer example completed")

  print("\nExample 3: Rate limiting")
  print("Running tasks with rate limiting (2 per second)...")
  for i = 1, 6 do
    local r = rate_limited(function()
      print(("%s - Rate-limited task %d running"):format(get_timestamp(), i))
      sleep(0.1)
      return "Result from rate-limited task " .. i
    end, 2, 1.0 * M.time_scale)
    print(("%s - Got result: %s"):format(get_timestamp(), r))
  end
  return "Async patterns demo completed"
end

---------------------------------------------------------------------------

--- Runs the five demos against a test server of its own; returns true if
-- they all ran, false after printing the error that stopped them.
function M.main()
  print("Lab 3 - Asynchronous programming")
  print("================================")
  local t0 = now()
  local srv <close> = testserver.start{}
  local ok, err = pcall(function()
    M.demo_simple_tasks()
    M.demo_web_requests(srv.url)
    M.demo_error_handling()
    M.demo_timeouts_and_cancellation()
    M.demo_async_patterns()
  end)
  if not ok then print("\nAn error occurred: " .. tostring(err)) end
  print(("\nTotal execution time: %.2f seconds"):format(now() - t0))
  return ok
end

-- Run as a script (not when a spec loads the file): the whole lab.
if arg and arg[0] and arg[0]:find("main%.lua$") then
  M.main()
end
return M

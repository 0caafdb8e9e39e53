--- Lab 1, exercise 6: error handling (exercise).
--
-- Fill in every function that raises a TODO error: exercises/lab1/README.md
-- says what each must do. Check your work with
--   asynchost lab check lab1/error_handling
-- or LAB_DIR=exercises busted --lua=asynchost --filter='lab1/error_handling' spec/labs/lab1_spec.lua
--
-- Run it:  asynchost exercises/lab1/error_handling.lua
-- Faster:  LAB_TIME_SCALE=0.1 asynchost exercises/lab1/error_handling.lua
--
-- Errors in tasks travel: a task's error is raised again where the task
-- is awaited, unchanged. Error values of a class (async.Error:extend) say
-- what went wrong; pcall catches them; gather can collect them instead of
-- raising the first one; wait_for turns slowness into TimeoutError; shield
-- keeps an operation running when its caller gives up; and a cancelled
-- task gets CancelledError where it waits, cleans up and goes.
local async = require "asynchost"

local M = {}

-- Every delay of this file is in "lab seconds", multiplied by time_scale
-- (LAB_TIME_SCALE, default 1; the specs set the field to run faster).
M.time_scale = tonumber(os.getenv("LAB_TIME_SCALE")) or 1

local function sleep(s) async.sleep(s * M.time_scale) end

-- Each unfinished function raises this: the message names the function
-- and where the instructions are.
local function todo(name)
  error(("TODO(ex6): implement %s — see exercises/lab1/README.md")
        :format(name), 2)
end

---------------------------------------------------------------------------
-- Kinds of errors

M.NetworkError = async.Error:extend("NetworkError")
M.ValidationError = async.Error:extend("ValidationError")

--- Fails in the way `kind` says, after 0.1 s: "network" raises a
-- NetworkError, "validation" a ValidationError, "bug" a plain string (as
-- a programming mistake would), "slow" takes 10 s; anything else returns
-- "ok: " .. kind.
function M.risky_operation(kind)
  todo("risky_operation")
end

---------------------------------------------------------------------------
-- Retry

--- Wraps `fn` in a function that calls it, and calls it again when it
-- fails, up to `max_retries` more times (default 3), waiting `delay`
-- seconds (default 0.5) before the first retry and twice as long before
-- each next one. Only errors for which opts.retry_on(err) is true are
-- retried (default: all but a cancellation); the last error is raised
-- when no retry is left. opts.on_retry(attempt, err, wait) is told of
-- each retry.
function M.retry_async(fn, max_retries, delay, opts)
  todo("retry_async")
end

---------------------------------------------------------------------------
-- Gathering without losing results to one failure

--- Runs the functions (or tasks) at once and waits for all; returns an
-- array of outcomes in order: {ok = true, value = v} or {ok = false,
-- error = err}. It never raises their errors.
function M.safe_gather(...)
  todo("safe_gather")
end

---------------------------------------------------------------------------
-- Timeouts and shields

--- Calls fn() with a time limit; returns true and its result, or false
-- and the TimeoutError (fn is cancelled then). Other errors are raised.
function M.with_timeout(fn, seconds)
  todo("with_timeout")
end

--- Saves `data` (takes `duration` seconds) in a task that the caller's
-- time limit cannot cancel: returns the save task and, if the caller gave
-- up, the TimeoutError. M.saved holds what was saved.
M.saved = {}
function M.shielded_save(data, duration, timeout)
  todo("shielded_save")
end

---------------------------------------------------------------------------
-- Cancellation

--- Works through `steps` steps of 0.1 s; when cancelled, records where in
-- log ("cancelled at step N", then "cleaned up") and lets the
-- cancellation go on. Returns "finished" otherwise.
function M.long_running_task(steps, log)
  todo("long_running_task")
end

---------------------------------------------------------------------------
-- Structured error logging

--- A record of the error `err`, with where it happened: {level, time,
-- task, class, message, context}; printed as one line and kept in
-- M.error_log.
M.error_log = {}
function M.log_error(err, context)
  todo("log_error")
end

function M.main()
  -- a flaky operation: fails twice, then works
  local calls = 0
  local unreliable = M.retry_async(function()
    calls = calls + 1
    sleep(0.05)
    if calls < 3 then error(M.NetworkError("network error")) end
    return "Success"
  end, 3, 0.5, {on_retry = function(attempt, err, wait)
    print(("  attempt %d failed (%s), retrying in %.1f s"):format(attempt,
          tostring(err), wait))
  end})
  print("Operation result: " .. unreliable())

  local results = M.safe_gather(
    function() return M.risky_operation("network") end,
    function() return M.risky_operation("fine") end,
    function() return M.risky_operation("bug") end)
  for i, r in ipairs(results) do
    print(("Safe gather #%d: %s %s"):format(i, r.ok and "ok" or "failed",
          tostring(r.ok and r.value or r.error)))
  end

  local ok, res = M.with_timeout(function()
    return M.risky_operation("slow")
  end, 0.5)
  print(("With a 0.5 s limit: %s, %s"):format(tostring(ok), tostring(res)))

  local save, err = M.shielded_save("report", 0.5, 0.2)
  print("Shielded save: caller got " .. tostring(err) ..
        "; the save goes on: " .. async.await(save))

  local log = {}
  local t = async.spawn(M.long_running_task, 10, log)
  sleep(0.35)
  t:cancel()
  print(("Long task cancelled: %s (%s)"):format(tostring(pcall(async.await, t)),
        table.concat(log, ", ")))

  for _, kind in ipairs{"network", "validation", "bug"} do
    local ok2, e = pcall(M.risky_operation, kind)
    if not ok2 then
      M.log_error(e, {operation = "risky_operation", kind = kind})
    end
  end
end

-- Run as a script (not when a spec loads the file): the demo.
if arg and arg[0] and arg[0]:match("error_handling%.lua$") then
  M.main()
end
return M

--- Lab 1, exercise 6: error handling (solution).
--
-- Run it:  asynchost solutions/lab1/error_handling.lua
-- Faster:  LAB_TIME_SCALE=0.1 asynchost solutions/lab1/error_handling.lua
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

---------------------------------------------------------------------------
-- Kinds of errors

M.NetworkError = async.Error:extend("NetworkError")
M.ValidationError = async.Error:extend("ValidationError")

--- Fails in the way `kind` says, after 0.1 s: "network" raises a
-- NetworkError, "validation" a ValidationError, "bug" a plain string (as
-- a programming mistake would), "slow" takes 10 s; anything else returns
-- "ok: " .. kind.
function M.risky_operation(kind)
  sleep(0.1)
  if kind == "network" then
    error(M.NetworkError("connection lost", {operation = "risky"}))
  elseif kind == "validation" then
    error(M.ValidationError("bad input", {field = "email"}))
  elseif kind == "bug" then
    local t = nil
    return t.field  -- attempt to index a nil value
  elseif kind == "slow" then
    sleep(10)
  end
  return "ok: " .. tostring(kind)
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
  if type(fn) ~= "function" then
    error("bad argument #1 to 'retry_async' (function expected, got "
          .. type(fn) .. ")", 2)
  end
  max_retries = max_retries or 3
  delay = delay or 0.5
  opts = opts or {}
  return function(...)
    local wait = delay
    for attempt = 1, max_retries + 1 do
      local res = table.pack(pcall(fn, ...))
      if res[1] then return table.unpack(res, 2, res.n) end
      local err = res[2]
      if async.CancelledError:is(err) or attempt > max_retries
         or (opts.retry_on and not opts.retry_on(err)) then
        error(err, 0)
      end
      if opts.on_retry then opts.on_retry(attempt, err, wait) end
      sleep(wait)
      wait = wait * 2
    end
  end
end

---------------------------------------------------------------------------
-- Gathering without losing results to one failure

--- Runs the functions (or tasks) at once and waits for all; returns an
-- array of outcomes in order: {ok = true, value = v} or {ok = false,
-- error = err}. It never raises their errors.
function M.safe_gather(...)
  local items = {...}
  local tasks = {}
  for i, item in ipairs(items) do
    tasks[i] = async.spawn(function()
      return table.pack(pcall(async.await, async.isfuture(item) and item
                              or async.spawn(item)))
    end)
  end
  local packs = async.gather(tasks)
  local out = {}
  for i = 1, #items do
    local p = packs[i]
    out[i] = p[1] and {ok = true, value = p[2]} or {ok = false, error = p[2]}
  end
  return out
end

---------------------------------------------------------------------------
-- Timeouts and shields

--- Calls fn() with a time limit; returns true and its result, or false
-- and the TimeoutError (fn is cancelled then). Other errors are raised.
function M.with_timeout(fn, seconds)
  local ok, res = pcall(async.wait_for, fn, seconds * M.time_scale)
  if ok then return true, res end
  if async.TimeoutError:is(res) then return false, res end
  error(res, 0)
end

--- Saves `data` (takes `duration` seconds) in a task that the caller's
-- time limit cannot cancel: returns the save task and, if the caller gave
-- up, the TimeoutError. M.saved holds what was saved.
M.saved = {}
function M.shielded_save(data, duration, timeout)
  local save = async.spawn(function()
    sleep(duration)
    M.saved[#M.saved + 1] = data
    return "saved " .. data
  end)
  local ok, err = pcall(async.wait_for, function()
    return async.shield(save)
  end, timeout * M.time_scale)
  return save, (not ok) and err or nil
end

---------------------------------------------------------------------------
-- Cancellation

--- Works through `steps` steps of 0.1 s; when cancelled, records where in
-- log ("cancelled at step N", then "cleaned up") and lets the
-- cancellation go on. Returns "finished" otherwise.
function M.long_running_task(steps, log)
  local step = 0
  local _ <close> = setmetatable({}, {__close = function()
    log[#log + 1] = "cleaned up"
  end})
  local ok, err = pcall(function()
    for i = 1, steps do
      step = i
      sleep(0.1)
    end
  end)
  if not ok then
    if async.CancelledError:is(err) then
      log[#log + 1] = "cancelled at step " .. step
    end
    error(err, 0)  -- re-raise: the task ends cancelled (or failed)
  end
  return "finished"
end

---------------------------------------------------------------------------
-- Structured error logging

--- A record of the error `err`, with where it happened: {level, time,
-- task, class, message, context}; printed as one line and kept in
-- M.error_log.
M.error_log = {}
function M.log_error(err, context)
  local class, message = "error", tostring(err)
  if async.Error:is(err) then
    class = tostring(getmetatable(err))
    message = err.message and tostring(err.message) or ""
  end
  local task = async.current_task()
  local record = {level = "ERROR", time = async.loop_time(),
                  task = task and task:get_name() or "-", class = class,
                  message = message, context = context or {}}
  M.error_log[#M.error_log + 1] = record
  local ctx = {}
  for k, v in pairs(record.context) do
    ctx[#ctx + 1] = k .. "=" .. tostring(v)
  end
  table.sort(ctx)
  print(("%s [%s] %s: %s %s"):format(record.level, record.task, class,
        message, #ctx > 0 and ("{" .. table.concat(ctx, ", ") .. "}") or ""))
  return record
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

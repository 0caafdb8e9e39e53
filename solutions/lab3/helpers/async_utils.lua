--- Lab 3: async utilities for DevOps scripts (solution).
--
-- main.lua loads this file (see its top); a spec or your own script can
-- too:  local utils = dofile("solutions/lab3/helpers/async_utils.lua")
--
--   fetch_url(url, [session], [timeout])       one GET, as a result record
--   run_tasks(fns, [max_concurrent])           functions, a few at a time
--   retry_async(fn, [max_retries], [delay], [backoff_factor])
--   timeout_after(fn, timeout)                 fn, or TimeoutError
--   async_map(fn, items, [max_concurrent])     fn over items, bounded
--   rate_limited(fn, rate_limit, [time_period])  at most rate_limit calls
--                                              per time_period seconds
--   get_timestamp()                            "2026-01-31 12:00:00.123"
local async = require "asynchost"

local M = {}

local function argcheck(cond, i, fname, msg)
  if not cond then
    error(("bad argument #%d to '%s' (%s)"):format(i, fname, msg), 3)
  end
end

local function typeof(v)
  return v == nil and "no value" or type(v)
end

local function callable(f)
  if type(f) == "function" then return true end
  local mt = getmetatable(f)
  return type(mt) == "table" and mt.__call ~= nil
end

--- Fetches `url` with a GET and describes the outcome in a table:
--   {url, status = 200, data = <the JSON decoded, or the body>, elapsed}
--   {url, status = 404, error = "HTTP error 404", elapsed}
--   {url, status = "timeout", error = "request timed out after 2 seconds",
--    elapsed = 2}
--   {url, status = "error", error = "request error: ...", elapsed}
-- It never raises for what the network does (only for bad arguments and
-- cancellation).  `session`: an async.http session to reuse (default: a
-- session made and closed here); `timeout`: seconds (default 30).
function M.fetch_url(url, session, timeout)
  argcheck(type(url) == "string", 1, "fetch_url",
           "string expected, got " .. typeof(url))
  argcheck(session == nil or type(session) == "table", 2, "fetch_url",
           "session expected, got " .. typeof(session))
  timeout = timeout or 30
  argcheck(type(timeout) == "number" and timeout > 0, 3, "fetch_url",
           "positive number of seconds expected")
  local own = session == nil and async.http.session{} or nil
  local _ <close> = own  -- a session made here is closed on the way out
  session = session or own
  local t0 = async.loop_time()
  local ok, r = pcall(session.get, session, url, {timeout = timeout})
  local elapsed = async.loop_time() - t0
  if not ok then
    if async.CancelledError:is(r) then error(r, 0) end  -- never swallowed
    if async.TimeoutError:is(r) then
      return {url = url, status = "timeout", elapsed = timeout,
              error = ("request timed out after %g seconds"):format(timeout)}
    end
    local kind = async.Error:is(r) and "request error" or "unexpected error"
    return {url = url, status = "error", elapsed = elapsed,
            error = kind .. ": " .. tostring(r)}
  end
  if r.status ~= 200 then
    return {url = url, status = r.status, elapsed = elapsed,
            error = "HTTP error " .. r.status}
  end
  local okjson, data = pcall(r.json, r)
  return {url = url, status = r.status, data = okjson and data or r.body,
          elapsed = elapsed}
end

--- Calls each function of the array `fns` in a task of its own, at most
-- `max_concurrent` (default 5) at a time, and returns a table of their
-- results in order (field n), an error taking the place of its result.
function M.run_tasks(fns, max_concurrent)
  argcheck(type(fns) == "table", 1, "run_tasks",
           "table of functions expected, got " .. typeof(fns))
  max_concurrent = max_concurrent or 5
  argcheck(math.type(max_concurrent) == "integer" and max_concurrent >= 1, 2,
           "run_tasks", "max_concurrent must be an integer >= 1")
  local sem = async.Semaphore(max_concurrent)
  local wrapped = {}
  for i, fn in ipairs(fns) do
    argcheck(callable(fn), 1, "run_tasks",
             "item " .. i .. " is not a function")
    wrapped[i] = function()
      local _ <close> = sem:acquire()  -- released however fn ends
      return fn()
    end
  end
  return async.gather(wrapped, {return_exceptions = true})
end

--- Calls `fn()` until it returns, at most 1 + `max_retries` (default 3)
-- times, and returns its results.  Waits `delay` seconds (default 1, plus
-- up to 10% of jitter) before the first retry, `backoff_factor` (default
-- 2) times longer before each next one.  When every call failed, raises
-- the last error.  A cancellation is never retried.
function M.retry_async(fn, max_retries, delay, backoff_factor)
  argcheck(callable(fn), 1, "retry_async",
           "function expected, got " .. typeof(fn))
  max_retries = max_retries or 3
  delay = delay or 1
  backoff_factor = backoff_factor or 2
  argcheck(math.type(max_retries) == "integer" and max_retries >= 0, 2,
           "retry_async", "max_retries must be an integer >= 0")
  argcheck(type(delay) == "number" and delay >= 0, 3, "retry_async",
           "delay must be a number >= 0")
  argcheck(type(backoff_factor) == "number" and backoff_factor >= 1, 4,
           "retry_async", "backoff_factor must be a number >= 1")
  local retries, wait = 0, delay
  while true do
    local r = table.pack(pcall(fn))
    if r[1] then return table.unpack(r, 2, r.n) end
    local err = r[2]
    if async.CancelledError:is(err) or retries == max_retries then
      error(err, 0)  -- unchanged
    end
    local w = wait * (1 + math.random() * 0.1)
    print(("Retry %d/%d, waiting %.2fs..."):format(retries + 1, max_retries,
                                                  w))
    async.sleep(w)
    wait = wait * backoff_factor
    retries = retries + 1
  end
end

--- Runs `fn` (a function, started as a task, or a task) for at most
-- `timeout` seconds and returns its results; past that, it is cancelled
-- and a TimeoutError "operation timed out after 2 seconds" is raised.
function M.timeout_after(fn, timeout)
  argcheck(callable(fn) or async.isfuture(fn), 1, "timeout_after",
           "function or task expected, got " .. typeof(fn))
  argcheck(type(timeout) == "number" and timeout >= 0, 2, "timeout_after",
           "non-negative number of seconds expected")
  local r = table.pack(pcall(async.wait_for, fn, timeout))
  if r[1] then return table.unpack(r, 2, r.n) end
  if async.TimeoutError:is(r[2]) then
    error(async.TimeoutError(("operation timed out after %g seconds")
                             :format(timeout)))
  end
  error(r[2], 0)
end

--- fn(item) for each item of the array `items`, at most `max_concurrent`
-- (default 5) at a time; results as run_tasks gives them.
function M.async_map(fn, items, max_concurrent)
  argcheck(callable(fn), 1, "async_map",
           "function expected, got " .. typeof(fn))
  argcheck(type(items) == "table", 2, "async_map",
           "table expected, got " .. typeof(items))
  local fns = {}
  for i, item in ipairs(items) do
    fns[i] = function() return fn(item) end
  end
  return M.run_tasks(fns, max_concurrent)
end

-- The start times of the calls of rate_limited in the last time_period
-- (one list for the whole module, as one budget for the whole script).
local operation_times = {}

--- Calls `fn()` and returns its results, but first waits while
-- `rate_limit` calls already started in the last `time_period` seconds
-- (default 1), printing "Rate limit reached. Waiting 0.80s...".
function M.rate_limited(fn, rate_limit, time_period)
  argcheck(callable(fn), 1, "rate_limited",
           "function expected, got " .. typeof(fn))
  argcheck(math.type(rate_limit) == "integer" and rate_limit >= 1, 2,
           "rate_limited", "rate_limit must be an integer >= 1")
  time_period = time_period or 1.0
  argcheck(type(time_period) == "number" and time_period > 0, 3,
           "rate_limited", "time_period must be a positive number")
  while true do
    local now = async.loop_time()
    local recent = {}
    for _, t in ipairs(operation_times) do
      if now - t < time_period then recent[#recent + 1] = t end
    end
    operation_times = recent
    if #recent < rate_limit then break end
    local wait = time_period - (now - recent[1])
    print(("Rate limit reached. Waiting %.2fs..."):format(wait))
    async.sleep(wait)  -- then look again: another task may have gone first
  end
  operation_times[#operation_times + 1] = async.loop_time()
  return fn()
end

-- The wall clock, to the millisecond: Lua's os.time counts whole seconds,
-- so the time of day is read once from date(1) and then advanced with the
-- loop's monotonic clock.
local wall0, mono0

--- The current time as "YYYY-MM-DD HH:MM:SS.mmm".
function M.get_timestamp()
  if not wall0 then
    local p = io.popen("date +%s.%N 2>/dev/null")
    if p then
      wall0 = tonumber(p:read("l"))
      p:close()
    end
    wall0, mono0 = wall0 or os.time(), async.loop_time()
  end
  local now = wall0 + (async.loop_time() - mono0)
  local s = math.floor(now)
  return os.date("%Y-%m-%d %H:%M:%S", s)
         .. (".%03d"):format(math.floor((now - s) * 1000))
end

return M

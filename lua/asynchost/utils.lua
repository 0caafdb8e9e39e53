--- Async utilities: retry with backoff, rate limiting and a bounded map.
--
-- The ideas of the course's async_utils (retry_async, rate_limited,
-- async_map), made exact: retry only retries what it should and never a
-- cancellation; RateLimiter serves its waiters in order and sleeps until
-- the computed time (no polling); map runs each call in its own task and
-- owns them, as a task group does.
local core = require "asynchost.core"
local sync = require "asynchost.core.sync"
local errors = require "asynchost.errors"
local math = require "math"

local CancelledError, RetryError = errors.CancelledError, errors.RetryError
local await, spawn, sleep, Future = core.await, core.spawn, core.sleep,
                                    core.Future
local current_task, loop_time = core.current_task, core.loop_time
local pack, unpack = table.pack, table.unpack
-- Lua's own pcall: leaves the cancellation bookkeeping alone
local rawpcall = require("asynchost.core.coroutine").rawpcall
local check = require "asynchost.check"
local argerror, typename, callable, running = check.argerror, check.typename, check.callable, check.running

local M = {}

-- opts[name], checked to be a number >= min (and an integer if asked);
-- `def` when absent.  Errors blame the caller of the API function.
local function numopt(opts, name, def, min, i, fname, integer)
  local v = opts[name]
  if v == nil then return def end
  if type(v) ~= "number" then
    argerror(i, fname, name .. " must be a number, got " .. typename(v), 3)
  end
  if integer and math.tointeger(v) == nil then
    argerror(i, fname, name .. " must be an integer", 3)
  end
  if not (v >= min) then  -- NaN too
    argerror(i, fname, ("%s must be >= %g"):format(name, min), 3)
  end
  return integer and math.tointeger(v) or v
end

local function checkopts(opts, i, fname)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    argerror(i, fname, "table expected, got " .. typename(opts), 3)
  end
  return opts
end

---------------------------------------------------------------------------
-- retry

local function isclass(c)
  return type(c) == "table" and callable(c.is)
end

-- retry_on as a predicate err -> boolean
local function retrypredicate(r)
  if r == nil then return function() return true end end
  if type(r) == "function" then return r end
  if isclass(r) then return function(err) return r:is(err) end end
  if type(r) == "table" and r[1] ~= nil then
    for k = 1, #r do
      if not isclass(r[k]) then
        argerror(2, "retry", ("retry_on[%d] is not an error class (got %s)")
                 :format(k, typename(r[k])), 3)
      end
    end
    return function(err)
      for k = 1, #r do
        if r[k]:is(err) then return true end
      end
      return false
    end
  end
  argerror(2, "retry", "retry_on must be a function, an error class or an "
           .. "array of classes, got " .. typename(r), 3)
end

--- Calls fn(attempt) (attempt = 1, 2, ...) until it returns, and returns
-- its results; between attempts the task sleeps.  Options (all optional):
--
-- - `attempts`: how many calls at most (an integer >= 1; default 3);
-- - `delay`: seconds before the 2nd attempt (default 0.1), multiplied by
--   `backoff` (default 2) after each wait and capped at `max_delay`
--   (default math.huge);
-- - `jitter`: 0..1 (`true` means 0.1; default 0): each delay, after the
--   cap, is multiplied by a random factor in [1 - jitter, 1 + jitter], so
--   a delay at the cap may exceed `max_delay` by that factor;
-- - `retry_on`: which errors are retried: a function(err) -> boolean, an
--   error class (anything with an `is` method, e.g. async.TimeoutError) or
--   an array of classes; default every error.  An error it rejects is
--   re-raised at once, as it is;
-- - `on_retry`: function(attempt, err, delay), called before each wait
--   with the number of the attempt that just failed and the delay to come.
--
-- A CancelledError is never retried (nor shown to retry_on): it is
-- re-raised at once, and cancelling the task while it waits between
-- attempts ends it there.  When every attempt fails, raises
-- async.RetryError with fields `attempts`, `errors` (in order) and `last`:
-- "RetryError: failed after 3 attempts: <last error>".
function M.retry(fn, opts)
  if not callable(fn) then
    argerror(1, "retry", "function expected, got " .. typename(fn), 2)
  end
  opts = checkopts(opts, 2, "retry")
  local attempts = numopt(opts, "attempts", 3, 1, 2, "retry", true)
  local delay = numopt(opts, "delay", 0.1, 0, 2, "retry")
  local backoff = numopt(opts, "backoff", 2, 0, 2, "retry")
  local max_delay = numopt(opts, "max_delay", math.huge, 0, 2, "retry")
  local jitter = opts.jitter
  if jitter == true then jitter = 0.1
  elseif jitter == nil or jitter == false then jitter = 0
  elseif type(jitter) ~= "number" or not (jitter >= 0 and jitter <= 1) then
    argerror(2, "retry", "jitter must be a number in [0, 1] or a boolean", 2)
  end
  local retry_on = retrypredicate(opts.retry_on)
  local on_retry = opts.on_retry
  if on_retry ~= nil and not callable(on_retry) then
    argerror(2, "retry", "on_retry must be a function, got "
             .. typename(on_retry), 2)
  end
  running("retry")
  local errs, wait, last = {}, delay, nil
  for attempt = 1, attempts do
    local res = pack(rawpcall(fn, attempt))
    if res[1] then return unpack(res, 2, res.n) end
    last = res[2]
    if CancelledError:is(last) or not retry_on(last) then error(last, 0) end
    errs[attempt] = last
    if attempt == attempts then break end
    local d = wait < max_delay and wait or max_delay
    if jitter > 0 and d < math.huge then
      d = d * (1 + jitter * (2 * math.random() - 1))
    end
    if on_retry then on_retry(attempt, last, d) end
    sleep(d)
    wait = wait * backoff
  end
  error(RetryError{
    message = ("failed after %d attempt%s: %s"):format(attempts,
      attempts == 1 and "" or "s", tostring(last)),
    attempts = attempts, errors = errs, last = last}, 0)
end

---------------------------------------------------------------------------
-- RateLimiter

local EPS = 1e-9  -- seconds: waits shorter than this are rounding noise
local NOKEY = {}  -- the key of the shared budget

local methods = {}
local Limiter = {__index = methods, __name = "asynchost.RateLimiter"}

-- Each key's budget: a token bucket {tokens, stamp} or the ring of the last
-- `rate` grant times {times, first, n}; and `lock`, made when someone has
-- to wait: its holder is the next to be served and the only one sleeping,
-- the others queue on it (a Lock is FIFO, hands over on release, and a
-- cancelled waiter leaves the queue without taking anything).

-- Seconds until budget `s` allows one grant at time `now` (<= 0: now).
local function bucketwait(self, s, now)
  local t = s.tokens + (now - s.stamp) * self.rate / self.per
  s.tokens = t < self.burst and t or self.burst
  s.stamp = now
  return (1 - s.tokens) * self.per / self.rate
end

local function buckettake(_, s)
  s.tokens = s.tokens - 1
end

local function windowwait(self, s, now)
  if s.n < self.rate then return 0 end
  return s.times[s.first] + self.per - now
end

local function windowtake(self, s, now)
  if s.n < self.rate then
    s.n = s.n + 1
    s.times[s.n] = now
  else  -- replace the oldest
    s.times[s.first] = now
    s.first = s.first % self.rate + 1
  end
end

local function checklimiter(self, fname)
  if getmetatable(self) ~= Limiter then
    argerror(1, fname, "RateLimiter expected, got " .. typename(self), 3)
  end
end

local function budget(self, key, fname)
  if key == nil then key = NOKEY
  elseif key ~= key then argerror(2, fname, "key is NaN", 3) end
  local s = self.keys[key]
  if s == nil then
    if self.sliding then s = {times = {}, first = 1, n = 0}
    else s = {tokens = self.burst, stamp = loop_time()} end
    self.keys[key] = s
  end
  return s
end

--- async.RateLimiter{rate = n, per = seconds, burst = b, window = w}:
-- at most `rate` calls per `per` seconds (default 1), for each key.
--
-- - window = "token" (default): a token bucket of `burst` tokens (a number
--   >= 1; default rate, at least 1), full at first, refilled continuously
--   at rate/per; each call takes a token.  Any window of `per` seconds
--   sees at most burst + rate calls.
-- - window = "sliding": at most `rate` (an integer) calls in any window of
--   `per` seconds; `burst` is not allowed.
--
-- Each key has its own budget, made on first use (one small table per key
-- for the life of the limiter).  Time comes from async.loop_time().
function M.RateLimiter(config)
  if type(config) ~= "table" then
    argerror(1, "RateLimiter", "table expected, got " .. typename(config), 2)
  end
  local rate, per = config.rate, config.per or 1
  local window = config.window or "token"
  if window ~= "token" and window ~= "sliding" then
    argerror(1, "RateLimiter", "window must be \"token\" or \"sliding\"", 2)
  end
  if type(rate) ~= "number" or not (rate > 0) or rate == math.huge then
    argerror(1, "RateLimiter", "rate must be a positive number, got "
             .. (type(rate) == "number" and tostring(rate) or typename(rate)),
             2)
  end
  if type(per) ~= "number" or not (per > 0) or per == math.huge then
    argerror(1, "RateLimiter", "per must be a positive number of seconds", 2)
  end
  local burst = config.burst
  if window == "sliding" then
    if math.tointeger(rate) == nil then
      argerror(1, "RateLimiter",
               "rate must be an integer with window = \"sliding\"", 2)
    end
    if burst ~= nil then
      argerror(1, "RateLimiter",
               "burst is only for window = \"token\"", 2)
    end
    rate = math.tointeger(rate)
  elseif burst == nil then
    burst = rate >= 1 and rate or 1
  elseif type(burst) ~= "number" or not (burst >= 1)
         or burst == math.huge then
    argerror(1, "RateLimiter", "burst must be a number >= 1", 2)
  end
  local sliding = window == "sliding"
  return setmetatable({rate = rate, per = per, burst = burst,
                       window = window, sliding = sliding, keys = {},
                       _wait = sliding and windowwait or bucketwait,
                       _take = sliding and windowtake or buckettake},
                      Limiter)
end

--- limiter:acquire([key]) (or limiter(key)): waits until a call for `key`
-- may proceed, then returns nothing.  Callers are served first come, first
-- served (per key): a later caller never overtakes an earlier one, not
-- even when budget is free again before the earlier one has woken up.  A
-- caller cancelled while it waits gives up its place and takes no budget.
-- Only suspends when it has to wait.
function methods:acquire(key)
  checklimiter(self, "acquire")
  local s = budget(self, key, "acquire")
  local now
  if s.lock == nil or not s.lock:locked() then
    now = loop_time()
    if self:_wait(s, now) <= EPS then
      self:_take(s, now)
      return
    end
  end
  running("acquire")
  if s.lock == nil then s.lock = sync.Lock() end
  local _ <close> = s.lock:acquire()  -- our turn: we are next
  while true do
    now = loop_time()
    local d = self:_wait(s, now)
    if d <= EPS then
      self:_take(s, now)
      return
    end
    sleep(d)
  end
end
Limiter.__call = methods.acquire

--- limiter:try_acquire([key]) -> boolean: takes budget for `key` if a call
-- may proceed now and nobody is waiting for that key; never waits.
function methods:try_acquire(key)
  checklimiter(self, "try_acquire")
  local s = budget(self, key, "try_acquire")
  if s.lock ~= nil and s.lock:locked() then return false end
  local now = loop_time()
  if self:_wait(s, now) <= EPS then
    self:_take(s, now)
    return true
  end
  return false
end

function Limiter:__tostring()
  if self.sliding then
    return ("RateLimiter (%g per %g s, sliding window)"):format(self.rate,
                                                                self.per)
  end
  return ("RateLimiter (%g per %g s, token bucket of %g)"):format(
    self.rate, self.per, self.burst)
end

---------------------------------------------------------------------------
-- map

local BAR = 30  -- width of the progress bar

-- The bar goes to stderr only when stderr is a terminal (asked of libuv)
-- and TERM is not "dumb".
local function showbar()
  return core.isatty(2) and os.getenv("TERM") ~= "dumb"
end

local function drawbar(done, total)
  local k = total > 0 and (done * BAR) // total or BAR
  io.stderr:write(("\r[%s%s] %d/%d"):format(("#"):rep(k), ("."):rep(BAR - k),
                                            done, total))
  io.stderr:flush()
end

--- async.map(fn, items [, opts]) -> results: calls fn(item, index) for each
-- item of the array `items` (items.n counts if set), each call in a task
-- of its own, and returns their first results in input order (field n).
-- Options:
--
-- - `concurrency`: at most this many calls at a time (an integer >= 1;
--   default 10);
-- - `return_exceptions`: an error becomes its call's result (a cancelled
--   call's is its CancelledError).  Otherwise the first error cancels the
--   calls still running (none is started after it), waits for them to end
--   and is raised, as it is;
-- - `on_progress`: function(done, total, index, ok, result_or_err), called
--   in the calling task after each completion (also the failing one), in
--   completion order; if it raises, map stops as for an error of fn;
-- - `progress = true`: draws `\r[#####.....] 5/10` on stderr at each
--   completion, ended with a newline, when stderr looks like a terminal
--   (stderr is a terminal and TERM is not "dumb").
--
-- Cancelling the calling task cancels every call map started, waits for
-- them to end, and raises the CancelledError.
function M.map(fn, items, opts)
  if not callable(fn) then
    argerror(1, "map", "function expected, got " .. typename(fn), 2)
  end
  if type(items) ~= "table" then
    argerror(2, "map", "table expected, got " .. typename(items), 2)
  end
  opts = checkopts(opts, 3, "map")
  local concurrency = numopt(opts, "concurrency", 10, 1, 3, "map", true)
  local return_exceptions = opts.return_exceptions
  local on_progress = opts.on_progress
  if on_progress ~= nil and not callable(on_progress) then
    argerror(3, "map", "on_progress must be a function, got "
             .. typename(on_progress), 2)
  end
  running("map")
  local total = type(items.n) == "number" and math.tointeger(items.n)
                or #items
  local results = {n = total}
  if total <= 0 then
    results.n = 0
    return results
  end
  local bar = opts.progress == true and showbar()
  local tasks = {}           -- index -> task not yet processed
  local finished = {}        -- FIFO of indices done, not yet processed
  local head, tail = 1, 0
  local nrunning, nextidx, ndone = 0, 1, 0
  local waiter               -- a Future the done callbacks complete

  local function launch()
    while nrunning < concurrency and nextidx <= total do
      local i = nextidx
      nextidx = i + 1
      local t = spawn(fn, items[i], i)
      tasks[i] = t
      nrunning = nrunning + 1
      t:add_done_callback(function()
        nrunning = nrunning - 1
        tail = tail + 1
        finished[tail] = i
        if waiter ~= nil and not waiter:done() then waiter:set_result() end
      end)
    end
  end

  local function body()
    if bar then drawbar(0, total) end
    launch()
    while ndone < total do
      while finished[head] == nil do
        waiter = Future()
        await(waiter)
      end
      local i = finished[head]
      finished[head], head = nil, head + 1
      local t = tasks[i]
      tasks[i] = nil
      local ok, v = rawpcall(t.result, t)  -- first result, or the error
      ndone = ndone + 1
      if ok or return_exceptions then results[i] = v end
      if on_progress then on_progress(ndone, total, i, ok, v) end
      if bar then drawbar(ndone, total) end
      if not ok and not return_exceptions then error(v, 0) end
      launch()
    end
  end

  local ok, err = rawpcall(body)
  if not ok then  -- cancel what still runs and wait for it to end
    nextidx = total + 1
    for _, t in pairs(tasks) do
      if not t:done() then t:cancel("map aborted") end
    end
    while nrunning > 0 do
      waiter = Future()
      rawpcall(await, waiter)  -- cancelled again: we are ending anyway
    end
    for _, t in pairs(tasks) do  -- their errors are retrieved: seen here
      if not t:cancelled() then t:exception() end
    end
  end
  if bar then io.stderr:write("\n") end
  if not ok then error(err, 0) end
  return results
end

return M

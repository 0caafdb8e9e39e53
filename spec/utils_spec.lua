local async = require "asynchost"
require "asynchost.busted"

-- Grant times are read with loop_time() right after acquire returns, a few
-- microseconds after the limiter stamped them: windows are checked with
-- this much slack.
local SLACK = 1e-3

-- The largest number of times in any window [t_i, t_i + width).
local function busiest(times, width)
  local most = 0
  for i = 1, #times do
    local n = 0
    for j = 1, #times do
      if times[j] >= times[i] and times[j] < times[i] + width then
        n = n + 1
      end
    end
    if n > most then most = n end
  end
  return most
end

describe("retry", function()
  it("succeeds on the 3rd attempt, the delays growing", function()
    local times, delays = {}, {}
    local a, b = async.retry(function(attempt)
      times[#times + 1] = async.loop_time()
      if attempt < 3 then error("flaky " .. attempt) end
      return "ok", attempt
    end, {delay = 0.01, backoff = 2,
          on_retry = function(_, _, d) delays[#delays + 1] = d end})
    assert.equal("ok", a)
    assert.equal(3, b)
    assert.equal(3, #times)
    local d1, d2 = times[2] - times[1], times[3] - times[2]
    assert.same({0.01, 0.02}, delays)
    -- (upper bounds leave room for a loaded machine)
    assert.is_true(d1 >= 0.01 and d1 < 0.04, "first delay " .. d1)
    assert.is_true(d2 >= 0.02 and d2 < 0.06, "second delay " .. d2)
  end)

  it("returns at once when the first attempt works", function()
    local calls, ran = 0, false
    local other = async.spawn(function() ran = true end)
    assert.equal(42, async.retry(function() calls = calls + 1; return 42 end))
    assert.equal(1, calls)
    assert.is_false(ran)                     -- retry did not suspend
    async.await(other)
  end)

  it("caps the delays at max_delay", function()
    local delays = {}
    local t0 = async.loop_time()
    local ok, err = pcall(async.retry, function() error("no", 0) end, {
      attempts = 5, delay = 0.005, backoff = 4, max_delay = 0.02,
      on_retry = function(_, _, d) delays[#delays + 1] = d end})
    assert.is_false(ok)
    assert.is_true(async.RetryError:is(err))
    assert.same({0.005, 0.02, 0.02, 0.02}, delays)
    local took = async.loop_time() - t0
    assert.is_true(took >= 0.065 and took < 0.2, "took " .. took)
  end)

  it("keeps jittered delays within bounds", function()
    local delays, attempts = {}, {}
    pcall(async.retry, function() error("no", 0) end, {
      attempts = 21, delay = 0.001, backoff = 1, jitter = 0.5,
      on_retry = function(attempt, err, d)
        attempts[#attempts + 1] = attempt
        assert.equal("no", err)
        delays[#delays + 1] = d
      end})
    assert.equal(20, #delays)
    local distinct = {}
    for i, d in ipairs(delays) do
      assert.equal(i, attempts[i])
      assert.is_true(d >= 0.0005 and d <= 0.0015, "delay " .. d)
      distinct[d] = true
    end
    assert.is_true(next(distinct, next(distinct)) ~= nil,
                   "jitter changes the delays")
    -- jitter = true is 10 %
    delays = {}
    pcall(async.retry, function() error("no", 0) end, {
      attempts = 11, delay = 0.001, backoff = 1, jitter = true,
      on_retry = function(_, _, d) delays[#delays + 1] = d end})
    for _, d in ipairs(delays) do
      assert.is_true(d >= 0.0009 and d <= 0.0011, "delay " .. d)
    end
  end)

  it("retries only the errors retry_on accepts", function()
    local calls = 0
    local ok, err = pcall(async.retry, function()
      calls = calls + 1
      error("plain", 0)
    end, {attempts = 5, delay = 0.001, retry_on = async.TimeoutError})
    assert.is_false(ok)
    assert.equal("plain", err)          -- as it is, not wrapped
    assert.equal(1, calls)

    calls = 0
    ok, err = pcall(async.retry, function()
      calls = calls + 1
      error(async.TimeoutError("slow"))
    end, {attempts = 3, delay = 0.001, retry_on = async.TimeoutError})
    assert.is_true(async.RetryError:is(err))
    assert.equal(3, calls)

    -- an array of classes, then a predicate
    local Flaky = async.Error:extend("Flaky")
    calls = 0
    local e2 = async.InvalidStateError("bad")
    ok, err = pcall(async.retry, function(attempt)
      calls = calls + 1
      if attempt == 1 then error(Flaky("once")) end
      error(e2)
    end, {attempts = 5, delay = 0.001,
          retry_on = {async.TimeoutError, Flaky}})
    assert.equal(e2, err)
    assert.equal(2, calls)

    local seen = {}
    ok, err = pcall(async.retry, function(attempt)
      error(attempt < 3 and "again" or "fatal", 0)
    end, {attempts = 5, delay = 0.001, retry_on = function(e)
      seen[#seen + 1] = e
      return e == "again"
    end})
    assert.equal("fatal", err)
    assert.same({"again", "again", "fatal"}, seen)
  end)

  it("raises RetryError with every error", function()
    local e3 = async.TimeoutError("third")
    local ok, err = pcall(async.retry, function(attempt)
      if attempt == 3 then error(e3) end
      error("e" .. attempt, 0)
    end, {delay = 0.001})
    assert.is_false(ok)
    assert.is_true(async.RetryError:is(err))
    assert.is_true(async.Error:is(err))
    assert.equal(3, err.attempts)
    assert.equal(3, #err.errors)
    assert.equal("e1", err.errors[1])
    assert.equal("e2", err.errors[2])
    assert.equal(e3, err.errors[3])
    assert.equal(e3, err.last)
    assert.equal("RetryError: failed after 3 attempts: TimeoutError: third",
                 tostring(err))
    ok, err = pcall(async.retry, function() error("only", 0) end,
                    {attempts = 1})
    assert.equal("RetryError: failed after 1 attempt: only", tostring(err))
    assert.equal(1, err.attempts)
  end)

  it("never retries a cancellation", function()
    -- cancelled while it waits between attempts
    local calls = 0
    local t = async.spawn(function()
      return async.retry(function()
        calls = calls + 1
        error("down", 0)
      end, {attempts = 5, delay = 0.1})
    end)
    async.sleep(0.01)
    assert.equal(1, calls)
    t:cancel()
    local ok, err = pcall(async.await, t)
    assert.is_false(ok)
    assert.is_true(async.CancelledError:is(err))
    assert.is_true(t:cancelled())
    async.sleep(0.12)                        -- past the second attempt's time
    assert.equal(1, calls)

    -- a CancelledError raised by fn: re-raised, not shown to retry_on
    local asked = 0
    calls = 0
    local ce = async.CancelledError("from below")
    ok, err = pcall(async.retry, function()
      calls = calls + 1
      error(ce)
    end, {delay = 0.001, retry_on = function() asked = asked + 1 end})
    assert.equal(ce, err)
    assert.equal(1, calls)
    assert.equal(0, asked)
  end)

  it("checks its arguments", function()
    local f = function() end
    local function bad(msg, ...)
      local args = table.pack(...)
      assert.has_error(function() async.retry(table.unpack(args, 1, args.n))
                       end, "bad argument " .. msg)
    end
    bad("#1 to 'retry' (function expected, got nil)", nil)
    bad("#2 to 'retry' (table expected, got number)", f, 3)
    bad("#2 to 'retry' (attempts must be >= 1)", f, {attempts = 0})
    bad("#2 to 'retry' (attempts must be an integer)", f, {attempts = 1.5})
    bad("#2 to 'retry' (attempts must be a number, got string)", f,
        {attempts = "3"})
    bad("#2 to 'retry' (delay must be >= 0)", f, {delay = -1})
    bad("#2 to 'retry' (delay must be >= 0)", f, {delay = 0 / 0})
    bad("#2 to 'retry' (backoff must be >= 0)", f, {backoff = -2})
    bad("#2 to 'retry' (max_delay must be >= 0)", f, {max_delay = -1})
    bad("#2 to 'retry' (jitter must be a number in [0, 1] or a boolean)", f,
        {jitter = 1.5})
    bad("#2 to 'retry' (retry_on must be a function, an error class or an "
        .. "array of classes, got number)", f, {retry_on = 5})
    bad("#2 to 'retry' (retry_on[2] is not an error class (got string))", f,
        {retry_on = {async.TimeoutError, "x"}})
    bad("#2 to 'retry' (on_retry must be a function, got string)", f,
        {on_retry = "x"})
  end)
end)

describe("RateLimiter", function()
  it("lets a burst through, then a steady rate", function()
    local t0 = async.loop_time()
    local lim = async.RateLimiter{rate = 100, burst = 5}
    local times, ran = {}, false
    local other = async.spawn(function() ran = true end)
    for i = 1, 15 do
      lim:acquire()
      times[i] = async.loop_time() - t0
      if i == 5 then assert.is_false(ran) end  -- the burst did not wait
    end
    assert.is_true(ran)
    assert.is_true(times[5] < 0.009, "burst took " .. times[5])
    for k = 6, 15 do  -- a token every 10 ms, without drift
      local due = (k - 5) * 0.01
      assert.is_true(times[k] >= due - 1e-6 and times[k] < due + 0.04,
                     ("grant %d at %.4f, due %.2f"):format(k, times[k], due))
    end
  end)

  it("keeps one budget per key", function()
    local lim = async.RateLimiter{rate = 100, burst = 2}
    assert.is_true(lim:try_acquire("a.example"))
    assert.is_true(lim:try_acquire("a.example"))
    assert.is_false(lim:try_acquire("a.example"))
    assert.is_true(lim:try_acquire("b.example"))
    assert.is_true(lim:try_acquire())      -- the shared budget
    local key = {}
    assert.is_true(lim:try_acquire(key))
    assert.is_true(lim:try_acquire(key))
    assert.is_false(lim:try_acquire(key))
    assert.is_true(lim:try_acquire("b.example"))
    assert.is_false(lim:try_acquire("b.example"))

    -- waiting on one key does not hold up another
    local t0 = async.loop_time()
    lim = async.RateLimiter{rate = 50, burst = 2}
    local list = {}
    for i = 1, 8 do
      list[i] = async.spawn(function()
        lim(i % 2 == 0 and "a" or "b")     -- __call is acquire
        return async.loop_time() - t0
      end)
    end
    local r = async.gather(list)
    local last = math.max(table.unpack(r, 1, r.n))
    -- 4 per key: 2 at once, then 20 and 40 ms (one key: 120 ms)
    assert.is_true(last >= 0.04 and last < 0.1, "took " .. last)
  end)

  it("is exact under 100 concurrent callers (token bucket, 10/s)",
  function()
    local t0 = async.loop_time()
    local lim = async.RateLimiter{rate = 10, per = 1, burst = 10}
    local times, order, calls = {}, {}, {}
    local list = {}
    for i = 1, 100 do
      list[i] = async.spawn(function()
        calls[#calls + 1] = i
        lim:acquire()
        order[#order + 1] = i
        times[#times + 1] = async.loop_time() - t0
      end)
    end
    async.gather(list)
    assert.same(calls, order)                -- first come, first served
    assert.is_true(times[10] < 0.09, "burst took " .. times[10])
    assert.is_true(times[11] >= 0.1 - 1e-6)
    for k = 11, 100 do
      local due = (k - 10) * 0.1
      assert.is_true(times[k] >= due - 1e-6 and times[k] < due + 0.09,
                     ("grant %d at %.4f, due %.1f"):format(k, times[k], due))
    end
    assert.is_true(times[100] >= 9 - 1e-6 and times[100] < 9.3,
                   "took " .. times[100])
    -- burst + rate at most in any second (the first one holds 19)
    local most = busiest(times, 1 - SLACK)
    assert.is_true(most <= 20, most .. " grants in one second")
    assert.is_true(most >= 19, most .. " grants in the busiest second")
  end, 20)

  it("never grants more than rate per window (sliding window)", function()
    local t0 = async.loop_time()
    local lim = async.RateLimiter{rate = 10, per = 0.1, window = "sliding"}
    local times, order, calls = {}, {}, {}
    local list = {}
    for i = 1, 50 do
      list[i] = async.spawn(function()
        calls[#calls + 1] = i
        lim:acquire("k")
        order[#order + 1] = i
        times[#times + 1] = async.loop_time() - t0
      end)
    end
    async.gather(list)
    assert.same(calls, order)
    assert.is_true(times[10] < 0.09, "first window took " .. times[10])
    assert.equal(10, busiest(times, 0.1 - SLACK))
    for k = 11, 50 do  -- each waits for the grant `rate` before it
      assert.is_true(times[k] - times[k - 10] >= 0.1 - SLACK)
    end
    assert.is_true(times[50] >= 0.4 - SLACK and times[50] < 0.55,
                   "took " .. times[50])
    assert.is_false(lim:try_acquire("k"))
    assert.is_true(lim:try_acquire("other"))
  end)

  it("serves waiters first come, first served", function()
    local lim = async.RateLimiter{rate = 200, burst = 1}
    lim:acquire()
    local arrived, served, list = {}, {}, {}
    local perm = {7, 2, 11, 5, 1, 9, 12, 3, 8, 4, 10, 6}
    for i, p in ipairs(perm) do
      list[i] = async.spawn(function()
        async.sleep(p * 0.001)
        arrived[#arrived + 1] = p
        lim:acquire()
        served[#served + 1] = p
      end)
    end
    async.gather(list)
    assert.same({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, arrived)
    assert.same(arrived, served)
  end)

  it("a cancelled waiter takes no budget and blocks nobody", function()
    for _, window in ipairs{"token", "sliding"} do
      local t0 = async.loop_time()
      local lim = async.RateLimiter{rate = 1, per = 0.1, window = window}
      lim:acquire()
      local function waiter()
        lim:acquire()
        return async.loop_time() - t0
      end
      local b = async.spawn(waiter)   -- first in line: sleeps to 0.1 s
      local c = async.spawn(waiter)
      local d = async.spawn(waiter)   -- queued behind c
      local e = async.spawn(waiter)
      async.sleep(0.03)
      b:cancel()
      d:cancel()
      local tc, te = async.await(c), async.await(e)
      assert.is_true(b:cancelled() and d:cancelled())
      -- had b or d taken budget: 0.2 and 0.3
      assert.is_true(tc >= 0.1 - 1e-6 and tc < 0.17, window .. " c " .. tc)
      assert.is_true(te >= 0.2 - 1e-6 and te < 0.27, window .. " e " .. te)
      assert.is_false(lim:try_acquire())  -- e has the budget, nobody else
    end
  end)

  it("try_acquire never waits", function()
    local lim = async.RateLimiter{rate = 100, burst = 2}
    local ran = false
    local other = async.spawn(function() ran = true end)
    assert.is_true(lim:try_acquire())
    assert.is_true(lim:try_acquire())
    assert.is_false(lim:try_acquire())
    assert.is_false(ran)                     -- never suspended
    async.await(other)
    async.sleep(0.011)
    assert.is_true(lim:try_acquire())        -- refilled
    -- a waiter in line is not overtaken, even by try_acquire: the budget
    -- is back (we spin without yielding) but w has not woken up yet
    lim = async.RateLimiter{rate = 10, burst = 1}
    assert.is_true(lim:try_acquire())
    local order = {}
    local w = async.spawn(function() lim:acquire(); order[#order + 1] = "w" end)
    async.sleep(0)                           -- w waits for the next token
    local t1 = async.loop_time()
    while async.loop_time() < t1 + 0.11 do end
    assert.is_false(lim:try_acquire())
    assert.equal(nil, (lim:acquire()))       -- returns nothing...
    order[#order + 1] = "main"               -- ...after w was served
    async.await(w)
    assert.same({"w", "main"}, order)
    assert.matches("^RateLimiter %(100 per 1 s, token bucket of 2%)$",
                   tostring(async.RateLimiter{rate = 100, burst = 2}))
  end)

  it("checks its configuration", function()
    local function bad(msg, config)
      assert.has_error(function() async.RateLimiter(config) end,
                       "bad argument #1 to 'RateLimiter' (" .. msg .. ")")
    end
    bad("table expected, got number", 10)
    bad("rate must be a positive number, got nil", {})
    bad("rate must be a positive number, got 0", {rate = 0})
    bad("rate must be a positive number, got string", {rate = "10"})
    bad("per must be a positive number of seconds", {rate = 1, per = -1})
    bad("burst must be a number >= 1", {rate = 1, burst = 0.5})
    bad("window must be \"token\" or \"sliding\"", {rate = 1, window = "x"})
    bad("rate must be an integer with window = \"sliding\"",
        {rate = 2.5, window = "sliding"})
    bad("burst is only for window = \"token\"",
        {rate = 2, burst = 3, window = "sliding"})
    local lim = async.RateLimiter{rate = 0.5}  -- burst 1, not 0.5
    assert.is_true(lim:try_acquire())
    assert.is_false(lim:try_acquire())
    assert.has_error(function() lim.acquire(5) end,
      "bad argument #1 to 'acquire' (RateLimiter expected, got number)")
    assert.has_error(function() lim:try_acquire(0 / 0) end,
      "bad argument #2 to 'try_acquire' (key is NaN)")
  end)
end)

describe("map", function()
  it("returns the results in input order", function()
    local r = async.map(function(item, i)
      async.sleep((9 - i) * 0.002)   -- the last ends first
      return item .. i, "ignored"
    end, {"a", "b", "c", "d", "e", "f", "g", "h"})
    assert.same({"a1", "b2", "c3", "d4", "e5", "f6", "g7", "h8", n = 8}, r)
  end)

  it("never runs more than concurrency calls at a time", function()
    local running, peak = 0, 0
    local tasks = {}
    local function job(x)
      tasks[async.current_task()] = true
      running = running + 1
      peak = math.max(peak, running)
      async.sleep(0.002 * (x % 3 + 1))
      running = running - 1
      return x * x
    end
    local items = {}
    for i = 1, 20 do items[i] = i end
    local r = async.map(job, items, {concurrency = 3})
    assert.equal(3, peak)
    assert.equal(20, r.n)
    assert.equal(400, r[20])
    local n = 0
    for _ in pairs(tasks) do n = n + 1 end
    assert.equal(20, n)                      -- each call in its own task

    items = {}
    for i = 1, 25 do items[i] = i end
    peak = 0
    async.map(job, items)
    assert.equal(10, peak)                   -- the default
  end)

  it("reports progress after each completion", function()
    local calls = {}
    local r = async.map(function(x)
      async.sleep(x * 0.001)
      return -x
    end, {3, 1, 2, 5, 4}, {on_progress = function(...)
      calls[#calls + 1] = table.pack(...)
    end})
    assert.equal(5, #calls)
    local indices = {}
    for k, c in ipairs(calls) do
      local done, total, index, ok, res = table.unpack(c, 1, c.n)
      assert.equal(k, done)
      assert.equal(5, total)
      assert.is_true(ok)
      assert.equal(r[index], res)
      indices[#indices + 1] = index
    end
    assert.same({2, 3, 1, 5, 4}, indices)    -- in completion order
  end)

  it("draws a progress bar on a terminal", function()
    local out = {}
    local fake = {write = function(_, s) out[#out + 1] = s end,
                  flush = function() end}
    local core = require "asynchost.core"
    local stderr, getenv, isatty = io.stderr, os.getenv, core.isatty
    local function run(term, tty)
      out = {}
      io.stderr = fake
      os.getenv = function(v) if v == "TERM" then return term end end
      core.isatty = function(fd) return fd == 2 and tty end
      local ok, err = pcall(async.map, function(x) async.sleep(0.001 * x) end,
                            {1, 2, 3, 4}, {progress = true, concurrency = 1})
      io.stderr, os.getenv, core.isatty = stderr, getenv, isatty
      assert(ok, err)
      return table.concat(out)
    end
    local bar = run("xterm", true)
    local dots, hashes = ("."):rep(30), ("#"):rep(30)
    assert.equal("\r[" .. dots .. "] 0/4"
                 .. "\r[" .. ("#"):rep(7) .. ("."):rep(23) .. "] 1/4"
                 .. "\r[" .. ("#"):rep(15) .. ("."):rep(15) .. "] 2/4"
                 .. "\r[" .. ("#"):rep(22) .. ("."):rep(8) .. "] 3/4"
                 .. "\r[" .. hashes .. "] 4/4\n", bar)
    assert.equal("", run("dumb", true))   -- a terminal that cannot draw
    assert.equal("", run("xterm", false))  -- stderr is not a terminal
  end)

  it("return_exceptions makes errors results", function()
    local boom = async.Error("boom")
    local r = async.map(function(x)
      async.sleep(0.001)
      if x == 2 then error(boom) end
      if x == 4 then error("four", 0) end
      return x
    end, {1, 2, 3, 4, 5}, {return_exceptions = true, concurrency = 2})
    assert.same({1, boom, 3, "four", 5, n = 5}, r)
    assert.equal(boom, r[2])
  end)

  it("the first error cancels the calls still running", function()
    local started, tasks = {}, {}
    local t0 = async.loop_time()
    local progress = {}
    local ok, err = pcall(async.map, function(x, i)
      started[#started + 1] = i
      tasks[i] = async.current_task()
      if x == "bad" then
        async.sleep(0.01)
        error("bad item", 0)
      end
      async.sleep(5)
    end, {"a", "bad", "c", "d", "e"}, {concurrency = 3,
      on_progress = function(_, _, i, ok2, e) progress[#progress + 1] =
        {i, ok2, e} end})
    assert.is_false(ok)
    assert.equal("bad item", err)
    assert.is_true(async.loop_time() - t0 < 0.5)
    assert.same({1, 2, 3}, started)          -- d and e never started
    assert.same({{2, false, "bad item"}}, progress)
    assert.is_true(tasks[1]:cancelled())
    assert.is_true(tasks[3]:cancelled())
    assert.is_false(tasks[2]:cancelled())
    assert.is_true(tasks[2]:done())
  end)

  it("cancelling the caller cancels every call", function()
    local tasks, cleaned = {}, 0
    local caller = async.spawn(function()
      return async.map(function(_, i)
        tasks[i] = async.current_task()
        local _ <close> = setmetatable({}, {__close = function()
          async.sleep(0.005)                 -- cleanup may await
          cleaned = cleaned + 1
        end})
        async.sleep(10)
      end, {1, 2, 3, 4}, {concurrency = 4})
    end)
    async.sleep(0.01)
    caller:cancel()
    local ok, err = pcall(async.await, caller)
    assert.is_false(ok)
    assert.is_true(async.CancelledError:is(err))
    assert.is_true(caller:cancelled())
    assert.equal(4, #tasks)
    for i = 1, 4 do assert.is_true(tasks[i]:cancelled()) end
    assert.equal(4, cleaned)                 -- map waited for them
  end)

  it("returns {n = 0} for no items", function()
    local called = false
    local r = async.map(function() called = true end, {})
    assert.same({n = 0}, r)
    assert.is_false(called)
  end)

  it("checks its arguments", function()
    local f = function() end
    assert.has_error(function() async.map(nil, {}) end,
      "bad argument #1 to 'map' (function expected, got nil)")
    assert.has_error(function() async.map(f, "x") end,
      "bad argument #2 to 'map' (table expected, got string)")
    assert.has_error(function() async.map(f, {}, 3) end,
      "bad argument #3 to 'map' (table expected, got number)")
    assert.has_error(function() async.map(f, {}, {concurrency = 0}) end,
      "bad argument #3 to 'map' (concurrency must be >= 1)")
    assert.has_error(function() async.map(f, {}, {concurrency = 2.5}) end,
      "bad argument #3 to 'map' (concurrency must be an integer)")
    assert.has_error(function() async.map(f, {}, {on_progress = 1}) end,
      "bad argument #3 to 'map' (on_progress must be a function, got number)")
  end)
end)

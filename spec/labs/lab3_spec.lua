-- Lab 3 (the DevOps lab): helpers/async_utils.lua and main.lua, in
-- solutions/ (or exercises/ with LAB_DIR=exercises).  Delays run at a
-- tenth of the lab's (labhelp.scale); timing bounds leave room for a
-- loaded machine.
local async = require "asynchost"
require "asynchost.busted"
local lab = require "spec.labs.labhelp"
local ts = require "asynchost.testserver"

local S = lab.scale

local function utils() return lab.load("lab3", "helpers/async_utils.lua") end
local function main() return lab.load("lab3", "main.lua") end

-- n functions sleeping `s` seconds each, noting how many run at once
local function sleepers(n, s, track)
  local fns = {}
  for i = 1, n do
    fns[i] = function()
      track.now = (track.now or 0) + 1
      track.peak = math.max(track.peak or 0, track.now)
      async.sleep(s)
      track.now = track.now - 1
      return i * 10
    end
  end
  return fns
end

describe("lab3/async_utils", function()
  it("fetch_url: a JSON answer, an HTML one, an error status", function()
    local u = utils()
    local srv <close> = ts.start{}
    local r = u.fetch_url(srv.url .. "/json")
    assert.equal(200, r.status)
    assert.equal(srv.url .. "/json", r.url)
    assert.equal("Sample Slide Show", r.data.slideshow.title)
    assert.is_number(r.elapsed)
    assert.is_nil(r.error)
    r = u.fetch_url(srv.url .. "/html")
    assert.equal(200, r.status)
    assert.is_string(r.data)
    assert.matches("<title>", r.data)
    r = u.fetch_url(srv.url .. "/status/404")
    assert.equal(404, r.status)
    assert.equal("HTTP error 404", r.error)
    assert.is_nil(r.data)
  end)

  it("fetch_url: a timeout and a refused connection become records",
     function()
    local u = utils()
    local srv <close> = ts.start{}
    local dt, r = lab.timed(u.fetch_url, srv.url .. "/delay/2", nil, 0.1)
    assert.equal("timeout", r.status)
    assert.equal("request timed out after 0.1 seconds", r.error)
    assert.equal(0.1, r.elapsed)
    assert.is_true(dt < 1, "gave up after " .. dt .. " s")
    local url = "http://127.0.0.1:" .. lab.closedport() .. "/get"
    r = u.fetch_url(url)
    assert.equal("error", r.status)
    assert.equal(url, r.url)
    assert.matches("^request error: ", r.error)
  end)

  it("fetch_url: reuses the session it is given", function()
    local u = utils()
    local srv <close> = ts.start{}
    local session <close> = async.http.session{}
    u.fetch_url(srv.url .. "/get", session)
    u.fetch_url(srv.url .. "/uuid", session, 5)
    assert.equal(2, session:stats().requests)
    assert.equal(2, srv.stats.requests)
  end)

  it("fetch_url: checks its arguments", function()
    local u = utils()
    assert.has_error(function() u.fetch_url(42) end,
      "bad argument #1 to 'fetch_url' (string expected, got number)")
    assert.has_error(function() u.fetch_url("http://x", nil, -1) end,
      "bad argument #3 to 'fetch_url' (positive number of seconds expected)")
  end)

  it("run_tasks: at most max_concurrent at a time, results in order",
     function()
    local u = utils()
    local track = {}
    local dt, r = lab.timed(u.run_tasks, sleepers(6, 0.1, track), 2)
    assert.equal(2, track.peak)
    assert.is_true(dt >= 0.29 and dt < 0.6, "6 x 0.1 s by 2 took " .. dt)
    assert.same({10, 20, 30, 40, 50, 60, n = 6}, r)
    track = {}
    u.run_tasks(sleepers(8, 0.01, track))
    assert.equal(5, track.peak)  -- the default
  end)

  it("run_tasks: an error takes the place of its result", function()
    local u = utils()
    local r = u.run_tasks({
      function() async.sleep(0.01); return "a" end,
      function() async.sleep(0.01); error("boom", 0) end,
      function() return "c" end,
    }, 2)
    assert.equal(3, r.n)
    assert.equal("a", r[1])
    assert.equal("boom", r[2])
    assert.equal("c", r[3])
    assert.has_error(function() u.run_tasks({}, 0) end,
      "bad argument #2 to 'run_tasks' (max_concurrent must be an integer >= 1)")
  end)

  it("retry_async: retries with a growing delay, then succeeds", function()
    local u, out = utils()
    local calls, times = 0, {}
    local t0 = async.loop_time()
    local v, w = u.retry_async(function()
      calls = calls + 1
      times[calls] = async.loop_time() - t0
      if calls < 3 then error("flaky", 0) end
      return "ok", 2
    end, 3, 0.05, 2)
    assert.equal("ok", v)
    assert.equal(2, w)
    assert.equal(3, calls)
    -- waits of 0.05 and 0.1 (plus up to 10% jitter)
    assert.is_true(times[2] - times[1] >= 0.05, "first wait too short")
    assert.is_true(times[3] - times[2] >= 0.1, "second wait too short")
    assert.is_true(times[3] < 0.5, "took " .. times[3])
    assert.matches("^Retry 1/3, waiting 0%.05s%.%.%.$", out[1])
    assert.matches("^Retry 2/3, waiting 0%.1%ds%.%.%.$", out[2])
  end)

  it("retry_async: raises the last error when every try fails", function()
    local u = utils()
    local calls = 0
    local last
    local ok, err = lab.pcall(u.retry_async, function()
      calls = calls + 1
      last = {attempt = calls}
      error(last)
    end, 2, 0.01)
    assert.is_false(ok)
    assert.equal(3, calls)       -- the first call and 2 retries
    assert.equal(last, err)      -- unchanged
    calls = 0
    assert.has_error(function()
      u.retry_async(function() calls = calls + 1; error("no", 0) end, 0)
    end, "no")
    assert.equal(1, calls)
  end)

  it("retry_async: a cancellation is not retried", function()
    local u = utils()
    local calls = 0
    local t = async.spawn(u.retry_async, function()
      calls = calls + 1
      error("down", 0)
    end, 5, 10)
    async.sleep(0.05)
    t:cancel()
    local ok, err = lab.pcall(async.await, t)
    assert.is_false(ok)
    assert.is_true(async.CancelledError:is(err), tostring(err))
    assert.equal(1, calls)
  end)

  it("timeout_after: results in time, TimeoutError and cancellation late",
     function()
    local u = utils()
    assert.same({"done", 2}, {u.timeout_after(function()
      async.sleep(0.01)
      return "done", 2
    end, 1)})
    local cleaned = false
    local dt, ok, err = lab.timed(lab.pcall, u.timeout_after, function()
      local _ <close> = setmetatable({}, {__close = function()
        cleaned = true
      end})
      async.sleep(5)
    end, 0.05)
    assert.is_false(ok)
    assert.is_true(async.TimeoutError:is(err))
    assert.equal("operation timed out after 0.05 seconds", err.message)
    assert.is_true(cleaned, "the work was not cancelled")
    assert.is_true(dt < 0.5)
    assert.has_error(function()
      u.timeout_after(function() error("own error", 0) end, 1)
    end, "own error")
  end)

  it("async_map: fn over the items, bounded, in order", function()
    local u = utils()
    local running, peak = 0, 0
    local dt, r = lab.timed(u.async_map, function(x)
      running = running + 1
      peak = math.max(peak, running)
      async.sleep(0.1)
      running = running - 1
      return x * x
    end, {1, 2, 3, 4}, 2)
    assert.same({1, 4, 9, 16, n = 4}, r)
    assert.equal(2, peak)
    assert.is_true(dt >= 0.19 and dt < 0.45, "4 x 0.1 s by 2 took " .. dt)
    assert.has_error(function() u.async_map(print, 3) end,
      "bad argument #2 to 'async_map' (table expected, got number)")
  end)

  it("rate_limited: at most rate_limit starts per time_period", function()
    local u, out = utils()
    local starts, t0 = {}, async.loop_time()
    for i = 1, 6 do
      local r = u.rate_limited(function()
        starts[i] = async.loop_time() - t0
        async.sleep(0.01)
        return i
      end, 2, 0.2)
      assert.equal(i, r)
    end
    for i = 3, 6 do
      assert.is_true(starts[i] - starts[i - 2] >= 0.195,
        ("calls %d and %d started %.3f s apart"):format(i - 2, i,
                                                        starts[i] - starts[i - 2]))
    end
    assert.is_true(starts[6] < 0.8, "the sixth call started at " .. starts[6])
    assert.is_true(out:has("Rate limit reached. Waiting "))
  end)

  it("get_timestamp: the wall clock to the millisecond", function()
    local u = utils()
    local a = u.get_timestamp()
    assert.matches("^%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d%.%d%d%d$", a)
    local y, mo, d, h, mi, s = a:match("^(%d+)%-(%d+)%-(%d+) (%d+):(%d+):(%d+)")
    local t = os.time{year = y, month = mo, day = d, hour = h, min = mi,
                      sec = s}
    assert.is_true(math.abs(t - os.time()) <= 2, a .. " is not now")
    async.sleep(0.02)
    local b = u.get_timestamp()
    assert.is_true(b > a, b .. " not after " .. a)
  end)
end)

describe("lab3/main", function()
  it("ex1: sequential sleeps add up, concurrent ones overlap", function()
    local m = main()
    local r, dt = m.run_sequentially({1, 1, 1})
    assert.is_true(dt >= 3 * S - 0.005 and dt < 5 * S,
                   "3 x 0.1 s in turn took " .. dt)
    assert.same({task_id = 2, duration = 1}, r[2])
    local r2, dt2 = m.run_concurrently({1, 2, 3})
    assert.is_true(dt2 >= 3 * S - 0.005 and dt2 < 4.5 * S,
                   "0.1, 0.2 and 0.3 s at once took " .. dt2)
    assert.equal(3, #r2)
    assert.same({task_id = 3, duration = 3}, r2[3])
    local msg, stats = m.demo_simple_tasks()
    assert.equal("Simple tasks completed", msg)
    assert.is_true(stats.concurrent < stats.sequential)
  end)

  it("ex2: fetching in turn and at once from the test server", function()
    local m, out = main()
    local srv <close> = ts.start{}
    local urls = m.demo_urls(srv.url)
    assert.equal(6, #urls)
    local session <close> = async.http.session{}
    local r, dt = m.fetch_sequentially(urls, session)
    assert.equal(6, #r)
    for i, x in ipairs(r) do
      assert.equal(urls[i], x.url)
      assert.equal(200, x.status)
    end
    assert.is_true(dt >= 6 * S - 0.01 and dt < 6 * S + 0.5,
                   "in turn took " .. dt)
    assert.is_true(out:has("Fetched " .. urls[3] .. " in 0.3"))
    r, dt = m.fetch_concurrently(urls, session)
    assert.equal(6, #r)
    assert.equal(urls[5], r[5].url)
    assert.is_string(r[5].data.uuid)
    assert.is_true(dt >= 3 * S - 0.01 and dt < 3 * S + 0.4,
                   "at once took " .. dt)
    local msg, stats = m.demo_web_requests(srv.url)
    assert.equal("Fetched 6 URLs", msg)
    assert.is_true(stats.concurrent < stats.sequential)
  end)

  it("ex3: errors in gathered tasks, and retries", function()
    local m, out = main()
    assert.equal("Result from task 1", m.unreliable_task(1, 0))
    local ok, err = lab.pcall(m.unreliable_task, 2, 1)
    assert.is_false(ok)
    assert.is_true(m.ValueError:is(err) or m.RuntimeError:is(err)
                   or async.ConnectionError:is(err), tostring(err))
    local boom = m.ValueError("bad value")
    local r = m.gather_results({function() async.sleep(0.01); return 1 end,
                                function() error(boom) end,
                                function() return 3 end})
    assert.equal(3, r.n)
    assert.equal(1, r[1])
    assert.equal(boom, r[2])
    assert.equal(3, r[3])
    assert.equal("Error handling completed", m.demo_error_handling())
    assert.is_true(out:has("Example 3"))
  end)

  it("ex4: cancelling a task, and shutting several down", function()
    local m, out = main()
    local dt, outcome = lab.timed(m.cancel_after,
      function() return m.long_running_task(2, 10) end, 0.12)
    assert.equal("cancelled", outcome)
    assert.is_true(dt < 0.5)
    assert.is_true(out:has("Task 2 progress: 5%"))
    assert.is_true(out:has("Task 2 was cancelled"))
    assert.same({"done", "quick", 1},
                {m.cancel_after(function() return "quick", 1 end, 0.02)})
    local tasks = {async.spawn(async.sleep, 10), async.spawn(async.sleep, 10)}
    async.sleep(0.01)
    local r = m.shutdown(tasks)
    assert.equal(2, r.n)
    assert.is_true(async.CancelledError:is(r[1]))
    assert.is_true(async.CancelledError:is(r[2]))
    assert.is_true(tasks[2]:cancelled())
    assert.equal("Timeouts and cancellation demo completed",
                 m.demo_timeouts_and_cancellation())
    assert.is_true(out:has("Task timed out: operation timed out after 0.2 seconds"))
    assert.is_true(out:has("Task was successfully cancelled"))
  end)

  it("ex5: producer and consumers share the work", function()
    local m = main()
    local finished = m.producer_consumer(10, 3)
    assert.equal(10, #finished)
    local items, consumers = {}, {}
    for _, f in ipairs(finished) do
      assert.is_nil(items[f.item], f.item .. " handled twice")
      items[f.item] = true
      consumers[f.consumer] = true
    end
    for i = 1, 10 do assert.is_true(items["Item " .. i]) end
    assert.is_true(consumers[1] and consumers[2], "one consumer did it all")
    assert.equal("Async patterns demo completed", m.demo_async_patterns())
  end)

  it("runs the whole lab as a script, offline", function()
    local out, rc = lab.sh(("LAB_TIME_SCALE=0.05 %s %s"):format(
      lab.q(lab.bin), lab.q(lab.path("lab3", "main.lua"))), 40)
    assert.equal(0, rc, out)
    assert.is_nil(out:match("An error occurred: [^\n]*"))
    for _, h in ipairs{"Simple Tasks Demo", "Web Requests Demo",
                       "Error Handling Demo",
                       "Timeouts and Cancellation Demo",
                       "Async Patterns Demo", "Total execution time"} do
      assert.matches(h, out, 1, true)
    end
  end, 45)
end)

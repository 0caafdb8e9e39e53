-- Lab 1 (exercises/lab1/README.md): every function of the nine files,
-- their results, errors and timing shape, and each file run as a script.
-- Checks solutions/lab1/ (LAB_DIR=exercises: the learner's files). One
-- describe per file, named "lab1/<file>": busted --filter='lab1/<file>'.
local async = require "asynchost"
require "asynchost.busted"
local H = require "spec.labs.helpers"
local ts = require "asynchost.testserver"

local LAB = "lab1"

after_each(H.cleanup)

describe("lab1/basic_async_await", function()
  local lab = H.load(LAB, "basic_async_await")

  it("simulate_download waits its delay and returns the body", function()
    local t, body = H.elapsed(lab.simulate_download, "http://x", 1.0)
    H.at_least(t, 1.0, "a 1 s download")
    H.at_most(t, 1.0, "a 1 s download")
    assert.matches("content of http://x", body, 1, true)
  end)

  it("rejects a url that is not a string", function()
    assert.has_error(function() lab.simulate_download(42) end,
      "bad argument #1 to 'simulate_download' (string expected, got number)")
  end)

  it("process_data counts the words of a body", function()
    local r = lab.process_data("<p>one two three</p>")
    assert.equal(3, r.words)
    assert.equal(20, r.length)
  end)

  it("sequential work adds up, concurrent work overlaps", function()
    local urls = {"a", "b", "c"}
    local t_seq, seq = H.elapsed(lab.download_and_process, urls, 1.0)
    local t_con, con = H.elapsed(lab.download_and_process_concurrently,
                                 urls, 1.0)
    assert.equal(3, #seq)
    assert.equal(3, con.n or #con)
    H.at_least(t_seq, 3.3, "three downloads in turn")
    H.at_least(t_con, 1.1, "three downloads at once")
    H.at_most(t_con, 1.5, "three downloads at once")
    for i = 1, 3 do assert.equal(seq[i].words, con[i].words) end
    assert.matches("content of b", con[2].preview .. "", 1, true)
  end)

  it("fetches real pages, one by one or at once", function()
    local srv <close> = ts.start{}
    local urls = {}
    for i = 1, 3 do
      urls[i] = ("%s/delay/%g?page=%d"):format(srv.url, 1 * H.SCALE, i)
    end
    local t_seq, seq = H.elapsed(lab.fetch_all, urls, false)
    local t_con, con = H.elapsed(lab.fetch_all, urls, true)
    H.at_least(t_seq, 3, "three 1 s pages in turn")
    H.at_least(t_con, 1, "three 1 s pages at once")
    H.at_most(t_con, 1.5, "three 1 s pages at once")
    assert.equal(3, #seq)
    assert.equal(3, #con)
    assert.matches("page=2", con[2], 1, true)
    assert.equal(6, srv.stats.paths["/delay/" .. ("%g"):format(1 * H.SCALE)])
    local s <close> = async.http.session{}
    local ok, err = pcall(lab.fetch_page, s, srv.url .. "/status/404")
    assert.is_false(ok)
    H.assert_class(async.HTTPStatusError, err)
  end)

  it("runs as a script", function()
    local out, rc = H.script(LAB, "basic_async_await")
    assert.equal(0, rc, out)
    H.expect_lines(out, {"^Downloaded: <html>", "Processed 3 items sequentially",
      "Processed 3 items concurrently",
      "^Downloading 3 pages from the test server at http://127%.0%.0%.1:%d+$",
      "^Fetched 3 pages one by one in ", "^Fetched 3 pages at once in ",
      "^Total"})
  end)
end)

describe("lab1/coroutines_tasks", function()
  local lab = H.load(LAB, "coroutines_tasks")

  it("background_worker works its duration and cleans up", function()
    lab.cleaned_up = {}
    local t, msg = H.elapsed(lab.background_worker, "w", 0.5)
    H.at_least(t, 0.5, "a 0.5 s worker")
    assert.matches("^w finished", msg)
    assert.same({"w"}, lab.cleaned_up)
  end)

  it("background_worker cleans up when cancelled", function()
    lab.cleaned_up = {}
    local t = async.spawn(lab.background_worker, "slow", 10)
    async.sleep(0.2 * H.SCALE)
    t:cancel()
    H.await_cancelled(t)
    assert.same({"slow"}, lab.cleaned_up)
  end)

  it("background_worker checks its arguments", function()
    assert.has_error(function() lab.background_worker(1, 1) end,
      "bad argument #1 to 'background_worker' (string expected, got number)")
    assert.has_error(function() lab.background_worker("w", -1) end)
  end)

  it("create_multiple_tasks starts named tasks that run at once", function()
    local tasks = lab.create_multiple_tasks(3)
    assert.equal(3, #tasks)
    for i, t in ipairs(tasks) do
      assert.is_true(async.isfuture(t))
      assert.equal("worker-" .. i, t:get_name())
    end
    local t = H.elapsed(async.gather, tasks)
    H.at_least(t, 1.8, "workers of 0.6, 1.2 and 1.8 s")
    H.at_most(t, 1.8 * 1.3, "workers of 0.6, 1.2 and 1.8 s")
    assert.matches("worker%-3 finished", tasks[3]:result())
  end)

  it("monitor_tasks reports progress and sums up", function()
    local tasks = lab.create_multiple_tasks(2, 0.3)
    tasks[3] = async.spawn(function()
      async.sleep(0.1 * H.SCALE)
      error("boom", 0)
    end)
    local lines, summary = H.capture(lab.monitor_tasks, tasks, 0.2)
    assert.equal(2, summary.done)
    assert.equal(1, summary.failed)
    assert.equal(0, summary.cancelled)
    assert.matches("worker%-1 finished", summary.results[1])
    assert.equal("boom", summary.results[3])
    assert.is_true(#lines >= 3, "expected a few progress lines")
    assert.matches("3/3", lines[#lines])
  end)

  it("cancel_tasks_after_timeout cancels what still runs", function()
    lab.cleaned_up = {}
    local tasks = lab.create_multiple_tasks(3)
    local t, completed, cancelled =
      H.elapsed(lab.cancel_tasks_after_timeout, tasks, 1.5)
    H.at_least(t, 1.5, "the timeout")
    H.at_most(t, 1.5 * 1.2, "the timeout")
    assert.same({"worker-1", "worker-2"}, completed)
    assert.same({"worker-3"}, cancelled)
    for _, task in ipairs(tasks) do assert.is_true(task:done()) end
    assert.is_true(tasks[3]:cancelled())
    table.sort(lab.cleaned_up)
    assert.same({"worker-1", "worker-2", "worker-3"}, lab.cleaned_up)
  end)

  it("runs as a script", function()
    local out, rc = H.script(LAB, "coroutines_tasks")
    assert.equal(0, rc, out)
    H.expect_lines(out, {"^Monitoring 5 tasks", "5/5 done",
      "Done: 5, failed: 0, cancelled: 0", "Cancelling 3 tasks",
      "completed: worker%-1, worker%-2", "cancelled: worker%-3"})
  end)
end)

describe("lab1/concurrent_execution", function()
  local lab = H.load(LAB, "concurrent_execution")

  -- jobs of the given durations, named by their position
  local function jobs(durations)
    local t = {}
    for i, d in ipairs(durations) do
      t[i] = function() return lab.simulate_work("job" .. i, d) end
    end
    return t
  end

  local function names(results)
    local t = {}
    for i, r in ipairs(results) do t[i] = r.name end
    return table.concat(t, " ")
  end

  it("make_jobs draws the same durations from the same seed", function()
    local j1, d1 = lab.make_jobs(10, 0.5, 2.0, 42)
    local _, d2 = lab.make_jobs(10, 0.5, 2.0, 42)
    local _, d3 = lab.make_jobs(10, 0.5, 2.0, 7)
    assert.equal(10, #j1)
    assert.same(d1, d2)
    assert.are_not.same(d1, d3)
    for _, d in ipairs(d1) do assert.is_true(d >= 0.5 and d <= 2.0) end
    assert.equal("task_0", j1[1]().name)
  end)

  it("run_sequential adds the durations up", function()
    local t, r = H.elapsed(lab.run_sequential, jobs{0.5, 0.3, 0.4})
    H.at_least(t, 1.2, "jobs of 0.5, 0.3 and 0.4 s in turn")
    assert.equal("job1 job2 job3", names(r))
  end)

  it("run_concurrent_gather takes as long as the longest, in order", function()
    local t, r = H.elapsed(lab.run_concurrent_gather, jobs{0.5, 0.3, 0.4})
    H.at_least(t, 0.5, "jobs of 0.5, 0.3 and 0.4 s at once")
    H.at_most(t, 0.5 * 1.3, "jobs of 0.5, 0.3 and 0.4 s at once")
    assert.equal("job1 job2 job3", names(r))
    assert.equal(3, #r)
  end)

  it("run_concurrent_as_completed returns the fastest first", function()
    local t, r = H.elapsed(lab.run_concurrent_as_completed,
                           jobs{0.5, 0.1, 0.3})
    H.at_most(t, 0.5 * 1.3, "jobs of 0.5, 0.1 and 0.3 s at once")
    assert.equal("job2 job3 job1", names(r))
  end)

  it("rate_limited_tasks runs at most N at a time, results in order", function()
    local running, peak = 0, 0
    local list = {}
    for i = 1, 6 do
      list[i] = function()
        running = running + 1
        peak = math.max(peak, running)
        local r = lab.simulate_work("job" .. i, 0.3)
        running = running - 1
        return r
      end
    end
    local t, r = H.elapsed(lab.rate_limited_tasks, list, 2)
    assert.equal(2, peak)
    H.at_least(t, 0.9, "6 jobs of 0.3 s, 2 at a time")
    H.at_most(t, 0.9 * 1.3, "6 jobs of 0.3 s, 2 at a time")
    assert.equal("job1 job2 job3 job4 job5 job6", names(r))
  end)

  it("rate_limited_tasks rejects a bad limit", function()
    assert.has_error(function() lab.rate_limited_tasks({}, 0) end)
  end)

  it("CPU work computes and does not overlap", function()
    assert.equal(14, lab.simulate_cpu_work("c", 3).result)
    local n = 200000
    assert.equal(n * (n + 1) * (2 * n + 1) // 6,
                 math.tointeger(lab.simulate_cpu_work("c", n).result))
  end)

  it("compare_strategies times each strategy", function()
    local out = lab.compare_strategies(jobs{1, 1}, 1)
    assert.equal(4, #out)
    assert.equal("sequential", out[1].name)
    for _, s in ipairs(out) do assert.equal(2, #s.results) end
    H.at_least(out[1].seconds, 2, "sequential")
    H.at_most(out[2].seconds, 1.5, "gather")
    H.at_most(out[3].seconds, 1.5, "as_completed")
    H.at_least(out[4].seconds, 2, "one at a time")
  end)

  it("runs as a script", function()
    local out, rc = H.script(LAB, "concurrent_execution")
    assert.equal(0, rc, out)
    H.expect_lines(out, {"^10 jobs", "^sequential:%s+10 results",
      "^gather:%s+10 results", "^as_completed:%s+10 results",
      "^semaphore%(3%):%s+10 results", "2 CPU jobs"})
  end)
end)

describe("lab1/async_context_managers", function()
  local lab = H.load(LAB, "async_context_managers")

  it("AsyncFileHandler writes, reads back and closes", function()
    local path = H.tempdir() .. "/test.txt"
    local handler
    do
      local h <close> = lab.AsyncFileHandler.open(path)
      handler = h
      h:write("Hello, ")
      h:write("async world!")
      assert.equal("Hello, async world!", h:read())
      h:write(" Again.")
    end
    assert.equal("Hello, async world! Again.", H.readfile(path))
    assert.has_error(function() handler:write("x") end)
  end)

  it("AsyncFileHandler appends to a file in mode 'a'", function()
    local path = H.tempdir() .. "/log.txt"
    H.writefile(path, "one\n")
    do
      local h <close> = lab.AsyncFileHandler.open(path, "a")
      h:write("two\n")
    end
    assert.equal("one\ntwo\n", H.readfile(path))
  end)

  it("AsyncDatabaseConnection connects, queries and closes", function()
    lab.db_log = {}
    local t = H.elapsed(function()
      local db <close> = lab.AsyncDatabaseConnection.connect("app.db")
      local rows = db:query("SELECT * FROM users")
      assert.equal(3, #rows)
      assert.equal("Alice", rows[1].name)
      assert.equal("Bob", db:query("SELECT * FROM users WHERE id = 2")[1].name)
    end)
    H.at_least(t, 0.35, "connect, two queries, close")
    assert.same({"connect app.db", "close app.db"}, lab.db_log)
  end)

  it("closes the connection when the scope fails", function()
    lab.db_log = {}
    local conn
    local ok, err = pcall(function()
      local db <close> = lab.AsyncDatabaseConnection.connect("x.db")
      conn = db
      db:query("DROP TABLE users")
    end)
    assert.is_false(ok)
    assert.matches("syntax error", tostring(err))
    assert.same({"connect x.db", "close x.db"}, lab.db_log)
    assert.is_true(conn.closed)
    assert.has_error(function() conn:query("SELECT * FROM users") end)
  end)

  it("AsyncTimer measures its scope", function()
    local timer
    do
      local t <close> = lab.AsyncTimer()
      timer = t
      async.sleep(1.0 * H.SCALE)
      H.at_least(t:elapsed(), 1.0, "inside the scope")
    end
    local e = timer:elapsed()
    H.at_least(e, 1.0, "the scope")
    H.at_most(e, 1.0, "the scope")
    async.sleep(0.01)
    assert.equal(e, timer:elapsed())  -- stopped at the end of the scope
  end)

  it("ResourcePool lends at most size resources and reuses them", function()
    local made = 0
    local closed = 0
    local pool <close> = lab.ResourcePool.new(function()
      made = made + 1
      return {id = made, close = function() closed = closed + 1 end}
    end, 2)
    local t, r = H.elapsed(async.gather, (function()
      local jobs = {}
      for i = 1, 6 do
        jobs[i] = function()
          local lease <close> = pool:acquire()
          async.sleep(0.2 * H.SCALE)
          return lease.resource.id
        end
      end
      return jobs
    end)())
    assert.equal(6, r.n)
    assert.equal(2, made)
    assert.equal(2, pool.peak)
    H.at_least(t, 0.6, "6 uses of 0.2 s over 2 resources")
    pool:close()
    assert.equal(2, closed)
    assert.has_error(function() pool:acquire() end)
  end)

  it("run_in_group returns results; a failure cancels the others", function()
    local r = lab.run_in_group({function() return 1 end,
                                function() async.sleep(0.01); return 2 end})
    assert.same({1, 2}, r)
    local other
    local ok, err = pcall(lab.run_in_group, {
      function() async.sleep(0.01); error("bad", 0) end,
      function()
        other = async.current_task()
        async.sleep(10)
      end})
    assert.is_false(ok)
    H.assert_class(async.TaskGroupError, err)
    assert.is_true(other:cancelled())
  end)

  it("runs as a script", function()
    local out, rc = H.script(LAB, "async_context_managers")
    assert.equal(0, rc, out)
    H.expect_lines(out, {"^File content: Hello, async world!",
      "^Elapsed time: ", "^Inner operations took", "^Query returned 3 rows",
      "connect app.db, close app.db", "^Failed query: syntax error",
      "^Pool: Alice Bob Charlie Alice Bob"})
  end)
end)

describe("lab1/async_iterators", function()
  local lab = H.load(LAB, "async_iterators")

  it("AsyncDataStreamer hands out its chunks, one per delay", function()
    local got = {}
    local t = H.elapsed(function()
      for chunk in lab.AsyncDataStreamer.new({"a", "b", "c"}, 0.2) do
        got[#got + 1] = chunk
      end
    end)
    assert.same({"a", "b", "c"}, got)
    H.at_least(t, 0.6, "3 chunks 0.2 s apart")
  end)

  it("async_range counts like a numeric for, waiting between", function()
    local got = {}
    local t = H.elapsed(function()
      for n in lab.async_range(1, 4) do got[#got + 1] = n end
    end)
    assert.same({1, 2, 3, 4}, got)
    H.at_least(t, 0.4, "4 numbers 0.1 s apart")
    got = {}
    for n in lab.async_range(10, 1, -4, 0) do got[#got + 1] = n end
    assert.same({10, 6, 2}, got)
  end)

  it("async_file_reader yields the lines of a file", function()
    local path = H.tempdir() .. "/sample.txt"
    H.writefile(path, "first\nsecond\n\nlast")
    local got = {}
    for line in lab.async_file_reader(path) do got[#got + 1] = line end
    assert.same({"first", "second", "", "last"}, got)
  end)

  it("async_file_reader raises FileNotFoundError", function()
    local ok, err = pcall(function()
      for _ in lab.async_file_reader(H.tempdir() .. "/missing.txt") do end
    end)
    assert.is_false(ok)
    H.assert_class(async.FileNotFoundError, err)
  end)

  it("AsyncResultSet fetches a page at a time", function()
    local rows = {}
    for i = 1, 5 do rows[i] = {id = i} end
    local rs = lab.AsyncResultSet.new(rows, 2)
    local ids = {}
    local t = H.elapsed(function()
      for row in rs do ids[#ids + 1] = row.id end
    end)
    assert.same({1, 2, 3, 4, 5}, ids)
    assert.equal(3, rs.pages_fetched)
    H.at_least(t, 0.3, "3 pages of 0.1 s")
  end)

  it("a pipeline maps, filters and stops early", function()
    local produced = 0
    local source = async.generator(function(yield)
      for i = 1, 100 do
        produced = i
        yield(i)
      end
    end)
    local out = lab.collect(lab.pipeline(source(),
      function(it) return lab.async_filter(function(x) return x % 2 == 0 end, it) end,
      function(it) return lab.async_map(function(x)
        async.sleep(0.01 * H.SCALE)
        return x * 10
      end, it) end,
      function(it) return lab.take(3, it) end))
    assert.same({20, 40, 60}, out)
    assert.is_true(produced < 10, "the source ran on after take stopped")
  end)

  it("runs as a script", function()
    local out, rc = H.script(LAB, "async_iterators")
    assert.equal(0, rc, out)
    H.expect_lines(out, {"^Received: chunk1", "^Received: chunk3",
      "^Number: 1", "^Number: 4", "^Sample file not found",
      "^Result set: 7 rows in 3 pages", "^Pipeline: USER1 USER2 USER4 USER5"})
  end)
end)

describe("lab1/error_handling", function()
  local lab = H.load(LAB, "error_handling")

  it("risky_operation fails in different ways", function()
    local ok, err = pcall(lab.risky_operation, "network")
    assert.is_false(ok)
    H.assert_class(lab.NetworkError, err)
    H.assert_class(async.Error, err)
    ok, err = pcall(lab.risky_operation, "validation")
    H.assert_class(lab.ValidationError, err)
    assert.is_false(lab.NetworkError:is(err))
    ok, err = pcall(lab.risky_operation, "bug")
    assert.equal("string", type(err))
    assert.equal("ok: fine", lab.risky_operation("fine"))
  end)

  it("retry_async retries with a doubling delay, then succeeds", function()
    local calls, waits = 0, {}
    local op = lab.retry_async(function(x)
      calls = calls + 1
      if calls < 3 then error(lab.NetworkError("down")) end
      return x * 2
    end, 3, 0.5, {on_retry = function(_, _, w) waits[#waits + 1] = w end})
    local t, r = H.elapsed(op, 21)
    assert.equal(42, r)
    assert.equal(3, calls)
    assert.same({0.5, 1.0}, waits)
    H.at_least(t, 1.5, "waits of 0.5 and 1 s")
  end)

  it("retry_async gives up after max_retries retries", function()
    local calls = 0
    local op = lab.retry_async(function()
      calls = calls + 1
      error(lab.NetworkError("down " .. calls))
    end, 2, 0.1)
    local ok, err = pcall(op)
    assert.is_false(ok)
    assert.equal(3, calls)
    assert.equal("down 3", err.message)
  end)

  it("retry_async does not retry what retry_on rejects", function()
    local calls = 0
    local op = lab.retry_async(function()
      calls = calls + 1
      error(lab.ValidationError("bad"))
    end, 3, 0.1, {retry_on = function(e) return lab.NetworkError:is(e) end})
    local ok, err = pcall(op)
    assert.is_false(ok)
    assert.equal(1, calls)
    H.assert_class(lab.ValidationError, err)
  end)

  it("retry_async does not retry a cancellation", function()
    local calls = 0
    local op = lab.retry_async(function()
      calls = calls + 1
      async.sleep(10)
    end, 3, 0.1)
    local t = async.spawn(op)
    async.sleep(0.01)
    t:cancel()
    H.await_cancelled(t)
    assert.equal(1, calls)
  end)

  it("safe_gather keeps every outcome", function()
    local t, r = H.elapsed(lab.safe_gather,
      function() return lab.risky_operation("network") end,
      function() return lab.risky_operation("fine") end,
      function() error("plain", 0) end,
      function() async.sleep(1 * H.SCALE); return "slow" end,
      function() async.sleep(1 * H.SCALE); error("slow failure", 0) end)
    H.at_least(t, 1, "operations of 1 s at once")
    H.at_most(t, 1.5, "operations of 1 s at once")
    assert.same({ok = true, value = "slow"}, r[4])
    assert.same({ok = false, error = "slow failure"}, r[5])
    assert.equal(5, #r)
    assert.is_false(r[1].ok)
    H.assert_class(lab.NetworkError, r[1].error)
    assert.same({ok = true, value = "ok: fine"}, r[2])
    assert.same({ok = false, error = "plain"}, r[3])
  end)

  it("with_timeout gives up on slow work and returns fast work", function()
    local t, ok, err = H.elapsed(lab.with_timeout,
      function() return lab.risky_operation("slow") end, 0.5)
    assert.is_false(ok)
    H.assert_class(async.TimeoutError, err)
    H.at_most(t, 0.5, "a 0.5 s limit")
    assert.same({true, "ok: x"},
      {lab.with_timeout(function() return lab.risky_operation("x") end, 1)})
    assert.has_error(function()
      lab.with_timeout(function() error("boom", 0) end, 1)
    end, "boom")
  end)

  it("shielded_save goes on after its caller gave up", function()
    lab.saved = {}
    local save, err = lab.shielded_save("doc", 0.5, 0.2)
    H.assert_class(async.TimeoutError, err)
    assert.is_false(save:done())
    assert.equal("saved doc", async.await(save))
    assert.same({"doc"}, lab.saved)
    save, err = lab.shielded_save("quick", 0.1, 1)
    assert.is_nil(err)
    assert.equal("saved quick", async.await(save))
  end)

  it("long_running_task logs its cancellation and cleans up", function()
    local log = {}
    local t = async.spawn(lab.long_running_task, 10, log)
    async.sleep(0.35 * H.SCALE)
    t:cancel()
    H.await_cancelled(t)
    assert.equal(2, #log)
    assert.matches("^cancelled at step [234]$", log[1])  -- 0.1 s a step
    assert.equal("cleaned up", log[2])
    log = {}
    assert.equal("finished", lab.long_running_task(2, log))
    assert.same({"cleaned up"}, log)
  end)

  it("log_error keeps a structured record", function()
    lab.error_log = {}
    local lines, rec = H.capture(lab.log_error,
      lab.NetworkError("connection lost"), {url = "http://x"})
    assert.equal("NetworkError", rec.class)
    assert.equal("connection lost", rec.message)
    assert.equal("ERROR", rec.level)
    assert.equal("http://x", rec.context.url)
    assert.is_string(rec.task)
    assert.equal(rec, lab.error_log[1])
    assert.matches("NetworkError: connection lost", lines[1])
    lines, rec = H.capture(lab.log_error, "a plain message")
    assert.equal("error", rec.class)
    assert.equal("a plain message", rec.message)
    assert.equal(rec, lab.error_log[2])
    assert.matches("^ERROR %[.-%] error: a plain message", lines[1])
  end)

  it("runs as a script", function()
    local out, rc = H.script(LAB, "error_handling")
    assert.equal(0, rc, out)
    H.expect_lines(out, {"attempt 1 failed", "^Operation result: Success",
      "^Safe gather #1: failed NetworkError", "^Safe gather #2: ok",
      "^With a 0.5 s limit: false, TimeoutError",
      "^Shielded save: caller got TimeoutError.*saved report",
      "^Long task cancelled: false %(cancelled at step %d+, cleaned up%)",
      "^ERROR %[main%] NetworkError", "^ERROR %[main%] ValidationError"})
  end)
end)

describe("lab1/real_world_examples", function()
  local lab = H.load(LAB, "real_world_examples")

  it("scrape_multiple_urls fetches at once and reports failures", function()
    local srv <close> = ts.start{}
    local dead = ts.start{}  -- a port where nothing listens any more
    local dead_url = dead.url .. "/get"
    dead:close()
    local slow = srv.url .. "/delay/" .. 1 * H.SCALE
    local t, pages = H.elapsed(lab.scrape_multiple_urls,
      {slow, slow, slow, srv.url .. "/html", dead_url})
    H.at_most(t, 1.5, "three 1 s pages at once")
    assert.equal(200, pages[1].status)
    assert.equal(200, pages[3].status)
    assert.equal("The asynchost test server", pages[4].title)
    assert.is_true(pages[4].length > 100)
    assert.is_nil(pages[5].status)
    H.assert_class(async.ConnectionError, pages[5].error)
  end)

  it("process_multiple_files counts lines, words and characters", function()
    local dir = H.tempdir()
    H.writefile(dir .. "/a.txt", "one two\nthree\n")
    H.writefile(dir .. "/b.txt", "four")
    local r = lab.process_multiple_files({dir .. "/a.txt", dir .. "/b.txt",
                                          dir .. "/none.txt"})
    assert.same({file = dir .. "/a.txt", lines = 2, words = 3, chars = 14}, r[1])
    assert.same({file = dir .. "/b.txt", lines = 1, words = 1, chars = 4}, r[2])
    H.assert_class(async.FileNotFoundError, r[3].error)
  end)

  it("ApiRateLimiter spaces the calls evenly", function()
    local limiter = lab.ApiRateLimiter.new(5)
    local t0 = async.loop_time()
    local r = async.gather((function()
      local jobs = {}
      for i = 1, 6 do jobs[i] = function() return lab.call_api(limiter, i) end end
      return jobs
    end)())
    for i = 1, 6 do  -- call i goes out 0.2 s after call i - 1 was due
      H.at_least(r[i].at - t0, (i - 1) * 0.2, "call " .. i .. " at 5 per second")
    end
    H.at_most(r[6].at - t0, 1.0, "the 6th call at 5 per second")
    assert.has_error(function() lab.ApiRateLimiter.new(0) end)
  end)

  it("simulate_db_operations shares a few connections", function()
    local t, rows, peak = H.elapsed(lab.simulate_db_operations, 10, 3)
    assert.equal(10, #rows)
    assert.equal(3, peak)
    assert.equal("SELECT 10", rows[10].query)
    H.at_least(t, 0.8, "10 queries of 0.2 s, 3 at a time")
    H.at_most(t, 0.8 * 1.3, "10 queries of 0.2 s, 3 at a time")
  end)

  it("producer_consumer hands every item to one worker", function()
    local t, results, handled = H.elapsed(lab.producer_consumer,
      {"a", "b", "c", "d", "e", "f"}, 3, function(s)
        async.sleep(0.5 * H.SCALE)
        return s:upper()
      end)
    assert.same({"A", "B", "C", "D", "E", "F"}, results)
    assert.equal(3, #handled)
    assert.equal(6, handled[1] + handled[2] + handled[3])
    H.at_least(t, 1, "6 items of 0.5 s over 3 workers")
    H.at_most(t, 1.5, "6 items of 0.5 s over 3 workers")
  end)

  it("process_images works on a few at a time", function()
    local t, r = H.elapsed(lab.process_images, {
      {name = "a.jpg", width = 5000, height = 2000},
      {name = "b.png", width = 4000, height = 2500}}, 2)
    assert.same({name = "a.jpg", size = "2500x1000", thumbnail = "a_thumb.jpg"}, r[1])
    assert.equal("b_thumb.jpg", r[2].thumbnail)
    H.at_least(t, 1.05, "an image of 10 megapixels")
    H.at_most(t, 1.5, "two images at once")
  end)

  it("runs as a script", function()
    local out, rc = H.script(LAB, "real_world_examples")
    assert.equal(0, rc, out)
    H.expect_lines(out, {"^Scraped 4 pages", "/delay/.*200",
      "^Processed 3 files", "file3.txt: 3 lines", "^API calls at 5 per second",
      "^10 queries over 3 connections.*at most 3 in use",
      "^Producer/consumer: ABCDEF", "cat.jpg %-> 2000x1500, cat_thumb.jpg",
      "^Processed 3 images"})
  end)
end)

describe("lab1/best_practices", function()
  local lab = H.load(LAB, "best_practices")
  lab.quiet = true

  it("a managed session fetches, retries 5xx and closes", function()
    local srv <close> = ts.start{}
    local s
    do
      local session <close> = lab.managed_http_session{base_url = srv.url}
      s = session
      assert.matches("slideshow", lab.fetch_with_retry(session, "/json"))
      local t, ok, err = H.elapsed(pcall, lab.fetch_with_retry, session,
                                   "/status/503", {attempts = 3, delay = 0.2})
      assert.is_false(ok)
      H.assert_class(async.RetryError, err)
      assert.equal(3, err.attempts)
      H.at_least(t, 0.6, "waits of 0.2 and 0.4 s")
      assert.equal(3, srv.stats.paths["/status/503"])
      ok, err = pcall(lab.fetch_with_retry, session, "/status/404")
      H.assert_class(async.HTTPStatusError, err)
      assert.equal(1, srv.stats.paths["/status/404"])
    end
    assert.is_true(s.closed)
    assert.is_truthy(H.find(lab.logs, "session closed"))
  end)

  it("rate_limited_task holds a permit while it works", function()
    lab.active, lab.peak = 0, 0
    local sem = async.Semaphore(3)
    local tasks = {}
    for i = 1, 7 do tasks[i] = async.spawn(lab.rate_limited_task, sem, "t" .. i) end
    local t, r = H.elapsed(async.gather, tasks)
    assert.equal("t7 done", r[7])
    assert.equal(3, lab.peak)
    H.at_least(t, 0.6, "7 tasks of 0.2 s, 3 at a time")
    H.at_most(t, 0.6 * 1.3, "7 tasks of 0.2 s, 3 at a time")
  end)

  it("producer and consumers share the items and stop", function()
    local queue = async.Queue()
    local producer = async.spawn(lab.produce_items, queue, 7)
    local consumers = {}
    for i = 1, 3 do consumers[i] = async.spawn(lab.consume_items, queue, i) end
    async.gather(producer, table.unpack(consumers))
    local all = {}
    for _, c in ipairs(consumers) do
      for _, item in ipairs(c:result()) do all[#all + 1] = item end
    end
    table.sort(all)
    assert.same({"item-1", "item-2", "item-3", "item-4", "item-5", "item-6",
                 "item-7"}, all)
  end)

  it("TaskManager knows its tasks and shuts them down", function()
    local slow
    do
      local tm <close> = lab.TaskManager.new()
      tm:spawn("quick", async.sleep, 0)
      slow = tm:spawn("slow", async.sleep, 10)
      tm:spawn("broken", function() error("disk full", 0) end)
      async.sleep(0.01)
      assert.same({quick = "done", slow = "running", broken = "failed"},
                  tm:status())
    end
    assert.is_true(slow:cancelled())
    assert.is_truthy(H.find(lab.logs, "task broken failed: disk full"))
  end)

  it("runs as a script", function()
    local out, rc = H.script(LAB, "best_practices")
    assert.equal(0, rc, out)
    H.expect_lines(out, {"session opened", "^Fetched data: {",
      "WARN .*attempt 1 failed: HTTPStatusError: 503",
      "/flaky%?rate=0.5 worked at attempt 3", "^Flaky endpoint",
      "session closed", "^Rate limited tasks completed: 10 .*at most 3",
      "^Producer%-consumer pattern completed",
      "^Tasks: quick done, slow running, broken failed",
      "task manager shut down %(1 cancelled%)"})
  end)
end)

describe("lab1/integration_project", function()
  local lab = H.load(LAB, "integration_project")

  it("resolves links and reads them from HTML", function()
    local base = "http://h:1/site/news/launch.html"
    assert.equal("http://h:1/site/news/roadmap.html", lab.resolve(base, "roadmap.html"))
    assert.equal("http://h:1/site/news/", lab.resolve(base, "../news/"))
    assert.equal("http://h:1/site/", lab.resolve(base, "../"))
    assert.equal("http://h:1/get?a=1", lab.resolve(base, "/get?a=1#x"))
    assert.equal("mailto:a@b", lab.resolve(base, "mailto:a@b"))
    assert.is_nil(lab.resolve(base, "#top"))
    local html = [[<html><head><TITLE> A  page </TITLE></head><body>
      <a href="one.html">1</a> <A class="x" HREF='/two'>2</A>
      <!-- <a href="hidden.html"> -->
      <a name="anchor">no link</a> <a href=three.html>3</a>
      <a href="one.html">again</a> <a href="#top">top</a></body></html>]]
    assert.equal("A page", lab.extract_title(html))
    assert.same({"http://h:1/site/news/one.html", "http://h:1/two",
                 "http://h:1/site/news/three.html"},
                lab.extract_links(html, base))
  end)

  it("AsyncWebCrawler crawls the site within its limits", function()
    local srv <close> = ts.start{}
    local crawler = lab.AsyncWebCrawler.new{rate_limit = 20, max_pages = 10,
                                            max_depth = 1}
    local pages = crawler:crawl(srv.url .. "/site/")
    assert.equal(srv.url .. "/site/", pages[1].url)
    assert.equal("asynchost test site", pages[1].title)
    assert.equal(6, #pages)  -- the index, 4 sections and /site/private/
    for _, p in ipairs(pages) do
      assert.equal(srv.url .. "/site/", p.url:sub(1, #srv.url + 6))
      assert.is_true(p.depth <= 1)
    end
    local first = crawler.requests[1]
    for i = 2, #crawler.requests do  -- a request each 0.05 s at most
      H.at_least(crawler.requests[i] - first, (i - 1) * 0.05,
                 "request " .. i .. " at 20 per second")
    end
    crawler = lab.AsyncWebCrawler.new{rate_limit = 100, max_pages = 8}
    assert.equal(8, #crawler:crawl(srv.url .. "/site/"))
  end)

  it("DataProcessor uses its workers and keeps failures apart", function()
    local p = lab.DataProcessor.new{workers = 2}
    local t, r = H.elapsed(p.process, p, {1, 2, 3, 4}, function(x)
      async.sleep(0.2 * H.SCALE)
      if x == 3 then error("three", 0) end
      return x * x
    end)
    assert.same({{ok = true, value = 1}, {ok = true, value = 4},
                 {ok = false, error = "three"}, {ok = true, value = 16}}, r)
    assert.equal(2, p.peak)
    assert.equal(3, p.processed)
    assert.equal(1, p.failed)
    H.at_least(t, 0.4, "4 items of 0.2 s, 2 at a time")
  end)

  it("crawl_and_process sums up a crawl", function()
    local srv <close> = ts.start{}
    local crawler = lab.AsyncWebCrawler.new{rate_limit = 100, max_depth = 1}
    local s = crawler:crawl_and_process(srv.url .. "/site/",
                                        lab.DataProcessor.new{workers = 3})
    assert.equal(6, s.pages)
    assert.equal(0, s.errors)
    assert.is_true(s.words > 6)
  end)

  it("AsyncAPIClient caches, shares fetches and retries", function()
    local srv <close> = ts.start{}
    local api <close> = lab.AsyncAPIClient.new{base_url = srv.url,
                                               retries = 5, cache_ttl = 2}
    local r = async.gather(function() return api:get("/users/1") end,
                           function() return api:get("/users/1") end)
    assert.equal("Ada Lovelace", r[1].name)
    assert.equal(r[1], r[2])
    assert.equal(1, srv.stats.paths["/users/1"])  -- one fetch for both
    assert.equal("Ada Lovelace", api:get("/users/1").name)
    assert.equal(1, api.stats.hits)
    assert.equal(1, srv.stats.paths["/users/1"])
    async.sleep(2.1 * H.SCALE)  -- the entry expires
    api:get("/users/1")
    assert.equal(2, srv.stats.paths["/users/1"])
    -- /flaky?rate=0.5: half the answers are 503s, retried
    for _ = 1, 4 do api.cache = {}; assert.is_true(api:get("/flaky?rate=0.5").ok) end
    assert.is_true(api.stats.retries > 0)
    local ok, err = pcall(api.get, api, "/users/99")
    assert.is_false(ok)
    assert.equal(404, err.status)
  end)

  it("FileMonitor processes new and changed files", function()
    local dir = H.tempdir()
    local seen = {}
    local m <close> = lab.FileMonitor.new(dir, function(path)
      seen[#seen + 1] = path:match("[^/]+$")
      return #H.readfile(path)
    end)
    m:start()
    async.fs.write_file(dir .. "/a.txt", "hello")
    assert.is_true(m:wait_processed(1, 2), "a.txt was not processed")
    async.fs.mkdir(dir .. "/sub")  -- not a file: not processed
    async.fs.write_file(dir .. "/b.txt", "hi")
    assert.is_true(m:wait_processed(2, 2), "b.txt was not processed")
    async.fs.append_file(dir .. "/a.txt", ", world")
    assert.is_true(m:wait_processed(3, 2), "the change of a.txt was missed")
    assert.is_false(m:wait_processed(4, 0.1))
    m:stop()
    async.fs.write_file(dir .. "/c.txt", "late")
    async.sleep(0.1)
    assert.same({"a.txt", "b.txt", "a.txt"}, seen)
    assert.same({5, 2, 12}, {m.processed[1].result, m.processed[2].result,
                             m.processed[3].result})
  end)

  it("TaskScheduler delays, repeats and retries, and records it", function()
    local sched <close> = lab.TaskScheduler.new()
    local runs, tries = 0, 0
    local t0 = async.loop_time()
    local a = sched:schedule(function() return async.loop_time() - t0 end,
                             {name = "later", delay = 0.3})
    local b = sched:schedule(function() runs = runs + 1; return runs end,
                             {name = "thrice", every = 0.1, times = 3})
    local c = sched:schedule(function()
      tries = tries + 1
      if tries < 2 then error("flaky", 0) end
      return "ok"
    end, {name = "retried", retries = 2})
    local d = sched:schedule(function() error("always", 0) end,
                             {name = "broken", retries = 1})
    local r = async.gather({a, b, c, d}, {return_exceptions = true})
    H.at_least(r[1], 0.3, "the delay")
    assert.equal(3, r[2])
    assert.equal("ok", r[3])
    assert.equal("always", r[4])
    local ops = sched.operations
    assert.same({"later", "thrice", "retried", "broken"},
                {ops[1].name, ops[2].name, ops[3].name, ops[4].name})
    assert.same({"done", "done", "done", "failed"},
                {ops[1].state, ops[2].state, ops[3].state, ops[4].state})
    assert.equal(3, ops[2].runs)
    assert.equal(2, ops[3].attempts)
    assert.equal(2, ops[4].attempts)
    local e = sched:schedule(async.sleep, {name = "endless", delay = 10})
    sched:shutdown()
    assert.is_true(e:cancelled())
    assert.equal("cancelled", ops[5].state)
  end)

  it("Dashboard shows the operations while they run", function()
    local sched <close> = lab.TaskScheduler.new()
    sched:schedule(function() async.sleep(0.3 * H.SCALE) end, {name = "short"})
    sched:schedule(function() error("oops", 0) end, {name = "bad"})
    local frames = {}
    local d = lab.Dashboard.new(sched, {out = function(f) frames[#frames + 1] = f end})
    d:start(0.1)
    d:stop()
    assert.is_true(#frames >= 2, "expected a few frames")
    assert.matches("short%s+running", frames[1])
    local last = frames[#frames]
    assert.matches("short%s+done", last)
    assert.matches("bad%s+failed.*oops", last)
    assert.matches("total: 1 done, 1 failed", last)
    assert.equal(#frames, d.frames)
  end)

  it("runs as a script", function()
    local out, rc = H.script(LAB, "integration_project", 40)
    assert.equal(0, rc, out)
    H.expect_lines(out, {"^operation%s+state", "crawl /site/",
      "^total: .*done.*1 failed",
      "^Integration test completed with 5 results",
      "^Crawled 12 pages", "^Users: Ada Lovelace, Alan Turing, Grace Hopper",
      "^API client: 6 requests, 3 cache hits, 4 misses, 2 retries",
      "^Flaky API answered: true",
      "^File monitor processed 4 files",
      "^Broken job: no such table: metrics"})
  end)
end)

-- Lab 2 (exercises/lab2/README.md): the five exercises, their results,
-- printed output and timing shape, each run as a script, and the five
-- examples run as scripts. Checks solutions/lab2/ (LAB_DIR=exercises:
-- the learner's files). One describe per file, named "lab2/<file>":
-- busted --filter='lab2/exercise_3'.
local async = require "asynchost"
require "asynchost.busted"
local H = require "spec.labs.helpers"
local ts = require "asynchost.testserver"
local cjson = require "cjson"

local LAB = "lab2"

after_each(H.cleanup)

-- Asserts that `lines` is exactly `expected` (an array of patterns
-- matched in full).
local function same_lines(expected, lines)
  local ok = #lines == #expected
  for i = 1, #expected do
    ok = ok and lines[i] ~= nil and lines[i]:match("^" .. expected[i] .. "$") ~= nil
  end
  assert(ok, ("expected the lines\n  %s\ngot\n  %s"):format(
         table.concat(expected, "\n  "), table.concat(lines, "\n  ")))
end

describe("lab2/exercise_1", function()
  local lab = H.load(LAB, "exercise_1")

  it("blocking_sleep holds every task", function()
    local ticks = 0
    local ticker = async.spawn(function()
      while true do async.sleep(0.01 * H.SCALE); ticks = ticks + 1 end
    end)
    async.sleep(0)
    local t = H.elapsed(lab.blocking_sleep, 0.5)
    H.at_least(t, 0.5, "a blocking 0.5 s")
    assert.equal(0, ticks)
    ticker:cancel()
    H.await_cancelled(ticker)
  end)

  it("fetch_data_sync and fetch_data print and return", function()
    local lines, r = H.capture(lab.fetch_data_sync, "x", 0.2)
    assert.equal("result of x", r)
    same_lines({"Fetching x%.%.%.", "Got x"}, lines)
    local t
    lines, t, r = H.capture(H.elapsed, lab.fetch_data, "y", 0.2)
    assert.equal("result of y", r)
    same_lines({"Fetching y%.%.%.", "Got y"}, lines)
    H.at_least(t, 0.2, "fetch_data of 0.2 s")
  end)

  it("fetch_data lets other tasks run while it waits", function()
    local ticks = 0
    local ticker = async.spawn(function()
      while true do async.sleep(0.05 * H.SCALE); ticks = ticks + 1 end
    end)
    H.capture(lab.fetch_data, "z", 0.5)
    assert.is_true(ticks >= 5, "only " .. ticks .. " ticks")
    ticker:cancel()
    H.await_cancelled(ticker)
  end)

  it("the synchronous version takes 3 s, the async one 1 s", function()
    local names = {"data1", "data2", "data3"}
    local lines, t, r = H.capture(H.elapsed, lab.main_sync, names)
    H.at_least(t, 3, "three blocking fetches")
    assert.same({"result of data1", "result of data2", "result of data3"}, r)
    same_lines({"Fetching data1%.%.%.", "Got data1", "Fetching data2%.%.%.",
                "Got data2", "Fetching data3%.%.%.", "Got data3"}, lines)
    lines, t, r = H.capture(H.elapsed, lab.main_async, names)
    H.at_least(t, 1, "three async fetches")
    H.at_most(t, 1.5, "three async fetches")
    assert.same({"result of data1", "result of data2", "result of data3"}, r)
    same_lines({"Fetching data1%.%.%.", "Fetching data2%.%.%.",
                "Fetching data3%.%.%.", "Got data1", "Got data2", "Got data3"},
               lines)
  end)

  it("runs as a script", function()
    local out, rc = H.script(LAB, "exercise_1")
    assert.equal(0, rc, out)
    H.expect_lines(out, {"^=== Synchronous Version ===$", "^Fetching data1...$",
      "^Got data1$", "^Fetching data2...$", "^Got data3$", "^Total time: %d+%.%d%ds$",
      "^=== Asynchronous Version ===$", "^Fetching data1...$",
      "^Fetching data3...$", "^Got data1$", "^Got data3$",
      "^Total time: %d+%.%d%ds$"})
  end)
end)

describe("lab2/exercise_2", function()
  local lab = H.load(LAB, "exercise_2")

  it("fetch_user returns a user after a delay", function()
    local lines, t, u = H.capture(H.elapsed, lab.fetch_user, 2)
    assert.same({id = 2, name = "Bob"}, u)
    H.at_least(t, 1, "one fetch")
    same_lines({"Fetching user 2%.%.%.", "Got user 2"}, lines)
  end)

  it("fetch_user checks its argument and fails for an unknown id", function()
    assert.has_error(function() lab.fetch_user("1") end,
      "bad argument #1 to 'fetch_user' (integer expected, got string)")
    local ok, err = pcall(H.capture, lab.fetch_user, 99, 0.1)
    assert.is_false(ok)
    assert.equal("no user 99", err)
  end)

  it("sequential awaits add up, gather overlaps and keeps the order", function()
    local ids = {3, 1, 2}
    local lines, t, users = H.capture(H.elapsed, lab.fetch_users_sequential, ids)
    H.at_least(t, 3, "three fetches in turn")
    assert.same({{id = 3, name = "Charlie"}, {id = 1, name = "Alice"},
                 {id = 2, name = "Bob"}}, users)
    assert.equal("Got user 3", lines[2])
    lines, t, users = H.capture(H.elapsed, lab.fetch_users_concurrent, ids)
    H.at_least(t, 1, "three fetches at once")
    H.at_most(t, 1.5, "three fetches at once")
    assert.same({{id = 3, name = "Charlie"}, {id = 1, name = "Alice"},
                 {id = 2, name = "Bob"}}, users)
    same_lines({"Fetching user 3%.%.%.", "Fetching user 1%.%.%.",
                "Fetching user 2%.%.%.", "Got user 3", "Got user 1",
                "Got user 2"}, lines)
  end)

  it("tasks spawned first and awaited one by one overlap too", function()
    local _, t, users = H.capture(H.elapsed, lab.fetch_users_with_tasks,
                                  {1, 2, 3, 4, 5})
    H.at_most(t, 1.5, "five fetches at once")
    assert.equal("Eve", users[5].name)
    assert.equal(5, #users)
  end)

  it("a failure in gather reaches the caller", function()
    local ok, err = pcall(H.capture, lab.fetch_users_concurrent, {1, 42}, 0.1)
    assert.is_false(ok)
    assert.equal("no user 42", err)
  end)

  it("format_users writes Lua tables", function()
    assert.equal('{{id = 1, name = "Alice"}, {id = 2, name = "Bob"}}',
                 lab.format_users({{id = 1, name = "Alice"}, {id = 2, name = "Bob"}}))
  end)

  it("runs as a script", function()
    local out, rc = H.script(LAB, "exercise_2")
    assert.equal(0, rc, out)
    H.expect_lines(out, {"^=== Sequential Execution ===$", "^Got user 1$",
      "^Fetching user 2...$", "^Got user 3$", "^Time: %d+%.%d%ds$",
      "^=== Concurrent Execution %(gather%) ===$", "^Fetching user 3...$",
      "^Got user 1$", "^Time: ",
      '^Results: {{id = 1, name = "Alice"}, {id = 2, name = "Bob"}, ' ..
      '{id = 3, name = "Charlie"}}$'})
  end)
end)

describe("lab2/exercise_3", function()
  local lab = H.load(LAB, "exercise_3")

  local function urls(srv, n, delay)
    local t = {}
    for i = 1, n do t[i] = ("%s/delay/%g?page=%d"):format(srv.url, delay * H.SCALE, i) end
    return t
  end

  it("fetch_url reports status, length and time", function()
    local srv <close> = ts.start{}
    local s <close> = async.http.session{}
    local lines, r = H.capture(lab.fetch_url, s, srv.url .. "/posts/1")
    assert.equal(200, r.status)
    assert.equal(srv.url .. "/posts/1", r.url)
    assert.is_true(r.length > 100)
    assert.is_number(r.elapsed)
    assert.equal("Fetching " .. srv.url .. "/posts/1", lines[1])
    _, r = H.capture(lab.fetch_url, s, srv.url .. "/status/404")
    assert.equal(404, r.status)
  end)

  it("fetch_url turns a failed request into a result", function()
    local dead = ts.start{}
    local url = dead.url .. "/get"
    dead:close()
    local s <close> = async.http.session{}
    local _, r = H.capture(lab.fetch_url, s, url)
    assert.is_nil(r.status)
    H.assert_class(async.ConnectionError, r.error)
  end)

  it("fetch_all overlaps the requests, in order, within its limit", function()
    local srv <close> = ts.start{}
    local list = urls(srv, 10, 1)
    local _, t, r = H.capture(H.elapsed, lab.fetch_all, list)
    H.at_least(t, 1, "ten 1 s requests at once")
    H.at_most(t, 1.5, "ten 1 s requests at once")
    assert.equal(10, #r)
    for i = 1, 10 do
      assert.equal(list[i], r[i].url)
      assert.equal(200, r[i].status)
    end
    _, t = H.capture(H.elapsed, lab.fetch_all, urls(srv, 6, 1), {limit = 2})
    H.at_least(t, 3, "six 1 s requests, two at a time")
  end)

  it("fetch_all_sequential takes the sum", function()
    local srv <close> = ts.start{}
    local _, t, r = H.capture(H.elapsed, lab.fetch_all_sequential, urls(srv, 4, 0.5))
    H.at_least(t, 2, "four 0.5 s requests in turn")
    assert.equal(4, #r)
  end)

  it("fetch_all keeps going past errors and timeouts", function()
    local srv <close> = ts.start{}
    local _, r = H.capture(lab.fetch_all, {srv.url .. "/delay/10",
      srv.url .. "/status/500", srv.url .. "/get"}, {timeout = 0.3})
    H.assert_class(async.TimeoutError, r[1].error)
    assert.equal(500, r[2].status)
    assert.equal(200, r[3].status)
  end)

  it("report prints a line per url and the average", function()
    local lines, ok = H.capture(lab.report, {
      {url = "a", status = 200, length = 10, elapsed = 0.1},
      {url = "b", error = "refused"}}, 1)
    assert.equal(1, ok)
    assert.is_truthy(H.find(lines, "^  URL 1: Status 200, Length 10 bytes$"))
    assert.is_truthy(H.find(lines, "^  URL 2: failed, refused$"))
    assert.is_truthy(H.find(lines, "^Average response time: 0%.50s per URL$"))
  end)

  it("runs as a script", function()
    local out, rc = H.script(LAB, "exercise_3")
    assert.equal(0, rc, out)
    H.expect_lines(out, {"^=== Fetching 10 URLs Concurrently ===$",
      "^Fetching http://127%.0%.0%.1:%d+/delay/", "^Fetched 10 URLs in ",
      "^Results:$", "^  URL 1: Status 200, Length %d+ bytes$",
      "^  URL 10: Status 200", "^Average response time: ",
      "^Fetched 10 URLs in .* slower$", "^  /posts/1 %-> 200$",
      "^  /posts/999 %-> 404$", "^  /delay/10 %-> TimeoutError$"})
  end)
end)

describe("lab2/exercise_4", function()
  local lab = H.load(LAB, "exercise_4")

  it("connects, queries and closes in a scope", function()
    local lines, t, rows = H.capture(H.elapsed, lab.single_query)
    assert.same({{id = 1, name = "Alice"}, {id = 2, name = "Bob"}}, rows)
    H.at_least(t, 1.5, "connect, query and close of 0.5 s")
    same_lines({"Connecting to database%.%.%.", "Connection established",
      "Executing query: SELECT %* FROM users",
      'Query result: {{id = 1, name = "Alice"}, {id = 2, name = "Bob"}}',
      "Closing connection%.%.%.", "Connection closed"}, lines)
  end)

  it("runs queries concurrently on one connection", function()
    local lines, t, results = H.capture(H.elapsed, lab.concurrent_queries, 3)
    assert.equal(3, #results)
    assert.equal("Bob", results[3][2].name)
    H.at_least(t, 1.5, "connect, queries and close")
    H.at_most(t, 1.5, "connect, three queries at once and close")
    same_lines({"Connecting to database%.%.%.", "Connection established",
      "Query 1 executing%.%.%.", "Query 2 executing%.%.%.",
      "Query 3 executing%.%.%.", "Query 1 complete", "Query 2 complete",
      "Query 3 complete", "Closing connection%.%.%.", "Connection closed"},
      lines)
  end)

  it("closes the connection when the scope fails", function()
    local conn
    local lines, ok, err = H.capture(pcall, function()
      local db <close> = lab.AsyncDatabase.connect("x.db")
      conn = db
      db:query("DELETE FROM users")
    end)
    assert.is_false(ok)
    assert.matches("cannot run", tostring(err))
    assert.equal("Connection closed", lines[#lines])
    assert.is_false(conn.open)
    assert.has_error(function() conn:query("SELECT * FROM users") end)
    H.capture(conn.close, conn)  -- a second close does nothing
  end)

  it("closes the connection when the task is cancelled", function()
    local conn
    local lines = {}
    local t
    lines = H.capture(function()
      t = async.spawn(function()
        local db <close> = lab.AsyncDatabase.connect("x.db")
        conn = db
        async.sleep(10)
      end)
      async.sleep(0.7 * H.SCALE)
      t:cancel()
      H.await_cancelled(t)
    end)
    assert.is_false(conn.open)
    assert.equal("Connection closed", lines[#lines])
  end)

  it("runs as a script", function()
    local out, rc = H.script(LAB, "exercise_4")
    assert.equal(0, rc, out)
    H.expect_lines(out, {"^Connecting to database...$", "^Connection established$",
      "^Executing query: SELECT %* FROM users$", "^Query result: {{id = 1",
      "^Closing connection...$", "^Connection closed$",
      "^=== Multiple Concurrent Queries ===$", "^Query 1 executing...$",
      "^Query 3 executing...$", "^Query 1 complete$", "^Query 3 complete$",
      "^Connection closed$", "^Total time: %d+%.%ds %(queries ran concurrently%)$",
      "^Connection closed$", "^Failed as expected: cannot run"})
  end)
end)

describe("lab2/exercise_5", function()
  local lab = H.load(LAB, "exercise_5")

  it("fetch_item gets a post after the latency", function()
    local srv <close> = ts.start{}
    local s <close> = async.http.session{base_url = srv.url}
    local lines, t, post = H.capture(H.elapsed, lab.fetch_item, s, 3)
    assert.equal(3, post.id)
    assert.is_string(post.title)
    H.at_least(t, 1, "the latency")
    assert.matches("Fetching .*/posts/3$", lines[1])
    local ok, err = pcall(H.capture, lab.fetch_item, s, 999, 0)
    assert.is_false(ok)
    assert.matches("status 404", tostring(err))
  end)

  it("process_item sums a post up", function()
    local lines, t, r = H.capture(H.elapsed, lab.process_item,
      {id = 7, userId = 1, title = "a title", body = "one two three"})
    assert.same({id = 7, title = "A TITLE", words = 3, user = 1}, r)
    H.at_least(t, 0.5, "processing")
    assert.equal("  Processing item 7", lines[1])
  end)

  it("save_item writes JSON", function()
    local dir = H.tempdir()
    local _, path = H.capture(lab.save_item, dir, {id = 4, title = "T", words = 2, user = 1})
    assert.equal(dir .. "/result_4.json", path)
    assert.same({id = 4, title = "T", words = 2, user = 1},
                cjson.decode(H.readfile(path)))
  end)

  it("run_pipeline fetches, processes and saves every item", function()
    local srv <close> = ts.start{}
    local out = H.tempdir() .. "/output"
    local lines, report = H.capture(lab.run_pipeline,
                                    {base_url = srv.url, out_dir = out})
    assert.equal(5, report.fetched)
    assert.equal(5, report.processed)
    assert.equal(5, report.saved)
    assert.same({}, report.failed)
    H.at_least(report.times.fetch, 1, "fetching")
    H.at_most(report.times.fetch, 1.5, "fetching 5 at once")
    H.at_least(report.times.process, 0.5, "processing")
    H.at_most(report.times.process, 0.75, "processing 5 at once")
    H.at_most(report.times.total, 4, "the pipeline (stages overlap inside)")
    for id = 1, 5 do
      local r = cjson.decode(H.readfile(("%s/result_%d.json"):format(out, id)))
      assert.equal(id, r.id)
      assert.is_true(r.words > 0)
    end
    H.expect_lines(lines, {"^Stage 1: Fetching data from 5 APIs...$",
      "^Fetched 5 items in", "^Stage 2: Processing data...$",
      "^  Processing item 5$", "^Processed 5 items in",
      "^Stage 3: Saving results...$", "^  Writing .*/result_1%.json$",
      "^Saved 5 files in"})
  end)

  it("run_pipeline limits the requests in flight", function()
    local srv <close> = ts.start{}
    local _, report = H.capture(lab.run_pipeline, {base_url = srv.url,
      out_dir = H.tempdir(), ids = {1, 2, 3, 4, 5, 6}, concurrency = 2})
    H.at_least(report.times.fetch, 3, "6 fetches of 1 s, 2 at a time")
    assert.equal(6, report.saved)
  end)

  it("run_pipeline reports a failing item and goes on", function()
    local srv <close> = ts.start{}
    local _, report = H.capture(lab.run_pipeline, {base_url = srv.url,
      out_dir = H.tempdir(), ids = {1, 404, 2}})
    assert.equal(2, report.saved)
    assert.equal(1, #report.failed)
    assert.equal(404, report.failed[1].item)
    assert.matches("status 404", tostring(report.failed[1].error))
  end)

  it("runs as a script", function()
    local out, rc = H.script(LAB, "exercise_5")
    assert.equal(0, rc, out)
    H.expect_lines(out, {"^=== Starting Data Pipeline ===$",
      "^Stage 1: Fetching data from 5 APIs...$",
      "^  Fetching http://127%.0%.0%.1:%d+/posts/1$", "^Fetched 5 items in %d+%.%ds$",
      "^Stage 2: Processing data...$", "^  Processing item 1$",
      "^Processed 5 items in", "^Stage 3: Saving results...$",
      "^  Writing .*output/result_1%.json$", "^Saved 5 files in",
      "^=== Pipeline Complete ===$", "^Total time: %d+%.%ds$",
      "^Successfully processed 5 items$", "^Failed: item 404: .*status 404",
      "^Successfully processed 2 items$"})
  end)
end)

describe("lab2/examples", function()
  local function example(name, pats)
    it(name .. " runs", function()
      local out, rc = H.script(LAB, "examples/" .. name)
      assert.equal(0, rc, out)
      H.expect_lines(out, pats)
    end)
  end

  -- the examples are complete code, the same in exercises/ and solutions/
  example("basic_async", {"^%-%- called directly", "tea is ready",
    "start brewing coffee", "^%-%- spawned as tasks", "both tasks started",
    "start brewing tea", "start brewing coffee", "got tea %(hot%) and coffee",
    "^order: main, task$", "raises its error: false, the kettle broke"})
  example("concurrent_tasks", {"^gather .* a b c$", "^as_completed: .* b c a$",
    "^wait_for .*TimeoutError", "^task group: .* t1 t2 t3$",
    "^6 jobs, semaphore of 2: .* j1 j2 j3 j4 j5 j6$",
    "^cancel: .*CancelledError, cancelled: true$"})
  example("async_http", {"^GET /get %-> 200, args.lang = lua$",
    "^post 1 by user 1", "^POST /post %-> 200, echoed name = Ada$",
    "^3 requests of 0.5 s at once: .* 200 200 200$", "^GET /status/404 %-> 404$",
    "^raise_for_status: HTTPStatusError", "short timeout: TimeoutError$",
    "^a closed port: ConnectionError$"})
  example("async_file_io", {"^read back: Hello, async files!$",
    "^line 3: Third line$", "^log.txt is 24 bytes$",
    "^sizes read at once: 100 200 300 400 500$", "^files: data_1.txt",
    "^missing file: FileNotFoundError$", '^config: {"version": 2}$'})
  example("mixed_sync_async", {"^count_primes in the task: .*ticks meanwhile: 0 ",
    "^count_primes with to_thread:", "^blocking wait .*ticks meanwhile: 0 ",
    "^async.sleep", "^a command with async.process: .*result hello",
    "^future: set from a task started by a callback$",
    "^inside a task already: true$"})
end)

-- The tools that show what the tasks do (docs/tracing.md), used on real
-- lab solutions as a learner would: a trace of the lab 4 crawler (JSON)
-- and of lab 1's real-world examples (HTML), debug mode on lab 1's
-- concurrent execution (its CPU jobs hold the loop) and on the crawler
-- (clean), a SIGQUIT task dump in the middle of the lab 4 scraper, and
-- the --top dashboard over the crawler on a pseudo-terminal.
--
-- The executable (ASYNCHOST_BIN) runs the solutions as scripts, from the
-- source tree, with LAB_TIME_SCALE small so that each run takes a second
-- or two.  These specs check the tools, not the learner's files: they
-- always run solutions/ (LAB_DIR is ignored).
local async = require "asynchost"
require "asynchost.busted"
local cjson = require "cjson"
local helpers = require "spec.helpers"
local q, readfile, plain = helpers.q, helpers.readfile, helpers.plain
local count, tempname = helpers.count, helpers.tempname

-- The binary under test (see spec/helpers.lua), and the pty driver for
-- --top: tests/ptyrun (ASYNCHOST_PTYRUN, else built beside BIN or in
-- build/), else script(1) of util-linux.
local BIN, PTYRUN = helpers.BIN, helpers.PTYRUN
local SCRIPT = not PTYRUN and helpers.onpath("script")

local CRAWLER = "solutions/lab4/web_crawler.lua"
local SCRAPER = "solutions/lab4/web_scraper.lua"
local CONCURRENT = "solutions/lab1/concurrent_execution.lua"
local REALWORLD = "solutions/lab1/real_world_examples.lua"
local SCALE = "0.1"  -- the crawler's 2 s timeout becomes 0.2 s

-- {======================================================
-- helpers
-- =======================================================

after_each(helpers.cleanup)

-- The environment of a child: ours, without what would change the
-- tools' output, with the lab's time scale and 'extra' on top.
local function childenv(extra)
  local env = {ASYNCHOST_DEBUG = false, ASYNCHOST_SLOW = false,
               LUA_INIT = false, LUA_INIT_5_4 = false,
               LAB_TIME_SCALE = SCALE}
  for k, v in pairs(extra or {}) do env[k] = v end
  return env
end

-- Asserts that a child's output has no report of the sanitizers (the ASan
-- build of the executable).
local function nosanitizer(text)
  assert.not_matches("Sanitizer", text, 1, true)
  assert.not_matches("runtime error:", text, 1, true)
end

-- Runs cmd with args (an array); returns {code, stdout, stderr}.
local function runcmd(cmd, args, extra)
  local r = async.process.run(cmd, args, {env = childenv(extra),
                                          inherit_env = true, timeout = 60})
  nosanitizer(r.stderr)
  return r
end

-- Runs the executable with args.
local function run(args, extra) return runcmd(BIN, args, extra) end

-- The lines of the file at path (an array).
local function lines(path)
  local t = {}
  for line in io.lines(path) do t[#t + 1] = line end
  return t
end

-- The line number of the first line of the file at path that holds text
-- (plain).
local function lineof(path, text)
  for n, line in ipairs(lines(path)) do
    if line:find(text, 1, true) then return n end
  end
  error(("no line of %s holds %q"):format(path, text))
end

-- The events of a trace: task spans by spawn number and by tid, the
-- names of the tracks, waits (all, and by tid), flows by id.
local function index(doc)
  local ix = {task = {}, bytid = {}, names = {}, waits = {}, bywait = {},
              flows = {s = {}, f = {}}, ntasks = 0}
  for _, e in ipairs(doc.traceEvents) do
    if e.ph == "X" and e.cat == "task" then
      ix.task[e.args.task] = e
      ix.bytid[e.tid] = e
      ix.ntasks = ix.ntasks + 1
    elseif e.ph == "X" and e.cat == "wait" then
      ix.waits[#ix.waits + 1] = e
      local l = ix.bywait[e.tid] or {}
      ix.bywait[e.tid] = l
      l[#l + 1] = e
    elseif e.ph == "s" or e.ph == "f" then
      ix.flows[e.ph][e.id] = e
    elseif e.ph == "M" and e.name == "thread_name" then
      ix.names[e.tid] = e.args.name
    end
  end
  return ix
end

-- The most spans of `spans` open at one instant.
local function maxoverlap(spans)
  local edges = {}
  for _, e in ipairs(spans) do
    edges[#edges + 1] = {e.ts, 1}
    edges[#edges + 1] = {e.ts + e.dur, -1}
  end
  table.sort(edges, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    return a[2] < b[2]  -- an end before a start at the same instant
  end)
  local n, max = 0, 0
  for _, e in ipairs(edges) do
    n = n + e[2]
    if n > max then max = n end
  end
  return max
end

-- The pieces of text that follow each occurrence of marker (plain), each
-- up to the next one.
local function split(text, marker)
  local pieces, at = {}, text:find(marker, 1, true)
  while at do
    local from = at + #marker
    at = text:find(marker, from, true)
    pieces[#pieces + 1] = text:sub(from, (at or #text + 1) - 1)
  end
  return pieces
end

-- The tasks of a dump: {head = its first line, block = its lines}.
local function dumped(text)
  local tasks = {}
  for i, block in ipairs(split(text, "\n  task '")) do
    block = "task '" .. (block:match("^(.-)\n[^ ]") or block)  -- its own
    tasks[i] = {head = block:match("^[^\n]*"), block = block}
  end
  return tasks
end

-- }======================================================


describe("a trace of a lab solution", function()
  it("--trace x.json on the crawler: named tracks, its HTTP requests at "
     .. "once, each in a task linked to its parent", function()
    local out = tempname(".json")
    local r = run({"--trace", out, CRAWLER})
    assert.equal(0, r.code, r.stderr)
    assert.matches("9 pages in", r.stdout, 1, true)
    local base = r.stdout:match("200%s+(http://127%.0%.0%.1:%d+)/site/%s")
    assert.is_string(base, "the test server's URL in:\n" .. r.stdout)
    local ntasks = tonumber(r.stderr:match("trace written to "
                                           .. plain(out) .. " %((%d+) tasks%)"))
    assert.is_number(ntasks, r.stderr)
    local doc = cjson.decode(readfile(out))
    helpers.checktrace(doc)
    local ix = index(doc)
    assert.equal(ntasks, ix.ntasks)

    -- one named track per task: main, the map's workers, their requests
    local main = ix.task[1]
    assert.equal("main", main.name)
    assert.equal("done", main.args.outcome)
    for tid, span in pairs(ix.bytid) do
      assert.equal(span.name, ix.names[tid], "the name of track " .. tid)
      assert.matches("^[%w%-]+$", span.name)
    end

    -- a wait per request, named after its URL, in a task of the crawler
    local http, byurl = {}, {}
    for _, w in ipairs(ix.waits) do
      if w.args.wait == "an HTTP request" then
        http[#http + 1] = w
        byurl[w.args.detail] = w
        local task = ix.bytid[w.tid]
        assert.is_table(task, w.name)
        assert.matches(plain(CRAWLER) .. ":%d+$", task.args.spawned_at)
        assert.is_true(w.ts >= task.ts and w.ts + w.dur <= task.ts + task.dur
                       + 1, w.name .. " inside its task")
        -- main -> a worker of async.map -> the request (under wait_for)
        local worker = ix.task[task.args.parent]
        assert.is_table(worker, "the parent of " .. task.name)
        assert.equal(main.args.task, worker.args.parent)
      end
    end
    assert.equal(9, #http)
    for _, p in ipairs{"/site/", "/site/news/", "/site/docs/tutorial.html",
                       "/site/blog/tasks.html", "/html",
                       "/site/blog/draft.html", "/json"} do
      local w = byurl["GET " .. base .. p]
      assert.is_table(w, "a request of " .. base .. p)
      assert.equal("an HTTP request GET " .. base .. p, w.name)
    end
    -- the slow page: its request lasted the crawler's timeout (0.2 s)
    local slow
    for url, w in pairs(byurl) do
      if url:find("^GET " .. plain(base) .. "/site/shop/%?delay=") then
        slow = w
      end
    end
    assert.is_table(slow, "the slow page's request")
    assert.is_true(slow.dur >= 0.19e6, "it lasted " .. slow.dur .. " µs")
    -- concurrent: most of them at the same time
    local most = maxoverlap(http)
    assert.is_true(most >= 5, most .. " requests at once at most")

    -- parent -> child: a flow from each spawner's track to the child's
    local links = 0
    for n, span in pairs(ix.task) do
      if span.args.parent ~= 0 then
        local parent = ix.task[span.args.parent]
        local s, f = ix.flows.s[n], ix.flows.f[n]
        assert.is_table(parent, span.name .. "'s parent")
        assert.is_table(s, span.name .. ": flow start")
        assert.is_table(f, span.name .. ": flow end")
        assert.equal(parent.tid, s.tid)
        assert.equal(span.tid, f.tid)
        assert.is_true(f.ts >= s.ts)
        links = links + 1
      end
    end
    assert.is_true(links >= 2 * #http, links .. " links")
  end, 90)

  it("--trace x.html on lab 1's real-world examples: one page, nothing to "
     .. "fetch, a track per task", function()
    local out = tempname(".html")
    local r = run({"--trace", out, REALWORLD})
    assert.equal(0, r.code, r.stderr)
    assert.matches("Processed 3 images", r.stdout, 1, true)
    local ntasks = tonumber(r.stderr:match("trace written to "
                                           .. plain(out) .. " %((%d+) tasks%)"))
    assert.is_number(ntasks, r.stderr)
    local html = readfile(out)
    assert.matches("^<!DOCTYPE html>", html)
    -- the trace inside, the chart the page's script draws it in
    local open = '<script id="trace-data" type="application/json">'
    local a, b = html:find(open, 1, true)
    assert.is_number(a, "the trace's script element")
    local c = html:find("</script>", b + 1, true)
    local json = html:sub(b + 1, c - 1)
    local page = html:sub(1, a - 1) .. html:sub(c + #"</script>")
    assert.matches('<div id="chart"></div>', page, 1, true)
    assert.matches("<script>", page, 1, true)
    -- self-contained: the page loads nothing (the URLs of the lab's
    -- requests are in the trace, as data)
    assert.not_matches("https?://", page)
    assert.not_matches("<link", page, 1, true)
    assert.not_matches("<script[^>]* src=", page)
    assert.not_matches("<img", page, 1, true)
    assert.not_matches("<iframe", page, 1, true)
    assert.not_matches("@import", page, 1, true)
    assert.not_matches("url%(", page)
    assert.matches("GET http://127%.0%.0%.1:%d+/", json)
    -- the rows: one named track per task, the lab's many kinds of waits
    local doc = cjson.decode(json)
    helpers.checktrace(doc)
    local ix = index(doc)
    assert.equal(ntasks, ix.ntasks)
    assert.is_true(ntasks >= 20, ntasks .. " tasks")
    for tid, span in pairs(ix.bytid) do
      assert.equal(span.name, ix.names[tid], "the name of track " .. tid)
    end
    local kinds = {}
    for _, w in ipairs(ix.waits) do kinds[w.args.wait] = true end
    for _, k in ipairs{"an HTTP request", "sleep", "a semaphore",
                       "an empty queue", "a file read"} do
      assert.is_true(kinds[k], "a wait on " .. k)
    end
  end, 90)

  local chromium = helpers.onpath("chromium")
  if not chromium then
    pending("chromium is not installed: the real-world trace is not rendered")
    return
  end

  it("the HTML of the real-world examples renders a row per task "
     .. "(headless Chromium)", function()
    local out = tempname(".html")
    local r = run({"--trace", out, REALWORLD})
    assert.equal(0, r.code, r.stderr)
    local ix = index(cjson.decode(readfile(out):match(
      '<script id="trace%-data" type="application/json">(.-)</script>')))
    local home = tempname()
    local args = {"--headless", "--no-sandbox", "--disable-gpu",
                  "--user-data-dir=" .. home, "--dump-dom", "file://" .. out}
    -- a busy machine can make Chromium give up: two tries
    local svg
    for _ = 1, 2 do
      local ok, d = pcall(async.process.run, "chromium", args, {
        env = {HOME = home}, inherit_env = true, timeout = 60})
      svg = ok and d.stdout:match("<svg.-</svg>")
      if svg then break end
    end
    assert.is_string(svg, "the chart drawn by the page")
    local rows = {}
    for name in svg:gmatch('<text x="6" [^>]*>([^<]*)<title>') do
      rows[#rows + 1] = name
    end
    local tracks = 0
    for _ in pairs(ix.names) do tracks = tracks + 1 end
    assert.equal(tracks, #rows)  -- the tasks and the loop's callbacks
    local shown = {}
    for _, name in ipairs(rows) do shown[name] = true end
    for _, span in pairs(ix.task) do
      assert.is_true(shown[span.name], "a row for " .. span.name)
    end
  end, 120)
end)


describe("debug mode on a lab solution", function()
  it("-X debug: lab 1's CPU jobs are reported holding the loop, with where "
     .. "they computed", function()
    -- the jobs compute for 40-130 ms depending on the machine and the
    -- build: a 10 ms threshold reports them anywhere
    local r = run({"-X", "debug", CONCURRENT}, {ASYNCHOST_SLOW = "0.01"})
    assert.equal(0, r.code, r.stderr)  -- reports never stop the program
    assert.matches("2 CPU jobs with gather", r.stdout, 1, true)
    -- the gather that spawns them: the last one before the first job
    local cpu = lineof(CONCURRENT, 'simulate_cpu_work("cpu_a"')
    local src, gather = lines(CONCURRENT), nil
    for n = 1, cpu do
      if src[n]:find("async.gather(", 1, true) then gather = n end
    end
    local sum = lineof(CONCURRENT, "sum = sum + i * i")
    -- the two tasks the gather spawned, each once, sampled in the loop
    local seen = {}
    for _, report in ipairs(split(r.stderr, "asynchost: debug: ")) do
      local name = report:match("^task '([^']+)' %(spawned at "
                                .. plain(CONCURRENT) .. ":" .. gather
                                .. "%) held the loop for [%d.]+ ms "
                                .. "%(threshold 10 ms%)")
      if name then
        assert.is_nil(seen[name], name .. " reported twice")
        seen[name] = true
        assert.matches("where it was [%d.]+ ms into the step:\n"
                       .. "%s+stack traceback:\n%s+" .. plain(CONCURRENT)
                       .. ":" .. sum .. ": in ", report)
        assert.matches("(the task ended in that step)", report, 1, true)
      end
    end
    local n = 0
    for name in pairs(seen) do
      n = n + 1
      assert.matches("^Task%-%d+$", name)
    end
    assert.equal(2, n, "two CPU jobs reported in:\n" .. r.stderr)
  end, 90)

  it("ASYNCHOST_DEBUG=1: the crawler is clean (no slow step, no result "
     .. "lost, no session left open)", function()
    -- its longest step is ~5 ms (~10 ms under ASan); a 1 s threshold keeps
    -- a loaded 2-core machine from making one look slow
    local r = run({CRAWLER}, {ASYNCHOST_DEBUG = "1", ASYNCHOST_SLOW = "1"})
    assert.equal(0, r.code, r.stderr)
    assert.matches("9 pages in", r.stdout, 1, true)
    assert.not_matches("asynchost: debug:", r.stderr, 1, true)
    -- debug mode was on: the same run with a session left open says so
    local leaky = tempname(".lua")
    helpers.writefile(leaky, ("local m = dofile(%q)\n"):format(CRAWLER) .. [[
local async = require "asynchost"
local leaked = async.http.session{}
m.main()
]])
    r = run({leaky}, {ASYNCHOST_DEBUG = "1", ASYNCHOST_SLOW = "1"})
    assert.equal(0, r.code, r.stderr)
    assert.matches("asynchost: debug: HTTP session never closed", r.stderr,
                   1, true)
    assert.equal(1, count(r.stderr, "asynchost: debug:"), r.stderr)
  end, 90)
end)


describe("SIGQUIT during a lab solution", function()
  it("the scraper dumps its tasks, where each waits, and goes on to the "
     .. "end", function()
    local p <close> = async.process.spawn(BIN, {SCRAPER}, {
      stdin = "null", stdout = "pipe", stderr = "pipe", inherit_env = true,
      env = childenv()})
    local errtask = async.spawn(function() return p.stderr:read() end)
    local before = {}
    async.wait_for(function()
      while true do
        local line = p.stdout:readline()
        assert(line, "the scraper ended before its third page:\n"
                     .. table.concat(before))
        before[#before + 1] = line
        if line:find("^%[  3%]") then break end
      end
    end, 30)
    p:kill("SIGQUIT")  -- Ctrl-\ (kill -QUIT)
    local rest = async.wait_for(function() return p.stdout:read() end, 60)
    local err = async.wait_for(errtask, 60)
    local code = p:wait()
    nosanitizer(err)

    -- it went on to the end, normally
    assert.equal(0, code, err)
    assert.matches("%[ 25%][^\n]*\n", rest)
    assert.matches("Done in [%d.]+ s: 25 pages scraped, 0 failed", rest)

    -- one dump, of every live task
    assert.equal(1, count(err, "SIGQUIT:"), err)
    local n = tonumber(err:match("asynchost: SIGQUIT: (%d+) live task%(s%):"))
    assert.is_number(n, err)
    local tasks = dumped(err)
    assert.equal(n, #tasks, err)
    local main, waits, scrapers = nil, {}, 0
    for _, t in ipairs(tasks) do
      assert.matches("; age [%d.]+ s$", t.head)
      if t.head:find("^task 'main': ") then
        main = t
      end
      local wait = t.head:match("^task 'Task%-%d+' %(spawned at "
                                .. plain(SCRAPER) .. ":%d+%): waiting on "
                                .. "(.-); age")
      if wait then  -- a page's task: where it waits in the scraper's code
        scrapers = scrapers + 1
        waits[wait:match("^an HTTP request") or wait:match("^sleep")
              or wait] = true
        assert.matches("\n    stack traceback:\n.-" .. plain(SCRAPER)
                       .. ":%d+: in ", t.block)
      end
    end
    assert.is_table(main, "the main task in:\n" .. err)
    assert.matches("^task 'main': waiting on ", main.head)
    assert.matches(plain(SCRAPER) .. ":%d+: in ", main.block)
    assert.is_true(scrapers >= 3, scrapers .. " pages' tasks in:\n" .. err)
    -- the pages wait their turn at the site (a lock), its delay, their
    -- request, or the robots.txt rules another page's task fetches
    assert.is_true(waits["a lock"], "a task waiting on a lock in:\n" .. err)
    for w in pairs(waits) do
      assert.is_true(w == "a lock" or w == "a semaphore" or w == "sleep"
                     or w == "an HTTP request" or w == "a future"
                     or w:find("^a task '") ~= nil, "an unexpected wait: " .. w)
    end
  end, 90)
end)


describe("--top on a lab solution", function()
  if not PTYRUN and not SCRIPT then
    pending("needs a pseudo-terminal: tests/ptyrun (build it beside "
            .. "ASYNCHOST_BIN, or set ASYNCHOST_PTYRUN) or script(1)")
    return
  end

  -- Runs the executable with args on a pseudo-terminal (40 rows, 120
  -- columns); returns what the terminal got (raw) and the exit status.
  local function inpty(args, extra)
    if PTYRUN then
      local steps, raw = tempname(), tempname()
      helpers.writefile(steps, "wait\n")
      local argv = {"-t", "60", "-c", "120", "-r", raw, steps, "--", BIN}
      for _, a in ipairs(args) do argv[#argv + 1] = a end
      local r = runcmd(PTYRUN, argv, extra)
      assert.equal(0, r.code, "ptyrun: " .. r.stdout .. r.stderr)
      return readfile(raw), tonumber(r.stdout:match("%[exit (%d+)%]\n$"))
    end
    local words = {"stty rows 40 cols 120 2> /dev/null; exec", q(BIN)}
    for _, a in ipairs(args) do words[#words + 1] = q(a) end
    local r = runcmd("script", {"-qec", table.concat(words, " "), "/dev/null"},
                     extra)
    return r.stdout, r.code
  end

  it("the crawler's dashboard: its tasks, the slow request in flight; the "
     .. "terminal restored at exit", function()
    -- at 0.75 the slow page is in flight for 1.5 s: three frames or more
    local term, code = inpty({"--top", CRAWLER},
                             {TERM = "xterm", LAB_TIME_SCALE = "0.75"})
    nosanitizer(term)
    assert.equal(0, code, term)
    local ENTER, RESTORE = "\27[?1049h", "\27[r\27[?25h\27[?1049l"
    local enter = term:find(ENTER, 1, true)
    local leave = term:find(RESTORE, 1, true)
    assert.is_number(enter, "the alternate screen")
    assert.is_number(leave, "the terminal restored")
    assert.is_true(enter < leave)
    assert.equal(1, count(term, plain(ENTER)))
    assert.equal(1, count(term, plain(RESTORE)))
    local during, after = term:sub(enter, leave - 1), term:sub(leave)
    -- frames drawn in place, twice a second: the screen is cleared once
    assert.is_true(count(during, "asynchost %-%-top   up") >= 3,
                   count(during, "asynchost %-%-top   up") .. " frames")
    assert.equal(1, count(term, "\27%[2J"))
    assert.matches("tasks: %d+ live %(%d+ running, %d+ ready, %d+ waiting%)",
                   during)
    -- eight pages done, the slow one in flight
    assert.matches("http:  1 in flight, [%d.]+ requests/s, 8 done", during)
    assert.matches("an HTTP request%s+1%s", during)
    assert.matches("waiting on an HTTP request", during, 1, true)
    -- the crawler's own output went through
    assert.matches("9 pages in", during, 1, true)
    -- the last frame, on the normal screen
    assert.matches("asynchost --top (at exit)", after, 1, true)
    assert.matches("tasks: 0 live (0 running, 0 ready, 0 waiting)", after,
                   1, true)
    assert.matches("spawned, %d+ done, 1 failed, 1 cancelled", after)
    assert.matches("http:  0 in flight, [%d.]+ requests/s, 9 done", after)
  end, 90)
end)

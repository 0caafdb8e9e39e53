--- Lab 1, exercise 9: the integration project (solution).
--
-- Run it:  asynchost solutions/lab1/integration_project.lua
-- Faster:  LAB_TIME_SCALE=0.1 asynchost solutions/lab1/integration_project.lua
--
-- Six parts that work together, all against asynchost's built-in test
-- server (started on 127.0.0.1 by main) and a temporary directory:
--
--   AsyncWebCrawler  crawls a site breadth first, a few pages at a time,
--                    never faster than its rate limit; links are found
--                    with an LPeg grammar, not with string patterns
--   DataProcessor    a pool of worker tasks fed by a queue
--   AsyncAPIClient   JSON over HTTP with retries, a TTL cache, and one
--                    request for callers asking the same thing at once
--   FileMonitor      reports the files created or changed in a directory
--                    (async.fs.watch) and processes each
--   TaskScheduler    runs jobs later, again and again, retrying failures,
--                    and keeps a record of every operation
--   Dashboard        shows the scheduler's operations while they run
local async = require "asynchost"
local testserver = require "asynchost.testserver"
local lpeg = require "lpeg"
local cjson = require "cjson"

local M = {}

-- Every delay of this file is in "lab seconds", multiplied by time_scale
-- (LAB_TIME_SCALE, default 1; the specs set the field to run faster).
M.time_scale = tonumber(os.getenv("LAB_TIME_SCALE")) or 1

local function sleep(s) async.sleep(s * M.time_scale) end

---------------------------------------------------------------------------
-- HTML: links and title, with an LPeg grammar

local P, S, R, C, Ct = lpeg.P, lpeg.S, lpeg.R, lpeg.C, lpeg.Ct

local function nocase(word)  -- a literal matched without regard to case
  local p = P(true)
  for c in word:gmatch(".") do p = p * S(c:lower() .. c:upper()) end
  return p
end

local sp = S" \t\r\n"^0
local sp1 = S" \t\r\n"^1
local attrname = (R("az", "AZ", "09") + S"-_:.")^1
local value = P'"' * C((1 - P'"')^0) * P'"'
            + P"'" * C((1 - P"'")^0) * P"'"
            + C((1 - S" \t\r\n>\"'")^1)
local href = nocase"href" * sp * "=" * sp * value
local otherattr = attrname * (sp * "=" * sp * (value / 0))^-1
local atag = "<" * nocase"a" * #S" \t\r\n>" *
             (sp1 * (href + otherattr))^0 * sp * P"/"^-1 * ">"
local comment = "<!--" * (1 - P"-->")^0 * P"-->"
local hrefs = Ct((comment + atag + 1)^0)
local title = (1 - nocase"<title")^0 * nocase"<title" * (1 - P">")^0 * ">" *
              C((1 - nocase"</title")^0)

local ENTITIES = {amp = "&", lt = "<", gt = ">", quot = '"', apos = "'"}
local function unescape(s)
  return (s:gsub("&(%a+);", function(e) return ENTITIES[e] end))
end

--- The title of an HTML page, or nil.
function M.extract_title(html)
  local t = title:match(html)
  return t and unescape(t:gsub("%s+", " "):match("^%s*(.-)%s*$"))
end

--- Resolves `ref` against the page URL `base`: an absolute URL, without
-- its fragment; nil for a link to the page itself ("#top") or an empty one.
function M.resolve(base, ref)
  ref = unescape(ref):gsub("#.*$", "")
  if ref == "" then return nil end
  if ref:match("^%a[%w+.-]*:") then return ref end
  local scheme, authority, path =
    base:match("^(%a[%w+.-]*:)//([^/?#]*)([^?#]*)")
  if not scheme then return nil end
  if ref:sub(1, 2) == "//" then return scheme .. ref end
  if ref:sub(1, 1) ~= "/" then
    ref = path:gsub("[^/]*$", "") .. ref
  end
  local query = ref:match("%?.*$") or ""
  ref = ref:gsub("%?.*$", "")
  local parts = {}
  for seg in ref:gmatch("[^/]+") do
    if seg == ".." then parts[#parts] = nil
    elseif seg ~= "." then parts[#parts + 1] = seg end
  end
  local trailing = (ref:sub(-1) == "/" or ref:match("/%.%.?$")) and #parts > 0
  return scheme .. "//" .. authority .. "/" .. table.concat(parts, "/") ..
         (trailing and "/" or "") .. query
end

--- The absolute URLs the <a href> of `html` point to, in order, once each.
function M.extract_links(html, base)
  local out, seen = {}, {}
  for _, ref in ipairs(hrefs:match(html)) do
    local url = M.resolve(base, ref)
    if url and not seen[url] then
      seen[url] = true
      out[#out + 1] = url
    end
  end
  return out
end

---------------------------------------------------------------------------
-- AsyncWebCrawler

local Crawler = {}
Crawler.__index = Crawler
M.AsyncWebCrawler = Crawler

--- opts: rate_limit (requests a second, default 5), concurrency (default
-- 3), max_pages (default 50), max_depth (default 2), timeout (per request,
-- default 10), on_page(page) called after each page.
function Crawler.new(opts)
  opts = opts or {}
  local rate = opts.rate_limit or 5
  if type(rate) ~= "number" or rate <= 0 then
    error("bad argument #1 to 'new' (rate_limit must be a positive number)", 2)
  end
  return setmetatable({
    rate_limit = rate,
    limiter = async.RateLimiter{rate = rate, per = 1 * M.time_scale,
                                burst = 1},
    concurrency = opts.concurrency or 3,
    max_pages = opts.max_pages or 50,
    max_depth = opts.max_depth or 2,
    timeout = opts.timeout or 10,
    on_page = opts.on_page,
    requests = {},  -- loop_time of each request, in order
  }, Crawler)
end

local function inscope(url, start)
  local prefix = start:match("^(.*/)") or start
  return url:sub(1, #prefix) == prefix
end

--- Crawls from `start_url`, breadth first, following the links that stay
-- under the start URL's directory. Returns the pages in the order they
-- were fetched: {url, depth, status, title, links} or {url, depth, error}.
function Crawler:crawl(start_url)
  local session <close> = async.http.session{timeout = self.timeout}
  local seen, pages = {[start_url] = true}, {}
  local frontier = {start_url}
  for depth = 0, self.max_depth do
    local room = self.max_pages - #pages
    if #frontier == 0 or room <= 0 then break end
    while #frontier > room do frontier[#frontier] = nil end
    local found = async.map(function(url)
      self.limiter:acquire()
      self.requests[#self.requests + 1] = async.loop_time()
      local page = {url = url, depth = depth}
      local ok, r = pcall(session.get, session, url)
      if not ok then
        page.error = r
      else
        page.status = r.status
        local ctype = r.headers["content-type"] or ""
        if r.status == 200 and ctype:find("html") then
          page.title = M.extract_title(r.body)
          page.links = M.extract_links(r.body, r.url or url)
          page.length = #r.body
        end
      end
      if self.on_page then self.on_page(page) end
      return page
    end, frontier, {concurrency = self.concurrency})
    local next_frontier = {}
    for i = 1, found.n do
      local page = found[i]
      pages[#pages + 1] = page
      for _, link in ipairs(page.links or {}) do
        if not seen[link] and inscope(link, start_url) then
          seen[link] = true
          next_frontier[#next_frontier + 1] = link
        end
      end
    end
    frontier = next_frontier
  end
  return pages
end

--- Crawls `url` and has `processor` analyse each page fetched; returns
-- {url, pages = n, errors = n, words = total, results = {...}}.
function Crawler:crawl_and_process(url, processor)
  local pages = self:crawl(url)
  local results = processor:process(pages, function(page)
    if page.error or page.status ~= 200 then
      error(("%s: %s"):format(page.url, page.error or page.status), 0)
    end
    sleep(0.05)  -- the analysis takes a moment
    local words = 0
    for _ in (page.title or ""):gmatch("%S+") do words = words + 1 end
    return {url = page.url, title = page.title, links = #page.links,
            words = words}
  end)
  local summary = {url = url, pages = #pages, errors = 0, words = 0,
                   results = results}
  for _, r in ipairs(results) do
    if r.ok then summary.words = summary.words + r.value.words
    else summary.errors = summary.errors + 1 end
  end
  return summary
end

---------------------------------------------------------------------------
-- DataProcessor: `workers` tasks take items from a queue

local Processor = {}
Processor.__index = Processor
M.DataProcessor = Processor

function Processor.new(opts)
  opts = opts or {}
  local workers = opts.workers or 3
  if math.type(workers) ~= "integer" or workers < 1 then
    error("bad argument #1 to 'new' (workers must be a positive integer)", 2)
  end
  return setmetatable({workers = workers, processed = 0, failed = 0,
                       busy = 0, peak = 0}, Processor)
end

--- Applies fn to every item with the worker pool; returns, in the order
-- of items, {ok = true, value = v} or {ok = false, error = err}.
function Processor:process(items, fn)
  local queue = async.Queue()
  for i, item in ipairs(items) do queue:put_nowait({i, item}) end
  queue:shutdown()  -- workers stop when it is empty
  local results = {}
  do
    local tg <close> = async.task_group()
    for _ = 1, math.min(self.workers, #items) do
      tg:spawn(function()
        while true do
          local ok, job = pcall(queue.get, queue)
          if not ok then
            if async.QueueShutDown:is(job) then return end
            error(job, 0)
          end
          self.busy = self.busy + 1
          self.peak = math.max(self.peak, self.busy)
          local fine, v = pcall(fn, job[2])
          self.busy = self.busy - 1
          if not fine and async.CancelledError:is(v) then error(v, 0) end
          results[job[1]] = fine and {ok = true, value = v}
                                 or {ok = false, error = v}
          if fine then self.processed = self.processed + 1
          else self.failed = self.failed + 1 end
        end
      end)
    end
  end
  return results
end

---------------------------------------------------------------------------
-- AsyncAPIClient: JSON API with retries and a cache

local Client = {}
Client.__index = Client
M.AsyncAPIClient = Client

--- opts: base_url, retries (default 3), retry_delay (default 0.1 s,
-- doubled each time), cache_ttl (seconds, default 60), timeout.
function Client.new(opts)
  opts = opts or {}
  return setmetatable({
    base_url = opts.base_url,
    retries = opts.retries or 3,
    retry_delay = opts.retry_delay or 0.1,
    cache_ttl = opts.cache_ttl or 60,
    session = async.http.session{base_url = opts.base_url,
                                 timeout = opts.timeout or 10},
    cache = {},      -- [path] = {value, expires}
    inflight = {},   -- [path] = task fetching it
    stats = {requests = 0, hits = 0, misses = 0, retries = 0},
  }, Client)
end

--- The decoded JSON at `path`: from the cache while fresh, else fetched
-- (5xx answers, connection errors and timeouts are retried). Callers
-- asking for a path being fetched wait for that fetch.
function Client:get(path)
  local now = async.loop_time()
  local entry = self.cache[path]
  if entry and entry.expires > now then
    self.stats.hits = self.stats.hits + 1
    return entry.value
  end
  self.stats.misses = self.stats.misses + 1
  local t = self.inflight[path]
  if not t then
    t = async.spawn(function()
      return async.retry(function()
        self.stats.requests = self.stats.requests + 1
        local r = self.session:get(path)
        r:raise_for_status()
        return r:json()
      end, {attempts = self.retries + 1,
            delay = self.retry_delay * M.time_scale,
            retry_on = function(err)
              if async.HTTPStatusError:is(err) then return err.status >= 500 end
              return async.ConnectionError:is(err) or async.TimeoutError:is(err)
            end,
            on_retry = function()
              self.stats.retries = self.stats.retries + 1
            end})
    end)
    self.inflight[path] = t
    t:add_done_callback(function()
      if self.inflight[path] == t then self.inflight[path] = nil end
      if not t:cancelled() and t:exception() == nil then
        self.cache[path] = {value = t:result(),
                            expires = async.loop_time() +
                                      self.cache_ttl * M.time_scale}
      end
    end)
  end
  return async.shield(t)  -- a caller that gives up leaves the fetch to others
end

function Client:close() self.session:close() end
Client.__close = Client.close

---------------------------------------------------------------------------
-- FileMonitor: the files created or changed in a directory

local Monitor = {}
Monitor.__index = Monitor
M.FileMonitor = Monitor

--- Watches the directory `dir` and calls handler(path) (in a task of its
-- own, at most opts.concurrency at a time, default 2) for each file that
-- appears or changes, once no event came for it for opts.settle seconds
-- (default 0.05). m.processed lists {path, result} or {path, error}.
function Monitor.new(dir, handler, opts)
  opts = opts or {}
  return setmetatable({dir = dir, handler = handler,
                       settle = opts.settle or 0.05,
                       sem = async.Semaphore(opts.concurrency or 2),
                       changed = async.Event(),  -- set when one is processed
                       processed = {}, seen = {}, running = {}}, Monitor)
end

function Monitor:handle(path)
  local ok, st = pcall(async.fs.stat, path)
  if not ok or st.type ~= "file" then return end
  local key = st.size .. ":" .. tostring(st.mtime)
  if self.seen[path] == key then return end
  self.seen[path] = key
  local t = async.spawn(function()
    local _ <close> = self.sem:acquire()
    local fine, res = pcall(self.handler, path)
    if not fine and async.CancelledError:is(res) then error(res, 0) end
    self.processed[#self.processed + 1] =
      fine and {path = path, result = res} or {path = path, error = res}
    self.changed:set()
  end)
  self.running[t] = true
  t:add_done_callback(function() self.running[t] = nil end)
end

--- Starts watching (returns at once; the watch runs in a task).
function Monitor:start()
  -- the watch starts now, so no file written after start() is missed
  local watcher = async.fs.watch(self.dir,
                                 {debounce = self.settle * M.time_scale})
  self.task = async.spawn(function()
    local w <close> = watcher  -- closed when the task ends or is cancelled
    for ev in w do self:handle(ev.path) end
  end)
  self.task:set_name("file-monitor")
end

--- Waits until `n` files have been processed, for at most `timeout`
-- seconds (default 5); returns true, or false if the time ran out.
function Monitor:wait_processed(n, timeout)
  local ok, err = pcall(async.wait_for, function()
    while #self.processed < n do
      self.changed:clear()
      self.changed:wait()
    end
  end, timeout or 5)
  if not ok and not async.TimeoutError:is(err) then error(err, 0) end
  return ok
end

--- Stops watching and waits for the files being processed.
function Monitor:stop()
  if self.task then
    self.task:cancel()
    pcall(async.await, self.task)
    self.task = nil
  end
  local pending = {}
  for t in pairs(self.running) do pending[#pending + 1] = t end
  if #pending > 0 then async.wait(pending) end
end
Monitor.__close = Monitor.stop

---------------------------------------------------------------------------
-- TaskScheduler: jobs later, repeated, retried; a record of each

local Scheduler = {}
Scheduler.__index = Scheduler
M.TaskScheduler = Scheduler

function Scheduler.new()
  return setmetatable({operations = {}, tasks = {}, byname = {}}, Scheduler)
end

--- Runs fn() in a task and returns the task. opts: name, delay (seconds
-- before the first run), every (seconds between runs) and times (how many
-- runs, default 1, or math.huge), retries (extra attempts after a
-- failure, default 0). Each run's failure is recorded; the task raises
-- the last run's error. The record is scheduler.operations[i]: {name,
-- state = "waiting" | "running" | "done" | "failed" | "cancelled", runs,
-- attempts, started, finished, progress, result, error}.
function Scheduler:schedule(fn, opts)
  opts = opts or {}
  local op = {name = opts.name or ("job-" .. (#self.operations + 1)),
              state = "waiting", runs = 0, attempts = 0}
  self.operations[#self.operations + 1] = op
  self.byname[op.name] = op
  local times = opts.times or 1
  local t = async.spawn(function()
    local ok, res = pcall(function()
      if opts.delay then sleep(opts.delay) end
      local result
      for run = 1, times do
        if run > 1 then sleep(opts.every or 0) end
        op.state, op.started = "running", op.started or async.loop_time()
        local attempts = (opts.retries or 0) + 1
        for attempt = 1, attempts do
          op.attempts = op.attempts + 1
          local fine, v = pcall(fn)
          if fine then result = v; break end
          if async.CancelledError:is(v) or attempt == attempts then
            error(v, 0)
          end
          op.error = v
        end
        op.runs = run
        op.result = result
      end
      return result
    end)
    op.finished = async.loop_time()
    if ok then
      op.state, op.error = "done", nil
      return res
    end
    op.state = async.CancelledError:is(res) and "cancelled" or "failed"
    op.error = res
    error(res, 0)
  end)
  t:set_name(op.name)
  t:add_done_callback(function(task)
    if task:cancelled() then  -- perhaps before it even started
      op.state = "cancelled"
    else
      task:exception()  -- a failure is in the record: it counts as seen
    end
  end)
  op.task = t
  self.tasks[#self.tasks + 1] = t
  return t
end

--- Sets the progress text of the operation running in this task.
function Scheduler:progress(text)
  local t = async.current_task()
  for _, op in ipairs(self.operations) do
    if op.task == t then op.progress = text end
  end
end

--- Cancels the operations still pending and waits for them.
function Scheduler:shutdown()
  local pending = {}
  for _, t in ipairs(self.tasks) do
    if not t:done() then
      t:cancel("scheduler shut down")
      pending[#pending + 1] = t
    end
  end
  if #pending > 0 then async.wait(pending) end
  for _, op in ipairs(self.operations) do
    if op.task:cancelled() then op.state = "cancelled" end
  end
end
Scheduler.__close = Scheduler.shutdown

---------------------------------------------------------------------------
-- Dashboard: the scheduler's operations, live

local Dashboard = {}
Dashboard.__index = Dashboard
M.Dashboard = Dashboard

--- opts.out(text) shows a frame (default: print it; on a terminal, the
-- frame is redrawn in place).
function Dashboard.new(scheduler, opts)
  opts = opts or {}
  return setmetatable({scheduler = scheduler, out = opts.out, frames = 0},
                      Dashboard)
end

--- One frame: a line per operation and a total.
function Dashboard:render()
  local now = async.loop_time()
  local lines = {("%-18s %-9s %4s %8s  %s"):format("operation", "state",
                 "runs", "time", "progress")}
  local count = {}
  for _, op in ipairs(self.scheduler.operations) do
    count[op.state] = (count[op.state] or 0) + 1
    local t = op.started and ((op.finished or now) - op.started) or 0
    local note = op.progress or ""
    if op.state == "failed" then note = tostring(op.error) end
    lines[#lines + 1] = ("%-18s %-9s %4d %7.2fs  %s"):format(op.name:sub(1, 18),
                        op.state, op.runs, t, note:sub(1, 40)):gsub("%s+$", "")
  end
  local parts = {}
  for _, s in ipairs{"waiting", "running", "done", "failed", "cancelled"} do
    if count[s] then parts[#parts + 1] = count[s] .. " " .. s end
  end
  lines[#lines + 1] = "total: " .. (#parts > 0 and table.concat(parts, ", ")
                                    or "no operations")
  return table.concat(lines, "\n")
end

local function tty()
  return async.isatty(1) and os.getenv("TERM") ~= "dumb"
end

--- Shows a frame every `interval` seconds (default 0.5) until stop() or
-- until every operation has ended, then a last one. Returns at once: the
-- dashboard runs in a task.
function Dashboard:start(interval)
  interval = interval or 0.5
  local live, height = tty() and not self.out, 0
  local function show(last)
    local frame = self:render()
    self.frames = self.frames + 1
    if self.out then return self.out(frame, last) end
    if live and height > 0 then io.write(("\27[F\27[K"):rep(height)) end
    io.write(frame, "\n")
    io.flush()
    local _, n = frame:gsub("\n", "")
    height = n + 1
  end
  self.task = async.spawn(function()
    local ok, err = pcall(function()
      while true do
        local tasks = {}
        for _, op in ipairs(self.scheduler.operations) do
          if not op.task:done() then tasks[#tasks + 1] = op.task end
        end
        if #tasks == 0 then break end
        show(false)
        async.wait(tasks, {timeout = interval * M.time_scale})
      end
    end)
    show(true)
    if not ok then error(err, 0) end
  end)
  self.task:set_name("dashboard")
end

--- Waits for the dashboard's last frame (or stops it now, if `now`).
function Dashboard:stop(now)
  if not self.task then return end
  if now then self.task:cancel() end
  pcall(async.await, self.task)
  self.task = nil
end
Dashboard.__close = function(self) self:stop(true) end

---------------------------------------------------------------------------

function M.main()
  local srv <close> = testserver.start{seed = 3}  -- /flaky fails twice first
  local dir, _ <close> = async.fs.tempdir("lab1-")  -- removed at the end

  local crawler = M.AsyncWebCrawler.new{rate_limit = 5, max_pages = 12,
                                        max_depth = 2}
  local processor = M.DataProcessor.new{workers = 3}
  local api <close> = M.AsyncAPIClient.new{base_url = srv.url, retries = 3}
  local scheduler <close> = M.TaskScheduler.new()
  local monitor <close> = M.FileMonitor.new(dir, function(path)
    sleep(0.1)
    local text = async.fs.read_file(path)
    return #text
  end)
  monitor:start()
  local dashboard <close> = M.Dashboard.new(scheduler)
  dashboard:start(0.5)

  local fetched = 0
  crawler.on_page = function()  -- runs in the crawler's fetching tasks
    fetched = fetched + 1
    scheduler.byname["crawl /site/"].progress =
      ("%d pages fetched"):format(fetched)
  end
  local jobs = {
    scheduler:schedule(function()
      return crawler:crawl_and_process(srv.url .. "/site/", processor)
    end, {name = "crawl /site/"}),
    scheduler:schedule(function()
      local names = {}
      for i = 1, 3 do names[i] = api:get("/users/" .. i).name end
      for i = 1, 3 do api:get("/users/" .. i) end  -- from the cache
      return table.concat(names, ", ")
    end, {name = "users via API"}),
    scheduler:schedule(function()
      return api:get("/flaky?rate=0.5").ok
    end, {name = "flaky API", delay = 0.2, retries = 2}),
    scheduler:schedule(function()
      local n = #async.fs.listdir(dir) + 1
      async.fs.write_file(("%s/report-%d.txt"):format(dir, n),
                          ("report %d\n"):format(n):rep(n))
      scheduler:progress(("report-%d.txt written"):format(n))
    end, {name = "write reports", every = 0.3, times = 4}),
    scheduler:schedule(function()
      sleep(0.3)
      error("no such table: metrics", 0)
    end, {name = "broken job", retries = 1}),
  }

  local results = async.gather(jobs, {return_exceptions = true})
  dashboard:stop()
  monitor:wait_processed(4, 2)  -- the monitor sees the last report a bit later
  monitor:stop()

  print(("Integration test completed with %d results"):format(results.n))
  local crawl = results[1]
  print(("Crawled %d pages (%d not processed), %d requests in %.2f s")
        :format(crawl.pages, crawl.errors, #crawler.requests,
                crawler.requests[#crawler.requests] - crawler.requests[1]))
  print("Users: " .. tostring(results[2]))
  print(("API client: %d requests, %d cache hits, %d misses, %d retries")
        :format(api.stats.requests, api.stats.hits, api.stats.misses,
                api.stats.retries))
  print(("Flaky API answered: %s"):format(tostring(results[3])))
  print(("File monitor processed %d files"):format(#monitor.processed))
  print("Broken job: " .. tostring(results[5]))
end

-- Run as a script (not when a spec loads the file): the demo.
if arg and arg[0] and arg[0]:match("integration_project%.lua$") then
  M.main()
end
return M

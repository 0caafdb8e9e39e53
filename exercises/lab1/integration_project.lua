--- Lab 1, exercise 9: the integration project (exercise).
--
-- Fill in every function that raises a TODO error: exercises/lab1/README.md
-- says what each must do. Check your work with
--   asynchost lab check lab1/integration_project
-- or LAB_DIR=exercises busted --lua=asynchost --filter='lab1/integration_project' spec/labs/lab1_spec.lua
--
-- Run it:  asynchost exercises/lab1/integration_project.lua
-- Faster:  LAB_TIME_SCALE=0.1 asynchost exercises/lab1/integration_project.lua
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

-- Each unfinished function raises this: the message names the function
-- and where the instructions are.
local function todo(name)
  error(("TODO(ex9): implement %s — see exercises/lab1/README.md")
        :format(name), 2)
end

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
  todo("AsyncWebCrawler.new")
end

local function inscope(url, start)
  local prefix = start:match("^(.*/)") or start
  return url:sub(1, #prefix) == prefix
end

--- Crawls from `start_url`, breadth first, following the links that stay
-- under the start URL's directory. Returns the pages in the order they
-- were fetched: {url, depth, status, title, links} or {url, depth, error}.
function Crawler:crawl(start_url)
  todo("AsyncWebCrawler:crawl")
end

--- Crawls `url` and has `processor` analyse each page fetched; returns
-- {url, pages = n, errors = n, words = total, results = {...}}.
function Crawler:crawl_and_process(url, processor)
  todo("AsyncWebCrawler:crawl_and_process")
end

---------------------------------------------------------------------------
-- DataProcessor: `workers` tasks take items from a queue

local Processor = {}
Processor.__index = Processor
M.DataProcessor = Processor

function Processor.new(opts)
  todo("DataProcessor.new")
end

--- Applies fn to every item with the worker pool; returns, in the order
-- of items, {ok = true, value = v} or {ok = false, error = err}.
function Processor:process(items, fn)
  todo("DataProcessor:process")
end

---------------------------------------------------------------------------
-- AsyncAPIClient: JSON API with retries and a cache

local Client = {}
Client.__index = Client
M.AsyncAPIClient = Client

--- opts: base_url, retries (default 3), retry_delay (default 0.1 s,
-- doubled each time), cache_ttl (seconds, default 60), timeout.
function Client.new(opts)
  todo("AsyncAPIClient.new")
end

--- The decoded JSON at `path`: from the cache while fresh, else fetched
-- (5xx answers, connection errors and timeouts are retried). Callers
-- asking for a path being fetched wait for that fetch.
function Client:get(path)
  todo("AsyncAPIClient:get")
end

function Client:close()
  todo("AsyncAPIClient:close")
end
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
  todo("FileMonitor.new")
end

function Monitor:handle(path)
  todo("FileMonitor:handle")
end

--- Starts watching (returns at once; the watch runs in a task).
function Monitor:start()
  todo("FileMonitor:start")
end

--- Waits until `n` files have been processed, for at most `timeout`
-- seconds (default 5); returns true, or false if the time ran out.
function Monitor:wait_processed(n, timeout)
  todo("FileMonitor:wait_processed")
end

--- Stops watching and waits for the files being processed.
function Monitor:stop()
  todo("FileMonitor:stop")
end
Monitor.__close = Monitor.stop

---------------------------------------------------------------------------
-- TaskScheduler: jobs later, repeated, retried; a record of each

local Scheduler = {}
Scheduler.__index = Scheduler
M.TaskScheduler = Scheduler

function Scheduler.new()
  todo("TaskScheduler.new")
end

--- Runs fn() in a task and returns the task. opts: name, delay (seconds
-- before the first run), every (seconds between runs) and times (how many
-- runs, default 1, or math.huge), retries (extra attempts after a
-- failure, default 0). Each run's failure is recorded; the task raises
-- the last run's error. The record is scheduler.operations[i]: {name,
-- state = "waiting" | "running" | "done" | "failed" | "cancelled", runs,
-- attempts, started, finished, progress, result, error}.
function Scheduler:schedule(fn, opts)
  todo("TaskScheduler:schedule")
end

--- Sets the progress text of the operation running in this task.
function Scheduler:progress(text)
  todo("TaskScheduler:progress")
end

--- Cancels the operations still pending and waits for them.
function Scheduler:shutdown()
  todo("TaskScheduler:shutdown")
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
  todo("Dashboard.new")
end

--- One frame: a line per operation and a total.
function Dashboard:render()
  todo("Dashboard:render")
end

local function tty()
  return async.isatty(1) and os.getenv("TERM") ~= "dumb"
end

--- Shows a frame every `interval` seconds (default 0.5) until stop() or
-- until every operation has ended, then a last one. Returns at once: the
-- dashboard runs in a task.
function Dashboard:start(interval)
  todo("Dashboard:start")
end

--- Waits for the dashboard's last frame (or stops it now, if `now`).
function Dashboard:stop(now)
  todo("Dashboard:stop")
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

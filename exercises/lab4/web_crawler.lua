--- Lab 4, exercise 2: a crawler that collects page titles (exercise).
--
-- Run it:  asynchost exercises/lab4/web_crawler.lua
-- Faster:  LAB_TIME_SCALE=0.1 asynchost exercises/lab4/web_crawler.lua
--
-- It fetches a list of pages concurrently and reads each one's <title>,
-- giving up on a page after a timeout.  The pages come from asynchost's
-- test server, started here: one of them is slow on purpose (?delay=3),
-- one is missing, one is JSON, and one is on a port where nothing
-- listens.  The whole run takes about as long as the timeout, not as
-- long as all the pages together.
--
-- Yours to write: the functions that end in a TODO.  Check your work
-- with:  asynchost lab check lab4/web_crawler
local async = require "asynchost"
local html = require "asynchost.html"

local M = {}

-- Every delay of this file is in "lab seconds", multiplied by time_scale
-- (LAB_TIME_SCALE, default 1; the specs set the field to run faster).
M.time_scale = tonumber(os.getenv("LAB_TIME_SCALE")) or 1

--- Fetches url through `session` and reads its title, waiting at most
-- `timeout` seconds.  Returns {url, status, title} (title: nil when the
-- page has none), or {url, status, error} for an HTTP error status, or
-- {url, error} when the request failed ("timed out after 2 s" for a
-- timeout, else the error's text).  Never raises for what the network
-- does.
function M.fetch_title(session, url, timeout)
  if type(url) ~= "string" then
    error("bad argument #2 to 'fetch_title' (string expected, got "
          .. type(url) .. ")", 2)
  end
  -- 1. pcall(async.wait_for, function() return session:get(url) end,
  --    timeout): re-raise a CancelledError, turn a TimeoutError into
  --    {url, error = "timed out after <timeout> s"}, any other error
  --    into {url, error = tostring(err)}.
  -- 2. A status other than 200: {url, status, error = "HTTP <status>"}.
  -- 3. Else the title: html.title(r.body) when the content-type header
  --    says html.
  error("TODO(ex2): implement fetch_title — see exercises/lab4/README.md", 2)
end

--- Fetches the titles of every url at once (at most opts.concurrency at
-- a time, default 10), each with opts.timeout seconds (default 5 lab
-- seconds).  Returns the records of fetch_title, in the order of `urls`.
function M.crawl_titles(urls, opts)
  if type(urls) ~= "table" then
    error("bad argument #1 to 'crawl_titles' (table expected, got "
          .. type(urls) .. ")", 2)
  end
  opts = opts or {}
  local timeout = opts.timeout or 5 * M.time_scale
  -- One async.http.session for all (`local session <close> = ...`), and
  -- async.map over the urls with {concurrency = opts.concurrency or 10}.
  error("TODO(ex2): implement crawl_titles — see exercises/lab4/README.md", 2)
end

--- The demo's pages on the test server at base_url, and one URL where
-- nothing listens (dead_url).
function M.demo_urls(base_url, dead_url)
  local urls = {}
  for _, p in ipairs{"/site/", "/site/news/", "/site/docs/tutorial.html",
                     "/site/blog/tasks.html", "/html"} do
    urls[#urls + 1] = base_url .. p
  end
  urls[#urls + 1] = ("%s/site/shop/?delay=%g"):format(base_url,
                                                      3 * M.time_scale)
  urls[#urls + 1] = base_url .. "/site/blog/draft.html"  -- missing
  urls[#urls + 1] = base_url .. "/json"                  -- no title
  if dead_url then urls[#urls + 1] = dead_url end
  return urls
end

-- A local URL where nothing listens: the port of a listener just closed.
local function dead_url()
  local server = async.net.listen(function() end, "127.0.0.1", 0)
  local _, port = server:address()
  server:close()
  return ("http://127.0.0.1:%d/"):format(port)
end

function M.main()
  local srv <close> = require("asynchost.testserver").start{}
  local urls = M.demo_urls(srv.url, dead_url())
  local timeout = 2 * M.time_scale
  print(("Fetching %d pages, at most %g s each...\n"):format(#urls, timeout))
  local t0 = async.loop_time()
  local results = M.crawl_titles(urls, {timeout = timeout})
  local elapsed = async.loop_time() - t0
  for i = 1, results.n do
    local r = results[i]
    if r.error then
      print(("  FAIL  %-48s %s"):format(r.url, r.error))
    else
      print(("  %d   %-48s %s"):format(r.status, r.url,
                                        r.title or "(no title)"))
    end
  end
  print(("\n%d pages in %.2f s"):format(results.n, elapsed))
end

-- Run as a script (not when a spec loads the file).
if arg and arg[0] and arg[0]:find("web_crawler%.lua$") then
  M.main()
end
return M

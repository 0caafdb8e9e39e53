-- The test server's fault modes (asynchost/faults.lua) against the HTTP
-- client and raw streams: every request ends, within its timeout, with a
-- result or an error of a class; the loop keeps its pace meanwhile; and
-- fds and handles come back to where they were.
local async = require "asynchost"
require "asynchost.busted"
local core = require "asynchost.core"
local ts = require "asynchost.testserver"
local faults = require "asynchost.faults"
local helpers = require "spec.helpers"
local lfs = require "lfs"

local TIMEOUT = 1  -- of each request, seconds
local SLACK = 1.5  -- on top of it: 2 cores, other builds running, ASan

-- What each mode must end with: an error class (and curl code), or a
-- response (status, body length).  Trickle is slowed down so that a
-- 1 s timeout cuts it; trickle-fast gets through.
local EXPECT = {
  drop = {class = async.ConnectionResetError, code = "CURLE_PARTIAL_FILE"},
  stall = {class = async.TimeoutError, code = "CURLE_OPERATION_TIMEDOUT"},
  garbage = {class = async.ConnectionError},
  reset = {class = async.ConnectionResetError},
  empty = {class = async.ConnectionResetError, code = "CURLE_GOT_NOTHING"},
  trickle = {class = async.TimeoutError, code = "CURLE_OPERATION_TIMEDOUT"},
  ["length-short"] = {status = 200, length = 50},
  ["length-long"] = {class = async.TimeoutError},
  ["bad-chunk"] = {class = async.ConnectionError},
}

-- Open fds, once what the first server opens for good is open (libuv
-- keeps a spare fd on /dev/null against EMFILE once a server listens).
local warm = false
local function nfds()
  if not warm then
    warm = true
    local srv <close> = ts.start{}
    local s <close> = async.http.session{base_url = srv.url}
    s:get("/get")
  end
  local n = 0
  for _ in lfs.dir("/proc/self/fd") do n = n + 1 end
  return n - 3  -- ., .. and the directory being read
end

-- Waits (up to 3 s) for the fds to come back to 'base'; returns the count.
-- (fewer than at the start is fine: a connection an earlier test left to
-- close may close meanwhile)
local function settlefds(base)
  local n = nfds()
  for _ = 1, 150 do
    if n <= base then break end
    async.sleep(0.02)
    n = nfds()
  end
  return n
end

-- A task ticking every 'period' s; t.late is the worst lateness seen.
local function ticker(period)
  local t = {late = 0, ticks = 0}
  t.task = async.spawn(function()
    local last = async.loop_time()
    while true do
      async.sleep(period)
      local now = async.loop_time()
      t.late = math.max(t.late, now - last - period)
      t.ticks = t.ticks + 1
      last = now
    end
  end)
  function t.stop()
    t.task:cancel()
    pcall(async.await, t.task)
  end
  return t
end

-- Checks what a request for 'mode' ended with (ok, r from pcall).
local function checkoutcome(mode, ok, r)
  local e = EXPECT[mode]
  if e.class then
    assert(not ok, mode .. ": expected an error, got a response")
    assert(e.class:is(r), ("%s: expected %s, got %s"):format(mode,
                          tostring(e.class), tostring(r)))
    if e.code then assert.equal(e.code, r.code) end
    assert.truthy(r.url:find("/fault/" .. mode, 1, true))
  else
    assert(ok, mode .. ": expected a response, got " .. tostring(r))
    assert.equal(e.status, r.status)
    assert.equal(e.length, #r.body)
  end
end

local function path(mode)
  return "/fault/" .. mode .. (mode == "trickle" and "?n=10" or "")
end

describe("fault modes", function()
  it("each ends with its class or a result, within the timeout", function()
    local fds, handles = nfds(), #core.handles()
    local tick = ticker(0.02)
    do
      local srv <close> = ts.start{}
      local s <close> = async.http.session{base_url = srv.url,
                                           timeout = TIMEOUT}
      for _, mode in ipairs(faults.MODES) do
        local t0 = async.loop_time()
        local ok, r = pcall(s.get, s, path(mode))
        local took = async.loop_time() - t0
        checkoutcome(mode, ok, r)
        assert(took < TIMEOUT + SLACK, mode .. " took " .. took .. " s")
        -- the session is sound after it
        assert.equal(200, s:get("/get").status)
      end
      local r = s:get("/fault/trickle?n=3&interval=0.001")
      assert.equal("xxx", r.body)
    end
    tick.stop()
    assert(tick.late < 0.25, "the ticker was late by " .. tick.late .. " s")
    assert.is_true(tick.ticks > 50)
    local nfd = settlefds(fds)
    assert(nfd <= fds, ("%d fds open after, %d before"):format(nfd, fds))
    assert.equal(handles, #core.handles())
  end, 60)

  it("hold 180 concurrent requests, 20 per mode, then let go", function()
    local fds, handles = nfds(), #core.handles()
    local tick = ticker(0.02)
    local n, seen = 0, {}
    do
      local srv <close> = ts.start{}
      local s <close> = async.http.session{base_url = srv.url,
                                           timeout = TIMEOUT}
      local jobs, modes = {}, {}
      for _, mode in ipairs(faults.MODES) do
        for _ = 1, 20 do
          jobs[#jobs + 1] = function() return pcall(s.get, s, path(mode)) end
          modes[#jobs] = mode
        end
      end
      local t0 = async.loop_time()
      local tasks = {}
      for i, job in ipairs(jobs) do tasks[i] = async.spawn(job) end
      for i, t in ipairs(tasks) do
        local ok, r = async.await(t)
        checkoutcome(modes[i], ok, r)
        seen[modes[i]] = (seen[modes[i]] or 0) + 1
        n = n + 1
      end
      local took = async.loop_time() - t0
      assert(took < TIMEOUT + SLACK, "the batch took " .. took .. " s")
      assert.equal(200, s:get("/get").status)
    end
    tick.stop()
    assert.equal(180, n)
    for _, mode in ipairs(faults.MODES) do assert.equal(20, seen[mode]) end
    assert(tick.late < 0.25, "the ticker was late by " .. tick.late .. " s")
    local nfd = settlefds(fds)
    assert(nfd <= fds, ("%d fds open after, %d before"):format(nfd, fds))
    assert.equal(handles, #core.handles())
  end, 60)

  it("a task waiting on a stalled request is cancelled at once", function()
    local fds = nfds()
    do
      local srv <close> = ts.start{}
      local s <close> = async.http.session{base_url = srv.url}  -- no timeout
      local t = async.spawn(s.get, s, "/fault/stall")
      local t2 = async.spawn(s.get, s, "/fault/length-long")
      async.sleep(0.1)
      local t0 = async.loop_time()
      t:cancel("enough")
      t2:cancel()
      helpers.errclass(async.CancelledError, async.await, t)
      helpers.errclass(async.CancelledError, async.await, t2)
      assert.is_true(async.loop_time() - t0 < 0.5)
      assert.equal(200, s:get("/get").status)
    end
    local nfd = settlefds(fds)
    assert(nfd <= fds, ("%d fds open after, %d before"):format(nfd, fds))
  end)

  it("wait_for cuts a trickle short; a streamed body that drops raises",
     function()
    local srv <close> = ts.start{}
    local s <close> = async.http.session{base_url = srv.url}
    local t0 = async.loop_time()
    helpers.errclass(async.TimeoutError, async.wait_for, function()
      return s:get("/fault/trickle")
    end, 0.3)
    assert.is_true(async.loop_time() - t0 < 0.3 + SLACK)
    -- the request itself raises if the drop came before the task ran
    local got = 0
    local err = helpers.errclass(async.ConnectionResetError, function()
      local r = s:get("/fault/drop?n=400000", {stream = true})
      assert.equal(200, r.status)
      for chunk in r:iter_chunks() do got = got + #chunk end
    end)
    assert.matches("CURLE_PARTIAL_FILE", tostring(err))
    assert.is_true(got <= 200000)
  end)

  it("raw streams see them as stream errors of a class", function()
    local fds = nfds()
    do
      local srv <close> = ts.start{}
      local function get(mode, timeout)
        local c <close> = async.net.connect("127.0.0.1", srv.port)
        c:settimeout(timeout or TIMEOUT)
        c:write("GET /fault/" .. mode .. " HTTP/1.1\r\nHost: x\r\n\r\n")
        return helpers.response(c)
      end
      -- drop: the body ends early
      local err = helpers.errclass(async.IncompleteReadError, get, "drop")
      assert.equal(50, #err.partial)
      assert.equal(100, err.expected)
      -- reset: ECONNRESET
      err = helpers.errclass(async.ConnectionResetError, get, "reset")
      assert.equal("ECONNRESET", err.code)
      -- stall: the read times out
      helpers.errclass(async.TimeoutError, get, "stall", 0.2)
      -- empty: the stream just ends
      assert.is_nil(get("empty"))
      -- length-short: a shorter body, as announced
      local status, _, body = get("length-short")
      assert.equal(200, status)
      assert.equal(50, #body)
    end
    local nfd = settlefds(fds)
    assert(nfd <= fds, ("%d fds open after, %d before"):format(nfd, fds))
  end)

  it("unknown modes and bad parameters are plain HTTP errors", function()
    local srv <close> = ts.start{}
    local s <close> = async.http.session{base_url = srv.url, timeout = 5}
    local r = s:get("/fault/nosuch")
    assert.equal(404, r.status)
    assert.matches("drop, stall", r.body)
    assert.equal(400, s:get("/fault/drop?n=-1").status)
    assert.equal(400, s:get("/fault/trickle?interval=x").status)
    assert.equal(200, s:get("/get").status)
  end)
end)

-- The lab crawlers (solutions/lab4) against the fault modes: each page
-- ends as a result or a reported error, within the timeout.
local function loadsolution(path)
  local f = io.open(path)
  if not f then return nil end
  f:close()
  local env = setmetatable({arg = {}, print = function() end},
                           {__index = _G})  -- arg = {}: not run as a script
  return assert(loadfile(path, "t", env))()
end

local function faulturls(base)
  local urls = {base .. "/site/"}
  for _, mode in ipairs(faults.MODES) do
    urls[#urls + 1] = base .. path(mode)
  end
  return urls
end

describe("the lab crawlers against the fault modes", function()
  it("web_crawler: a title or an error for every page, in time", function()
    local crawler = loadsolution("solutions/lab4/web_crawler.lua")
    if not crawler then return pending("no solutions/lab4/web_crawler.lua") end
    local fds = nfds()
    local tick = ticker(0.02)
    do
      local srv <close> = ts.start{}
      local urls = faulturls(srv.url)
      local t0 = async.loop_time()
      local r = crawler.crawl_titles(urls, {timeout = TIMEOUT})
      local took = async.loop_time() - t0
      assert(took < TIMEOUT + SLACK, "the crawl took " .. took .. " s")
      assert.equal(#urls, r.n)
      assert.equal("asynchost test site", r[1].title)
      for i = 2, r.n do
        local mode = faults.MODES[i - 1]
        if EXPECT[mode].class then
          assert(r[i].error, mode .. ": no error reported")
        else
          assert.equal(EXPECT[mode].status, r[i].status)
        end
      end
    end
    tick.stop()
    assert(tick.late < 0.25, "the ticker was late by " .. tick.late .. " s")
    local nfd = settlefds(fds)
    assert(nfd <= fds, ("%d fds open after, %d before"):format(nfd, fds))
  end, 30)

  it("web_scraper: every page scraped or counted as failed", function()
    local scraper = loadsolution("solutions/lab4/web_scraper.lua")
    if not scraper then return pending("no solutions/lab4/web_scraper.lua") end
    local fds = nfds()
    do
      local srv <close> = ts.start{}
      local urls = faulturls(srv.url)
      local s <close> = scraper.Scraper{rate_limit = 0, timeout = TIMEOUT,
                                        max_concurrency = 4}
      local t0 = async.loop_time()
      local results = s:crawl(urls, 0)
      local took = async.loop_time() - t0
      -- robots.txt, then the pages 4 at a time: 3 rounds of timeouts
      assert(took < 3 * TIMEOUT + SLACK, "the crawl took " .. took .. " s")
      assert.equal(#urls, #results + s.stats.failed)
      assert.equal(2, #results)  -- /site/ and length-short
      assert.equal(#urls - 2, #s.errors)
    end
    local nfd = settlefds(fds)
    assert(nfd <= fds, ("%d fds open after, %d before"):format(nfd, fds))
  end, 30)
end)

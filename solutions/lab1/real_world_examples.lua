--- Lab 1, exercise 7: real-world examples (solution).
--
-- Run it:  asynchost solutions/lab1/real_world_examples.lua
-- Faster:  LAB_TIME_SCALE=0.1 asynchost solutions/lab1/real_world_examples.lua
--
-- Everything runs on this machine: the "web" is asynchost's built-in test
-- server, started by main() on a free port of 127.0.0.1 (/delay/N answers
-- after N seconds), and the files live in a temporary directory.
local async = require "asynchost"
local testserver = require "asynchost.testserver"

local M = {}

-- Every delay of this file is in "lab seconds", multiplied by time_scale
-- (LAB_TIME_SCALE, default 1; the specs set the field to run faster).
M.time_scale = tonumber(os.getenv("LAB_TIME_SCALE")) or 1

local function sleep(s) async.sleep(s * M.time_scale) end

---------------------------------------------------------------------------
-- 1. A web scraper

--- Fetches every url concurrently (at most opts.concurrency at a time,
-- default 10) with one HTTP session; returns in order, for each url,
-- {url, status, length, title} or {url, error}: one failure does not stop
-- the others.
function M.scrape_multiple_urls(urls, opts)
  opts = opts or {}
  local session <close> = async.http.session{timeout = opts.timeout or 30}
  return async.map(function(url)
    local ok, r = pcall(session.get, session, url)
    if not ok then return {url = url, error = r} end
    return {url = url, status = r.status, length = #r.body,
            title = r.body:match("<title>(.-)</title>")}
  end, urls, {concurrency = opts.concurrency or 10})
end

---------------------------------------------------------------------------
-- 2. Processing files

--- Reads the files concurrently (async.fs) and counts their lines, words
-- and characters; returns {file, lines, words, chars} or {file, error}
-- for each, in order.
function M.process_multiple_files(filenames)
  return async.map(function(name)
    local ok, text = pcall(async.fs.read_file, name)
    if not ok then return {file = name, error = text} end
    local _, lines = text:gsub("\n", "")
    if #text > 0 and text:sub(-1) ~= "\n" then lines = lines + 1 end
    local words = 0
    for _ in text:gmatch("%S+") do words = words + 1 end
    return {file = name, lines = lines, words = words, chars = #text}
  end, filenames)
end

---------------------------------------------------------------------------
-- 3. An API rate limiter: at most `rate` calls a second, evenly spaced.

local Limiter = {}
Limiter.__index = Limiter
M.ApiRateLimiter = Limiter

function Limiter.new(rate)
  if type(rate) ~= "number" or rate <= 0 then
    error("bad argument #1 to 'new' (positive number expected)", 2)
  end
  return setmetatable({interval = 1 / rate, next_slot = 0,
                       lock = async.Lock()}, Limiter)
end

--- Waits for the next free slot. Callers are served in order.
function Limiter:acquire()
  local _ <close> = self.lock:acquire()
  local now = async.loop_time()
  local slot = math.max(now, self.next_slot)
  self.next_slot = slot + self.interval * M.time_scale
  if slot > now then async.sleep(slot - now) end
end

--- A pretend call of an external API through `limiter` (0.05 s); returns
-- {endpoint, at} where `at` is when it went out.
function M.call_api(limiter, endpoint)
  limiter:acquire()
  local at = async.loop_time()
  sleep(0.05)
  return {endpoint = endpoint, at = at}
end

---------------------------------------------------------------------------
-- 4. Database operations: n queries over a pool of connections

--- Runs `n` pretend queries (0.2 s each) over `pool_size` connections (a
-- semaphore); returns the rows {query, connection} in order and the most
-- connections in use at once.
function M.simulate_db_operations(n, pool_size)
  local sem = async.Semaphore(pool_size)
  local free, in_use, peak = {}, 0, 0
  for i = 1, pool_size do free[i] = "conn-" .. i end
  local rows = async.map(function(i)
    local _ <close> = sem:acquire()
    local conn = table.remove(free)
    in_use = in_use + 1
    peak = math.max(peak, in_use)
    sleep(0.2)
    in_use = in_use - 1
    free[#free + 1] = conn
    return {query = "SELECT " .. i, connection = conn}
  end, (function() local t = {} for i = 1, n do t[i] = i end return t end)(),
  {concurrency = n})
  rows.n = nil
  return rows, peak
end

---------------------------------------------------------------------------
-- 5. Producer and consumers with a queue

--- A producer puts `items` on a queue of at most 5; `workers` consumers
-- take them and apply `fn` (may await). Returns the results in the order
-- of `items` and how many items each worker handled.
function M.producer_consumer(items, workers, fn)
  local queue = async.Queue(5)
  local results, handled = {}, {}
  do
    local tg <close> = async.task_group()
    for w = 1, workers do
      handled[w] = 0
      tg:spawn(function()
        while true do
          local ok, job = pcall(queue.get, queue)
          if not ok then
            if async.QueueShutDown:is(job) then return end
            error(job, 0)
          end
          results[job.index] = fn(job.item)
          handled[w] = handled[w] + 1
          queue:task_done()
        end
      end)
    end
    for i, item in ipairs(items) do queue:put({index = i, item = item}) end
    queue:join()       -- every item handled
    queue:shutdown()   -- the workers' get raises QueueShutDown: they end
  end                  -- waits for the workers
  return results, handled
end

---------------------------------------------------------------------------
-- 6. Image processing, simulated

--- "Processes" each image {name, width, height}: resizing takes 0.1 s
-- per megapixel, then a thumbnail 0.05 s; at most `workers` at a time.
-- Returns {name, size = "WxH", thumbnail = "name_thumb.jpg"} for each.
function M.process_images(images, workers)
  local r = async.map(function(img)
    sleep(0.1 * img.width * img.height / 1e6)
    local w, h = math.floor(img.width / 2), math.floor(img.height / 2)
    sleep(0.05)
    return {name = img.name, size = w .. "x" .. h,
            thumbnail = img.name:gsub("%.%w+$", "") .. "_thumb.jpg"}
  end, images, {concurrency = workers or 4})
  r.n = nil
  return r
end

function M.main()
  local srv <close> = testserver.start{}
  local delay = ("%g"):format(1 * M.time_scale)
  local urls = {}
  for i = 1, 3 do urls[i] = srv.url .. "/delay/" .. delay end
  urls[4] = srv.url .. "/html"
  local t0 = async.loop_time()
  local pages = M.scrape_multiple_urls(urls)
  print(("Scraped %d pages in %.2f s"):format(pages.n, async.loop_time() - t0))
  for _, p in ipairs(pages) do
    print(("  %s: %s, %d bytes%s"):format(p.url:gsub("^http://[^/]+", ""),
          p.status, p.length, p.title and (", " .. p.title) or ""))
  end

  local dir, _ <close> = async.fs.tempdir("lab1-")  -- removed at the end
  local files = {}
  for i = 1, 3 do
    files[i] = ("%s/file%d.txt"):format(dir, i)
    async.fs.write_file(files[i], ("Content of file%d.txt\n"):format(i)
                                  :rep(i))
  end
  local stats = M.process_multiple_files(files)
  print(("Processed %d files"):format(stats.n))
  for _, s in ipairs(stats) do
    print(("  %s: %d lines, %d words, %d chars"):format(
          s.file:match("[^/]+$"), s.lines, s.words, s.chars))
  end

  local limiter = M.ApiRateLimiter.new(5)
  t0 = async.loop_time()
  local calls = async.gather((function()
    local jobs = {}
    for i = 1, 6 do
      jobs[i] = function() return M.call_api(limiter, "/items/" .. i) end
    end
    return jobs
  end)())
  local at = {}
  for i = 1, calls.n do at[i] = ("%.2f"):format(calls[i].at - t0) end
  print("API calls at 5 per second went out at: " .. table.concat(at, " "))

  t0 = async.loop_time()
  local rows, peak = M.simulate_db_operations(10, 3)
  print(("%d queries over 3 connections in %.2f s (at most %d in use)")
        :format(#rows, async.loop_time() - t0, peak))

  local results, handled = M.producer_consumer({"a", "b", "c", "d", "e", "f"},
    3, function(s) sleep(0.1); return s:upper() end)
  print(("Producer/consumer: %s; per worker: %s"):format(
        table.concat(results, ""), table.concat(handled, " ")))

  t0 = async.loop_time()
  local images = M.process_images({
    {name = "cat.jpg", width = 4000, height = 3000},
    {name = "dog.png", width = 1920, height = 1080},
    {name = "bird.jpg", width = 800, height = 600},
  }, 2)
  for _, img in ipairs(images) do
    print(("  %s -> %s, %s"):format(img.name, img.size, img.thumbnail))
  end
  print(("Processed %d images in %.2f s"):format(#images,
        async.loop_time() - t0))
end

-- Run as a script (not when a spec loads the file): the demo.
if arg and arg[0] and arg[0]:match("real_world_examples%.lua$") then
  M.main()
end
return M

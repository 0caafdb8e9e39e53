--- Lab 1, exercise 1: basic async/await (solution).
--
-- Run it:  asynchost solutions/lab1/basic_async_await.lua
-- Faster:  LAB_TIME_SCALE=0.1 asynchost solutions/lab1/basic_async_await.lua
--
-- Downloads are simulated with a sleep: one takes `delay` seconds. Done one
-- after the other they add up; started as tasks and gathered, they overlap
-- and take as long as the slowest one. Then the same with real downloads,
-- over HTTP, from asynchost's built-in test server (started by main on
-- 127.0.0.1: nothing goes to the internet).
local async = require "asynchost"
local testserver = require "asynchost.testserver"

local M = {}

-- Every delay of this file is in "lab seconds", multiplied by time_scale
-- (LAB_TIME_SCALE, default 1; the specs set the field to run faster).
M.time_scale = tonumber(os.getenv("LAB_TIME_SCALE")) or 1

local function sleep(s) async.sleep(s * M.time_scale) end

--- Pretends to download `url`, taking `delay` seconds (default 1);
-- returns its "body".
function M.simulate_download(url, delay)
  if type(url) ~= "string" then
    error("bad argument #1 to 'simulate_download' (string expected, got "
          .. type(url) .. ")", 2)
  end
  delay = delay or 1.0
  sleep(delay)
  return ("<html><body>content of %s, fetched in %.1f s</body></html>")
         :format(url, delay)
end

--- Turns a downloaded body into a small record (takes 0.1 s).
function M.process_data(data)
  sleep(0.1)  -- processing takes a moment too
  local words = 0
  for _ in data:gmatch("%S+") do words = words + 1 end
  return {length = #data, words = words, preview = data:sub(1, 30),
          processed_at = async.loop_time()}
end

--- Downloads and processes each url in turn: the slow way.
function M.download_and_process(urls, delay)
  local results = {}
  for i, url in ipairs(urls) do
    results[i] = M.process_data(M.simulate_download(url, delay))
  end
  return results
end

--- The same, with every url downloaded and processed concurrently.
function M.download_and_process_concurrently(urls, delay)
  local jobs = {}
  for i, url in ipairs(urls) do
    jobs[i] = async.spawn(function()
      return M.process_data(M.simulate_download(url, delay))
    end)
  end
  return async.gather(jobs)
end

--- Downloads `url` with the HTTP `session`; returns the body. An answer
-- that is not a success raises an HTTPStatusError.
function M.fetch_page(session, url)
  local r = session:get(url)
  r:raise_for_status()
  return r.body
end

--- Downloads every url with one session, one after the other, or all at
-- once if `concurrently`; returns the bodies in the order of urls.
function M.fetch_all(urls, concurrently)
  local session <close> = async.http.session{timeout = 30}
  local bodies = {}
  if not concurrently then
    for i, url in ipairs(urls) do bodies[i] = M.fetch_page(session, url) end
    return bodies
  end
  local jobs = {}
  for i, url in ipairs(urls) do
    jobs[i] = function() return M.fetch_page(session, url) end
  end
  local r = async.gather(jobs)
  for i = 1, r.n do bodies[i] = r[i] end
  return bodies
end

function M.main()
  local t0 = async.loop_time()
  local data = M.simulate_download("https://example.com", 1.0)
  print(("Downloaded: %s..."):format(data:sub(1, 50)))

  local urls = {"url1", "url2", "url3"}
  local t1 = async.loop_time()
  local results = M.download_and_process(urls, 1.0)
  print(("Processed %d items sequentially in %.2f s"):format(#results,
        async.loop_time() - t1))

  local t2 = async.loop_time()
  results = M.download_and_process_concurrently(urls, 1.0)
  print(("Processed %d items concurrently in %.2f s"):format(results.n,
        async.loop_time() - t2))

  -- real downloads: /delay/N answers after N seconds
  local srv <close> = testserver.start{}
  local pages = {}
  for i = 1, 3 do
    pages[i] = ("%s/delay/%g?page=%d"):format(srv.url, 1 * M.time_scale, i)
  end
  print("Downloading 3 pages from the test server at " .. srv.url)
  local t3 = async.loop_time()
  local bodies = M.fetch_all(pages, false)
  print(("Fetched %d pages one by one in %.2f s"):format(#bodies,
        async.loop_time() - t3))
  local t4 = async.loop_time()
  bodies = M.fetch_all(pages, true)
  print(("Fetched %d pages at once in %.2f s (%d bytes)"):format(#bodies,
        async.loop_time() - t4, #table.concat(bodies)))
  print(("Total: %.2f s"):format(async.loop_time() - t0))
end

-- Run as a script (not when a spec loads the file): the demo.
if arg and arg[0] and arg[0]:match("basic_async_await%.lua$") then
  M.main()
end
return M

--- Lab 1, exercise 1: basic async/await (solution).
--
-- Run it:  asynchost solutions/lab1/basic_async_await.lua
--
-- Downloads are simulated with async.sleep: one takes `delay` seconds.
-- Done one after the other they add up; started as tasks and gathered,
-- they overlap and take as long as the slowest one.
local async = require "asynchost"

local M = {}

--- Pretends to download `url`, taking `delay` seconds; returns its "body".
function M.simulate_download(url, delay)
  if type(url) ~= "string" then
    error("bad argument #1 to 'simulate_download' (string expected, got "
          .. type(url) .. ")", 2)
  end
  delay = delay or 1.0
  async.sleep(delay)
  return ("<html><body>content of %s, fetched in %.1f s</body></html>")
         :format(url, delay)
end

--- Turns a downloaded body into a small record.
function M.process_data(data)
  async.sleep(0.1)  -- processing takes a moment too
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
  print(("Total: %.2f s"):format(async.loop_time() - t0))
end

if arg and arg[0] and arg[0]:match("basic_async_await%.lua$") then
  M.main()
end
return M

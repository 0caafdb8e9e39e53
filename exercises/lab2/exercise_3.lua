--- Lab 2, exercise 3: async HTTP requests (exercise).
--
-- Fill in every function that raises a TODO error: exercises/lab2/README.md
-- says what each must do. Check your work with
--   asynchost lab check lab2/exercise_3
-- or LAB_DIR=exercises busted --lua=asynchost --filter='lab2/exercise_3' spec/labs/lab2_spec.lua
--
-- Run it:  asynchost exercises/lab2/exercise_3.lua
-- Faster:  LAB_TIME_SCALE=0.1 asynchost exercises/lab2/exercise_3.lua
--
-- Ten requests to a slow server, through one HTTP session (its
-- connections are kept alive and reused), all at once: they take about as
-- long as one. The server is asynchost's built-in test server, started by
-- main() on a free port of 127.0.0.1: /delay/S answers after S seconds,
-- /posts/N is a small JSON API. Nothing here reaches the internet.
local async = require "asynchost"
local testserver = require "asynchost.testserver"

local M = {}

-- Every delay of this file is in "lab seconds", multiplied by time_scale
-- (LAB_TIME_SCALE, default 1; the specs set the field to run faster).
M.time_scale = tonumber(os.getenv("LAB_TIME_SCALE")) or 1

-- Each unfinished function raises this: the message names the function
-- and where the instructions are.
local function todo(name)
  error(("TODO(ex3): implement %s — see exercises/lab2/README.md")
        :format(name), 2)
end

--- GETs `url` with `session`: returns {url, status, length, elapsed}, or
-- {url, error} when the request failed (refused, timed out...). An HTTP
-- error status is a result, not an error.
function M.fetch_url(session, url)
  todo("fetch_url")
end

--- Fetches every url with one session, at most opts.limit at a time
-- (default 10), each within opts.timeout seconds (default 10); returns
-- the results in the order of urls.
function M.fetch_all(urls, opts)
  todo("fetch_all")
end

--- The same, one request after the other.
function M.fetch_all_sequential(urls, opts)
  todo("fetch_all_sequential")
end

--- Prints the results and the average time per url.
function M.report(results, total)
  print()
  print("Results:")
  local ok = 0
  for i, r in ipairs(results) do
    if r.error then
      print(("  URL %d: failed, %s"):format(i, tostring(r.error)))
    else
      ok = ok + 1
      print(("  URL %d: Status %d, Length %d bytes"):format(i, r.status,
            r.length))
    end
  end
  print()
  print(("Average response time: %.2fs per URL"):format(total / #results))
  return ok
end

function M.main()
  local srv <close> = testserver.start{}
  local delay = ("%g"):format(0.3 * M.time_scale)
  local urls = {}
  for i = 1, 10 do
    urls[i] = ("%s/delay/%s?page=%d"):format(srv.url, delay, i)
  end

  print("=== Fetching 10 URLs Concurrently ===")
  local t0 = async.loop_time()
  local results = M.fetch_all(urls)
  local total = async.loop_time() - t0
  print(("Fetched %d URLs in %.2f seconds"):format(#results, total))
  M.report(results, total)

  print()
  print("=== The same 10 URLs, one at a time ===")
  t0 = async.loop_time()
  results = M.fetch_all_sequential(urls)
  local seq = async.loop_time() - t0
  print(("Fetched %d URLs in %.2f seconds: %.1fx slower"):format(#results,
        seq, seq / total))

  print()
  print("=== Errors are results too ===")
  -- a time limit of 0.5 s (scaled, but never under 0.25 s: a busy machine
  -- must still answer /posts/1 in time)
  results = M.fetch_all({srv.url .. "/posts/1", srv.url .. "/posts/999",
                         srv.url .. "/delay/10"},
                        {timeout = math.max(0.5 * M.time_scale, 0.25)})
  for _, r in ipairs(results) do
    print(("  %s -> %s"):format(r.url:gsub("^http://[^/]+", ""),
          r.error and tostring(r.error):match("^[^:]+") or r.status))
  end
end

-- Run as a script (not when a spec loads the file): the demo.
if arg and arg[0] and arg[0]:match("exercise_3%.lua$") then
  M.main()
end
return M

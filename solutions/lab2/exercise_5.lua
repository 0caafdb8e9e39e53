--- Lab 2, exercise 5: a real-world data pipeline (solution).
--
-- Run it:  asynchost solutions/lab2/exercise_5.lua
-- Faster:  LAB_TIME_SCALE=0.1 asynchost solutions/lab2/exercise_5.lua
--
-- fetch -> process -> save, each stage working on every item at once
-- (with a limit on the requests in flight), and a failing item reported
-- without stopping the others. The API is the built-in test server's
-- /posts/N (started by main() on 127.0.0.1); it answers at once, so
-- fetch_item adds the latency of a distant API (1 s) itself. Results are
-- JSON files written with async.fs into an output directory.
local async = require "asynchost"
local testserver = require "asynchost.testserver"
local cjson = require "cjson"

local M = {}

-- Every delay of this file is in "lab seconds", multiplied by time_scale
-- (LAB_TIME_SCALE, default 1; the specs set the field to run faster).
M.time_scale = tonumber(os.getenv("LAB_TIME_SCALE")) or 1

local function sleep(s) async.sleep(s * M.time_scale) end

--- Stage 1: GETs /posts/<id> with `session` after `latency` seconds
-- (default 1) of pretend network delay; returns the post (a table).
-- Raises an error naming the url for an answer that is not 200.
function M.fetch_item(session, id, latency)
  print(("  Fetching %s/posts/%d"):format(session.base_url or "", id))
  sleep(latency or 1)
  local r = session:get("/posts/" .. id)
  if r.status ~= 200 then
    error(("GET %s: status %d"):format(r.url, r.status), 0)
  end
  return r:json()
end

--- Stage 2: turns a post into a summary (0.5 s of work): {id, title (in
-- capitals), words (in the body), user}.
function M.process_item(post)
  print(("  Processing item %d"):format(post.id))
  sleep(0.5)
  local words = 0
  for _ in post.body:gmatch("%S+") do words = words + 1 end
  return {id = post.id, title = post.title:upper(), words = words,
          user = post.userId}
end

--- Stage 3: writes the summary as JSON to <dir>/result_<id>.json; returns
-- the path.
function M.save_item(dir, summary)
  local path = ("%s/result_%d.json"):format(dir, summary.id)
  print(("  Writing %s"):format(path))
  async.fs.write_file(path, cjson.encode(summary) .. "\n")
  return path
end

-- Runs fn(item) for every item at once (at most `limit` at a time, if
-- given); returns the results, in order, and the failures ({item, error}).
local function stage(items, fn, limit)
  if #items == 0 then return {}, {} end
  local sem = limit and async.Semaphore(limit)
  local jobs = {}
  for i, item in ipairs(items) do
    jobs[i] = function()
      local _ <close> = sem and sem:acquire() or nil
      return fn(item)
    end
  end
  local outcomes = async.gather(jobs, {return_exceptions = true})
  local ok, failed = {}, {}
  for i, item in ipairs(items) do
    local v = outcomes[i]
    if type(v) == "table" and not async.Error:is(v) then ok[#ok + 1] = v
    else failed[#failed + 1] = {item = item, error = v} end
  end
  return ok, failed
end

--- Runs the pipeline over opts.ids (default 1..5) against opts.base_url,
-- saving into opts.out_dir (made if missing). opts.concurrency limits the
-- requests in flight (default 5); opts.latency is fetch_item's. Returns
-- {fetched, processed, saved, failed = {{item, error}...}, files,
-- times = {fetch, process, save, total}}.
function M.run_pipeline(opts)
  local ids = opts.ids or {1, 2, 3, 4, 5}
  local report = {failed = {}, times = {}}
  local t0 = async.loop_time()
  local session <close> = async.http.session{base_url = opts.base_url,
                                             timeout = 10}
  print(("Stage 1: Fetching data from %d APIs..."):format(#ids))
  local t = async.loop_time()
  local posts, failed = stage(ids, function(id)
    return M.fetch_item(session, id, opts.latency)
  end, opts.concurrency or 5)
  report.times.fetch = async.loop_time() - t
  for _, f in ipairs(failed) do report.failed[#report.failed + 1] = f end
  report.fetched = #posts
  print(("Fetched %d items in %.1fs"):format(#posts, report.times.fetch))
  print()

  print("Stage 2: Processing data...")
  t = async.loop_time()
  local summaries
  summaries, failed = stage(posts, M.process_item)
  report.times.process = async.loop_time() - t
  for _, f in ipairs(failed) do report.failed[#report.failed + 1] = f end
  report.processed = #summaries
  print(("Processed %d items in %.1fs"):format(#summaries,
        report.times.process))
  print()

  print("Stage 3: Saving results...")
  t = async.loop_time()
  local made, err = pcall(async.fs.mkdir, opts.out_dir)
  if not made and not async.FileExistsError:is(err) then error(err, 0) end
  local files = {}
  local saved = 0
  local r = async.gather((function()
    local jobs = {}
    for i, s in ipairs(summaries) do
      jobs[i] = function() return M.save_item(opts.out_dir, s) end
    end
    return jobs
  end)(), {return_exceptions = true})
  for i = 1, r.n do
    if type(r[i]) == "string" then
      saved = saved + 1
      files[#files + 1] = r[i]
    else
      report.failed[#report.failed + 1] = {item = summaries[i], error = r[i]}
    end
  end
  report.times.save = async.loop_time() - t
  report.saved, report.files = saved, files
  print(("Saved %d files in %.1fs"):format(saved, report.times.save))
  report.times.total = async.loop_time() - t0
  return report
end

function M.main()
  local srv <close> = testserver.start{}
  local dir, _ <close> = async.fs.tempdir("lab2-")  -- removed at the end
  local out = dir .. "/output"
  print("=== Starting Data Pipeline ===")
  print()
  local report = M.run_pipeline{base_url = srv.url, out_dir = out}
  print()
  print("=== Pipeline Complete ===")
  print(("Total time: %.1fs"):format(report.times.total))
  print(("Successfully processed %d items"):format(report.saved))

  print()
  print("=== With a failing item ===")
  report = M.run_pipeline{base_url = srv.url, out_dir = out, ids = {6, 404, 7}}
  for _, f in ipairs(report.failed) do
    print(("Failed: item %s: %s"):format(tostring(f.item), tostring(f.error)))
  end
  print(("Successfully processed %d items"):format(report.saved))
end

-- Run as a script (not when a spec loads the file): the demo.
if arg and arg[0] and arg[0]:match("exercise_5%.lua$") then
  M.main()
end
return M

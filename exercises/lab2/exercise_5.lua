--- Lab 2, exercise 5: a real-world data pipeline (exercise).
--
-- Fill in every function that raises a TODO error: exercises/lab2/README.md
-- says what each must do. Check your work with
--   asynchost lab check lab2/exercise_5
-- or LAB_DIR=exercises busted --lua=asynchost --filter='lab2/exercise_5' spec/labs/lab2_spec.lua
--
-- Run it:  asynchost exercises/lab2/exercise_5.lua
-- Faster:  LAB_TIME_SCALE=0.1 asynchost exercises/lab2/exercise_5.lua
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

-- Each unfinished function raises this: the message names the function
-- and where the instructions are.
local function todo(name)
  error(("TODO(ex5): implement %s — see exercises/lab2/README.md")
        :format(name), 2)
end

--- Stage 1: GETs /posts/<id> with `session` after `latency` seconds
-- (default 1) of pretend network delay; returns the post (a table).
-- Raises an error naming the url for an answer that is not 200.
function M.fetch_item(session, id, latency)
  todo("fetch_item")
end

--- Stage 2: turns a post into a summary (0.5 s of work): {id, title (in
-- capitals), words (in the body), user}.
function M.process_item(post)
  todo("process_item")
end

--- Stage 3: writes the summary as JSON to <dir>/result_<id>.json; returns
-- the path.
function M.save_item(dir, summary)
  todo("save_item")
end

-- Runs fn(item) for every item at once (at most `limit` at a time, if
-- given); returns the results, in order, and the failures ({item, error}).
local function stage(items, fn, limit)
  todo("stage")
end

--- Runs the pipeline over opts.ids (default 1..5) against opts.base_url,
-- saving into opts.out_dir (made if missing). opts.concurrency limits the
-- requests in flight (default 5); opts.latency is fetch_item's. Returns
-- {fetched, processed, saved, failed = {{item, error}...}, files,
-- times = {fetch, process, save, total}}.
function M.run_pipeline(opts)
  todo("run_pipeline")
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

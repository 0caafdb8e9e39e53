--- Lab 4, exercise 3: a data processor in stages (exercise).
--
-- Run it:  asynchost exercises/lab4/data_processor.lua
-- Faster:  LAB_TIME_SCALE=0.1 asynchost exercises/lab4/data_processor.lua
--
-- Items go through stages, each an async function (it may wait, as a
-- lookup or a write would).  A stage that returns nil drops the item.
-- First as a chain of async generators: each stage pulls the items of the
-- one before, one at a time, so an item goes through every stage before
-- the next one is read (the time is the sum of all the steps).  Then with
-- a task per stage and queues between them: the stages work at the same
-- time on different items, as on an assembly line (the time is about the
-- slowest stage's share).
--
-- Yours to write: the functions that end in a TODO.  Check your work
-- with:  asynchost lab check lab4/data_processor
local async = require "asynchost"

local M = {}

-- Every delay of this file is in "lab seconds", multiplied by time_scale
-- (LAB_TIME_SCALE, default 1; the specs set the field to run faster).
M.time_scale = tonumber(os.getenv("LAB_TIME_SCALE")) or 1

local function sleep(s) async.sleep(s * M.time_scale) end

---------------------------------------------------------------------------
-- Async generators

--- Yields the items of the array `items` one by one, `delay` lab seconds
-- (default 0) before each, as if read from somewhere slow.
M.source = async.generator(function(yield, items, delay)
  -- for each item: sleep(delay) if there is a delay, then yield(item)
  error("TODO(ex3): implement source — see exercises/lab4/README.md", 1)
end)

--- Yields fn(item) for each item that `upstream` (a generator, or any
-- iterator function) produces, leaving out the items fn returns nil for.
M.stage = async.generator(function(yield, fn, upstream)
  -- for item in upstream do ... end: yield fn(item) unless it is nil
  error("TODO(ex3): implement stage — see exercises/lab4/README.md", 1)
end)

--- Chains source(items, delay) and a stage per function of `stages`;
-- returns the array of what comes out of the last one.
function M.pipeline(items, stages, delay)
  if type(items) ~= "table" then
    error("bad argument #1 to 'pipeline' (table expected, got "
          .. type(items) .. ")", 2)
  end
  if type(stages) ~= "table" then
    error("bad argument #2 to 'pipeline' (table expected, got "
          .. type(stages) .. ")", 2)
  end
  -- gen = M.source(items, delay); wrap it in M.stage(fn, gen) for each
  -- stage; collect what the last generator yields.
  error("TODO(ex3): implement pipeline — see exercises/lab4/README.md", 2)
end

---------------------------------------------------------------------------
-- A task per stage

-- What goes down the line after the last item.
local DONE = setmetatable({}, {__tostring = function() return "DONE" end})

--- The same work, with every stage running in a task of its own and a
-- queue of at most `queue_size` items (default 2) between two stages.
-- Returns the results in the order of the items.
function M.pipeline_concurrent(items, stages, delay, queue_size)
  -- #stages + 1 queues (async.Queue(queue_size or 2)) and a task group:
  -- a task feeds the items of M.source into queues[1] then puts DONE; a
  -- task per stage i takes from queues[i], puts fn(item) (unless nil)
  -- into queues[i + 1], and passes DONE on; this task reads the last
  -- queue until DONE.
  error("TODO(ex3): implement pipeline_concurrent — see exercises/lab4/README.md", 2)
end

---------------------------------------------------------------------------
-- The demo: scores in CSV lines become report lines

M.RECORDS = {"ada,93", "alan,78", "grace,88", "edsger,x", "barbara,95",
             "don,64", "margaret,81", "tony,72"}

--- Stage 1: "name,score" -> {name, score} (0.1 lab s); nil if malformed.
function M.parse(line)
  sleep(0.1)
  local name, score = line:match("^(%w+),(%d+)$")
  if not name then return nil end
  return {name = name, score = tonumber(score)}
end

--- Stage 2: adds a grade, as if looked up in a service (0.2 lab s).
function M.grade(rec)
  sleep(0.2)
  rec.grade = rec.score >= 90 and "A" or rec.score >= 80 and "B"
              or rec.score >= 70 and "C" or "D"
  return rec
end

--- Stage 3: the report line (0.1 lab s).
function M.format(rec)
  sleep(0.1)
  return ("%-10s %3d  %s"):format(rec.name, rec.score, rec.grade)
end

M.STAGES = {M.parse, M.grade, M.format}

function M.main()
  print(("%d records, 3 stages (parse 0.1 s, grade 0.2 s, format 0.1 s)\n")
        :format(#M.RECORDS))
  local t0 = async.loop_time()
  local lines = M.pipeline(M.RECORDS, M.STAGES, 0.05)
  local t_gen = async.loop_time() - t0
  for _, l in ipairs(lines) do print("  " .. l) end
  print(("Async generators, one item at a time: %d lines in %.2f s\n")
        :format(#lines, t_gen))

  t0 = async.loop_time()
  lines = M.pipeline_concurrent(M.RECORDS, M.STAGES, 0.05)
  local t_con = async.loop_time() - t0
  print(("A task per stage: %d lines in %.2f s (%.1fx faster)")
        :format(#lines, t_con, t_gen / t_con))
end

-- Run as a script (not when a spec loads the file).
if arg and arg[0] and arg[0]:find("data_processor%.lua$") then
  M.main()
end
return M

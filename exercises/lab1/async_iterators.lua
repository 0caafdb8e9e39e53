--- Lab 1, exercise 5: async iterators and generators (exercise).
--
-- Fill in every function that raises a TODO error: exercises/lab1/README.md
-- says what each must do. Check your work with
--   asynchost lab check lab1/async_iterators
-- or LAB_DIR=exercises busted --lua=asynchost --filter='lab1/async_iterators' spec/labs/lab1_spec.lua
--
-- Run it:  asynchost exercises/lab1/async_iterators.lua
-- Faster:  LAB_TIME_SCALE=0.1 asynchost exercises/lab1/async_iterators.lua
--
-- A generic `for` calls its iterator once per step; under asynchost the
-- iterator may await, so `for chunk in streamer do` can wait for each
-- chunk. Two ways to make one: an object with a __call metamethod (the
-- AsyncDataStreamer and AsyncResultSet below), or async.generator, whose
-- body yields values and awaits anywhere in between.
local async = require "asynchost"

local M = {}

-- Every delay of this file is in "lab seconds", multiplied by time_scale
-- (LAB_TIME_SCALE, default 1; the specs set the field to run faster).
M.time_scale = tonumber(os.getenv("LAB_TIME_SCALE")) or 1

local function sleep(s) async.sleep(s * M.time_scale) end

-- Each unfinished function raises this: the message names the function
-- and where the instructions are.
local function todo(name)
  error(("TODO(ex5): implement %s — see exercises/lab1/README.md")
        :format(name), 2)
end

---------------------------------------------------------------------------
-- AsyncDataStreamer: hands out its chunks one by one, `delay` apart.

local Streamer = {}
Streamer.__index = Streamer
M.AsyncDataStreamer = Streamer

function Streamer.new(chunks, delay)
  todo("AsyncDataStreamer.new")
end

--- The next chunk, after `delay` seconds; nil at the end. Called by the
-- generic for: `for chunk in streamer do ... end`.
function Streamer:__call()
  todo("AsyncDataStreamer:__call")
end

---------------------------------------------------------------------------
-- Async generators

--- Yields the lines of the file at `path` (without their "\n"), read with
-- async.fs. A missing file raises FileNotFoundError at the first step.
M.async_file_reader = async.generator(function(yield, path)
  todo("async_file_reader")
end)

--- Yields first, first + step, ... up to last (inclusive, as Lua's numeric
-- for), waiting `delay` seconds (default 0.1) before each number.
M.async_range = async.generator(function(yield, first, last, step, delay)
  todo("async_range")
end)

---------------------------------------------------------------------------
-- AsyncResultSet: rows of a query, fetched from the "database" a page at a
-- time (0.1 s a page) as the loop goes on.

local ResultSet = {}
ResultSet.__index = ResultSet
M.AsyncResultSet = ResultSet

function ResultSet.new(rows, page_size)
  todo("AsyncResultSet.new")
end

--- Fetches the next page (0.1 s); returns false when there is none.
function ResultSet:fetch_page()
  todo("AsyncResultSet:fetch_page")
end

--- The next row; nil at the end: `for row in result_set do`.
function ResultSet:__call()
  todo("AsyncResultSet:__call")
end

---------------------------------------------------------------------------
-- A pipeline of async iterators: each stage takes an iterator (anything a
-- generic for can call) and is itself one.

-- What a generic for needs to go over `source` and, if it can be closed
-- (a generator), to close it when the loop ends early.
local function iterate(source)
  local mt = getmetatable(source)
  return source, nil, nil, (mt and mt.__close) and source or nil
end

--- Yields fn(v) for each v of `source`; fn may await.
M.async_map = async.generator(function(yield, fn, source)
  todo("async_map")
end)

--- Yields the values of `source` for which pred(v) is true.
M.async_filter = async.generator(function(yield, pred, source)
  todo("async_filter")
end)

--- Yields at most n values of `source`, then stops (closing it).
M.take = async.generator(function(yield, n, source)
  todo("take")
end)

--- Every value of the iterator, in an array.
function M.collect(source)
  todo("collect")
end

--- source, then each stage applied in turn: pipeline(src, f, g) = g(f(src)),
-- where each stage is a function(iterator) -> iterator.
function M.pipeline(source, ...)
  todo("pipeline")
end

function M.main()
  local streamer = M.AsyncDataStreamer.new({"chunk1", "chunk2", "chunk3"})
  for chunk in streamer do print("Received: " .. chunk) end

  for n in M.async_range(1, 4) do print("Number: " .. n) end

  local ok, err = pcall(function()
    for line in M.async_file_reader("sample.txt") do
      print("Line: " .. line)
    end
  end)
  if not ok then
    print(async.FileNotFoundError:is(err) and "Sample file not found"
          or ("Could not read sample.txt: " .. tostring(err)))
  end

  local users = {}
  for i = 1, 7 do
    users[i] = {id = i, name = "user" .. i, active = i % 3 ~= 0}
  end
  local rs = M.AsyncResultSet.new(users, 3)
  local count = 0
  for _ in rs do count = count + 1 end
  print(("Result set: %d rows in %d pages"):format(count, rs.pages_fetched))

  -- rows -> active ones -> their names in capitals -> the first four
  local t0 = async.loop_time()
  local names = M.collect(M.pipeline(M.AsyncResultSet.new(users, 3),
    function(it) return M.async_filter(function(u) return u.active end, it) end,
    function(it) return M.async_map(function(u)
      sleep(0.05)  -- some async work per item
      return u.name:upper()
    end, it) end,
    function(it) return M.take(4, it) end))
  print(("Pipeline: %s in %.2f s"):format(table.concat(names, " "),
        async.loop_time() - t0))
end

-- Run as a script (not when a spec loads the file): the demo.
if arg and arg[0] and arg[0]:match("async_iterators%.lua$") then
  M.main()
end
return M

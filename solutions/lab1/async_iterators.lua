--- Lab 1, exercise 5: async iterators and generators (solution).
--
-- Run it:  asynchost solutions/lab1/async_iterators.lua
-- Faster:  LAB_TIME_SCALE=0.1 asynchost solutions/lab1/async_iterators.lua
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

---------------------------------------------------------------------------
-- AsyncDataStreamer: hands out its chunks one by one, `delay` apart.

local Streamer = {}
Streamer.__index = Streamer
M.AsyncDataStreamer = Streamer

function Streamer.new(chunks, delay)
  if type(chunks) ~= "table" then
    error("bad argument #1 to 'new' (table expected, got "
          .. type(chunks) .. ")", 2)
  end
  return setmetatable({chunks = chunks, delay = delay or 0.1, pos = 0},
                      Streamer)
end

--- The next chunk, after `delay` seconds; nil at the end. Called by the
-- generic for: `for chunk in streamer do ... end`.
function Streamer:__call()
  if self.pos >= #self.chunks then return nil end
  sleep(self.delay)
  self.pos = self.pos + 1
  return self.chunks[self.pos]
end

---------------------------------------------------------------------------
-- Async generators

--- Yields the lines of the file at `path` (without their "\n"), read with
-- async.fs. A missing file raises FileNotFoundError at the first step.
M.async_file_reader = async.generator(function(yield, path)
  if type(path) ~= "string" then
    error("bad argument #1 to 'async_file_reader' (string expected, got "
          .. type(path) .. ")", 0)
  end
  local text = async.fs.read_file(path)
  if text ~= "" and text:sub(-1) ~= "\n" then text = text .. "\n" end
  for line in text:gmatch("(.-)\n") do yield(line) end
end)

--- Yields first, first + step, ... up to last (inclusive, as Lua's numeric
-- for), waiting `delay` seconds (default 0.1) before each number.
M.async_range = async.generator(function(yield, first, last, step, delay)
  step = step or 1
  if step == 0 then
    error("bad argument #3 to 'async_range' (step is zero)", 0)
  end
  for i = first, last, step do
    sleep(delay or 0.1)
    yield(i)
  end
end)

---------------------------------------------------------------------------
-- AsyncResultSet: rows of a query, fetched from the "database" a page at a
-- time (0.1 s a page) as the loop goes on.

local ResultSet = {}
ResultSet.__index = ResultSet
M.AsyncResultSet = ResultSet

function ResultSet.new(rows, page_size)
  return setmetatable({rows = rows, page_size = page_size or 2, page = {},
                       next_row = 1, fetched = 0, pages_fetched = 0},
                      ResultSet)
end

--- Fetches the next page (0.1 s); returns false when there is none.
function ResultSet:fetch_page()
  if self.fetched >= #self.rows then return false end
  sleep(0.1)
  self.page = table.move(self.rows, self.fetched + 1,
                         math.min(self.fetched + self.page_size, #self.rows),
                         1, {})
  self.next_row = 1
  self.fetched = self.fetched + #self.page
  self.pages_fetched = self.pages_fetched + 1
  return true
end

--- The next row; nil at the end: `for row in result_set do`.
function ResultSet:__call()
  if self.next_row > #self.page and not self:fetch_page() then return nil end
  local row = self.page[self.next_row]
  self.next_row = self.next_row + 1
  return row
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
  for v in iterate(source) do yield(fn(v)) end
end)

--- Yields the values of `source` for which pred(v) is true.
M.async_filter = async.generator(function(yield, pred, source)
  for v in iterate(source) do
    if pred(v) then yield(v) end
  end
end)

--- Yields at most n values of `source`, then stops (closing it).
M.take = async.generator(function(yield, n, source)
  if n <= 0 then return end
  local i = 0
  for v in iterate(source) do
    yield(v)
    i = i + 1
    if i >= n then break end
  end
end)

--- Every value of the iterator, in an array.
function M.collect(source)
  local out = {}
  for v in iterate(source) do out[#out + 1] = v end
  return out
end

--- source, then each stage applied in turn: pipeline(src, f, g) = g(f(src)),
-- where each stage is a function(iterator) -> iterator.
function M.pipeline(source, ...)
  local it = source
  for i = 1, select("#", ...) do it = (select(i, ...))(it) end
  return it
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

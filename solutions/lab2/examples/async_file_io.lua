--- Lab 2, example 4: files without blocking.
--
-- Run it:  asynchost exercises/lab2/examples/async_file_io.lua
--
-- async.fs does its disk work on libuv's thread pool and suspends only
-- the task that asked, so a program can read many files at once and keep
-- serving meanwhile. Everything happens in a temporary directory, removed
-- at the end.
local async = require "asynchost"
local fs = async.fs

-- a new directory; the guard removes it (and what it holds) at the end
local dir, _ <close> = fs.tempdir("lab2-")

-- write and read whole files
fs.write_file(dir .. "/hello.txt", "Hello, async files!\nSecond line\n")
print("read back: " .. fs.read_file(dir .. "/hello.txt"):match("^[^\n]*"))

-- add to the end of a file
fs.append_file(dir .. "/hello.txt", "Third line\n")

-- line by line, without reading the whole file first
local n = 0
for line in fs.lines(dir .. "/hello.txt") do
  n = n + 1
  print(("line %d: %s"):format(n, line))
end

-- an open file, closed at the end of its scope
do
  local f <close> = fs.open(dir .. "/log.txt", "w")
  for i = 1, 3 do f:write(("entry %d\n"):format(i)) end
end
print(("log.txt is %d bytes"):format(fs.stat(dir .. "/log.txt").size))

-- many files at once
local names = {}
for i = 1, 5 do
  names[i] = ("%s/data_%d.txt"):format(dir, i)
end
async.gather((function()
  local jobs = {}
  for i, name in ipairs(names) do
    jobs[i] = function() fs.write_file(name, ("x"):rep(i * 100)) end
  end
  return jobs
end)())
local sizes = async.gather((function()
  local jobs = {}
  for i, name in ipairs(names) do
    jobs[i] = function() return #fs.read_file(name) end
  end
  return jobs
end)())
print("sizes read at once: " .. table.concat(sizes, " "))

-- the directory
print("files: " .. table.concat(fs.listdir(dir), " "))

-- errors are values with a class
local ok, err = pcall(fs.read_file, dir .. "/missing.txt")
print(("missing file: %s"):format(async.FileNotFoundError:is(err)
      and "FileNotFoundError" or tostring(err)))

-- writing atomically: readers see the old content or the new, never half
fs.write_file(dir .. "/config.json", '{"version": 2}', {atomic = true})
print("config: " .. fs.read_file(dir .. "/config.json"))

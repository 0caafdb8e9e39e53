--- Lab 2, example 1: the basics of async functions.
--
-- Run it:  asynchost exercises/lab2/examples/basic_async.lua
--
-- In Lua there is no `async` keyword: any function can await, as long as
-- it runs inside a task. Under asynchost the script itself is a task (the
-- main task), so it can call async.sleep at top level; async.spawn starts
-- more tasks, async.await waits for one and returns what it returned.
local async = require "asynchost"

local SCALE = tonumber(os.getenv("LAB_TIME_SCALE")) or 1
local function sleep(s) async.sleep(s * SCALE) end

local t0 = async.loop_time()
local function stamp(fmt, ...)
  print(("[%4.2f s] " .. fmt):format(async.loop_time() - t0, ...))
end

-- 1. An async function is a plain function that awaits.
local function brew(drink, seconds)
  stamp("start brewing %s", drink)
  sleep(seconds)
  stamp("%s is ready", drink)
  return drink .. " (hot)"
end

-- 2. Called directly, it runs to its end before the next line: awaiting
-- does not make the caller go on, it lets *other tasks* run.
print("-- called directly, one after the other")
brew("tea", 0.5)
brew("coffee", 0.5)

-- 3. Spawned, each runs as a task of its own; they wait at the same time.
print("-- spawned as tasks")
local tea = async.spawn(brew, "tea", 0.5)
local coffee = async.spawn(brew, "coffee", 0.5)
stamp("both tasks started; spawn returned at once")
stamp("got %s and %s", async.await(tea), async.await(coffee))

-- 4. A task starts on the next turn of the loop, not when spawned.
print("-- when does a task start?")
local order = {}
local t = async.spawn(function() order[#order + 1] = "task" end)
order[#order + 1] = "main"
async.await(t)
print("order: " .. table.concat(order, ", "))

-- 5. Tasks carry their results and their errors.
local failing = async.spawn(function()
  sleep(0.1)
  error("the kettle broke", 0)
end)
local ok, err = pcall(async.await, failing)
print(("awaiting a failed task raises its error: %s, %s"):format(ok, err))
print(("the task: %s"):format(tostring(failing)))

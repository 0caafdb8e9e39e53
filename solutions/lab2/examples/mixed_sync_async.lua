--- Lab 2, example 5: mixing blocking and async code.
--
-- Run it:  asynchost exercises/lab2/examples/mixed_sync_async.lua
--
-- One loop runs every task, so a function that computes for a long time,
-- or calls something that blocks, stops them all. A ticker task shows it:
-- it should tick every 0.1 s. Blocking work belongs elsewhere:
-- async.to_thread runs a Lua function in a worker thread, and
-- async.process.run runs a command in a child process; both suspend only
-- the task that waits for them.
local async = require "asynchost"

local SCALE = tonumber(os.getenv("LAB_TIME_SCALE")) or 1

-- counts its ticks, one per 0.1 s, while it runs
local function ticker()
  local state = {ticks = 0}
  state.task = async.spawn(function()
    while true do
      async.sleep(0.1 * SCALE)
      state.ticks = state.ticks + 1
    end
  end)
  return state
end

-- a CPU-bound function; to_thread needs one without upvalues: it is
-- copied into another Lua state
local function count_primes(n)
  local count = 0
  for i = 2, n do
    local prime = true
    for d = 2, math.floor(math.sqrt(i)) do
      if i % d == 0 then prime = false; break end
    end
    if prime then count = count + 1 end
  end
  return count
end

local function measure(label, fn)
  local tick = ticker()
  async.sleep(0)  -- let the ticker start
  local t0 = async.loop_time()
  local result = fn()
  local took = async.loop_time() - t0
  tick.task:cancel()
  print(("%-34s %.2f s, result %s, ticks meanwhile: %d (about %d expected)")
        :format(label, took, tostring(result), tick.ticks,
                math.floor(took / (0.1 * SCALE))))
end

-- (less work when LAB_TIME_SCALE makes everything shorter)
local N = math.max(20000, math.floor(300000 * math.min(SCALE, 1)))

-- 1. computing in the task: the ticker stops until it is done
measure("count_primes in the task:", function() return count_primes(N) end)

-- 2. the same in a worker thread: the ticker goes on
measure("count_primes with to_thread:", function()
  return async.to_thread(count_primes, N)
end)

-- 3. a blocking wait (a busy loop here, like a blocking call)
measure("blocking wait of 0.5 s:", function()
  local deadline = async.loop_time() + 0.5 * SCALE
  while async.loop_time() < deadline do end
  return "done"
end)

-- 4. the same wait as async.sleep
measure("async.sleep(0.5):", function()
  async.sleep(0.5 * SCALE)
  return "done"
end)

-- 5. an external command in a child process
measure("a command with async.process:", function()
  local script = ("sleep %g; echo hello"):format(0.5 * SCALE)
  local r = async.process.run("sh", {"-c", script})
  return r.stdout:gsub("\n", "")
end)

-- 6. from plain callbacks (no task) to tasks: spawn, or a future
local f = async.Future()
async.call_later(0.1 * SCALE, function()  -- a callback: it cannot await...
  async.spawn(function()                  -- ...but it can start a task
    async.sleep(0.1 * SCALE)
    f:set_result("set from a task started by a callback")
  end)
end)
print("future: " .. async.await(f))

-- 7. from code that is not in a task at all, async.run starts one: under
-- stock lua5.4, `require("asynchost").run(main)` is the entry point.
print("inside a task already: " .. tostring(async.current_task() ~= nil))

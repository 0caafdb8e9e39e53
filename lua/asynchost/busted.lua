--- Async specs for busted: require "asynchost.busted" at the top of a spec
-- file, and every `it` in that file runs its body in a fresh task:
--
--   local async = require "asynchost"
--   require "asynchost.busted"
--   it("sleeps", function() async.sleep(0.01) end)
--
-- Each test has a timeout (M.timeout seconds, default 10, or a third
-- argument to `it`) and fails if it leaves tasks or handles behind (they
-- are cancelled and listed).  Works under the host (busted --lua=asynchost,
-- where busted itself runs in the main task) and under stock lua5.4 with
-- the C module (each test then drives the loop with async.run).
local async = require "asynchost"
local core = require "asynchost.core"
local rawpcall = require("asynchost.core.coroutine").rawpcall

local M = {timeout = 10}

local function set(list)
  local s = {}
  for _, x in ipairs(list) do s[x] = true end
  return s
end

-- Cancels and awaits the tasks that are not in 'before'; returns a report
-- of them, or nil.
local function leftovers(before)
  local left = {}
  for _, t in ipairs(async.all_tasks()) do
    if not before[t] and t ~= async.current_task() then left[#left + 1] = t end
  end
  if #left == 0 then return nil end
  local report = async.dump_tasks("the test left " .. #left ..
                                  " task(s) behind:")
  for _, t in ipairs(left) do t:cancel("left behind by a test") end
  for _, t in ipairs(left) do rawpcall(async.wait_for, t, 1) end
  return report
end

local function handlesreport(before)
  local now = core.handles()
  if #now <= before then return nil end
  return ("the test left %d handle(s) open: %s"):format(#now - before,
                                                        table.concat(now, ", "))
end

--- Runs fn as a task with a timeout; raises its error, or a report of
-- what it left behind.
function M.run(fn, timeout, name)
  timeout = timeout or M.timeout
  local function body()
    local before = set(async.all_tasks())
    local nhandles = #core.handles()
    local t = async.spawn(fn)
    t:set_name(name and ("it: " .. name) or "test")
    local ok, err = rawpcall(async.wait_for, t, timeout)
    if not ok and async.TimeoutError:is(err) then
      err = ("test timed out after %g s"):format(timeout)
    end
    -- let tasks that are ending anyway end (a server's handler sees its
    -- client's close a turn or two later): up to 50 ms
    for _ = 1, 10 do
      local extra = false
      for _, x in ipairs(async.all_tasks()) do
        if not before[x] and x ~= async.current_task() then extra = true end
      end
      if not extra and #core.handles() <= nhandles then break end
      async.sleep(0.005)
    end
    local left = leftovers(before)
    local handles = handlesreport(nhandles)
    if not ok then error(err, 0) end
    if left then error(left, 0) end
    if handles then error(handles, 0) end
  end
  if async.current_task() then return body() end
  return async.run(body)
end

--- Wraps a busted `it`: it(name, fn [, timeout]).
function M.wrap(it)
  return function(name, fn, timeout)
    if type(fn) ~= "function" then return it(name, fn) end
    return it(name, function() return M.run(fn, timeout, name) end)
  end
end

-- Install the async `it` into the environment of the file requiring us.
local info = debug.getinfo(3, "f")
if info and info.func then
  local i = 1
  while true do
    local upname, env = debug.getupvalue(info.func, i)
    if upname == nil then break end
    if upname == "_ENV" then
      if type(env) == "table" and env.it and not env.async_it_installed then
        env.it = M.wrap(env.it)
        env.async_it_installed = true
      end
      break
    end
    i = i + 1
  end
end

return M

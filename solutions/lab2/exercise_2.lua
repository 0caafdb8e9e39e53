--- Lab 2, exercise 2: concurrent tasks with gather (solution).
--
-- Run it:  asynchost solutions/lab2/exercise_2.lua
-- Faster:  LAB_TIME_SCALE=0.1 asynchost solutions/lab2/exercise_2.lua
--
-- Awaiting three fetches one after the other takes three times as long as
-- one; starting them together and gathering them takes as long as the
-- slowest. gather returns the results in the order it was given the
-- work, whatever the order in which it finished.
local async = require "asynchost"

local M = {}

-- Every delay of this file is in "lab seconds", multiplied by time_scale
-- (LAB_TIME_SCALE, default 1; the specs set the field to run faster).
M.time_scale = tonumber(os.getenv("LAB_TIME_SCALE")) or 1

local function sleep(s) async.sleep(s * M.time_scale) end

M.NAMES = {"Alice", "Bob", "Charlie", "Dave", "Eve"}

--- Fetches the user `id` (1 s, or `delay`): returns {id, name}. An id
-- without a user raises "no user N".
function M.fetch_user(id, delay)
  if math.type(id) ~= "integer" then
    error("bad argument #1 to 'fetch_user' (integer expected, got "
          .. (math.type(id) or type(id)) .. ")", 2)
  end
  print(("Fetching user %d..."):format(id))
  sleep(delay or 1)
  if not M.NAMES[id] then error(("no user %d"):format(id), 0) end
  print(("Got user %d"):format(id))
  return {id = id, name = M.NAMES[id]}
end

--- One after the other: returns the users in order.
function M.fetch_users_sequential(ids, delay)
  local users = {}
  for i, id in ipairs(ids) do users[i] = M.fetch_user(id, delay) end
  return users
end

--- All at once with gather: returns the users in the order of ids.
function M.fetch_users_concurrent(ids, delay)
  local jobs = {}
  for i, id in ipairs(ids) do
    jobs[i] = function() return M.fetch_user(id, delay) end
  end
  local users = async.gather(jobs)
  users.n = nil
  return users
end

--- All at once, as tasks started first and awaited one by one (spawn,
-- then await): the same time as gather.
function M.fetch_users_with_tasks(ids, delay)
  local tasks = {}
  for i, id in ipairs(ids) do
    tasks[i] = async.spawn(M.fetch_user, id, delay)
  end
  local users = {}
  for i, t in ipairs(tasks) do users[i] = async.await(t) end
  return users
end

--- The users as Lua code: {{id = 1, name = "Alice"}, ...}.
function M.format_users(users)
  local parts = {}
  for i, u in ipairs(users) do
    parts[i] = ("{id = %d, name = %q}"):format(u.id, u.name)
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

function M.main()
  local ids = {1, 2, 3}
  print("=== Sequential Execution ===")
  local t0 = async.loop_time()
  M.fetch_users_sequential(ids)
  print(("Time: %.2fs"):format(async.loop_time() - t0))
  print()
  print("=== Concurrent Execution (gather) ===")
  t0 = async.loop_time()
  local users = M.fetch_users_concurrent(ids)
  print(("Time: %.2fs"):format(async.loop_time() - t0))
  print("Results: " .. M.format_users(users))
  print()
  print("=== Tasks started with spawn, then awaited ===")
  t0 = async.loop_time()
  users = M.fetch_users_with_tasks(ids)
  print(("Time: %.2fs"):format(async.loop_time() - t0))
  print("Results: " .. M.format_users(users))
end

-- Run as a script (not when a spec loads the file): the demo.
if arg and arg[0] and arg[0]:match("exercise_2%.lua$") then
  M.main()
end
return M

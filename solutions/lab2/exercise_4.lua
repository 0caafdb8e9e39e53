--- Lab 2, exercise 4: an async context manager (solution).
--
-- Run it:  asynchost solutions/lab2/exercise_4.lua
-- Faster:  LAB_TIME_SCALE=0.1 asynchost solutions/lab2/exercise_4.lua
--
-- A pretend database connection that takes time to open, to query and to
-- close. Held in a to-be-closed variable,
--
--   local db <close> = AsyncDatabase.connect("users.db")
--
-- it is closed when the scope ends, whether by its end, a return or an
-- error, and its __close may await (closing takes time too). Several
-- tasks can query the one connection at once.
local async = require "asynchost"

local M = {}

-- Every delay of this file is in "lab seconds", multiplied by time_scale
-- (LAB_TIME_SCALE, default 1; the specs set the field to run faster).
M.time_scale = tonumber(os.getenv("LAB_TIME_SCALE")) or 1

local function sleep(s) async.sleep(s * M.time_scale) end

M.USERS = {{id = 1, name = "Alice"}, {id = 2, name = "Bob"}}

local Database = {}
Database.__index = Database
M.AsyncDatabase = Database

--- Connects (0.5 s) and returns the connection.
function Database.connect(name)
  print("Connecting to database...")
  sleep(0.5)
  print("Connection established")
  return setmetatable({name = name or "app.db", open = true, queries = 0},
                      Database)
end

local function checkopen(db)
  if not db.open then error("attempt to use a closed connection", 3) end
end

--- Runs `sql` (0.5 s): SELECT * FROM users returns the users; any other
-- statement raises an error. `label` (optional) names the query in what
-- is printed.
function Database:query(sql, label)
  checkopen(self)
  if label then print(label .. " executing...")
  else print("Executing query: " .. sql) end
  sleep(0.5)
  self.queries = self.queries + 1
  if sql ~= "SELECT * FROM users" then
    error(("cannot run %q: only SELECT * FROM users is known"):format(sql), 2)
  end
  if label then print(label .. " complete") end
  return {table.unpack(M.USERS)}
end

--- Closes the connection (0.5 s); a second close does nothing.
function Database:close()
  if not self.open then return end
  self.open = false
  print("Closing connection...")
  sleep(0.5)
  print("Connection closed")
end
Database.__close = Database.close

--- The rows as Lua code: {{id = 1, name = "Alice"}, ...}.
function M.format_rows(rows)
  local parts = {}
  for i, r in ipairs(rows) do
    parts[i] = ("{id = %d, name = %q}"):format(r.id, r.name)
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

--- Connects, runs one query, closes; returns the rows.
function M.single_query()
  local db <close> = Database.connect("users.db")
  local rows = db:query("SELECT * FROM users")
  print("Query result: " .. M.format_rows(rows))
  return rows
end

--- Connects, runs `n` queries at once on the connection, closes; returns
-- their results in order.
function M.concurrent_queries(n)
  local db <close> = Database.connect("users.db")
  local jobs = {}
  for i = 1, n do
    jobs[i] = function()
      return db:query("SELECT * FROM users", "Query " .. i)
    end
  end
  local results = async.gather(jobs)
  results.n = nil
  return results
end

function M.main()
  M.single_query()
  print()
  print("=== Multiple Concurrent Queries ===")
  local t0 = async.loop_time()
  M.concurrent_queries(3)
  print(("Total time: %.1fs (queries ran concurrently)")
        :format(async.loop_time() - t0))
  print()
  print("=== An error inside the scope ===")
  local ok, err = pcall(function()
    local db <close> = Database.connect("users.db")
    db:query("DROP TABLE users")
  end)
  print(("Failed as expected: %s"):format(not ok and
        tostring(err):match("cannot run.*")))
end

-- Run as a script (not when a spec loads the file): the demo.
if arg and arg[0] and arg[0]:match("exercise_4%.lua$") then
  M.main()
end
return M

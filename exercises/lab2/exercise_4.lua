--- Lab 2, exercise 4: an async context manager (exercise).
--
-- Fill in every function that raises a TODO error: exercises/lab2/README.md
-- says what each must do. Check your work with
--   asynchost lab check lab2/exercise_4
-- or LAB_DIR=exercises busted --lua=asynchost --filter='lab2/exercise_4' spec/labs/lab2_spec.lua
--
-- Run it:  asynchost exercises/lab2/exercise_4.lua
-- Faster:  LAB_TIME_SCALE=0.1 asynchost exercises/lab2/exercise_4.lua
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

-- Each unfinished function raises this: the message names the function
-- and where the instructions are.
local function todo(name)
  error(("TODO(ex4): implement %s — see exercises/lab2/README.md")
        :format(name), 2)
end

M.USERS = {{id = 1, name = "Alice"}, {id = 2, name = "Bob"}}

local Database = {}
Database.__index = Database
M.AsyncDatabase = Database

--- Connects (0.5 s) and returns the connection.
function Database.connect(name)
  todo("AsyncDatabase.connect")
end

local function checkopen(db)
  if not db.open then error("attempt to use a closed connection", 3) end
end

--- Runs `sql` (0.5 s): SELECT * FROM users returns the users; any other
-- statement raises an error. `label` (optional) names the query in what
-- is printed.
function Database:query(sql, label)
  todo("AsyncDatabase:query")
end

--- Closes the connection (0.5 s); a second close does nothing.
function Database:close()
  todo("AsyncDatabase:close")
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
  todo("single_query")
end

--- Connects, runs `n` queries at once on the connection, closes; returns
-- their results in order.
function M.concurrent_queries(n)
  todo("concurrent_queries")
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

--- Lab 1, exercise 4: async context managers (exercise).
--
-- Fill in every function that raises a TODO error: exercises/lab1/README.md
-- says what each must do. Check your work with
--   asynchost lab check lab1/async_context_managers
-- or LAB_DIR=exercises busted --lua=asynchost --filter='lab1/async_context_managers' spec/labs/lab1_spec.lua
--
-- Run it:  asynchost exercises/lab1/async_context_managers.lua
-- Faster:  LAB_TIME_SCALE=0.1 asynchost exercises/lab1/async_context_managers.lua
--
-- Lua's to-be-closed variables are its context managers:
--
--   local db <close> = AsyncDatabaseConnection.connect("app.db")
--
-- calls db's __close metamethod when the variable goes out of scope, by a
-- normal end, a return, a break or an error; under asynchost __close may
-- await, so closing a connection can take time. A task group is a context
-- manager too: leaving its scope waits for its tasks.
local async = require "asynchost"

local M = {}

-- Every delay of this file is in "lab seconds", multiplied by time_scale
-- (LAB_TIME_SCALE, default 1; the specs set the field to run faster).
M.time_scale = tonumber(os.getenv("LAB_TIME_SCALE")) or 1

local function sleep(s) async.sleep(s * M.time_scale) end

-- Each unfinished function raises this: the message names the function
-- and where the instructions are.
local function todo(name)
  error(("TODO(ex4): implement %s — see exercises/lab1/README.md")
        :format(name), 2)
end

local function checkopen(obj, what, fname)
  if obj.closed then
    error(("attempt to use a closed %s (in '%s')"):format(what, fname), 3)
  end
end

---------------------------------------------------------------------------
-- AsyncFileHandler: writes are kept in memory and written out, with
-- async.fs, when the handler is read, flushed or closed.

local FileHandler = {}
FileHandler.__index = FileHandler
M.AsyncFileHandler = FileHandler

--- Opens `path` for reading and writing; starts empty (mode "w") or with
-- the file's content (mode "a", the file must exist then).
function FileHandler.open(path, mode)
  todo("AsyncFileHandler.open")
end

function FileHandler:write(text)
  todo("AsyncFileHandler:write")
end

function FileHandler:flush()
  todo("AsyncFileHandler:flush")
end

--- What the file holds now (after writing out what is pending).
function FileHandler:read()
  todo("AsyncFileHandler:read")
end

function FileHandler:close()
  todo("AsyncFileHandler:close")
end
FileHandler.__close = FileHandler.close

---------------------------------------------------------------------------
-- AsyncDatabaseConnection: a pretend database that takes its time.

local USERS = {{id = 1, name = "Alice"}, {id = 2, name = "Bob"},
               {id = 3, name = "Charlie"}}

local Connection = {}
Connection.__index = Connection
M.AsyncDatabaseConnection = Connection

--- Every connect and close, in order: {"connect app.db", "close app.db"}.
M.db_log = {}

--- Connects (0.1 s) and returns the connection.
function Connection.connect(dsn)
  todo("AsyncDatabaseConnection.connect")
end

--- Runs a query (0.1 s): "SELECT * FROM users" returns the rows of the
-- users table, "SELECT * FROM users WHERE id = N" one of them; anything
-- else raises an error.
function Connection:query(sql)
  todo("AsyncDatabaseConnection:query")
end

--- Closes the connection (0.05 s); closing twice does nothing.
function Connection:close()
  todo("AsyncDatabaseConnection:close")
end
Connection.__close = Connection.close

---------------------------------------------------------------------------
-- AsyncTimer: measures the time spent in its scope.

local Timer = {}
Timer.__index = Timer
M.AsyncTimer = setmetatable({}, {__call = function()
  return setmetatable({start = async.loop_time()}, Timer)
end})

--- Seconds since the timer started, or its total once closed.
function Timer:elapsed()
  todo("AsyncTimer:elapsed")
end

function Timer:__close()
  todo("AsyncTimer:__close")
end

---------------------------------------------------------------------------
-- ResourcePool: at most `size` resources made by `factory`, lent out one
-- at a time, made on demand and reused.

local Pool = {}
Pool.__index = Pool
M.ResourcePool = Pool

function Pool.new(factory, size)
  todo("ResourcePool.new")
end

local Lease = {}
Lease.__index = Lease

function Lease:release()
  todo("lease:release")
end
Lease.__close = Lease.release

--- Waits for a free resource; returns a lease: lease.resource is yours
-- until the lease is released (`local l <close> = pool:acquire()`).
function Pool:acquire()
  todo("ResourcePool:acquire")
end

--- Closes every resource made (those with a close method).
function Pool:close()
  todo("ResourcePool:close")
end
Pool.__close = Pool.close

---------------------------------------------------------------------------
-- A task group: the scope waits for its tasks; a failure cancels the rest.

--- Runs each function of `jobs` in a task of a group; returns their first
-- results in order. If one fails, the others are cancelled and a
-- TaskGroupError is raised.
function M.run_in_group(jobs)
  todo("run_in_group")
end

function M.main()
  -- a new directory, removed with what it holds at the end of main
  local dir, _ <close> = async.fs.tempdir("lab1-")

  do
    local handler <close> = M.AsyncFileHandler.open(dir .. "/test.txt")
    handler:write("Hello, async world!")
    print("File content: " .. handler:read())
  end

  local timer
  do
    local t <close> = M.AsyncTimer()
    timer = t
    sleep(1.0)
  end
  print(("Elapsed time: %.2f s"):format(timer:elapsed()))

  do
    local outer <close> = M.AsyncTimer()
    do
      local handler <close> = M.AsyncFileHandler.open(dir .. "/nested.txt")
      handler:write("Nested operations")
    end
    print(("Inner operations took: %.2f s"):format(outer:elapsed()))
  end

  do
    local db <close> = M.AsyncDatabaseConnection.connect("app.db")
    local rows = db:query("SELECT * FROM users")
    print(("Query returned %d rows; first: %s"):format(#rows, rows[1].name))
  end
  print("Database log: " .. table.concat(M.db_log, ", "))

  -- An error inside the scope still closes the connection.
  local ok, err = pcall(function()
    local db <close> = M.AsyncDatabaseConnection.connect("other.db")
    db:query("DROP TABLE users")
  end)
  print(("Failed query: %s; log: %s"):format(ok and "none" or
        tostring(err):match("syntax error.*"), table.concat(M.db_log, ", ")))

  -- Five tasks share two connections.
  local pool <close> = M.ResourcePool.new(function()
    return M.AsyncDatabaseConnection.connect("pool.db")
  end, 2)
  local t0 = async.loop_time()
  local names = M.run_in_group((function()
    local jobs = {}
    for i = 1, 5 do
      jobs[i] = function()
        local lease <close> = pool:acquire()
        return lease.resource:query("SELECT * FROM users WHERE id = "
                                    .. (i - 1) % 3 + 1)[1].name
      end
    end
    return jobs
  end)())
  print(("Pool: %s in %.2f s, %d connections made, at most %d in use")
        :format(table.concat(names, " "), async.loop_time() - t0,
                #pool.all, pool.peak))
end

-- Run as a script (not when a spec loads the file): the demo.
if arg and arg[0] and arg[0]:match("async_context_managers%.lua$") then
  M.main()
end
return M

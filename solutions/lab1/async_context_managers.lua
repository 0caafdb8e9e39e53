--- Lab 1, exercise 4: async context managers (solution).
--
-- Run it:  asynchost solutions/lab1/async_context_managers.lua
-- Faster:  LAB_TIME_SCALE=0.1 asynchost solutions/lab1/async_context_managers.lua
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
  if type(path) ~= "string" then
    error("bad argument #1 to 'open' (string expected, got "
          .. type(path) .. ")", 2)
  end
  mode = mode or "w"
  local content = ""
  if mode == "a" then content = async.fs.read_file(path) end
  local h = setmetatable({path = path, content = content, dirty = true,
                          closed = false}, FileHandler)
  return h
end

function FileHandler:write(text)
  checkopen(self, "file handler", "write")
  self.content = self.content .. tostring(text)
  self.dirty = true
end

function FileHandler:flush()
  checkopen(self, "file handler", "flush")
  if self.dirty then
    async.fs.write_file(self.path, self.content)
    self.dirty = false
  end
end

--- What the file holds now (after writing out what is pending).
function FileHandler:read()
  self:flush()
  return async.fs.read_file(self.path)
end

function FileHandler:close()
  if self.closed then return end
  self:flush()
  self.closed = true
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
  if type(dsn) ~= "string" then
    error("bad argument #1 to 'connect' (string expected, got "
          .. type(dsn) .. ")", 2)
  end
  sleep(0.1)
  M.db_log[#M.db_log + 1] = "connect " .. dsn
  return setmetatable({dsn = dsn, closed = false, queries = 0}, Connection)
end

--- Runs a query (0.1 s): "SELECT * FROM users" returns the rows of the
-- users table, "SELECT * FROM users WHERE id = N" one of them; anything
-- else raises an error.
function Connection:query(sql)
  checkopen(self, "connection", "query")
  sleep(0.1)
  self.queries = self.queries + 1
  local id = sql:match("^SELECT %* FROM users WHERE id = (%d+)$")
  if id then return {USERS[tonumber(id)]} end
  if sql == "SELECT * FROM users" then
    return {table.unpack(USERS)}
  end
  error("syntax error in query: " .. sql, 2)
end

--- Closes the connection (0.05 s); closing twice does nothing.
function Connection:close()
  if self.closed then return end
  self.closed = true  -- at once: a cancellation during the wait still closes
  sleep(0.05)
  M.db_log[#M.db_log + 1] = "close " .. self.dsn
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
  return (self.stop or async.loop_time()) - self.start
end

function Timer:__close()
  self.stop = self.stop or async.loop_time()
end

---------------------------------------------------------------------------
-- ResourcePool: at most `size` resources made by `factory`, lent out one
-- at a time, made on demand and reused.

local Pool = {}
Pool.__index = Pool
M.ResourcePool = Pool

function Pool.new(factory, size)
  if type(factory) ~= "function" then
    error("bad argument #1 to 'new' (function expected, got "
          .. type(factory) .. ")", 2)
  end
  if math.type(size) ~= "integer" or size < 1 then
    error("bad argument #2 to 'new' (positive integer expected)", 2)
  end
  return setmetatable({factory = factory, size = size, idle = {},
                       all = {}, sem = async.Semaphore(size), in_use = 0,
                       peak = 0, closed = false}, Pool)
end

local Lease = {}
Lease.__index = Lease

function Lease:release()
  if self.released then return end
  self.released = true
  local pool = self.pool
  pool.in_use = pool.in_use - 1
  pool.idle[#pool.idle + 1] = self.resource
  pool.sem:release()
end
Lease.__close = Lease.release

--- Waits for a free resource; returns a lease: lease.resource is yours
-- until the lease is released (`local l <close> = pool:acquire()`).
function Pool:acquire()
  checkopen(self, "pool", "acquire")
  self.sem:acquire()
  local ok, res = pcall(function()
    return table.remove(self.idle) or self.factory()
  end)
  if not ok then
    self.sem:release()
    error(res, 0)
  end
  if not self.all[res] then
    self.all[res] = true
    self.all[#self.all + 1] = res
  end
  self.in_use = self.in_use + 1
  self.peak = math.max(self.peak, self.in_use)
  return setmetatable({pool = self, resource = res}, Lease)
end

--- Closes every resource made (those with a close method).
function Pool:close()
  if self.closed then return end
  self.closed = true
  for _, res in ipairs(self.all) do
    if type(res) == "table" and res.close then res:close() end
  end
end
Pool.__close = Pool.close

---------------------------------------------------------------------------
-- A task group: the scope waits for its tasks; a failure cancels the rest.

--- Runs each function of `jobs` in a task of a group; returns their first
-- results in order. If one fails, the others are cancelled and a
-- TaskGroupError is raised.
function M.run_in_group(jobs)
  local results = {}
  do
    local tg <close> = async.task_group()
    for i, job in ipairs(jobs) do
      tg:spawn(function() results[i] = job() end)
    end
  end  -- waits here for every task
  return results
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

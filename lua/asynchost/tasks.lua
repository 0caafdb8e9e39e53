--- Combinators over tasks: gather, wait, as_completed, wait_for, timeout,
-- shield and task groups.  The hot paths (tasks, futures, gather's
-- bookkeeping) are C; this is composition.
--
-- Cancellation (docs/cancellation.md): task:cancel() raises CancelledError
-- at the task's await point and forwards the cancel to what it awaits.  A
-- CancelledError caught by pcall comes back at the next await until the
-- request is withdrawn with task:uncancel(), so scopes never wait forever.
local core = require "asynchost.core"
local math = require "math"
local errors = require "asynchost.errors"

local CancelledError, TimeoutError = errors.CancelledError, errors.TimeoutError
local TaskGroupError = errors.TaskGroupError
local await, spawn, Future = core.await, core.spawn, core.Future
local current_task = core.current_task
local pack, unpack = table.pack, table.unpack
-- Lua's own pcall: leaves the cancellation bookkeeping alone
local rawpcall = require("asynchost.core.coroutine").rawpcall
local check = require "asynchost.check"
local argerror, typename, running = check.argerror, check.typename, check.running

local M = {}

local function isfuture(x)
  local mt = getmetatable(x)
  return mt ~= nil and (mt.__name == "asynchost.Task"
                        or mt.__name == "asynchost.Future")
end
M.isfuture = isfuture

--- A task or future from x (a function is spawned).
local function awaitable(x, i, fname)
  if isfuture(x) then return x end
  if type(x) == "function" then return spawn(x) end
  argerror(i, fname, "task, future or function expected, got "
           .. typename(x), 3)
end

local function checkdelay(s, i, fname, optional)
  if s == nil and optional then return nil end
  if type(s) ~= "number" then
    argerror(i, fname, "number expected, got " .. typename(s), 3)
  end
  if not (s >= 0) then argerror(i, fname, "non-negative number expected", 3) end
  return s
end

---------------------------------------------------------------------------
-- gather

local function plain(x)
  return type(x) == "table" and not isfuture(x)
end

--- gather(a, b, ...), gather({a, b, ...}) with an optional last options
-- table {return_exceptions = true}: awaits all, returns their first
-- results as an array in input order (with field n).
function M.gather(...)
  local n = select("#", ...)
  local args = pack(...)
  local opts
  if n >= 2 and plain(args[n]) and args[n][1] == nil then
    opts = args[n]
    n = n - 1
  end
  local list = args
  if n == 1 and plain(args[1]) then
    list = args[1]
    n = #list
  end
  running("gather")
  return await(core.gather(list, n, opts and opts.return_exceptions))
end

---------------------------------------------------------------------------
-- timeout scopes and wait_for

--- Runs fn(...) in the current task; if it takes longer than `seconds`
-- it is cancelled and TimeoutError is raised.  Nestable.  seconds = nil
-- means no limit.
function M.timeout(seconds, fn, ...)
  checkdelay(seconds, 1, "timeout", true)
  if type(fn) ~= "function" then
    argerror(2, "timeout", "function expected, got " .. typename(fn), 2)
  end
  local task = running("timeout")
  if seconds == nil then return fn(...) end
  local base = task:cancelling()
  local expired = false
  local timer = core.call_later(seconds, function()
    expired = true
    task:cancel("timeout")
  end)
  local res = pack(rawpcall(fn, ...))
  timer:cancel()
  if expired then
    if task:uncancel() <= base and not res[1]
       and CancelledError:is(res[2]) then
      error(TimeoutError(("timed out after %g s"):format(seconds)), 0)
    end
  end
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, res.n)
end

--- Awaits x (task, future or function to spawn) for at most `seconds`:
-- on timeout x is cancelled, awaited to its end, and TimeoutError raised.
function M.wait_for(x, seconds)
  checkdelay(seconds, 2, "wait_for", true)
  running("wait_for")
  local t = awaitable(x, 1, "wait_for")
  if seconds == nil then return await(t) end
  local res = pack(rawpcall(M.timeout, seconds, await, t))
  if not res[1] and TimeoutError:is(res[2]) and not t:done() then
    -- the cancel was forwarded to t: let it finish its cleanup
    rawpcall(await, t)
  end
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, res.n)
end

---------------------------------------------------------------------------
-- wait and as_completed

local conditions = {ALL_COMPLETED = true, FIRST_COMPLETED = true,
                    FIRST_EXCEPTION = true}

local function failed(f)
  return f:done() and not f:cancelled() and f:exception() ~= nil
end

--- wait(list, {timeout = s, return_when = "ALL_COMPLETED" |
-- "FIRST_COMPLETED" | "FIRST_EXCEPTION"}) -> done, pending (arrays, in
-- input order).  Never raises the tasks' errors; never cancels them.
function M.wait(list, opts)
  if not plain(list) then
    argerror(1, "wait", "table of tasks expected, got " .. typename(list), 2)
  end
  if #list == 0 then argerror(1, "wait", "empty list of tasks", 2) end
  opts = opts or {}
  if not plain(opts) then
    argerror(2, "wait", "table expected, got " .. typename(opts), 2)
  end
  local when = opts.return_when or "ALL_COMPLETED"
  if not conditions[when] then
    argerror(2, "wait", "invalid return_when '" .. tostring(when) .. "'", 2)
  end
  checkdelay(opts.timeout, 2, "wait", true)
  running("wait")
  for i = 1, #list do
    if not isfuture(list[i]) and type(list[i]) ~= "function" then
      awaitable(list[i], i, "wait")  -- raises
    end
  end
  local items = {}
  for i = 1, #list do items[i] = awaitable(list[i], i, "wait") end
  local function satisfied()
    local ndone = 0
    for _, f in ipairs(items) do
      if f:done() then
        ndone = ndone + 1
        if when == "FIRST_COMPLETED" then return true end
        if when == "FIRST_EXCEPTION" and failed(f) then return true end
      end
    end
    return ndone == #items
  end
  if not satisfied() then
    local waiter = Future()
    local function check()
      if not waiter:done() and satisfied() then waiter:set_result() end
    end
    for _, f in ipairs(items) do f:add_done_callback(check) end
    local ok, err = rawpcall(M.timeout, opts.timeout, await, waiter)
    for _, f in ipairs(items) do f:remove_done_callback(check) end
    if not ok and not TimeoutError:is(err) then error(err, 0) end
  end
  local done, pending = {}, {}
  for _, f in ipairs(items) do
    local into = f:done() and done or pending
    into[#into + 1] = f
  end
  return done, pending
end

--- for t in as_completed(list, {timeout = s}) do ... end: yields each task
-- (or future) as it completes; raises TimeoutError if the deadline passes
-- first.
function M.as_completed(list, opts)
  if not plain(list) then
    argerror(1, "as_completed", "table of tasks expected, got "
             .. typename(list), 2)
  end
  opts = opts or {}
  if type(opts) ~= "table" then
    argerror(2, "as_completed", "table expected, got " .. typename(opts), 2)
  end
  checkdelay(opts.timeout, 2, "as_completed", true)
  for i = 1, #list do
    if not isfuture(list[i]) and type(list[i]) ~= "function" then
      awaitable(list[i], i, "as_completed")  -- raises
    end
  end
  local deadline = opts.timeout and core.loop_time() + opts.timeout
  local finished, head, tail, total, given = {}, 1, 0, #list, 0
  local waiter
  local function ondone(f)
    tail = tail + 1
    finished[tail] = f
    if waiter and not waiter:done() then waiter:set_result() end
  end
  for i = 1, total do
    awaitable(list[i], i, "as_completed"):add_done_callback(ondone)
  end
  return function()
    if given == total then return nil end
    running("as_completed")
    while finished[head] == nil do
      waiter = Future()
      local left = deadline and math.max(0, deadline - core.loop_time())
      local ok, err = rawpcall(M.timeout, left, await, waiter)
      if not ok then
        if TimeoutError:is(err) then
          error(TimeoutError(("as_completed timed out after %g s")
                             :format(opts.timeout)), 2)
        end
        error(err, 0)
      end
    end
    local f = finished[head]
    finished[head] = nil
    head, given = head + 1, given + 1
    return f
  end
end

---------------------------------------------------------------------------
-- shield

--- Awaits x, but cancelling the awaiting task does not cancel x.
function M.shield(x)
  running("shield")
  local inner = awaitable(x, 1, "shield")
  if inner:done() then return await(inner) end
  local outer = Future()
  inner:add_done_callback(function(f)
    if outer:done() then
      if not f:cancelled() then f:exception() end  -- retrieved: we saw it
      return
    end
    if f:cancelled() then outer:cancel()
    else
      local err = f:exception()
      if err ~= nil then outer:set_exception(err)
      else outer:set_result(f:result()) end
    end
  end)
  return await(outer)
end

---------------------------------------------------------------------------
-- task groups

local TaskGroup = {}
TaskGroup.__index = TaskGroup
TaskGroup.__name = "asynchost.TaskGroup"

--- local tg <close> = async.task_group(): tasks spawned with tg:spawn
-- are awaited when tg goes out of scope; the first failure cancels the
-- others and the body, and raises TaskGroupError with every error.
function M.task_group()
  local parent = running("task_group")
  return setmetatable({parent = parent, tasks = {}, errors = {},
                       pending = 0, aborting = false, exited = false},
                      TaskGroup)
end

function TaskGroup:_abort()
  if self.aborting then return end
  self.aborting = true
  for _, t in ipairs(self.tasks) do
    if not t:done() then t:cancel("task group aborted") end
  end
end

function TaskGroup:_ondone(t)
  self.pending = self.pending - 1
  if not t:cancelled() then
    local err = t:exception()
    if err ~= nil then
      self.errors[#self.errors + 1] = err
      if not self.aborting then
        self:_abort()
        if not self.exiting then  -- stop the body too
          self.cancelled_parent = true
          self.parent:cancel("task group failed")
        end
      end
    end
  end
  if self.pending == 0 and self.waiter and not self.waiter:done() then
    self.waiter:set_result()
  end
end

--- Spawns fn(...) in the group; returns the task.
function TaskGroup:spawn(fn, ...)
  if getmetatable(self) ~= TaskGroup then
    error("bad argument #1 to 'spawn' (task group expected)", 2)
  end
  if type(fn) ~= "function" then
    argerror(1, "spawn", "function expected, got " .. typename(fn), 2)
  end
  if self.exited then error("task group is closed", 2) end
  if self.aborting then error("task group is shutting down", 2) end
  local t = spawn(fn, ...)
  self.tasks[#self.tasks + 1] = t
  self.pending = self.pending + 1
  t:add_done_callback(function(task) self:_ondone(task) end)
  return t
end
TaskGroup.create_task = TaskGroup.spawn

--- Waits for every task of the group (what `<close>` calls).
-- If only the body failed, its error propagates as it is; if tasks failed
-- too, TaskGroupError holds them all, the body's error first.
function TaskGroup:__close(err)
  if self.exited then return end
  self.exiting = true
  local cancelled  -- a CancelledError to pass on, if we were cancelled
  if err ~= nil and not (CancelledError:is(err) and self.cancelled_parent) then
    if CancelledError:is(err) then cancelled = err end
    self:_abort()
  end
  while self.pending > 0 do
    self.waiter = Future()
    local ok, e = rawpcall(await, self.waiter)
    if not ok then  -- we were cancelled while waiting: stop the children
      if CancelledError:is(e) then cancelled = cancelled or e end
      self:_abort()
    end
  end
  self.exited = true
  if self.cancelled_parent then self.parent:uncancel() end
  if #self.errors > 0 then
    local errs = self.errors
    if err ~= nil and not CancelledError:is(err) then
      table.insert(errs, 1, err)
    end
    error(TaskGroupError{message = #errs == 1 and "1 task failed"
                         or (#errs .. " tasks failed"), errors = errs}, 0)
  end
  if cancelled and err == nil then error(cancelled, 0) end
end
TaskGroup.close = TaskGroup.__close

function TaskGroup:__tostring()
  return ("TaskGroup (%d tasks, %d pending)"):format(#self.tasks, self.pending)
end

return M

--- Condition and Barrier (asyncio.Condition and asyncio.Barrier), in Lua
-- over the C Lock and futures.  Every field of the table returned here is
-- merged into require "asynchost" by init.lua.
--
-- A condition keeps its waiters as a FIFO of futures, one per waiting task:
-- a task cancelled while it awaits its future cancels only that future.
-- wait() holds the lock again before it returns *or raises*, so the
-- caller's guard (local g <close> = cond:acquire()) releases it correctly;
-- a waiter that was notified but fails (cancelled before it ran) passes
-- its notification on to the next waiter, so none is lost.
local core = require "asynchost.core"
local csync = require "asynchost.core.sync"
local errors = require "asynchost.errors"
-- Lua's own pcall: leaves the cancellation bookkeeping alone
local rawpcall = require("asynchost.core.coroutine").rawpcall
local check = require "asynchost.check"
local typename, argerror, running = check.typename, check.argerror, check.running

local CancelledError = errors.CancelledError
local BrokenBarrierError = errors.BrokenBarrierError
local Future, await, current_task = core.Future, core.await, core.current_task
local Lock = csync.Lock

local M = {}

local function islock(x)
  local mt = getmetatable(x)
  return type(mt) == "table" and mt.__name == "asynchost.Lock"
end

---------------------------------------------------------------------------
-- Condition

local cond = {}  -- methods
local condmt = {__name = "asynchost.Condition", __index = cond}

local function checkcond(self, fname)
  if getmetatable(self) ~= condmt then
    argerror(1, fname, "Condition expected, got " .. typename(self), 3)
  end
end

--- async.Condition([lock]): a condition variable over `lock` (a Lock; a
-- new one by default).
function M.Condition(lock)
  if lock == nil then
    lock = Lock()
  elseif not islock(lock) then
    argerror(1, "Condition", "Lock expected, got " .. typename(lock), 2)
  end
  -- queue[head..tail] holds the waiting futures, with holes where a
  -- waiter left; slot[fut] is its index there; n counts them.
  return setmetatable({_lock = lock, _queue = {}, _slot = {},
                       _head = 1, _tail = 0, _n = 0}, condmt)
end

local function enqueue(self, fut)
  local i = self._tail + 1
  self._tail = i
  self._queue[i] = fut
  self._slot[fut] = i
  self._n = self._n + 1
end

local function removeat(self, i)
  local fut = self._queue[i]
  self._queue[i] = nil
  self._slot[fut] = nil
  self._n = self._n - 1
  if self._n == 0 then self._head, self._tail = 1, 0 end
end

--- Takes `fut` out of the queue, if it is still there.
local function dequeue(self, fut)
  local i = self._slot[fut]
  if i ~= nil then removeat(self, i) end
end

--- Wakes up to n waiters, oldest first (skipping futures cancelled along
-- with their task, which has yet to run and leave).
local function wake(self, n)
  while n > 0 and self._n > 0 do
    local i = self._head
    local fut = self._queue[i]
    if fut ~= nil then
      removeat(self, i)
      if not fut:done() then
        fut:set_result(true)
        n = n - 1
      end
    end
    if self._n > 0 then self._head = i + 1 end
  end
end

--- Acquires the lock (suspends while another task holds it); returns the
-- condition, whose __close releases: local g <close> = cond:acquire().
function cond:acquire()
  checkcond(self, "acquire")
  self._lock:acquire()
  return self
end

function cond:release()
  checkcond(self, "release")
  self._lock:release()
end

function cond:locked()
  checkcond(self, "locked")
  return self._lock:locked()
end

function condmt.__close(self)
  self._lock:release()
end

local function wait(self, fname, level)
  local lock = self._lock
  running(fname, level + 1)
  if not rawpcall(lock.release, lock) then  -- not held by this task
    error("cannot wait on an un-acquired lock", level + 1)
  end
  local fut = Future()
  enqueue(self, fut)
  local ok, err = rawpcall(await, fut)
  dequeue(self, fut)
  -- Hold the lock again, even when cancelled (while waiting here or in
  -- acquire): the caller's guard will release it.
  local cancelled
  while true do
    local got, e = rawpcall(lock.acquire, lock)
    if got then break end
    if not CancelledError:is(e) then  -- the lock is not held: give up
      ok, err = false, e
      break
    end
    cancelled = e
  end
  if ok and cancelled == nil then return true end
  if fut:done() and not fut:cancelled() then
    wake(self, 1)  -- we were notified but fail: pass it on
  end
  error(ok and cancelled or err, 0)
end

--- Releases the lock, suspends until notified, and acquires the lock
-- again before returning true (or raising: CancelledError comes with the
-- lock held).
function cond:wait()
  checkcond(self, "wait")
  wait(self, "wait", 2)  -- not a tail call: level 2 is our caller
  return true
end

--- Waits until predicate() returns a true value, and returns it.
function cond:wait_for(predicate)
  checkcond(self, "wait_for")
  local mt = getmetatable(predicate)
  if type(predicate) ~= "function"
     and not (type(mt) == "table" and mt.__call ~= nil) then
    argerror(1, "wait_for", "function expected, got " .. typename(predicate),
             2)
  end
  local result = predicate()
  while not result do
    wait(self, "wait_for", 2)
    result = predicate()
  end
  return result
end

local function checkcount(n, fname)
  if n == nil then return 1 end
  if type(n) ~= "number" then
    argerror(1, fname, "number expected, got " .. typename(n), 3)
  end
  local i = math.tointeger(n)
  if i == nil or i < 0 then
    argerror(1, fname, "non-negative integer expected", 3)
  end
  return i
end

--- Wakes up to n (default 1) of the waiting tasks, oldest first.  The
-- lock must be held.
function cond:notify(n)
  checkcond(self, "notify")
  n = checkcount(n, "notify")
  if not self._lock:owned() then
    error("cannot notify on an un-acquired lock", 2)
  end
  wake(self, n)
end

--- Wakes every waiting task.  The lock must be held.
function cond:notify_all()
  checkcond(self, "notify_all")
  if not self._lock:owned() then
    error("cannot notify on an un-acquired lock", 2)
  end
  wake(self, self._n)
end

local function nwaiting(self)
  local n = 0
  for fut in pairs(self._slot) do
    if not fut:done() then n = n + 1 end
  end
  return n
end

function condmt.__tostring(self)
  return ("Condition (%s, %d waiting)"):format(
    self._lock:locked() and "locked" or "unlocked", nwaiting(self))
end

---------------------------------------------------------------------------
-- Barrier
--
-- asyncio's state machine: "filling" while parties arrive; the last one
-- turns it "draining" and wakes them all; the last to leave turns it
-- "filling" again (tasks that arrive meanwhile wait for that).  reset()
-- makes it "resetting" (the waiters leave with BrokenBarrierError) until
-- the last has left; abort() or a party that fails while waiting makes it
-- "broken" until reset().  Its condition's lock is never held across a
-- suspension other than its wait(), so reset() and abort() need not take
-- it and never suspend.

local barrier = {}  -- methods
local barriermt = {__name = "asynchost.Barrier", __index = barrier}

local function checkbarrier(self, fname)
  if getmetatable(self) ~= barriermt then
    argerror(1, fname, "Barrier expected, got " .. typename(self), 3)
  end
end

--- async.Barrier(parties): `parties` (an integer >= 1) tasks meet there.
function M.Barrier(...)
  local parties = ...
  if type(parties) ~= "number" then
    argerror(1, "Barrier", "number expected, got "
             .. (select("#", ...) == 0 and "no value" or typename(parties)),
             2)
  end
  local p = math.tointeger(parties)
  if p == nil or p < 1 then
    argerror(1, "Barrier", "positive integer expected", 2)
  end
  return setmetatable({parties = p, _cond = M.Condition(),
                       _state = "filling", _count = 0}, barriermt)
end

local function notfilling(self)
  return function() return self._state ~= "filling" end
end

local function open(self)
  return function()
    return self._state ~= "draining" and self._state ~= "resetting"
  end
end

--- What the index-th party does once counted: trips the barrier, or
-- waits until it trips, is reset or broken.
local function arrive(self, index)
  local c = self._cond
  if index + 1 == self.parties then
    self._state = "draining"
    wake(c, c._n)
    return
  end
  local ok, err = rawpcall(c.wait_for, c, notfilling(self))
  if not ok then  -- cancelled: this party drops out (asyncio's rule), the
    error(err, 0) -- others keep waiting for a full set
  end
  if self._state == "broken" or self._state == "resetting" then
    error(BrokenBarrierError("barrier broken or reset while waiting"), 0)
  end
end

--- The last party to leave lets the next round (or waiting tasks) in.
local function leave(self)
  if self._count == 0 then
    if self._state == "draining" or self._state == "resetting" then
      self._state = "filling"
    end
    wake(self._cond, self._cond._n)
  end
end

--- Suspends until `parties` tasks wait, then releases them all; returns
-- this task's arrival index, 0 .. parties-1.
function barrier:wait()
  checkbarrier(self, "wait")
  running("wait", 2)
  local _ <close> = self._cond:acquire()
  self._cond:wait_for(open(self))  -- while the last round drains
  if self._state == "broken" then
    error(BrokenBarrierError("barrier is broken"), 0)
  end
  local index = self._count
  self._count = index + 1
  local ok, err = rawpcall(arrive, self, index)
  self._count = self._count - 1
  leave(self)
  if not ok then error(err, 0) end
  return index
end

--- Returns the barrier to its initial state: the tasks waiting get
-- BrokenBarrierError.
function barrier:reset()
  checkbarrier(self, "reset")
  self._state = self._count > 0 and "resetting" or "filling"
  wake(self._cond, self._cond._n)
end

--- Breaks the barrier: the tasks waiting, and those that call wait()
-- until reset(), get BrokenBarrierError.
function barrier:abort()
  checkbarrier(self, "abort")
  self._state = "broken"
  wake(self._cond, self._cond._n)
end

--- The number of tasks waiting for the barrier to trip.
function barrier:n_waiting()
  checkbarrier(self, "n_waiting")
  return self._state == "filling" and self._count or 0
end

function barrier:broken()
  checkbarrier(self, "broken")
  return self._state == "broken"
end

function barriermt.__tostring(self)
  local parties = self.parties == 1 and "1 party"
                  or (self.parties .. " parties")
  if self._state == "filling" then
    return ("Barrier (%s, %d waiting)"):format(parties, self._count)
  end
  return ("Barrier (%s, %s)"):format(parties, self._state)
end

return M

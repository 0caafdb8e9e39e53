local async = require "asynchost"
require "asynchost.busted"

-- Spawns fn(...) for each name, in order; returns the tasks.
local function spawnall(fn, names)
  local ts = {}
  for i, name in ipairs(names) do ts[i] = async.spawn(fn, name) end
  return ts
end

local function sorted(t)
  local c = {}
  for i, v in ipairs(t) do c[i] = v end
  table.sort(c)
  return c
end

describe("Condition", function()
  it("notify wakes one waiter at a time, oldest first", function()
    local cond = async.Condition()
    local log = {}
    local ts = spawnall(function(name)
      local _ <close> = cond:acquire()
      assert.is_true(cond:wait())
      log[#log + 1] = name
    end, {"a", "b", "c"})
    async.sleep(0.01)
    assert.equal("Condition (unlocked, 3 waiting)", tostring(cond))
    local expected = {}
    for _, name in ipairs{"a", "b", "c"} do
      do
        local _ <close> = cond:acquire()
        cond:notify()
      end
      async.sleep(0.01)
      expected[#expected + 1] = name
      assert.same(expected, log)
    end
    async.gather(ts)
  end)

  it("notify(n) wakes n waiters and notify_all the rest", function()
    local cond = async.Condition()
    local log = {}
    local ts = spawnall(function(name)
      local _ <close> = cond:acquire()
      cond:wait()
      log[#log + 1] = name
    end, {1, 2, 3, 4, 5})
    async.sleep(0.01)
    do
      local _ <close> = cond:acquire()
      cond:notify(2)
    end
    async.sleep(0.01)
    assert.same({1, 2}, log)
    do
      local _ <close> = cond:acquire()
      cond:notify(0)
    end
    async.sleep(0.01)
    assert.same({1, 2}, log)
    do
      local _ <close> = cond:acquire()
      cond:notify_all()
    end
    async.gather(ts)
    assert.same({1, 2, 3, 4, 5}, log)
  end)

  it("notify with nobody waiting is not remembered", function()
    local cond = async.Condition()
    do
      local _ <close> = cond:acquire()
      cond:notify()
      cond:notify_all()
    end
    local w = async.spawn(function()
      local _ <close> = cond:acquire()
      return cond:wait()
    end)
    async.sleep(0.02)
    assert.is_false(w:done())
    do
      local _ <close> = cond:acquire()
      cond:notify()
    end
    assert.is_true(async.await(w))
  end)

  it("wait releases the lock while waiting and holds it on return", function()
    local lock = async.Lock()
    local cond = async.Condition(lock)
    local returned, lockedafter = false, nil
    local w = async.spawn(function()
      local _ <close> = cond:acquire()
      local r = cond:wait()
      returned = true
      lockedafter = lock:locked()
      return r
    end)
    async.sleep(0.01)
    assert.is_false(lock:locked())       -- released by wait
    assert.is_false(cond:locked())
    local t0 = async.loop_time()
    do
      local _ <close> = cond:acquire()   -- free: no waiting
      assert.is_true(async.loop_time() - t0 < 0.005)
      assert.equal("Condition (locked, 1 waiting)", tostring(cond))
      cond:notify()
      async.sleep(0.02)                  -- w is notified but needs the lock
      assert.is_false(returned)
    end
    assert.is_true(async.await(w))
    assert.is_true(returned)
    assert.is_true(lockedafter)          -- held again when wait returned
    assert.is_false(lock:locked())       -- and released by w's guard
  end)

  it("wait_for returns the predicate's value once it holds", function()
    local cond = async.Condition()
    local items, calls = {}, 0
    local consumer = async.spawn(function()
      local _ <close> = cond:acquire()
      local n = cond:wait_for(function()
        calls = calls + 1
        return #items >= 3 and #items
      end)
      return n, table.concat(items, ",")
    end)
    for i = 1, 3 do
      async.sleep(0.01)
      local _ <close> = cond:acquire()
      items[#items + 1] = i
      cond:notify()
    end
    local n, got = async.await(consumer)
    assert.equal(3, n)              -- the value, not just true
    assert.equal("1,2,3", got)
    assert.equal(4, calls)          -- once at first, then once per notify
  end)

  it("works for producers and consumers", function()
    local cond = async.Condition()
    local queue, closed = {}, false
    local function consumer(name)
      local got = {}
      while true do
        local _ <close> = cond:acquire()
        cond:wait_for(function() return #queue > 0 or closed end)
        if #queue == 0 then break end
        got[#got + 1] = table.remove(queue, 1)
        async.sleep(0)              -- the lock is held meanwhile
      end
      return name, got
    end
    local c1, c2 = async.spawn(consumer, "c1"), async.spawn(consumer, "c2")
    for i = 1, 6 do
      local _ <close> = cond:acquire()
      queue[#queue + 1] = i
      cond:notify()
      if i % 2 == 0 then async.sleep(0.005) end
    end
    do
      local _ <close> = cond:acquire()
      closed = true
      cond:notify_all()
    end
    local _, got1 = async.await(c1)
    local _, got2 = async.await(c2)
    local all = {}
    for _, v in ipairs(got1) do all[#all + 1] = v end
    for _, v in ipairs(got2) do all[#all + 1] = v end
    assert.same({1, 2, 3, 4, 5, 6}, sorted(all))
    assert.same(sorted(got1), got1)  -- each takes them in order
    assert.same(sorted(got2), got2)
    assert.is_true(#got1 > 0 and #got2 > 0)
  end)

  it("raises when waiting or notifying without the lock", function()
    local cond = async.Condition()
    assert.has_error(function() cond:wait() end,
                     "cannot wait on an un-acquired lock")
    assert.has_error(function() cond:wait_for(function() return false end) end,
                     "cannot wait on an un-acquired lock")
    assert.has_error(function() cond:notify() end,
                     "cannot notify on an un-acquired lock")
    assert.has_error(function() cond:notify_all() end,
                     "cannot notify on an un-acquired lock")
    assert.has_error(function() cond:release() end,
                     "attempt to release an unlocked lock")
    assert.is_false(cond:locked())
    -- held by another task: wait refuses and leaves it to its holder
    local holder = async.spawn(function()
      local _ <close> = cond:acquire()
      async.sleep(0.03)
    end)
    async.sleep(0.01)
    assert.has_error(function() cond:wait() end,
                     "cannot wait on an un-acquired lock")
    assert.is_true(cond:locked())
    async.await(holder)             -- its guard released it without error
    assert.is_false(cond:locked())
  end)

  it("checks its arguments", function()
    assert.has_error(function() async.Condition("x") end,
      "bad argument #1 to 'Condition' (Lock expected, got string)")
    assert.has_error(function() async.Condition(async.Semaphore(1)) end,
      "bad argument #1 to 'Condition' (Lock expected, got asynchost.Semaphore)")
    local cond = async.Condition()
    local _ <close> = cond:acquire()
    assert.has_error(function() cond:notify(-1) end,
      "bad argument #1 to 'notify' (non-negative integer expected)")
    assert.has_error(function() cond:notify(1.5) end,
      "bad argument #1 to 'notify' (non-negative integer expected)")
    assert.has_error(function() cond:notify("2") end,
      "bad argument #1 to 'notify' (number expected, got string)")
    assert.has_error(function() cond:wait_for(nil) end,
      "bad argument #1 to 'wait_for' (function expected, got nil)")
    assert.has_error(function() cond.wait({}) end,
      "bad argument #1 to 'wait' (Condition expected, got table)")
  end)

  it("shares the lock it is given", function()
    local lock = async.Lock()
    local cond = async.Condition(lock)
    local w = async.spawn(function()
      local _ <close> = lock:acquire()
      return cond:wait()
    end)
    async.sleep(0.01)
    lock:acquire()
    assert.is_true(cond:locked())
    cond:notify()
    lock:release()
    assert.is_true(async.await(w))
    assert.is_false(cond:locked())
  end)

  it("a waiter cancelled while waiting holds the lock again before "
     .. "CancelledError propagates", function()
    local lock = async.Lock()
    local cond = async.Condition(lock)
    local inside     -- the task in the critical section, if any
    local probe = {}
    local w = async.spawn(function()
      local _ <close> = cond:acquire()
      local _p <close> = setmetatable({}, {__close = function(_, err)
        -- runs before the guard: the lock must be ours again
        probe.inside = inside
        probe.locked = lock:locked()
        probe.cancelled = async.CancelledError:is(err)
        probe.time = async.loop_time()
      end})
      cond:wait()
    end)
    async.sleep(0.01)
    local released
    do
      local _ <close> = cond:acquire()
      inside = "main"
      w:cancel()
      async.sleep(0.02)             -- w cannot take the lock meanwhile
      assert.is_nil(probe.time)
      inside = nil
      released = async.loop_time()
    end
    local ok, err = pcall(async.await, w)
    assert.is_false(ok)
    assert.is_true(async.CancelledError:is(err))  -- not a release error
    assert.is_true(w:cancelled())
    assert.is_true(probe.cancelled)
    assert.is_true(probe.locked)
    assert.is_nil(probe.inside)                   -- nobody else inside
    assert.is_true(probe.time >= released)
    assert.is_false(lock:locked())                -- w's guard released it
    assert.equal("Condition (unlocked, 0 waiting)", tostring(cond))
  end)

  it("a waiter cancelled again while it takes the lock back still holds "
     .. "it when the error propagates", function()
    local lock = async.Lock()
    local cond = async.Condition(lock)
    local lockedinclose
    local w = async.spawn(function()
      local _ <close> = cond:acquire()
      local _p <close> = setmetatable({}, {__close = function()
        lockedinclose = lock:locked()
      end})
      cond:wait()
    end)
    async.sleep(0.01)
    do
      local _ <close> = cond:acquire()
      w:cancel()
      async.sleep(0.01)             -- w now waits for the lock...
      assert.equal("Lock (locked, 1 waiting)", tostring(lock))
      w:cancel()                    -- ...and is cancelled there too
      async.sleep(0.01)
      assert.is_false(w:done())
      assert.equal("Lock (locked, 1 waiting)", tostring(lock))
    end
    local ok, err = pcall(async.await, w)
    assert.is_false(ok)
    assert.is_true(async.CancelledError:is(err))
    assert.is_true(lockedinclose)
    assert.is_false(lock:locked())
  end)

  it("a timeout around wait leaves the lock held", function()
    local cond = async.Condition()
    local _ <close> = cond:acquire()
    local ok, err = pcall(async.timeout, 0.02, cond.wait, cond)
    assert.is_false(ok)
    assert.is_true(async.TimeoutError:is(err))
    assert.is_true(cond:locked())
    cond:release()                  -- ours: no error
    assert.is_false(cond:locked())
    cond:acquire()                  -- for the guard
  end)

  it("a waiter notified then cancelled before it ran passes the "
     .. "notification on", function()
    local cond = async.Condition()
    local log = {}
    local ts = spawnall(function(name)
      local _ <close> = cond:acquire()
      cond:wait()
      log[#log + 1] = name
      return name
    end, {"a", "b", "c"})
    async.sleep(0.01)
    do
      local _ <close> = cond:acquire()
      cond:notify()                 -- a is woken...
      ts[1]:cancel()                -- ...and cancelled before it ran
    end
    local ok, err = pcall(async.await, ts[1])
    assert.is_false(ok)
    assert.is_true(async.CancelledError:is(err))
    assert.equal("b", async.wait_for(ts[2], 1))  -- got a's notification
    assert.same({"b"}, log)
    async.sleep(0.01)
    assert.is_false(ts[3]:done())   -- one notification, one waiter
    assert.equal("Condition (unlocked, 1 waiting)", tostring(cond))
    do
      local _ <close> = cond:acquire()
      cond:notify()
    end
    assert.equal("c", async.await(ts[3]))
  end)
end)

describe("Barrier", function()
  it("releases its parties together, with indices 0 .. parties-1", function()
    local b = async.Barrier(3)
    assert.equal(3, b.parties)
    local arrived, released, index = {}, {}, {}
    local ts = {}
    for i = 1, 3 do
      ts[i] = async.spawn(function()
        async.sleep(0.02 * (i - 1))
        arrived[i] = async.loop_time()
        index[i] = b:wait()
        released[i] = async.loop_time()
      end)
    end
    async.sleep(0.03)
    assert.equal(2, b:n_waiting())
    assert.equal("Barrier (3 parties, 2 waiting)", tostring(b))
    assert.is_nil(released[1])
    async.gather(ts)
    assert.same({0, 1, 2}, sorted(index))
    assert.same({0, 1, 2}, index)   -- in order of arrival
    local first, last = math.huge, -math.huge
    for i = 1, 3 do
      assert.is_true(released[i] >= arrived[3])
      first, last = math.min(first, released[i]), math.max(last, released[i])
    end
    assert.is_true(last - first < 0.01)
    assert.equal(0, b:n_waiting())
    assert.is_false(b:broken())
  end)

  it("is cyclic", function()
    local b = async.Barrier(3)
    local rounds = {{}, {}}
    local times = {{}, {}}
    local ts = {}
    for i = 1, 3 do
      ts[i] = async.spawn(function()
        for r = 1, 2 do
          async.sleep(0.01 * i)
          local idx = b:wait()
          rounds[r][#rounds[r] + 1] = idx
          times[r][#times[r] + 1] = async.loop_time()
        end
      end)
    end
    async.gather(ts)
    assert.same({0, 1, 2}, sorted(rounds[1]))
    assert.same({0, 1, 2}, sorted(rounds[2]))
    assert.is_true(math.min(table.unpack(times[2]))
                   > math.max(table.unpack(times[1])) + 0.02)
    assert.equal("Barrier (3 parties, 0 waiting)", tostring(b))
  end)

  it("holds back a party of the next round until the last one has left",
     function()
    local b = async.Barrier(2)
    local log = {}
    local a = async.spawn(function()
      b:wait(); log[#log + 1] = "a1"
      b:wait(); log[#log + 1] = "a2"
    end)
    local c = async.spawn(function()
      b:wait(); log[#log + 1] = "c1"
      async.sleep(0.01)
      b:wait(); log[#log + 1] = "c2"
    end)
    async.gather(a, c)
    assert.equal("c1", log[1])      -- c arrived last and went on first
    assert.equal("a1", log[2])
    assert.same({"a2", "c2"}, sorted({log[3], log[4]}))
  end)

  it("reset gives the waiters BrokenBarrierError and can be used again",
     function()
    local b = async.Barrier(3)
    local ts = {async.spawn(b.wait, b), async.spawn(b.wait, b)}
    async.sleep(0.01)
    assert.equal(2, b:n_waiting())
    b:reset()
    for i = 1, 2 do
      local ok, err = pcall(async.await, ts[i])
      assert.is_false(ok)
      assert.is_true(async.BrokenBarrierError:is(err))
    end
    assert.is_false(b:broken())
    assert.equal(0, b:n_waiting())
    local r = async.gather(function() return b:wait() end,
                           function() return b:wait() end,
                           function() return b:wait() end)
    assert.same({0, 1, 2}, sorted({r[1], r[2], r[3]}))
  end)

  it("abort breaks it for present and future waiters until reset",
     function()
    local b = async.Barrier(2)
    local w = async.spawn(b.wait, b)
    async.sleep(0.01)
    b:abort()
    assert.is_true(b:broken())
    assert.equal("Barrier (2 parties, broken)", tostring(b))
    local ok, err = pcall(async.await, w)
    assert.is_false(ok)
    assert.is_true(async.BrokenBarrierError:is(err))
    ok, err = pcall(b.wait, b)
    assert.is_false(ok)
    assert.is_true(async.BrokenBarrierError:is(err))
    b:reset()
    assert.is_false(b:broken())
    local r = async.gather(function() return b:wait() end,
                           function() return b:wait() end)
    assert.same({0, 1}, sorted({r[1], r[2]}))
  end)

  it("a waiter cancelled while waiting drops out; the barrier stays usable",
     function()
    local b = async.Barrier(3)
    local x = async.spawn(b.wait, b)
    local y = async.spawn(b.wait, b)
    async.sleep(0.01)
    x:cancel()
    local ok, err = pcall(async.await, x)
    assert.is_false(ok)
    assert.is_true(async.CancelledError:is(err))
    assert.is_false(b:broken())
    assert.equal(1, b:n_waiting())
    local r = async.gather(function() return b:wait() end,
                           function() return b:wait() end)
    local iy = async.await(y)  -- released with the two newcomers
    for _, i in ipairs{iy, r[1], r[2]} do
      assert.is_true(i >= 0 and i <= 2, "index " .. tostring(i))
    end
    assert.equal(0, b:n_waiting())
  end)

  it("notify by a task that does not hold the lock is refused", function()
    local c = async.Condition()
    local holder = async.spawn(function()
      local _ <close> = c:acquire()
      async.sleep(0.03)
    end)
    async.sleep(0.01)
    assert.is_true(c:locked())
    assert.has_error(function() c:notify() end,
                     "cannot notify on an un-acquired lock")
    async.await(holder)
  end)

  it("a party cancelled after the barrier tripped does not break it",
     function()
    local b = async.Barrier(2)
    local x = async.spawn(b.wait, b)
    async.sleep(0.01)
    assert.equal(1, b:wait())       -- trips it: x is released...
    x:cancel()                      -- ...and cancelled before it ran
    local ok, err = pcall(async.await, x)
    assert.is_false(ok)
    assert.is_true(async.CancelledError:is(err))
    assert.is_false(b:broken())
    assert.equal("Barrier (2 parties, 0 waiting)", tostring(b))
    local r = async.gather(function() return b:wait() end,
                           function() return b:wait() end)
    assert.same({0, 1}, sorted({r[1], r[2]}))
  end)

  it("checks its arguments", function()
    assert.has_error(function() async.Barrier(0) end,
      "bad argument #1 to 'Barrier' (positive integer expected)")
    assert.has_error(function() async.Barrier(1.5) end,
      "bad argument #1 to 'Barrier' (positive integer expected)")
    assert.has_error(function() async.Barrier("3") end,
      "bad argument #1 to 'Barrier' (number expected, got string)")
    assert.has_error(function() async.Barrier() end,
      "bad argument #1 to 'Barrier' (number expected, got no value)")
    assert.equal(2, async.Barrier(2.0).parties)
    assert.has_error(function() async.Barrier(1).wait({}) end,
      "bad argument #1 to 'wait' (Barrier expected, got table)")
  end)

  it("with one party, never waits", function()
    local b = async.Barrier(1)
    assert.equal(0, b:wait())
    assert.equal(0, b:wait())
    assert.equal("Barrier (1 party, 0 waiting)", tostring(b))
  end)
end)

local async = require "asynchost"
require "asynchost.busted"

describe("Semaphore", function()
  it("limits concurrency and serves waiters FIFO", function()
    local sem = async.Semaphore(2)
    local inside, peak, order = 0, 0, {}
    local ts = {}
    for i = 1, 6 do
      ts[i] = async.spawn(function()
        local _ <close> = sem:acquire()
        order[#order + 1] = i
        inside = inside + 1
        peak = math.max(peak, inside)
        async.sleep(0.01)
        inside = inside - 1
      end)
    end
    async.gather(ts)
    assert.equal(2, peak)
    assert.same({1, 2, 3, 4, 5, 6}, order)
    assert.equal(2, sem:value())
  end)

  it("acquire without waiting when free; locked() tells", function()
    local sem = async.Semaphore(1)
    assert.is_false(sem:locked())
    local g = sem:acquire()
    assert.equal(sem, g)
    assert.is_true(sem:locked())
    sem:release()
    assert.is_false(sem:locked())
  end)

  it("a waiter cancelled while queued gives up its place", function()
    local sem = async.Semaphore(0)
    local a = async.spawn(function() return sem:acquire() end)
    local b = async.spawn(function() sem:acquire(); return "b" end)
    async.sleep(0.01)
    a:cancel()
    pcall(async.await, a)
    sem:release()
    assert.equal("b", async.await(b))
    assert.equal(0, sem:value())
  end)

  it("checks its arguments", function()
    assert.has_error(function() async.Semaphore(-1) end,
      "bad argument #1 to 'Semaphore' (non-negative integer expected)")
    assert.has_error(function() async.Semaphore("x") end)
  end)
end)

describe("BoundedSemaphore", function()
  it("refuses to be released too often", function()
    local sem = async.BoundedSemaphore(1)
    local g = sem:acquire()
    sem:release()
    assert.has_error(function() sem:release() end,
                     "BoundedSemaphore released too many times")
    assert.equal(sem, g)
  end)
end)

describe("Lock", function()
  it("is exclusive and FIFO", function()
    local lock = async.Lock()
    local log = {}
    local function worker(name)
      local _ <close> = lock:acquire()
      log[#log + 1] = name .. "+"
      async.sleep(0.01)
      log[#log + 1] = name .. "-"
    end
    async.gather(async.spawn(worker, "a"), async.spawn(worker, "b"))
    assert.same({"a+", "a-", "b+", "b-"}, log)
  end)

  it("can only be released by its holder", function()
    local lock = async.Lock()
    local holder = async.spawn(function() lock:acquire(); async.sleep(0.05); lock:release() end)
    async.sleep(0.01)
    assert.has_error(function() lock:release() end,
                     "lock released by a task that does not hold it")
    async.await(holder)
    assert.has_error(function() lock:release() end,
                     "attempt to release an unlocked lock")
  end)

  it("is not reentrant", function()
    local lock = async.Lock()
    local _ <close> = lock:acquire()
    assert.has_error(function() lock:acquire() end,
      "lock is already held by this task (locks are not reentrant)")
  end)
end)

describe("Event", function()
  it("wakes every waiter when set", function()
    local ev = async.Event()
    local woke = 0
    local ts = {}
    for i = 1, 3 do ts[i] = async.spawn(function() ev:wait(); woke = woke + 1 end) end
    async.sleep(0.01)
    assert.equal(0, woke)
    assert.is_false(ev:is_set())
    ev:set()
    async.gather(ts)
    assert.equal(3, woke)
    assert.is_true(ev:wait())  -- set: returns at once
    ev:clear()
    assert.is_false(ev:is_set())
  end)
end)

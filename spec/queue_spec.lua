local async = require "asynchost"
require "asynchost.busted"
local errclass = require("spec.helpers").errclass

describe("Queue", function()
  it("is first in, first out, and reports its size", function()
    local q = async.Queue()
    assert.is_true(q:empty())
    for i = 1, 5 do q:put(i) end
    assert.equal(5, q:qsize())
    assert.equal(5, #q)
    assert.is_false(q:full())  -- unbounded
    assert.equal(0, q:maxsize())
    local got = {}
    for i = 1, 5 do got[i] = q:get() end
    assert.same({1, 2, 3, 4, 5}, got)
  end)

  it("keeps the order when an unbounded ring grows while wrapped", function()
    local q, got = async.Queue(), {}
    for i = 1, 10 do q:put(i) end
    for _ = 1, 7 do got[#got + 1] = q:get() end  -- head moves on
    for i = 11, 1000 do q:put(i) end              -- grows while wrapped
    while not q:empty() do got[#got + 1] = q:get_nowait() end
    assert.equal(1000, #got)
    for i = 1, 1000 do assert.equal(i, got[i]) end
  end)

  it("keeps the order through many wrap-arounds, small and large", function()
    for _, maxsize in ipairs{3, 4096, 5000} do  -- user-value ring, table ring
      local q, N = async.Queue(maxsize), 3 * maxsize + 7
      local got = {}
      local p = async.spawn(function() for i = 1, N do q:put(i) end end)
      local c = async.spawn(function()
        for _ = 1, N do got[#got + 1] = q:get() end
      end)
      async.gather(p, c)
      assert.equal(N, #got)
      for i = 1, N do assert.equal(i, got[i]) end
      assert.is_true(q:empty())
    end
  end)

  it("put waits while full, get while empty", function()
    local q = async.Queue(2)
    q:put("a"); q:put("b")
    assert.is_true(q:full())
    local putter = async.spawn(function() q:put("c"); return "put" end)
    async.sleep(0.01)
    assert.is_false(putter:done())
    assert.equal("a", q:get())
    assert.equal("put", async.await(putter))
    assert.same({"b", "c"}, {q:get(), q:get()})
    local getter = async.spawn(function() return q:get() end)
    async.sleep(0.01)
    assert.is_false(getter:done())
    q:put("d")
    assert.equal("d", async.await(getter))
  end)

  it("put_nowait and get_nowait raise QueueFull and QueueEmpty", function()
    local q = async.Queue(1)
    errclass(async.QueueEmpty, q.get_nowait, q)
    q:put_nowait(1)
    local err = errclass(async.QueueFull, q.put_nowait, q, 2)
    assert.equal("QueueFull: queue is full", tostring(err))
    assert.equal(1, q:get_nowait())
  end)

  it("serves waiting getters and putters in order", function()
    local q = async.Queue(1)
    local order = {}
    local getters = {}
    for i = 1, 3 do
      getters[i] = async.spawn(function() local v = q:get(); order[#order + 1] = i .. v end)
    end
    async.sleep(0.01)
    for _, v in ipairs{"x", "y", "z"} do q:put(v) end
    async.gather(getters)
    assert.same({"1x", "2y", "3z"}, order)
    q:put("full")
    local putters = {}
    for i = 1, 3 do putters[i] = async.spawn(q.put, q, i) end
    async.sleep(0.01)
    local got = {}
    for _ = 1, 4 do got[#got + 1] = q:get() end
    async.gather(putters)
    assert.same({"full", 1, 2, 3}, got)
  end)

  it("a new get() cannot take an item reserved for a woken getter", function()
    local q = async.Queue()
    local first = async.spawn(function() return q:get() end)
    async.sleep(0.01)
    q:put("for first")          -- wakes 'first'; the item is reserved
    errclass(async.QueueEmpty, q.get_nowait, q)
    local late = async.spawn(function() return q:get() end)
    assert.equal("for first", async.await(first))
    q:put("for late")
    assert.equal("for late", async.await(late))
  end)

  it("a getter cancelled while the item was handed to it loses nothing", function()
    local q = async.Queue()
    local a = async.spawn(function() return q:get() end)
    local b = async.spawn(function() return q:get() end)
    async.sleep(0.01)
    q:put("item")   -- wakes a
    a:cancel()      -- before a ran
    errclass(async.CancelledError, async.await, a)
    assert.equal("item", async.await(b))  -- the item went to the next getter
    assert.equal(0, q:qsize())
  end)

  it("the item stays in the queue when no other getter waits", function()
    local q = async.Queue()
    local a = async.spawn(function() return q:get() end)
    async.sleep(0.01)
    q:put("kept")
    a:cancel()
    errclass(async.CancelledError, async.await, a)
    assert.equal(1, q:qsize())
    assert.equal("kept", q:get_nowait())
  end)

  it("a putter cancelled when its slot came free puts nothing and passes the slot on", function()
    local q = async.Queue(1)
    q:put(0)
    local a = async.spawn(q.put, q, "a")
    local b = async.spawn(q.put, q, "b")
    async.sleep(0.01)
    assert.equal(0, q:get())  -- frees a slot: wakes a
    a:cancel()
    errclass(async.CancelledError, async.await, a)
    async.await(b)
    assert.equal("b", q:get())
    assert.is_true(q:empty())
  end)

  it("a waiter cancelled while waiting gives up its place", function()
    local q = async.Queue()
    local a = async.spawn(function() return q:get() end)
    local b = async.spawn(function() return q:get() end)
    async.sleep(0.01)
    a:cancel()
    errclass(async.CancelledError, async.await, a)
    q:put(1)
    assert.equal(1, async.await(b))
  end)

  it("task_done and join", function()
    local q = async.Queue()
    for i = 1, 3 do q:put(i) end
    local joined = false
    local joiner = async.spawn(function() q:join(); joined = true end)
    local worker = async.spawn(function()
      for _ = 1, 3 do q:get(); async.sleep(0.01); q:task_done() end
    end)
    async.sleep(0.015)
    assert.is_false(joined)
    async.gather(worker, joiner)
    assert.is_true(joined)
    q:join()  -- nothing unfinished: returns at once
    assert.has_error(function() q:task_done() end, "task_done() called too many times")
  end)

  it("shutdown: puts raise, gets drain then raise", function()
    local q = async.Queue()
    q:put(1); q:put(2)
    local waiting_putter_q = async.Queue(1)
    waiting_putter_q:put("x")
    local putter = async.spawn(waiting_putter_q.put, waiting_putter_q, "y")
    async.sleep(0.01)
    waiting_putter_q:shutdown()
    errclass(async.QueueShutDown, async.await, putter)
    q:shutdown()
    assert.is_true(q:is_shutdown())
    errclass(async.QueueShutDown, q.put, q, 3)
    assert.equal(1, q:get())
    assert.equal(2, q:get())
    errclass(async.QueueShutDown, q.get, q)
  end)

  it("shutdown wakes waiting getters; immediate drops the items and ends join", function()
    local q = async.Queue()
    local getter = async.spawn(function() return q:get() end)
    async.sleep(0.01)
    q:shutdown()
    errclass(async.QueueShutDown, async.await, getter)
    local q2 = async.Queue()
    q2:put("a"); q2:put("b")
    local joiner = async.spawn(q2.join, q2)
    async.sleep(0.01)
    q2:shutdown(true)
    async.await(joiner)
    assert.is_true(q2:empty())
    errclass(async.QueueShutDown, q2.get_nowait, q2)
  end)

  it("moves 100,000 items between a producer and a consumer", function()
    local q, N = async.Queue(100), 100000
    local p = async.spawn(function() for i = 1, N do q:put(i) end end)
    local sum = 0
    local c = async.spawn(function() for _ = 1, N do sum = sum + q:get() end end)
    async.gather(p, c)
    assert.equal(N * (N + 1) // 2, sum)
  end)

  it("checks its arguments", function()
    assert.has_error(function() async.Queue("big") end)
    local q = async.Queue()
    assert.has_error(function() q:put() end, "bad argument #1 to 'put' (value expected)")
    assert.has_error(function() q.get({}) end)
    assert.matches("Queue %(0 items, 0 getters, 0 putters waiting%)", tostring(q))
  end)
end)

describe("LifoQueue", function()
  it("is last in, first out", function()
    local q = async.LifoQueue()
    for i = 1, 3 do q:put(i) end
    assert.same({3, 2, 1}, {q:get(), q:get(), q:get()})
  end)
end)

describe("PriorityQueue", function()
  it("gives the lowest priority first, equal ones in arrival order", function()
    local q = async.PriorityQueue()
    q:put("e", 5); q:put("a1", 1); q:put("d", 4); q:put("a2", 1); q:put("c", 3)
    q:put("a3", 1)
    local got = {}
    while not q:empty() do got[#got + 1] = q:get() end
    assert.same({"a1", "a2", "a3", "c", "d", "e"}, got)
  end)

  it("uses the item as its own priority and returns the priority too", function()
    local q = async.PriorityQueue()
    for _, v in ipairs{30, 10, 20} do q:put(v) end
    local v, p = q:get()
    assert.equal(10, v)
    assert.equal(10, p)
    local words = async.PriorityQueue()
    for _, w in ipairs{"pear", "apple", "fig"} do words:put(w) end
    local w1, w2, w3 = words:get(), words:get(), (words:get())
    assert.same({"apple", "fig", "pear"}, {w1, w2, w3})
  end)

  it("stays a heap over many random priorities", function()
    local q, N = async.PriorityQueue(), 2000
    math.randomseed(7)
    for i = 1, N do q:put(i, math.random(1, 100)) end
    local last, lastseq = -1, 0
    for _ = 1, N do
      local item, p = q:get()
      assert.is_true(p >= last)
      if p == last then assert.is_true(item > lastseq) end
      last, lastseq = p, item
    end
  end)

  it("refuses priorities that cannot be ordered, storing nothing", function()
    local q = async.PriorityQueue()
    assert.has_error(function() q:put("x", {}) end)
    assert.equal(0, q:qsize())
    q:put("one", 1)
    assert.has_error(function() q:put("s", "a string among numbers") end)
    assert.equal(1, q:qsize())
    q:put("zero", 0)
    assert.same({"zero", "one"}, {(q:get()), (q:get())})
  end)
end)

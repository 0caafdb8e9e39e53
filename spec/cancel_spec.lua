local async = require "asynchost"
require "asynchost.busted"

local CancelledError = async.CancelledError

describe("cancellation", function()
  it("raises CancelledError at the await point", function()
    local caught
    local t = async.spawn(function()
      local ok, err = pcall(async.sleep, 10)
      caught = err
      error(err, 0)  -- re-raise: the task ends cancelled
    end)
    async.sleep(0.01)
    assert.is_true(t:cancel("enough"))
    local ok, err = pcall(async.await, t)
    assert.is_false(ok)
    assert.is_true(CancelledError:is(err))
    assert.is_true(CancelledError:is(caught))
    assert.equal("enough", caught.message)
    assert.equal("CancelledError: enough", tostring(caught))
    assert.is_true(t:cancelled())
    assert.is_false(t:cancel())  -- already done
  end)

  it("lets <close> handlers and cleanup await", function()
    local log = {}
    local t = async.spawn(function()
      local _ <close> = setmetatable({}, {__close = function(_, err)
        async.sleep(0.01)
        log[#log + 1] = CancelledError:is(err) and "closed on cancel" or "?"
      end})
      async.sleep(10)
    end)
    async.sleep(0.01)
    t:cancel()
    pcall(async.await, t)
    assert.same({"closed on cancel"}, log)
  end)

  it("a task cancelled before it starts never runs", function()
    local ran = false
    local t = async.spawn(function() ran = true end)
    t:cancel()
    pcall(async.await, t)
    assert.is_false(ran)
    assert.is_true(t:cancelled())
  end)

  it("propagates to the task being awaited", function()
    local child = async.spawn(async.sleep, 10)
    local parent = async.spawn(async.await, child)
    async.sleep(0.01)
    parent:cancel()
    pcall(async.await, parent)
    async.sleep(0)
    assert.is_true(parent:cancelled())
    assert.is_true(child:cancelled())
  end)

  it("cancelling a task waiting in gather cancels the children", function()
    local a = async.spawn(async.sleep, 10)
    local b = async.spawn(async.sleep, 10)
    local parent = async.spawn(async.gather, a, b)
    async.sleep(0.01)
    parent:cancel()
    pcall(async.await, parent)
    async.sleep(0)
    assert.is_true(a:cancelled() and b:cancelled())
  end)

  it("cancelling a task waiting in wait_for cancels the inner task", function()
    local inner = async.spawn(async.sleep, 10)
    local parent = async.spawn(async.wait_for, inner, 5)
    async.sleep(0.01)
    parent:cancel()
    pcall(async.await, parent)
    async.sleep(0)
    assert.is_true(inner:cancelled())
  end)

  it("shield protects its inner task", function()
    local inner = async.spawn(function() async.sleep(0.03); return "kept" end)
    local parent = async.spawn(async.shield, inner)
    async.sleep(0.01)
    parent:cancel()
    assert.has_error(function() async.await(parent) end)
    assert.is_false(inner:done())
    assert.equal("kept", async.await(inner))
  end)

  it("a swallowed cancellation comes back at the next await", function()
    local reached = {}
    local t = async.spawn(function()
      pcall(async.sleep, 10)       -- swallows the CancelledError
      reached[#reached + 1] = "after swallow"
      async.sleep(10)              -- raises it again
      reached[#reached + 1] = "never"
    end)
    async.sleep(0.01)
    t:cancel()
    local t0 = async.loop_time()
    pcall(async.await, t)
    assert.is_true(async.loop_time() - t0 < 0.5)
    assert.same({"after swallow"}, reached)
    assert.is_true(t:cancelled())
  end)

  it("catching and re-raising lets the cleanup further up await", function()
    local cleaned = false
    local t = async.spawn(function()
      local _ <close> = setmetatable({}, {__close = function()
        async.sleep(0.01)
        cleaned = true
      end})
      local ok, err = pcall(async.sleep, 10)
      if not ok then error(err, 0) end  -- the usual rethrow
    end)
    async.sleep(0.01)
    t:cancel()
    assert.has_error(function() async.await(t) end)
    assert.is_true(t:cancelled())
    assert.is_true(cleaned)
  end)

  it("uncancel withdraws the request so the task can go on", function()
    local t = async.spawn(function()
      local ok = pcall(async.sleep, 10)
      assert(not ok)
      assert(async.current_task():cancelling() == 1)
      async.current_task():uncancel()
      async.sleep(0.01)
      return "recovered"
    end)
    async.sleep(0.01)
    t:cancel()
    assert.equal("recovered", async.await(t))
  end)

  it("a pcall that swallows cannot make a timeout hang", function()
    local t0 = async.loop_time()
    local ok, err = pcall(async.timeout, 0.05, function()
      pcall(async.sleep, 10)
      async.sleep(10)
    end)
    assert.is_false(ok)
    assert.is_true(async.TimeoutError:is(err))
    assert.is_true(async.loop_time() - t0 < 0.5)
  end)

  it("a pcall that swallows cannot make a task group hang", function()
    local t0 = async.loop_time()
    local ok, err = pcall(function()
      local tg <close> = async.task_group()
      tg:spawn(function() async.sleep(0.02); error("fail fast") end)
      tg:spawn(function() pcall(async.sleep, 10); async.sleep(10) end)
    end)
    assert.is_false(ok)
    assert.is_true(async.TaskGroupError:is(err))
    assert.is_true(async.loop_time() - t0 < 0.5)
  end)

  it("a waiter woken then cancelled before it ran passes its permit on", function()
    local sem = async.Semaphore(0)
    local got = {}
    local function waiter(name)
      local g <close> = sem:acquire()
      got[#got + 1] = name
    end
    local a = async.spawn(waiter, "a")
    local b = async.spawn(waiter, "b")
    async.sleep(0.01)
    sem:release()   -- hands the permit to a (a is now ready)
    a:cancel()      -- before a ran
    local ok, err = pcall(async.await, a)
    assert.is_false(ok)
    assert.is_true(async.CancelledError:is(err))
    async.await(b)  -- b got the permit a could not use
    assert.same({"b"}, got)
    assert.equal(1, sem:value())  -- and gave it back
  end)

  it("a task woken by a future then cancelled raises; the result stays", function()
    local f = async.Future()
    local t = async.spawn(function() return async.await(f) end)
    async.sleep(0.01)
    f:set_result("value")
    t:cancel()
    local ok, err = pcall(async.await, t)
    assert.is_false(ok)
    assert.is_true(async.CancelledError:is(err))
    assert.equal("value", async.await(f))
  end)
end)

local async = require "asynchost"
require "asynchost.busted"

describe("awaits inside user coroutines", function()
  it("suspend the task, not the user coroutine", function()
    local gen = coroutine.wrap(function()
      for i = 1, 3 do
        async.sleep(0.01)
        coroutine.yield(i)
      end
    end)
    local t0 = async.loop_time()
    assert.same({1, 2, 3}, {gen(), gen(), gen()})
    assert.is_true(async.loop_time() - t0 >= 0.03)
  end)

  it("let other tasks run meanwhile", function()
    local ticks = 0
    local ticker = async.spawn(function()
      for _ = 1, 5 do async.sleep(0.005); ticks = ticks + 1 end
    end)
    local co = coroutine.create(function() async.sleep(0.04); return "done" end)
    assert.same({true, "done"}, {coroutine.resume(co)})
    assert.equal(5, ticks)
    async.await(ticker)
  end)

  it("work through nested coroutines and pass values through", function()
    local outer = coroutine.wrap(function(a)
      local inner = coroutine.wrap(function(b)
        async.sleep(0.01)
        local c = coroutine.yield(b * 2)
        async.sleep(0.01)
        return c + 1
      end)
      local x = inner(a)
      local y = coroutine.yield(x)
      return inner(y)
    end)
    assert.equal(10, outer(5))
    assert.equal(8, outer(7))
  end)

  it("keep coroutine.status honest", function()
    local co
    co = coroutine.create(function()
      assert.equal("running", coroutine.status(co))
      async.sleep(0.02)
      coroutine.yield()
    end)
    local t = async.spawn(function() return coroutine.resume(co) end)
    async.sleep(0.01)  -- co is inside its sleep, the task waits
    assert.equal("normal", coroutine.status(co))
    local ok, err = coroutine.resume(co)
    assert.is_false(ok)
    assert.equal("cannot resume non-suspended coroutine", err)
    assert.is_true(async.await(t))
    assert.equal("suspended", coroutine.status(co))
    coroutine.resume(co)
    assert.equal("dead", coroutine.status(co))
  end)

  it("coroutine.isyieldable and yield at the task's own level", function()
    assert.is_false(coroutine.isyieldable())
    assert.has_error(function() coroutine.yield(1) end,
                     "attempt to yield from outside a coroutine")
    local inside = coroutine.wrap(function() return coroutine.isyieldable() end)
    assert.is_true(inside())
    local co, ismain = coroutine.running()
    assert.equal("thread", type(co))
    assert.is_false(ismain)
  end)

  it("a task's coroutine cannot be resumed or closed by hand", function()
    local co
    local t = async.spawn(function() co = coroutine.running(); async.sleep(0.05) end)
    async.sleep(0.01)
    local ok, err = coroutine.resume(co)
    assert.is_false(ok)
    assert.matches("cannot resume a task's coroutine", err)
    assert.has_error(function() coroutine.close(co) end,
                     "cannot close a task's coroutine (use task:cancel())")
    async.await(t)
  end)

  it("wrap adds the position to string errors, like Lua", function()
    local f = coroutine.wrap(function() async.sleep(0); error("inner", 0) end)
    local ok, err = pcall(f)
    assert.is_false(ok)
    assert.matches("inner$", err)
  end)

  it("a generator closed early runs its cleanup", function()
    local cleaned = false
    local co = coroutine.create(function()
      local _ <close> = setmetatable({}, {__close = function() cleaned = true end})
      for i = 1, 10 do async.sleep(0); coroutine.yield(i) end
    end)
    assert.same({true, 1}, {coroutine.resume(co)})
    assert.is_true(coroutine.close(co))
    assert.is_true(cleaned)
  end)
end)

describe("awaits that cannot be suspended", function()
  it("fail clearly and leave the task able to await again", function()
    local ok, err = pcall(table.sort, {3, 1, 2}, function(a, b)
      async.sleep(0.001)
      return a < b
    end)
    assert.is_false(ok)
    assert.matches("attempt to await across a C%-call boundary", err)
    local t0 = async.loop_time()
    async.sleep(0.01)  -- would hang if the failed wait had stayed registered
    assert.is_true(async.loop_time() - t0 >= 0.01)
  end)

  it("fail inside a user coroutine resumed from such a context", function()
    local ok, err = pcall(table.sort, {3, 1, 2}, function(a, b)
      return coroutine.wrap(function() async.sleep(0); return a < b end)()
    end)
    assert.is_false(ok)
    assert.matches("attempt to await across a C%-call boundary", err)
    async.sleep(0.01)
    async.sleep(0)
  end)
end)

describe("pcall and xpcall", function()
  it("behave as Lua's and may await", function()
    assert.same({true, 1, 2}, {pcall(function() async.sleep(0); return 1, 2 end)})
    assert.same({false, "e"}, {pcall(error, "e", 0)})
    local ok, msg = xpcall(function() async.sleep(0); error("x", 0) end,
                           function(m) return "handled " .. m end)
    assert.is_false(ok)
    assert.equal("handled x", msg)
    assert.same({true, 3}, {xpcall(function(a, b) return a + b end, print, 1, 2)})
  end)
end)

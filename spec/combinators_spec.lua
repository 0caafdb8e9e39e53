local async = require "asynchost"
require "asynchost.busted"

local function after(s, v, fail)
  return function()
    async.sleep(s)
    if fail then error(v, 0) end
    return v
  end
end

describe("gather", function()
  it("returns results in input order, from varargs or one array", function()
    local a = async.spawn(after(0.03, "a"))
    local b = async.spawn(after(0.01, "b"))
    assert.same({"a", "b", n = 2}, async.gather(a, b))
    assert.same({"x", "y", n = 2},
                async.gather({async.spawn(after(0.02, "x")), after(0.01, "y")}))
    assert.same({n = 0}, async.gather())
    assert.same({n = 0}, async.gather({}))
  end)

  it("takes futures and functions too", function()
    local f = async.Future()
    async.call_later(0.01, function() f:set_result("fut") end)
    assert.same({"fut", "fn", n = 2}, async.gather(f, after(0, "fn")))
  end)

  it("raises the first error; others keep running", function()
    local slow = async.spawn(after(0.03, "slow"))
    local ok, err = pcall(async.gather, after(0.01, "bad", true), slow)
    assert.is_false(ok)
    assert.equal("bad", err)
    assert.equal("slow", async.await(slow))
  end)

  it("return_exceptions puts errors in place of results", function()
    local r = async.gather(after(0.01, "ok"), after(0, "bad", true),
                           {return_exceptions = true})
    assert.same({"ok", "bad", n = 2}, r)
  end)

  it("rejects what cannot be awaited", function()
    assert.has_error(function() async.gather(1, 2) end,
      "bad argument #1 to 'gather' (task, future or function expected, got number)")
  end)

  it("handles many tasks", function()
    local ts = {}
    for i = 1, 10000 do ts[i] = async.spawn(function() async.sleep(0); return i end) end
    local r = async.gather(ts)
    local sum = 0
    for i = 1, r.n do sum = sum + r[i] end
    assert.equal(10000 * 10001 / 2, sum)
  end)

  it("a gather future cancelled itself raises CancelledError, not a child", function()
    local core = require "asynchost.core"
    local child = async.spawn(function() async.sleep(10) end)
    local fut = core.gather({child}, 1)
    async.sleep(0.01)
    fut:cancel("enough")
    local ok, err = pcall(async.await, fut)
    assert.is_false(ok)
    assert.is_true(async.CancelledError:is(err))
    assert.is_true(fut:cancelled())
    assert.is_true(pcall(async.await, child) == false and child:cancelled())
  end)

  it("lets each child go once done, and cancels only the pending ones", function()
    local inner = async.spawn(function() async.sleep(0.05); return "inner" end)
    local seen = setmetatable({}, {__mode = "k"})
    local g = async.spawn(function()
      return async.gather(function()
        seen[async.current_task()] = true
        return inner  -- a task as a result: not a child to cancel
      end, function() async.sleep(10) end)
    end)
    async.sleep(0.01)
    collectgarbage(); collectgarbage()
    assert.is_nil(next(seen))  -- the done child is gone, the gather waits on
    g:cancel()
    local ok, err = pcall(async.await, g)
    assert.is_false(ok)
    assert.is_true(async.CancelledError:is(err))
    assert.equal("inner", async.await(inner))
  end)
end)

describe("wait", function()
  it("ALL_COMPLETED waits for all, without raising", function()
    local a, b = async.spawn(after(0.01, 1)), async.spawn(after(0.02, 2, true))
    local done, pending = async.wait({a, b})
    assert.equal(2, #done)
    assert.equal(0, #pending)
    assert.equal(2, b:exception())
  end)

  it("FIRST_COMPLETED returns as soon as one is done", function()
    local a, b = async.spawn(after(0.01, 1)), async.spawn(after(1, 2))
    local done, pending = async.wait({a, b}, {return_when = "FIRST_COMPLETED"})
    assert.same({a}, done)
    assert.same({b}, pending)
    b:cancel()
  end)

  it("FIRST_EXCEPTION returns at the first failure", function()
    local a = async.spawn(after(0.01, "x", true))
    local b = async.spawn(after(1, 2))
    local done, pending = async.wait({a, b}, {return_when = "FIRST_EXCEPTION"})
    assert.same({a}, done)
    assert.same({b}, pending)
    assert.equal("x", a:exception())
    b:cancel()
  end)

  it("timeout returns what is done so far", function()
    local a, b = async.spawn(after(0.01, 1)), async.spawn(after(1, 2))
    local t0 = async.loop_time()
    local done, pending = async.wait({a, b}, {timeout = 0.05})
    assert.is_true(async.loop_time() - t0 < 0.5)
    assert.same({a}, done)
    assert.same({b}, pending)
    b:cancel()
  end)

  it("checks its arguments", function()
    assert.has_error(function() async.wait({}) end,
      "bad argument #1 to 'wait' (empty list of tasks)")
    assert.has_error(function() async.wait({after(0, 1)}, {return_when = "SOMETIME"}) end,
      "bad argument #2 to 'wait' (invalid return_when 'SOMETIME')")
  end)
end)

describe("as_completed", function()
  it("yields tasks in completion order", function()
    local ts = {async.spawn(after(0.03, 3)), async.spawn(after(0.01, 1)),
                async.spawn(after(0.02, 2))}
    local order = {}
    for t in async.as_completed(ts) do order[#order + 1] = async.await(t) end
    assert.same({1, 2, 3}, order)
  end)

  it("raises TimeoutError when the deadline passes", function()
    local slow = async.spawn(after(1, "late"))
    local got = {}
    local ok, err = pcall(function()
      for t in async.as_completed({async.spawn(after(0.01, "early")), slow},
                                  {timeout = 0.05}) do
        got[#got + 1] = t:result()
      end
    end)
    assert.is_false(ok)
    assert.is_true(async.TimeoutError:is(err))
    assert.same({"early"}, got)
    slow:cancel()
  end)
end)

describe("wait_for and timeout", function()
  it("wait_for returns the result in time", function()
    assert.equal("v", async.wait_for(after(0.01, "v"), 1))
    assert.equal("w", async.wait_for(async.spawn(after(0, "w")), nil))
  end)

  it("wait_for cancels the inner task and waits for it on timeout", function()
    local cleaned = false
    local inner = async.spawn(function()
      local _ <close> = setmetatable({}, {__close = function()
        async.sleep(0.01); cleaned = true end})
      async.sleep(10)
    end)
    local ok, err = pcall(async.wait_for, inner, 0.02)
    assert.is_false(ok)
    assert.is_true(async.TimeoutError:is(err))
    assert.is_true(inner:cancelled())
    assert.is_true(cleaned)
  end)

  it("timeout scopes nest: the inner one fires first", function()
    local ok, err = pcall(async.timeout, 1, function()
      return async.timeout(0.02, async.sleep, 5)
    end)
    assert.is_false(ok)
    assert.matches("timed out after 0.02 s", tostring(err))
  end)

  it("timeout scopes nest: the outer one fires first", function()
    local inner_saw
    local ok, err = pcall(async.timeout, 0.02, function()
      local ok2, e2 = pcall(async.timeout, 5, async.sleep, 5)
      inner_saw = e2
      error(e2, 0)
    end)
    assert.is_false(ok)
    assert.matches("timed out after 0.02 s", tostring(err))
    assert.is_true(async.CancelledError:is(inner_saw))
  end)

  it("a timeout that does not fire leaves the task uncancelled", function()
    assert.equal(3, async.timeout(1, function() async.sleep(0.01); return 3 end))
    assert.equal(0, async.current_task():cancelling())
    async.sleep(0.01)  -- and no stray cancellation arrives
  end)

  it("checks its arguments", function()
    assert.has_error(function() async.wait_for(after(0, 1), -1) end,
      "bad argument #2 to 'wait_for' (non-negative number expected)")
    assert.has_error(function() async.timeout(1, 2) end,
      "bad argument #2 to 'timeout' (function expected, got number)")
  end)
end)

describe("task groups", function()
  it("wait for their tasks at the end of the scope", function()
    local results = {}
    do
      local tg <close> = async.task_group()
      for i = 1, 3 do
        tg:spawn(function() async.sleep(0.01 * i); results[i] = i end)
      end
    end
    assert.same({1, 2, 3}, results)
  end)

  it("cancel the others and the body on the first failure", function()
    local other
    local reached_end = false
    local ok, err = pcall(function()
      local tg <close> = async.task_group()
      tg:spawn(function() async.sleep(0.01); error("child 1 failed", 0) end)
      other = tg:spawn(async.sleep, 10)
      async.sleep(10)
      reached_end = true
    end)
    assert.is_false(ok)
    assert.is_true(async.TaskGroupError:is(err))
    assert.same({"child 1 failed"}, err.errors)
    assert.is_true(other:cancelled())
    assert.is_false(reached_end)
    assert.equal(0, async.current_task():cancelling())
  end)

  it("collect every error", function()
    local ok, err = pcall(function()
      local tg <close> = async.task_group()
      tg:spawn(function() error("a", 0) end)
      tg:spawn(function() error("b", 0) end)
    end)
    assert.is_false(ok)
    assert.same({"a", "b"}, err.errors)
    assert.matches("2 tasks failed", tostring(err))
  end)

  it("an error in the body cancels the children and propagates", function()
    local child
    local ok, err = pcall(function()
      local tg <close> = async.task_group()
      child = tg:spawn(async.sleep, 10)
      error("body failed", 0)
    end)
    assert.is_false(ok)
    assert.equal("body failed", err)
    assert.is_true(child:cancelled())
  end)

  it("cannot take tasks once closed", function()
    local tg
    do
      local g <close> = async.task_group()
      tg = g
    end
    assert.has_error(function() tg:spawn(function() end) end,
                     "task group is closed")
  end)
end)

describe("error reports", function()
  it("name the user's line for tasks the combinators spawn", function()
    local dump
    local watcher = async.spawn(function()
      async.sleep(0.005)
      dump = async.dump_tasks("tasks:")
    end)
    pcall(async.wait_for, function() async.sleep(1) end, 0.02)
    async.await(watcher)
    assert.matches("spawned at [^)]*combinators_spec.lua:%d+%): waiting on sleep", dump)
    assert.not_matches("spawned at [^)]*tasks%.lua", dump)
  end)

  it("a bad gather item blames the caller, not the library", function()
    local ok, err = pcall(async.gather, async.spawn(function() end), 42)
    assert.is_false(ok)
    assert.equal("bad argument #2 to 'gather' (task, future or function expected, got number)", err)
  end)

  it("a task group keeps the body's error with the tasks' errors", function()
    local ok, err = pcall(function()
      local tg <close> = async.task_group()
      tg:spawn(function() error("child", 0) end)
      async.sleep(0)  -- let the child fail first
      error("body", 0)
    end)
    assert.is_false(ok)
    assert.is_true(async.TaskGroupError:is(err))
    assert.same({"body", "child"}, err.errors)
  end)
end)

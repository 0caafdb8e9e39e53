local async = require "asynchost"
require "asynchost.busted"

describe("tasks", function()
  it("spawn starts on the next loop turn and await returns results", function()
    local started = false
    local t = async.spawn(function(a, b) started = true; return a + b, "x" end,
                          1, 2)
    assert.is_false(started)
    local s, x = async.await(t)
    assert.equal(3, s)
    assert.equal("x", x)
    assert.is_true(t:done())
    assert.same({3, "x"}, {t:result()})
    assert.is_nil(t:exception())
  end)

  it("keeps any number of results, nils included, after its coroutine is gone", function()
    local cases = {
      {n = 0}, {n = 1, nil}, {n = 1, false}, {n = 1, "one"},
      {n = 3, 1, nil, 3}, {n = 4, nil, nil, nil, nil},
    }
    local tasks, coros = {}, setmetatable({}, {__mode = "v"})
    for k, c in ipairs(cases) do
      tasks[k] = async.spawn(function()
        coros[k] = coroutine.running()
        return table.unpack(c, 1, c.n)
      end)
    end
    async.gather(tasks)
    collectgarbage(); collectgarbage()
    assert.is_nil(next(coros))  -- the tasks are held, their coroutines not
    for k, c in ipairs(cases) do
      assert.same(c, table.pack(tasks[k]:result()))
      assert.same(c, table.pack(async.await(tasks[k])))
    end
    local all = async.gather(tasks)
    assert.same({nil, nil, false, "one", 1, nil}, {table.unpack(all, 1, 6)})
    local failed = async.spawn(function() error("boom", 0) end)
    assert.equal("boom", select(2, pcall(async.await, failed)))
    assert.equal("boom", failed:exception())
  end)

  it("create_task is spawn, and task:await() is await(task)", function()
    assert.equal(async.spawn, async.create_task)
    local t = async.create_task(function() return 7 end)
    assert.equal(7, t:await())
  end)

  it("awaiting a failed task raises its error", function()
    local t = async.spawn(function() async.sleep(0.01); error("boom", 0) end)
    assert.has_error(function() async.await(t) end, "boom")
    assert.equal("boom", t:exception())
    assert.has_error(function() t:result() end, "boom")
  end)

  it("keeps error objects as they are", function()
    local e = setmetatable({code = 42}, {__tostring = function() return "E42" end})
    local t = async.spawn(function() error(e) end)
    local ok, err = pcall(async.await, t)
    assert.is_false(ok)
    assert.equal(e, err)
  end)

  it("result() of a pending task is InvalidStateError", function()
    local t = async.spawn(async.sleep, 0.01)
    local ok, err = pcall(t.result, t)
    assert.is_false(ok)
    assert.is_true(async.InvalidStateError:is(err))
    async.await(t)
  end)

  it("names: Task-N by default, set_name, tostring", function()
    local t = async.spawn(async.sleep, 0.01)
    assert.matches("^Task%-%d+$", t:get_name())
    t:set_name("fetcher")
    assert.equal("fetcher", t:get_name())
    assert.matches("Task 'fetcher' %(ready to run%)", tostring(t))
    async.sleep(0)
    assert.matches("Task 'fetcher' %(waiting on sleep%)", tostring(t))
    async.await(t)
    assert.matches("Task 'fetcher' %(done%)", tostring(t))
  end)

  it("current_task and all_tasks", function()
    local me = async.current_task()
    assert.is_not_nil(me)
    local inner
    local t = async.spawn(function() inner = async.current_task() end)
    local all = async.all_tasks()
    local seen = {}
    for _, x in ipairs(all) do seen[x] = true end
    assert.is_true(seen[me] and seen[t])
    async.await(t)
    assert.equal(t, inner)
    for _, x in ipairs(async.all_tasks()) do assert.is_not.equal(t, x) end
  end)

  it("add_done_callback runs on the next turn, in order; remove works", function()
    local log = {}
    local t = async.spawn(function() return 1 end)
    local function never() log[#log + 1] = "removed" end
    t:add_done_callback(function(x) log[#log + 1] = "a" .. x:result() end)
    t:add_done_callback(never)
    t:add_done_callback(function() log[#log + 1] = "b" end)
    assert.equal(1, t:remove_done_callback(never))
    async.await(t)
    assert.same({"a1", "b"}, log)
    t:add_done_callback(function() log[#log + 1] = "late" end)
    assert.same({"a1", "b"}, log)  -- not re-entrantly
    async.sleep(0)
    assert.same({"a1", "b", "late"}, log)
  end)

  it("completing a future never runs callbacks re-entrantly", function()
    local f, log = async.Future(), {}
    f:add_done_callback(function() log[#log + 1] = "cb" end)
    f:set_result(1)
    assert.same({}, log)
    async.sleep(0)
    assert.same({"cb"}, log)
  end)

  it("a task cannot await itself", function()
    local t
    t = async.spawn(function() async.sleep(0); return async.await(t) end)
    assert.has_error(function() async.await(t) end, "a task cannot await itself")
  end)

  it("awaiting a non-awaitable is a clear error", function()
    assert.has_error(function() async.await(42) end,
      "bad argument #1 to 'await' (task or future expected, got number)")
    assert.has_error(function() async.spawn(42) end,
      "bad argument #1 to 'spawn' (function expected, got number)")
  end)

  it("errors carry the traceback of where they were raised", function()
    local function deep() error("deep error") end
    local t = async.spawn(function() async.sleep(0); deep() end)
    pcall(async.await, t)
    assert.matches("in upvalue 'deep'", t:traceback())
  end)
end)

describe("futures", function()
  it("can be awaited by several tasks and resolved later", function()
    local f = async.Future()
    local a = async.spawn(function() return async.await(f) end)
    local b = async.spawn(function() return f:await() + 1 end)
    async.sleep(0.01)
    assert.is_false(f:done())
    f:set_result(41)
    assert.same({41, 42, n = 2}, async.gather(a, b))
  end)

  it("set_exception, and set twice is InvalidStateError", function()
    local f = async.Future()
    f:set_exception("bad")
    assert.has_error(function() async.await(f) end, "bad")
    local ok, err = pcall(f.set_result, f, 1)
    assert.is_false(ok)
    assert.is_true(async.InvalidStateError:is(err))
  end)

  it("cancel wakes its awaiters with CancelledError", function()
    local f = async.Future()
    local t = async.spawn(function() return async.await(f) end)
    async.sleep(0)
    assert.is_true(f:cancel("nope"))
    local ok, err = pcall(async.await, t)
    assert.is_false(ok)
    assert.is_true(async.CancelledError:is(err))
    assert.is_true(f:cancelled())
  end)
end)

local async = require "asynchost"
require "asynchost.busted"

-- A value whose __close awaits, then notes what it saw in 'log'.
local function cleanup(log)
  return setmetatable({}, {__close = function(_, err)
    async.sleep(0.01)
    log.closed = true
    log.err = err
  end})
end

local function collect(g)
  local out = {}
  for a, b in g do out[#out + 1] = {a, b} end
  return out
end

describe("async.generator", function()
  it("yields values, several at a time", function()
    local squares = async.generator(function(yield, n)
      for i = 1, n do yield(i, i * i) end
      return "dropped"
    end)
    local seen = {}
    for i, sq in squares(3) do seen[#seen + 1] = {i, sq} end
    assert.same({{1, 1}, {2, 4}, {3, 9}}, seen)
  end)

  it("can be stepped with next, which passes nil and no values too", function()
    local g = async.generator(function(yield)
      yield()
      yield(nil, "b")
      yield("c")
    end)()
    assert.same({true, n = 1}, table.pack(g:next()))
    assert.same({true, nil, "b", n = 3}, table.pack(g:next()))
    assert.same({true, "c", n = 2}, table.pack(g:next()))
    assert.same({false, n = 1}, table.pack(g:next()))
  end)

  it("awaits in the body suspend the task while others run", function()
    local ticks, stop = 0, false
    local ticker = async.spawn(function()
      while not stop do async.sleep(0.005); ticks = ticks + 1 end
    end)
    local slow = async.generator(function(yield)
      for i = 1, 3 do async.sleep(0.02); yield(i) end
    end)
    local t0 = async.loop_time()
    local got = {}
    for i in slow() do got[#got + 1] = i end
    local elapsed = async.loop_time() - t0
    stop = true
    async.await(ticker)
    assert.same({1, 2, 3}, got)
    assert.is_true(elapsed >= 0.06, "took " .. elapsed .. " s")
    assert.is_true(ticks >= 5, "only " .. ticks .. " ticks")
  end)

  it("break closes the body, whose cleanup awaits in it", function()
    local log, after = {}, false
    local g = async.generator(function(yield)
      local _ <close> = cleanup(log)
      for i = 1, 10 do yield(i) end
      after = true
    end)
    local last
    local t0 = async.loop_time()
    for i in g() do
      last = i
      if i == 2 then break end
    end
    assert.equal(2, last)
    assert.is_true(log.closed)
    assert.is_true(async.loop_time() - t0 >= 0.01)
    assert.matches("^GeneratorExit", tostring(log.err))
    assert.is_false(after)
  end)

  it("an error in the loop body closes the generator and propagates", function()
    local log = {}
    local g = async.generator(function(yield)
      local _ <close> = cleanup(log)
      for i = 1, 10 do yield(i) end
    end)
    local ok, err = pcall(function()
      for i in g() do
        if i == 3 then error("loop failed") end
      end
    end)
    assert.is_false(ok)
    assert.matches("generator_spec.lua:%d+: loop failed$", err)
    assert.is_true(log.closed)
    assert.matches("^GeneratorExit", tostring(log.err))
  end)

  it("an error in the body propagates with its message", function()
    local log = {}
    local g = async.generator(function(yield)
      local _ <close> = cleanup(log)
      yield(1)
      async.sleep(0)
      error("body failed")
    end)
    local got = {}
    local ok, err = pcall(function()
      for i in g() do got[#got + 1] = i end
    end)
    assert.is_false(ok)
    assert.matches("generator_spec.lua:%d+: body failed$", err)
    assert.same({1}, got)
    assert.is_true(log.closed)
    assert.matches("body failed$", log.err)

    local e = async.Error("as a value")
    local it = async.generator(function() error(e) end)()
    local ok2, err2 = pcall(it.next, it)
    assert.is_false(ok2)
    assert.equal(e, err2)
  end)

  it("lets the body use coroutines and generators of its own", function()
    local inner = async.generator(function(yield)
      for i = 1, 2 do async.sleep(0); yield(i) end
    end)
    local g = async.generator(function(yield)
      local co = coroutine.wrap(function()
        for i = 1, 2 do
          async.sleep(0.005)
          coroutine.yield("co" .. i)
        end
      end)
      yield(co())
      yield(co())
      for i in inner() do yield("inner" .. i) end
    end)
    assert.same({{"co1"}, {"co2"}, {"inner1"}, {"inner2"}}, collect(g()))
  end)

  it("cancelling the iterating task unwinds the body", function()
    local log, sleeping = {}, false
    local g = async.generator(function(yield)
      local _ <close> = cleanup(log)
      yield(1)
      sleeping = true
      async.sleep(10)
      yield(2)
    end)
    local got = {}
    local tlog = {}
    local t = async.spawn(function()
      local _ <close> = cleanup(tlog)  -- the task's own cleanup awaits too
      for i in g() do got[#got + 1] = i end
    end)
    async.sleep(0.01)
    assert.is_true(sleeping)
    t:cancel()
    local ok, err = pcall(async.await, t)
    assert.is_false(ok)
    assert.is_true(async.CancelledError:is(err))
    assert.is_true(t:cancelled())
    assert.same({1}, got)
    assert.is_true(log.closed)
    assert.is_true(async.CancelledError:is(log.err))
    assert.is_true(tlog.closed)
    assert.is_true(async.CancelledError:is(tlog.err))
  end)

  it("cancelling the task in the loop body closes the generator", function()
    local log = {}
    local g = async.generator(function(yield)
      local _ <close> = cleanup(log)
      for i = 1, 10 do yield(i) end
    end)
    local t = async.spawn(function()
      for _ in g() do async.sleep(10) end
    end)
    async.sleep(0.01)
    t:cancel()
    assert.has_error(function() async.await(t) end)
    assert.is_true(t:cancelled())
    assert.is_true(log.closed)
    assert.matches("^GeneratorExit", tostring(log.err))
  end)

  it("raises a clear error when the body ignores the close request", function()
    local stubborn = async.generator(function(yield)
      while true do pcall(yield, "again") end
    end)
    assert.has_error(function()
      for _ in stubborn() do break end
    end, "generator ignored the close request")
    local g = stubborn()
    assert.is_true(g:next())
    assert.has_error(function() g:close() end,
                     "generator ignored the close request")
    assert.is_false(g:next())
    assert.equal("Generator (dead)", tostring(g))
  end)

  it("runs in one task at a time", function()
    local g = async.generator(function(yield)
      for i = 1, 3 do async.sleep(0.02); yield(i) end
    end)()
    local a = async.spawn(function() return collect(g) end)
    async.sleep(0.01)  -- a is inside the body's sleep
    assert.equal("Generator (running)", tostring(g))
    assert.has_error(function() for _ in g do end end,
                     "generator is already running")
    assert.has_error(function() g:next() end, "generator is already running")
    assert.has_error(function() g:close() end, "generator is already running")
    assert.same({{1}, {2}, {3}}, async.await(a))
  end)

  it("a finished generator yields nothing more", function()
    local runs = 0
    local g = async.generator(function(yield)
      runs = runs + 1
      yield(1)
    end)()
    assert.same({{1}}, collect(g))
    assert.is_false(g:next())
    assert.is_false(g:next())
    assert.same({}, collect(g))
    assert.equal(1, runs)
    g:close()  -- nothing to do

    local failing = async.generator(function() error("once", 0) end)()
    assert.has_error(function() failing:next() end, "once")
    assert.is_false(failing:next())
  end)

  it("closes without running a body that never started", function()
    local ran = false
    local g = async.generator(function(yield) ran = true; yield(1) end)()
    g:close()
    assert.is_false(g:next())
    assert.is_false(ran)
  end)

  it("closes as a <close> variable", function()
    local log = {}
    local gen = async.generator(function(yield)
      local _ <close> = cleanup(log)
      yield("a")
      yield("b")
    end)
    do
      local g <close> = gen()
      assert.same({true, "a"}, {g:next()})
      assert.equal("Generator (suspended)", tostring(g))
    end
    assert.is_true(log.closed)
  end)

  it("raises the cleanup's own error from close", function()
    local g = async.generator(function(yield)
      local _ <close> = setmetatable({}, {__close = function()
        async.sleep(0)
        error("cleanup failed", 0)
      end})
      yield(1)
    end)()
    assert.is_true(g:next())
    assert.has_error(function() g:close() end, "cleanup failed")
    assert.is_false(g:next())
  end)

  it("rejects misuse", function()
    assert.has_error(function() async.generator(42) end,
                     "bad argument #1 to 'generator' "
                     .. "(function expected, got number)")
    local stash
    local g = async.generator(function(yield) stash = yield end)()
    assert.is_false(g:next())
    assert.has_error(function() stash(1) end,
                     "yield called outside its generator's body")
    local raw = async.generator(function() coroutine.yield(1) end)()
    assert.has_error(function() raw:next() end,
                     "generator body yielded with coroutine.yield "
                     .. "(use the yield function it was given)")
    local h = async.generator(function(yield) yield(1) end)()
    assert.has_error(function() h.next({}) end,
                     "bad argument #1 to 'next' (generator expected, got "
                     .. "table)")
  end)

  it("cannot await outside a task", function()
    local g = async.generator(function(yield) async.sleep(0); yield(1) end)
    local ok, err
    async.call_later(0, function()
      ok, err = pcall(function() for _ in g() do end end)
    end)
    async.sleep(0.01)
    assert.is_false(ok)
    assert.matches("cannot await outside a task", err)
  end)
end)

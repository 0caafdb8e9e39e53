local async = require "asynchost"
require "asynchost.busted"
local helpers = require "spec.helpers"
local errclass = helpers.errclass
local process = async.process

local BIN = helpers.BIN  -- the asynchost executable under test

after_each(helpers.cleanup)

local function kill(sig)
  process.run("kill", {"-" .. sig, tostring(process.getpid())},
              {check = true})
end

-- Runs 'src' as a script under BIN: stdout, stderr, exit code, seconds.
local function script(src)
  local name = helpers.tempfile(src)
  local t0 = async.loop_time()
  local r = process.run(BIN, {name}, {timeout = 20})
  return r.stdout, r.stderr, r.code, async.loop_time() - t0
end

describe("async.signal", function()
  it("runs the handler as a task at each delivery", function()
    local got, ev = {}, async.Event()
    local h <close> = async.signal("SIGUSR1", function(name)
      got[#got + 1] = name
      assert.is_not_nil(async.current_task())
      async.sleep(0)  -- a task: it may await
      ev:set()
    end)
    assert.equal("Signal handler of SIGUSR1 (installed)", tostring(h))
    for i = 1, 3 do
      ev:clear()
      kill("USR1")
      async.wait_for(function() return ev:wait() end, 5)
      assert.equal(i, #got)
    end
    assert.same({"SIGUSR1", "SIGUSR1", "SIGUSR1"}, got)
    h:close()
    h:close()  -- again: nothing
    assert.equal("Signal handler of SIGUSR1 (closed)", tostring(h))
  end)

  it("takes names with or without SIG, any case, and numbers", function()
    local seen = {}
    local a <close> = async.signal("usr2", function(n) seen.a = n end)
    local b <close> = async.signal(12, function(n) seen.b = n end)  -- USR2
    kill("USR2")
    for _ = 1, 500 do
      if seen.a and seen.b then break end
      async.sleep(0.01)
    end
    assert.same({a = "SIGUSR2", b = "SIGUSR2"}, seen)
  end)

  it("a closed handler runs no more; the others still do", function()
    local n1, n2 = 0, 0
    local h1 = async.signal("USR2", function() n1 = n1 + 1 end)
    local h2 <close> = async.signal("USR2", function() n2 = n2 + 1 end)
    h1:close()
    kill("USR2")
    for _ = 1, 500 do
      if n2 > 0 then break end
      async.sleep(0.01)
    end
    async.sleep(0.02)
    assert.equal(0, n1)
    assert.equal(1, n2)
  end)

  it("checks its arguments", function()
    assert.has_error(function() async.signal("SIGFOO", print) end,
      "bad argument #1 to 'signal' (unknown signal 'SIGFOO')")
    assert.has_error(function() async.signal({}, print) end,
      "bad argument #1 to 'signal' (signal name or number expected, "
      .. "got table)")
    assert.has_error(function() async.signal(0, print) end,
      "bad argument #1 to 'signal' (signal number out of range)")
    assert.has_error(function() async.signal("USR1") end,
      "bad argument #2 to 'signal' (function expected, got no value)")
    assert.has_error(function() async.signal("KILL", print) end,
      "bad argument #1 to 'signal' (SIGKILL cannot be caught)")
    assert.has_error(function() async.wait_signal("nope") end,
      "bad argument #1 to 'wait_signal' (unknown signal 'nope')")
  end)
end)

describe("async.wait_signal", function()
  it("waits for one delivery and returns its name", function()
    local t = async.spawn(function()
      async.sleep(0.05)
      kill("USR1")
    end)
    local t0 = async.loop_time()
    assert.equal("SIGUSR1", async.wait_signal("USR1"))
    assert.is_true(async.loop_time() - t0 >= 0.04)
    t:await()
  end)

  it("is cancellable and leaves no handle behind", function()
    local handles = require("asynchost.core").handles
    local n = #handles()
    local t = async.spawn(async.wait_signal, "SIGUSR2")
    async.sleep(0.02)
    assert.is_false(t:done())
    assert.equal(n + 1, #handles())  -- its watcher
    t:cancel()
    errclass(async.CancelledError, async.await, t)
    assert.equal(n, #handles())
    errclass(async.TimeoutError, async.wait_for,
             function() return async.wait_signal("USR2") end, 0.02)
    assert.equal(n, #handles())
  end)
end)

describe("SIGINT", function()
  it("a handler replaces the default while installed", function()
    local out, err, code, secs = script([[
local async = require "asynchost"
local process = async.process
local function int()
  process.run("kill", {"-INT", tostring(process.getpid())})
end
local n = 0
local h = async.signal("SIGINT", function(name)
  n = n + 1
  print("handler " .. name) io.stdout:flush()
end)
for i = 1, 2 do
  int()
  while n < i do async.sleep(0.01) end
end
h:close()
print("closed") io.stdout:flush()
int()
async.sleep(5)
print("not reached")
]])
    assert.equal("handler SIGINT\nhandler SIGINT\nclosed\n", out)
    assert.matches("interrupted", err, 1, true)
    assert.is_true(code ~= 0, "exit code " .. code)
    assert.is_true(secs < 4, "took " .. secs)
  end)

  it("wait_signal('SIGINT') takes Ctrl-C instead of the main task", function()
    local out, err, code = script([[
local async = require "asynchost"
local process = async.process
async.spawn(function()
  async.sleep(0.05)
  process.run("kill", {"-INT", tostring(process.getpid())})
end)
print(async.wait_signal("INT"))
]])
    assert.equal("SIGINT\n", out)
    assert.equal("", err)
    assert.equal(0, code)
  end)

  it("an installed handler does not keep the program alive, but can wake it", function()
    local out, err, code, secs = script([[
local async = require "asynchost"
async.signal("USR1", function() end)
async.signal("INT", function() end)
print("done")
]])
    assert.equal("done\n", out)
    assert.equal("", err)
    assert.equal(0, code)
    assert.is_true(secs < 4, "took " .. secs)
    -- but while one is installed, a main task waiting for what only the
    -- handler would do waits for the signal: no deadlock report (as in
    -- asyncio, where the loop would run on); here a child sends it
    out, err, code, secs = script([[
local async = require "asynchost"
local stop = async.Event()
async.signal("USR1", function() stop:set() end)
-- a background shell the loop knows nothing of: nothing else can wake us
os.execute("(sleep 0.3; kill -USR1 " .. async.process.getpid() .. ") &")
stop:wait()
print("woken")
]])
    assert.equal("woken\n", out)
    assert.equal("", err)
    assert.equal(0, code)
    assert.is_true(secs < 4, "took " .. secs)
  end)
end)

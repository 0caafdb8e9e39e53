-- Debug mode (ASYNCHOST_DEBUG=1 or -X debug): steps and callbacks that
-- hold the loop, results nobody awaited, resources never closed; and the
-- task dumps: async.dump_tasks(), SIGQUIT, the deadlock report.  The
-- executable (ASYNCHOST_BIN) runs in subprocesses.

local helpers = require "spec.helpers"
local q, readfile, plain = helpers.q, helpers.readfile, helpers.plain
local BIN, run, script = helpers.BIN, helpers.run, helpers.script
local tempname, writefile = helpers.tempname, helpers.writefile

after_each(helpers.cleanup)

local SLOW = [[
local async = require "asynchost"
local function busy(s)
  local t = async.loop_time() + s
  while async.loop_time() < t do end
end
local hog = async.spawn(function()
  async.sleep(0.01)
  busy(BUSY)
  async.sleep(0.01)
end)
hog:set_name("hog")
hog:await()
print("ok")
]]

describe("debug mode", function()
  it("reports a step that holds the loop, with the task's name and where "
     .. "it was; not without debug mode", function()
    local path = script((SLOW:gsub("BUSY", "0.25")))
    local r = run(q(path), {env = {ASYNCHOST_DEBUG = 1}})
    assert.equal(0, r.code, r.err)
    assert.equal("ok\n", r.out)
    assert.matches("asynchost: debug: task 'hog' %(spawned at [^)]*:6%) held "
                   .. "the loop for %d+%.%d ms %(threshold 100 ms%)", r.err)
    -- sampled during the step: inside busy(), called from line 8
    assert.matches("where it was [%d.]+ ms into the step:", r.err)
    assert.matches(plain(path) .. ":4: in [%w ]*'busy'", r.err)
    assert.matches(plain(path) .. ":8:", r.err)
    -- and where it gave the loop back
    assert.matches("where the step ended", r.err, 1, true)
    assert.matches(plain(path) .. ":9:", r.err)

    r = run(q(path))
    assert.equal(0, r.code)
    assert.equal("", r.err)

    r = run("-X debug " .. q(path))
    assert.matches("task 'hog'.-held the loop", r.err)
  end)

  it("takes its threshold from ASYNCHOST_SLOW (seconds)", function()
    local path = script((SLOW:gsub("BUSY", "0.05")))
    local r = run(q(path), {env = {ASYNCHOST_DEBUG = 1}})
    assert.not_matches("held the loop", r.err)
    r = run(q(path), {env = {ASYNCHOST_DEBUG = 1, ASYNCHOST_SLOW = 0.02}})
    assert.matches("task 'hog'.-held the loop for [%d.]+ ms %(threshold 20 ms%)",
                   r.err)
    r = run(q(path), {env = {ASYNCHOST_DEBUG = 1, ASYNCHOST_SLOW = "soon"}})
    assert.matches("ASYNCHOST_SLOW=soon is not a number of seconds", r.err, 1,
                   true)
  end)

  it("reports a slow callback with where its function is", function()
    local path = script([[
local async = require "asynchost"
async.call_later(0.01, function()
  local t = async.loop_time() + 0.15
  while async.loop_time() < t do end
end)
async.sleep(0.3)
]])
    local r = run(q(path), {env = {ASYNCHOST_DEBUG = 1}})
    assert.equal(0, r.code, r.err)
    assert.matches("a call_later callback %(function defined at "
                   .. plain(path) .. ":2%) held the loop", r.err)
  end)

  it("reports a task whose result nobody awaited, not the others", function()
    local r = run("-X debug " .. q(script([[
local async = require "asynchost"
local forgotten = async.spawn(function() return 42 end)
forgotten:set_name("forgotten")
local awaited = async.spawn(function() return 1 end)
awaited:set_name("awaited")
local gathered = async.spawn(function() return 2 end)
gathered:set_name("gathered")
local quiet = async.spawn(function() end)  -- fire and forget: nothing lost
quiet:set_name("quiet")
local checked = async.spawn(function() return 3 end)
checked:set_name("checked")
checked:add_done_callback(function(t) end)
async.sleep(0.02)
awaited:await()
async.gather(gathered)
print("ok")
]])))
    assert.equal(0, r.code, r.err)
    assert.equal("ok\n", r.out)
    assert.matches("asynchost: debug: task 'forgotten' %(spawned at [^)]*:2%) "
                   .. "returned a result that nobody retrieved", r.err)
    for _, name in ipairs{"awaited", "gathered", "quiet", "checked"} do
      assert.not_matches("'" .. name .. "'", r.err)
    end
  end)

  it("reports HTTP sessions and TCP streams never closed, with where they "
     .. "were made; not the closed ones", function()
    local path = script([[
local async = require "asynchost"
local ts = require "asynchost.testserver"
local srv <close> = ts.start{}
local leaked = async.http.session()
local closed <close> = async.http.session()
assert(closed:get(srv.url .. "/get").status == 200)
assert(async.http.get(srv.url .. "/get").status == 200)  -- shared session
local server = async.net.listen(function(s)
  local line = s:readline()
  if line then s:write(line) end
end)
local host, port = server:address()
local s = async.net.connect(host, port)
local s2 <close> = async.net.connect(host, port)  -- line 14
s:write("hi\n")
assert(s:readline() == "hi\n")
server:close()
print("ok")
]])
    local r = run(q(path), {env = {ASYNCHOST_DEBUG = 1}})
    assert.equal(0, r.code, r.err)
    assert.equal("ok\n", r.out)
    local function count(pat)
      local n = 0
      for _ in r.err:gmatch(pat) do n = n + 1 end
      return n
    end
    assert.equal(1, count("HTTP session never closed"))
    assert.matches("HTTP session never closed[^\n]*\n[^\n]*stack traceback:"
                   .. "[^%z]-" .. plain(path) .. ":4: in main chunk", r.err)
    assert.equal(1, count("TCP stream never closed"))
    assert.matches("TCP stream never closed.-" .. plain(path)
                   .. ":13: in main chunk", r.err)
    assert.equal(0, count("TCP server never closed"))
    -- not in debug mode: nothing
    r = run(q(path))
    assert.equal(0, r.code)
    assert.equal("", r.err)
  end)

  it("reports files never closed, with where they were opened", function()
    local data = tempname(".txt")
    writefile(data, "one\ntwo\n")
    local path = script(([[
local async = require "asynchost"
local f = async.fs.open(%q)          -- line 2: left open
local g <close> = async.fs.open(%q)  -- closed by <close>
local h = async.fs.open(%q)
h:close()
for line in async.fs.lines(%q) do end  -- closes itself at the end
print(f:read("l"), g:read("l"))
]]):format(data, data, data, data))
    local r = run(q(path), {env = {ASYNCHOST_DEBUG = 1}})
    assert.equal(0, r.code, r.err)
    assert.equal("one\tone\n", r.out)
    local n = 0
    for _ in r.err:gmatch("file never closed") do n = n + 1 end
    assert.equal(1, n, r.err)
    assert.matches("file never closed.-" .. plain(path) .. ":2: in main chunk",
                   r.err)
    r = run(q(path))
    assert.equal("", r.err)
  end)
end)

describe("task dumps", function()
  local WAITS = [[
local async = require "asynchost"
local ev = async.Event()
local w = async.spawn(function() ev:wait() end)
w:set_name("event-waiter")
local s = async.spawn(function() async.sleep(30) end)
s:set_name("sleeper")
local a = async.spawn(function() return s:await() end)
a:set_name("awaiter")
]]

  it("async.dump_tasks(): name, state, what it waits on, age, traceback",
     function()
    local path = script(WAITS .. [[
async.sleep(0.1)
io.write(async.dump_tasks("the tasks:"))
s:cancel(); ev:set()
]])
    local r = run(q(path))
    assert.equal(0, r.code, r.err)
    assert.matches("^the tasks:", r.out)
    assert.matches("task 'main': running; age [%d.]+ s", r.out)
    assert.matches("task 'event%-waiter' %(spawned at " .. plain(path)
                   .. ":3%): waiting on an event; age 0%.%d+ s\n"
                   .. "    stack traceback:\n.-" .. plain(path) .. ":3:", r.out)
    assert.matches("task 'sleeper' [^\n]*: waiting on sleep %(29%.%d+ s left%)",
                   r.out)
    assert.matches("task 'awaiter' [^\n]*: waiting on a task 'sleeper'", r.out)
  end)

  it("SIGQUIT prints them on stderr and the program goes on", function()
    local path = script(WAITS .. [[
print("started")
io.stdout:flush()
async.sleep(1.5)
print("went on")
s:cancel(); ev:set()
]])
    local out, err, rc = tempname(), tempname(), tempname()
    os.execute(("env -u ASYNCHOST_DEBUG %s %s > %s 2> %s & pid=$!; "
                .. "for i in $(seq 50); do grep -q started %s && break; "
                .. "sleep 0.1; done; sleep 0.2; kill -QUIT $pid; wait $pid; "
                .. "echo $? > %s")
               :format(q(BIN), q(path), q(out), q(err), q(out), q(rc)))
    out, err = readfile(out), readfile(err)
    assert.equal("0\n", readfile(rc))
    assert.equal("started\nwent on\n", out)
    assert.matches("asynchost: SIGQUIT: 4 live task%(s%):", err)
    assert.matches("task 'main': waiting on sleep %([%d.]+ s left%); age", err)
    assert.matches("task 'event%-waiter' [^\n]*: waiting on an event; age "
                   .. "[%d.]+ s\n    stack traceback:", err)
    assert.matches("task 'awaiter' [^\n]*: waiting on a task 'sleeper'", err)
    assert.matches(plain(path) .. ":5: in function", err)
  end)

  it("the deadlock report is the same dump", function()
    local r = run(q(script([[
local async = require "asynchost"
local ev = async.Event()
local w = async.spawn(function() ev:wait() end)
w:set_name("stuck")
w:await()
]])))
    assert.equal(1, r.code)
    assert.matches("deadlock", r.err, 1, true)
    assert.matches("task 'stuck' [^\n]*: waiting on an event; age [%d.]+ s\n"
                   .. "    stack traceback:", r.err)
    assert.matches("task 'main': waiting on a task 'stuck'; age", r.err)
  end)
end)

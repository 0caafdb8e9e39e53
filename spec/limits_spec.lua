-- Running out: of file descriptors (ulimit -n 256, 2,000 connects) and of
-- memory (ASYNCHOST_MEMORY_LIMIT).  Each case runs the executable in a
-- child process, so the limits hit the child only.
local async = require "asynchost"
require "asynchost.busted"
local helpers = require "spec.helpers"
local q = helpers.q

local BIN = helpers.BIN  -- the asynchost executable under test

after_each(helpers.cleanup)

-- Runs 'script' (Lua source) under the executable, after the shell
-- commands 'pre' ("ulimit -n 256"), with 'env' ("NAME=value ...") and
-- the argument 'arg1'.  Returns its output (stdout and stderr) and exit
-- status.
local function child(script, pre, env, timeout, arg1)
  local name = helpers.tempfile(script)
  return helpers.sh(("%s; exec env %s %s %s %s"):format(pre or ":", env or "",
                    q(BIN), q(name), arg1 and q(arg1) or ""), timeout or 60)
end

-- {======================================================
-- file descriptors
-- =======================================================

local CONNECTS = [[
local async = require "asynchost"
local N = 2000
-- a server holding each connection until its client leaves
local server = async.net.listen(function(s) s:read() end, "127.0.0.1", 0)
local _, port = server:address()
local streams, counts, sample = {}, {ok = 0, emfile = 0, other = 0}, {}
local tasks = {}
for i = 1, N do
  tasks[i] = async.spawn(function()
    local ok, s = pcall(async.net.connect, "127.0.0.1", port)
    if ok then
      streams[#streams + 1] = s
      counts.ok = counts.ok + 1
    elseif async.ConnectionError:is(s) and s.code == "EMFILE" then
      counts.emfile = counts.emfile + 1
      sample.emfile = tostring(s)
    else
      counts.other = counts.other + 1
      sample.other = tostring(s)
    end
  end)
end
for _, t in ipairs(tasks) do async.await(t) end
print(("round 1: %d connected, %d EMFILE, %d other"):format(counts.ok,
      counts.emfile, counts.other))
print("EMFILE error: " .. tostring(sample.emfile))
print("other error: " .. tostring(sample.other))
for _, s in ipairs(streams) do s:close() end
streams = nil
async.sleep(0.2)  -- the server's side of them closes

-- still usable: the same 2,000, queued behind a semaphore of 50
local echo = async.net.listen(function(s) s:write(s:readline()) end,
                              "127.0.0.1", 0)
local _, eport = echo:address()
local sem, done = async.Semaphore(50), 0
tasks = {}
for i = 1, N do
  tasks[i] = async.spawn(function()
    local _ <close> = sem:acquire()
    local c <close> = async.net.connect("127.0.0.1", eport)
    c:write("ping " .. i .. "\n")
    assert(c:readline() == "ping " .. i .. "\n")
    done = done + 1
  end)
end
for _, t in ipairs(tasks) do async.await(t) end
print(("round 2: %d echoed"):format(done))
server:close()
echo:close()
]]

-- 400 requests at once to the server at arg[1], then 400 through a
-- session of at most 50 connections (curl queues the others)
local REQUESTS = [[
local async = require "asynchost"
local N = 400
local function batch(opts)
  local s <close> = async.http.session(opts)
  local counts, sample, tasks = {ok = 0, emfile = 0, other = 0}, {}, {}
  for i = 1, N do
    tasks[i] = async.spawn(function()
      local ok, r = pcall(s.get, s, "/delay/0.3")
      if ok and r.status == 200 then
        counts.ok = counts.ok + 1
      elseif not ok and async.ConnectionError:is(r) and r.oserror == "EMFILE"
      then
        counts.emfile = counts.emfile + 1
        sample.emfile = tostring(r)
      else
        counts.other = counts.other + 1
        sample.other = tostring(r)
      end
    end)
  end
  for _, t in ipairs(tasks) do async.await(t) end
  return counts, sample
end
local counts, sample = batch{base_url = arg[1], timeout = 30}
print(("at once: %d ok, %d EMFILE, %d other"):format(counts.ok,
      counts.emfile, counts.other))
print("EMFILE error: " .. tostring(sample.emfile))
print("other error: " .. tostring(sample.other))
counts = batch{base_url = arg[1], timeout = 30, max_connections = 50}
print(("queued: %d ok, %d EMFILE, %d other"):format(counts.ok,
      counts.emfile, counts.other))
]]

-- {======================================================
-- memory
-- =======================================================

local HOG = [[
local async = require "asynchost"
local ticks = 0
local ticker = async.spawn(function()
  while true do async.sleep(0.01); ticks = ticks + 1 end
end)
-- a task that allocates without bound
local hog = async.spawn(function()
  local t = {}
  for i = 1, math.huge do t[i] = ("x"):rep(64) .. i end
end)
local ok, err = pcall(async.await, hog)
print("hog:", ok, err, hog:done())
-- one big allocation in C (string.rep)
ok, err = pcall(async.await, async.spawn(function()
  return #("x"):rep(512 * 1024 * 1024)
end))
print("rep:", ok, err)
-- four at once, one of them catching its own error and going on
local caught = 0
local hogs = {}
for k = 1, 4 do
  hogs[k] = async.spawn(function()
    local t = {}
    local ok2 = pcall(function()
      for i = 1, math.huge do
        t[i] = {i}
        if i % 1000 == 0 then async.sleep(0) end
      end
    end)
    if not ok2 then t = nil; caught = caught + 1 end
    if k == 4 then return "survived" end
    error("hog " .. k .. " gave up")
  end)
end
local r = async.gather(hogs, {return_exceptions = true})
print("gather:", r[1], r[4], caught)
-- the host goes on: the ticker ticked, and memory can be used again
local before = ticks
async.sleep(0.1)
local keep = {}
for i = 1, 1000 do keep[i] = ("y"):rep(1000) .. i end
print("after:", ticks > before, #keep, collectgarbage("count") < 64 * 1024)
ticker:cancel()
]]

describe("resource limits", function()
  it("2,000 connects under ulimit -n 256: EMFILE, never a crash", function()
    local out, code = child(CONNECTS, "ulimit -n 256")
    assert.equal(0, code, out)
    local ok, emfile, other = out:match(
      "round 1: (%d+) connected, (%d+) EMFILE, (%d+) other")
    assert(ok, out)
    ok, emfile, other = tonumber(ok), tonumber(emfile), tonumber(other)
    assert.equal(2000, ok + emfile + other)
    assert.equal(0, other, out)
    assert.is_true(emfile > 1000)  -- 256 fds: at most ~250 connections
    assert.is_true(ok > 50)
    assert.matches("EMFILE error: ConnectionError: EMFILE: too many open "
                   .. "files: 127.0.0.1:%d+", out)
    assert.matches("round 2: 2000 echoed", out)
  end, 120)

  it("400 HTTP requests under ulimit -n 256: EMFILE named, or queued",
     function()
    local ts = require "asynchost.testserver"
    local srv <close> = ts.start{}
    local out, code = child(REQUESTS, "ulimit -n 256", nil, 120, srv.url)
    assert.equal(0, code, out)
    local ok, emfile, other = out:match(
      "at once: (%d+) ok, (%d+) EMFILE, (%d+) other")
    assert(ok, out)
    assert.equal(0, tonumber(other), out)
    assert.is_true(tonumber(emfile) > 100, out)
    assert.is_true(tonumber(ok) > 50, out)
    assert.matches("EMFILE error: ConnectionError: CURLE_COULDNT_CONNECT: "
                   .. "[^\n]*%[EMFILE: too many open files%]", out)
    assert.matches("queued: 400 ok, 0 EMFILE, 0 other", out, 1, true)
  end, 150)

  it("a task out of memory fails; its awaiter and the host go on", function()
    local out, code = child(HOG, nil, "ASYNCHOST_MEMORY_LIMIT=64M")
    assert.equal(0, code, out)
    assert.matches("hog:\tfalse\tnot enough memory\ttrue", out, 1, true)
    assert.matches("rep:\tfalse\tnot enough memory", out, 1, true)
    assert.matches("gather:\t[^\n]*hog 1 gave up\tsurvived\t4", out)
    assert.matches("after:\ttrue\t1000\ttrue", out, 1, true)
    assert.not_matches("PANIC", out)
  end, 120)

  it("out of memory in the main chunk: an error report and exit 1", function()
    local out, code = child("local t = {} for i = 1, math.huge do " ..
                            "t[i] = i .. 'x' end", nil,
                            "ASYNCHOST_MEMORY_LIMIT=32M")
    assert.equal(1, code, out)
    assert.matches("not enough memory", out)
    assert.not_matches("PANIC", out)
  end, 60)

  it("a limit that is not a size is refused", function()
    local out, code = child("print('ran')", nil,
                            "ASYNCHOST_MEMORY_LIMIT=lots")
    assert.equal(1, code)
    assert.matches("ASYNCHOST_MEMORY_LIMIT='lots' is not a size", out, 1, true)
    assert.not_matches("ran", out)
    out, code = child("print('ran')", nil, "ASYNCHOST_MEMORY_LIMIT=512K")
    assert.equal(0, code, out)  -- enough for a print
    assert.matches("ran", out)
    out, code = child("print(#('x'):rep(1 << 24))", nil,
                      "ASYNCHOST_MEMORY_LIMIT=0")  -- 0: no limit
    assert.equal(0, code, out)
    assert.matches("16777216", out)
    out, code = child("print(pcall(string.rep, 'x', 1 << 24))", nil,
                      "ASYNCHOST_MEMORY_LIMIT=4M")
    assert.equal(0, code, out)
    assert.matches("false	not enough memory", out, 1, true)
  end)
end)

-- asynchost as a plain module of stock lua5.4 (no host): async.run runs a
-- task and the loop until it ends.  Runs lua5.4 in a subprocess with the
-- repository's lua/ and build/lua/ on its paths.

local helpers = require "spec.helpers"
local q, readfile, writefile = helpers.q, helpers.readfile, helpers.writefile

-- the repository: the current directory when the specs run
local REPO do
  local p = assert(io.popen("pwd", "r"))
  REPO = p:read("l")
  p:close()
end

local LUA_PATH = REPO .. "/lua/?.lua;" .. REPO .. "/lua/?/init.lua;;"
local LUA_CPATH = REPO .. "/build/lua/?.so;;"

-- Runs 'src' as a script under lua5.4; returns {out, err, code, secs}.
local function lua(src)
  local script, out, err, sh = os.tmpname(), os.tmpname(), os.tmpname(),
                               os.tmpname()
  writefile(script, src)
  writefile(sh,
    "start=$(date +%s%N)\n" ..
    "timeout 10 env -u LUA_INIT -u LUA_INIT_5_4 LUA_PATH=" .. q(LUA_PATH) ..
    " LUA_CPATH=" .. q(LUA_CPATH) .. " lua5.4 " .. q(script) ..
    " </dev/null >" .. q(out) .. " 2>" .. q(err) .. "\n" ..
    "rc=$?\n" ..
    "stop=$(date +%s%N)\n" ..
    "echo \"$rc $((stop - start))\"\n")
  local p = assert(io.popen("sh " .. q(sh), "r"))
  local line = p:read("a")
  p:close()
  local r = {out = readfile(out), err = readfile(err)}
  for _, name in ipairs({script, out, err, sh}) do os.remove(name) end
  local code, ns = line:match("(%d+) (%d+)")
  assert(code, "bad output from the shell: " .. line)
  r.code, r.secs = tonumber(code), tonumber(ns) / 1e9
  return r
end


describe("asynchost under stock lua5.4", function()
  it("the module is found on the given paths", function()
    local r = lua([[
local async = require "asynchost"
print(type(async.run), type(async.sleep), type(async.spawn))
]])
    assert.equal("", r.err)
    assert.equal("function\tfunction\tfunction\n", r.out)
    assert.equal(0, r.code)
  end)

  it("async.run runs a task to its end and returns its results", function()
    local r = lua([[
local async = require("asynchost")
print(async.run(function() async.sleep(0.01); return 42 end))
]])
    assert.equal("", r.err)
    assert.equal("42\n", r.out)
    assert.equal(0, r.code)
  end)

  it("as the brief's one-liner with -e", function()
    local p = assert(io.popen("timeout 10 env LUA_PATH=" .. q(LUA_PATH) ..
      " LUA_CPATH=" .. q(LUA_CPATH) .. " lua5.4 -e " ..
      q('local async = require("asynchost"); ' ..
        'print(async.run(function() async.sleep(0.01); return 42 end))') ..
      " </dev/null 2>&1", "r"))
    local out = p:read("a")
    local ok, how, code = p:close()
    assert.equal("42\n", out)
    assert.same({true, "exit", 0}, {ok, how, code})
  end)

  it("async.run passes its arguments and all results", function()
    local r = lua([[
local async = require "asynchost"
print(async.run(function(a, b) async.sleep(0); return a + b, "two", nil end,
                1, 2))
print(select("#", async.run(function() return 1, nil, nil end)))
]])
    assert.equal("", r.err)
    assert.equal("3\ttwo\tnil\n3\n", r.out)
  end)

  it("async.run re-raises the task's error", function()
    local r = lua([[
local async = require "asynchost"
print(pcall(async.run, function() error("x", 0) end))
print(pcall(async.run, function() async.sleep(0.01); error("later", 0) end))
local ok, e = pcall(async.run, function() error({code = 7}) end)
print(ok, type(e), type(e) == "table" and e.code)
]])
    assert.equal("", r.err)
    assert.equal("false\tx\nfalse\tlater\nfalse\ttable\t7\n", r.out)
    assert.equal(0, r.code)
  end)

  it("an uncaught error of async.run ends lua5.4 with exit 1", function()
    local r = lua([[
local async = require "asynchost"
async.run(function() async.sleep(0.01); error("run failed") end)
print("not reached")
]])
    assert.equal(1, r.code)
    assert.equal("", r.out)
    assert.matches("run failed", r.err, 1, true)
  end)

  it("awaiting outside async.run is an error", function()
    local r = lua([[
local async = require "asynchost"
local t0 = os.time()
local ok, e = pcall(async.sleep, 1)
print(ok, tostring(e))
]])
    assert.equal("", r.err)
    assert.matches("^false\t[^\n]*cannot await outside a task", r.out)
    assert.is_true(r.secs < 1, "took " .. r.secs)
  end)

  it("blames the caller's line, not the library's wrapper", function()
    local r = lua([[
local async = require "asynchost"
local function f() return async.fs.read_file("x") end  -- a tail call:
local ok, e = pcall(f)                                  -- this line is blamed
print(tostring(e))
ok, e = pcall(function() local s = async.http.session() s:get("http://127.0.0.1:1/") end)
print(tostring(e))
]])
    assert.equal("", r.err)
    local first, second = r.out:match("^([^\n]*)\n([^\n]*)\n$")
    assert.matches(":3: cannot await outside a task %(read_file was called", first)
    assert.matches(":5: cannot await outside a task %(request was called", second)
  end)

  it("async.run twice in a row", function()
    local r = lua([[
local async = require "asynchost"
local a = async.run(function() async.sleep(0.01); return "first" end)
local b = async.run(function()
  local t = async.spawn(function() async.sleep(0.01); return "second" end)
  return async.await(t)
end)
print(a, b)
print(pcall(async.run, function() error("third", 0) end))
print(async.run(function() async.sleep(0); return "fourth" end))
]])
    assert.equal("", r.err)
    assert.equal("first\tsecond\nfalse\tthird\nfourth\n", r.out)
  end)

  it("async.run inside a task is an error", function()
    local r = lua([[
local async = require "asynchost"
print(async.run(function()
  return pcall(async.run, function() end)
end))
]])
    assert.equal("", r.err)
    assert.matches("^false\tasync.run cannot be called from a running task",
                   r.out)
  end)

  it("tasks still pending when run's function returns are cancelled",
    function()
      local r = lua([[
local async = require "asynchost"
local t
print(async.run(function()
  t = async.spawn(function()
    local guard <close> = setmetatable({}, {__close = function()
      print("closed")
    end})
    async.sleep(10)
    print("not reached")
  end)
  async.sleep(0.01)
  return "done"
end))
print("after", t:cancelled())
]])
      assert.equal(0, r.code)
      assert.is_true(r.secs < 2, "took " .. r.secs)
      -- cancelled and cleaned up before run returns
      assert.equal("closed\ndone\nafter\ttrue\n", r.out)
      assert.matches("cancelling task", r.err, 1, true)
    end)
end)

-- The asynchost executable, run in subprocesses: options and 'arg' as in
-- the standalone lua 5.4 interpreter, error reports and exit codes, top-level
-- awaits, the reports at exit, Ctrl-C, stdin and the REPL.
--
-- Runs under the host itself and under stock lua5.4; it only needs a shell,
-- coreutils (timeout, date, sleep) and lua5.4 for the comparisons.

local helpers = require "spec.helpers"
local q, readfile, writefile = helpers.q, helpers.readfile, helpers.writefile
local plain, tempfile = helpers.plain, helpers.tempfile
local tempdir = helpers.tempdir

local BIN = helpers.BIN  -- see spec/helpers.lua
local LUA = "lua5.4"

-- {======================================================
-- helpers
-- =======================================================

after_each(helpers.cleanup)

-- Runs 'interp' with the shell words 'args' (already quoted), bounded by
-- 'timeout 10'.  opts.stdin: text piped to its stdin (else /dev/null);
-- opts.env: environment variables.  Returns {out, err, code, secs}.
local function run(interp, args, opts)
  opts = opts or {}
  return helpers.run(args, {bin = interp, timeout = 10, env = opts.env,
                            stdin = opts.stdin})
end

local function host(args, opts) return run(BIN, args, opts) end

-- A script file holding 'src'; its name, quoted for the shell, and raw.
local function script(src)
  local name = tempfile(src)
  return q(name), name
end

-- Runs a shell script (text); returns the lines it printed.
local function shell(text)
  local p = assert(io.popen("timeout 30 sh " .. q(tempfile(text)), "r"))
  local s = p:read("a")
  p:close()
  return s
end

-- }======================================================


describe("asynchost options", function()
  it("-e runs a statement", function()
    local r = host("-e 'print(1 + 1)'")
    assert.equal("2\n", r.out)
    assert.equal("", r.err)
    assert.equal(0, r.code)
  end)

  it("runs several -e in order, as lua5.4", function()
    local args = "-e 'x = 1' -e 'print(x)' -e'x = x + 1' -e 'print(x)'"
    local r = host(args)
    assert.equal("1\n2\n", r.out)
    assert.equal(0, r.code)
    assert.equal(run(LUA, args).out, r.out)
  end)

  it("-l mod requires into global mod, -l g=mod into g", function()
    local dir = tempdir()
    writefile(dir .. "/ahtestmod.lua",
      "local n = (AHCOUNT or 0) + 1; AHCOUNT = n\n" ..
      "return {name = 'ahtestmod', n = n}\n")
    local env = {LUA_PATH = dir .. "/?.lua;;"}
    local r = host("-l ahtestmod -e 'print(ahtestmod.name, ahtestmod.n)'",
                   {env = env})
    assert.equal("", r.err)
    assert.equal("ahtestmod\t1\n", r.out)
    r = host("-l g=ahtestmod -e 'print(g.name, ahtestmod)'", {env = env})
    assert.equal("", r.err)
    assert.equal("ahtestmod\tnil\n", r.out)
    -- -lmod, and -l between -e, in order
    local args = "-e 'print(ahtestmod)' -lahtestmod -e 'print(ahtestmod.n)'"
    r = host(args, {env = env})
    assert.equal("nil\n1\n", r.out)
    assert.equal(run(LUA, args, {env = env}).out, r.out)
  end)

  it("-l of a missing module fails with require's message, exit 1", function()
    local r = host("-l no_such_module_ah -e 'print(1)'")
    assert.equal(1, r.code)
    assert.equal("", r.out)
    assert.matches("module 'no_such_module_ah' not found", r.err, 1, true)
  end)

  it("-v prints asynchost's line, then Lua's", function()
    local r = host("-v")
    assert.equal(0, r.code)
    local l1, l2 = r.out:match("^([^\n]*)\n([^\n]*)\n$")
    assert.is_truthy(l1, "output: " .. r.out)
    assert.matches("^asynchost ", l1)
    assert.matches("^Lua 5%.4", l2)
  end)

  it("-v with -e prints the version, then runs the code", function()
    local r = host("-v -e 'print(\"after\")'")
    assert.equal(0, r.code)
    assert.matches("^asynchost [^\n]*\nLua 5%.4[^\n]*\nafter\n$", r.out)
  end)

  it("-E ignores LUA_INIT and LUA_PATH", function()
    local dir = tempdir()
    writefile(dir .. "/ahtestmod.lua", "return 'found'\n")
    local env = {LUA_INIT = "print('init ran')",
                 LUA_PATH = dir .. "/?.lua;;"}
    local code = "-e 'print(pcall(require, \"ahtestmod\"))'"
    -- without -E, both are used
    local r = host(code, {env = env})
    assert.equal("init ran\ntrue\tfound\t" .. dir .. "/ahtestmod.lua\n",
                 r.out)
    -- with -E, neither
    r = host("-E " .. code, {env = env})
    assert.equal(0, r.code)
    assert.not_matches("init ran", r.out, 1, true)
    assert.matches("^false\tmodule 'ahtestmod' not found", r.out)
    assert.not_matches(dir, r.out, 1, true)
    -- and so does lua5.4 (which has no searcher for embedded modules)
    local l = run(LUA, "-E " .. code, {env = env})
    assert.equal(l.out, (r.out:gsub("\n\tno embedded module [^\n]*", "")))
  end)

  it("-W turns warnings on", function()
    local r = host("-W -e 'warn(\"hi\")'")
    assert.equal(0, r.code)
    assert.equal("Lua warning: hi\n", r.err)
    assert.equal(run(LUA, "-W -e 'warn(\"hi\")'").err, r.err)
    -- off by default
    r = host("-e 'warn(\"hi\")'")
    assert.equal("", r.err)
  end)

  it("- runs stdin as the script, with the arguments after it", function()
    local r = host("- a b", {stdin = "print('stdin', arg[0], ...)\n"})
    assert.equal(0, r.code)
    assert.equal("stdin\t-\ta\tb\n", r.out)
  end)

  it("-- stops the options", function()
    local s = script("print(...)\n")
    local r = host("-- " .. s .. " -e x -v")
    assert.equal("", r.err)
    assert.equal(0, r.code)
    assert.equal("-e\tx\t-v\n", r.out)
    -- '--' then nothing: stdin, like no script at all
    r = host("-e 'print(1)' --")
    assert.equal("1\n", r.out)
  end)

  it("rejects bad options as lua5.4 does, exit 1", function()
    for _, args in ipairs({"-x", "-e", "-l", "-vx", "--x"}) do
      local r = host(args)
      local l = run(LUA, args)
      assert.equal(1, r.code, args)
      assert.equal("", r.out)
      local first = r.err:match("^[^\n]*")
      assert.equal(l.err:match("^[^\n]*"):gsub("^" .. plain(LUA), ""),
                   first:gsub("^" .. plain(BIN), ""))
      assert.matches("usage: ", r.err, 1, true)
    end
  end)

  it("LUA_INIT runs first; LUA_INIT_5_4 is preferred; @file runs a file",
    function()
      local r = host("-e 'print(2)'", {env = {LUA_INIT = "print(1)"}})
      assert.equal("1\n2\n", r.out)
      r = host("-e 'print(2)'", {env = {LUA_INIT = "print('plain')",
                                        LUA_INIT_5_4 = "print('v54')"}})
      assert.equal("v54\n2\n", r.out)
      local _, f = script("print('from file', ...)\n")
      r = host("-e 'print(2)'", {env = {LUA_INIT = "@" .. f}})
      assert.equal("from file\n2\n", r.out)
      r = host("-e 'print(2)'", {env = {LUA_INIT_5_4 = "@" .. f}})
      assert.equal("from file\n2\n", r.out)
      -- an init that fails stops everything
      r = host("-e 'print(2)'", {env = {LUA_INIT = "error('init failed')"}})
      assert.equal(1, r.code)
      assert.equal("", r.out)
      assert.matches("LUA_INIT:1: init failed", r.err, 1, true)
      -- as lua5.4
      local env = {LUA_INIT = "print('plain')", LUA_INIT_5_4 = "print('v54')"}
      assert.equal(run(LUA, "-e 'print(2)'", {env = env}).out,
                   host("-e 'print(2)'", {env = env}).out)
    end)

  it("LUA_INIT may await (it runs as a task)", function()
    local r = host("-e 'print(2)'", {env = {LUA_INIT =
      "local a = require 'asynchost'; a.sleep(0.01); print(1)"}})
    assert.equal("", r.err)
    assert.equal("1\n2\n", r.out)
  end)
end)


describe("asynchost arg and ...", function()
  local probe = [[
local lo = 0
while arg[lo - 1] ~= nil do lo = lo - 1 end
local t = {}
for k = lo + 1, #arg do t[#t + 1] = k .. "=" .. tostring(arg[k]) end
print(arg[-1] ~= nil, arg[0], #arg, select("#", ...), ...)
print(lo, table.concat(t, " "))
print("interp", arg[lo])
]]

  -- Runs both interpreters with 'args' and compares, the interpreter's
  -- own name aside.
  local function compare(args, stdin)
    local r = host(args, {stdin = stdin})
    local l = run(LUA, args, {stdin = stdin})
    assert.equal("", r.err)
    assert.equal(0, r.code)
    local rbody, rinterp = r.out:match("^(.*)interp\t([^\n]*)\n$")
    local lbody, linterp = l.out:match("^(.*)interp\t([^\n]*)\n$")
    assert.is_truthy(rbody, "output: " .. r.out)
    assert.equal(BIN, rinterp)
    assert.equal(LUA, linterp)
    assert.equal(lbody, rbody)
    return rbody
  end

  it("script and its arguments", function()
    local s, name = script(probe)
    local body = compare(s .. " a 'b c' d")
    assert.equal("true\t" .. name .. "\t3\t3\ta\tb c\td\n" ..
                 "-1\t0=" .. name .. " 1=a 2=b c 3=d\n", body)
  end)

  it("options before the script go at negative indices", function()
    local s, name = script(probe)
    local body = compare("-W -e 'x=1' " .. s .. " one two")
    assert.equal("true\t" .. name .. "\t2\t2\tone\ttwo\n" ..
                 "-4\t-3=-W -2=-e -1=x=1 0=" .. name .. " 1=one 2=two\n",
                 body)
  end)

  it("no script arguments: an empty ...", function()
    local s = script(probe)
    compare(s)
  end)

  it("options after the script are its arguments", function()
    local s = script(probe)
    compare(s .. " -e x -- -")
  end)

  it("after --", function()
    local s = script(probe)
    compare("-- " .. s .. " -v")
  end)

  it("stdin as the script: -", function()
    compare("- x y", probe)
  end)

  it("no script: arg[0] is the interpreter, options at 1..n", function()
    local code = "-e 'print(arg[0] ~= nil, #arg, arg[1], arg[-1], arg[-2])'"
    local r = host(code)
    local l = run(LUA, code)
    assert.equal(0, r.code)
    assert.equal(l.out, r.out)
    assert.equal("true\t2\t-e\tnil\tnil\n", r.out)
  end)
end)


describe("asynchost errors and exit codes", function()
  it("a script that errors: progname: msg, a traceback, exit 1", function()
    local s, name = script("local x = 1\nerror('boom')\n")
    local r = host(s)
    assert.equal(1, r.code)
    assert.equal("", r.out)
    assert.equal(BIN .. ": " .. name .. ":2: boom\n",
                 r.err:match("^[^\n]*\n"))
    assert.matches("stack traceback:", r.err, 1, true)
    -- lua5.4 says the same first line
    local l = run(LUA, s)
    assert.equal(l.err:match("^[^\n]*\n"):gsub("^" .. plain(LUA), ""),
                 (r.err:match("^[^\n]*\n"):gsub("^" .. plain(BIN), "")))
  end)

  it("an -e that errors: exit 1, the rest not run", function()
    local r = host("-e 'error(\"boom\")' -e 'print(\"not reached\")'")
    assert.equal(1, r.code)
    assert.equal("", r.out)
    assert.matches("^" .. plain(BIN) .. ": %(command line%):1: boom\n", r.err)
    assert.matches("stack traceback:", r.err, 1, true)
  end)

  it("non-string error values are described as lua5.4 does", function()
    local r = host("-e 'error({})'")
    assert.equal(1, r.code)
    assert.matches("^" .. plain(BIN) .. ": %(error object is a table value%)",
                   r.err)
    r = host("-e 'error(setmetatable({}, {__tostring = " ..
             "function() return \"custom\" end}))'")
    assert.equal(1, r.code)
    assert.matches("^" .. plain(BIN) .. ": custom\n", r.err)
  end)

  it("a syntax error exits 1 and runs nothing", function()
    local s, name = script("print('a')\nx = = 1\n")
    local r = host(s)
    assert.equal(1, r.code)
    assert.equal("", r.out)
    assert.matches(plain(name) .. ":2:", r.err)
    assert.equal(run(LUA, s).err:gsub("^" .. plain(LUA), ""),
                 (r.err:gsub("^" .. plain(BIN), "")))
    r = host("-e 'x = = 1'")
    assert.equal(1, r.code)
  end)

  it("a missing script exits 1", function()
    local r = host("/nonexistent/ah_no_such_script.lua")
    assert.equal(1, r.code)
    assert.matches("cannot open /nonexistent/ah_no_such_script.lua", r.err,
                   1, true)
  end)

  it("success exits 0", function()
    local ok, how, code = os.execute("timeout 10 " .. q(BIN) ..
                                     " -e 'local x = 1' </dev/null")
    assert.same({true, "exit", 0}, {ok, how, code})
    local s = script("print('fine')\n")
    local r = host(s)
    assert.equal(0, r.code)
    assert.equal("fine\n", r.out)
  end)

  it("os.exit(3) exits 3, os.exit(true) 0, os.exit(false) 1", function()
    local ok, how, code = os.execute("timeout 10 " .. q(BIN) ..
                                     " -e 'os.exit(3)' </dev/null")
    assert.same({nil, "exit", 3}, {ok, how, code})
    ok, how, code = os.execute("timeout 10 " .. q(BIN) ..
                               " -e 'os.exit(true)' </dev/null")
    assert.same({true, "exit", 0}, {ok, how, code})
    ok, how, code = os.execute("timeout 10 " .. q(BIN) ..
                               " -e 'os.exit(false)' </dev/null")
    assert.same({nil, "exit", 1}, {ok, how, code})
  end)

  it("os.exit from inside a task, after an await", function()
    local s = script([[
local async = require "asynchost"
local t = async.spawn(function() async.sleep(0.01); os.exit(7) end)
async.await(t)
print("not reached")
]])
    local r = host(s)
    assert.equal(7, r.code)
    assert.equal("", r.out)
  end)
end)


describe("asynchost top level", function()
  it("the main chunk may await", function()
    local s = script([[
local async = require "asynchost"
async.sleep(0.05)
print("ok")
]])
    local r = host(s)
    assert.equal("", r.err)
    assert.equal("ok\n", r.out)
    assert.equal(0, r.code)
  end)

  it("-e may await", function()
    local r = host("-e 'local a = require \"asynchost\"; a.sleep(0.01)'" ..
                   " -e 'print(\"ok\")'")
    assert.equal("", r.err)
    assert.equal("ok\n", r.out)
  end)

  it("gathers three 0.2 s sleeps in well under 0.5 s", function()
    local s = script([[
local async = require "asynchost"
local t0 = async.loop_time()
local r = async.gather(async.spawn(async.sleep, 0.2),
                       async.spawn(async.sleep, 0.2),
                       async.spawn(async.sleep, 0.2))
print(string.format("%.6f", async.loop_time() - t0), r.n)
]])
    local r = host(s)
    assert.equal("", r.err)
    assert.equal(0, r.code)
    local took, n = r.out:match("^(%S+)\t(%d+)\n$")
    took = tonumber(took)
    assert.is_truthy(took, "output: " .. r.out)
    assert.equal("3", n)
    assert.is_true(took >= 0.2, "took " .. took)
    assert.is_true(took < 0.5, "took " .. took)
  end)

  it("the Debian C modules load: lfs, lpeg, cjson", function()
    local r = host([[-e '
local lfs = require "lfs"
local lpeg = require "lpeg"
local cjson = require "cjson"
print(type(lfs.currentdir()), lfs.attributes(".", "mode"))
print(lpeg.match(lpeg.C(lpeg.P"a"^1), "aaab"))
print(cjson.encode({a = 1}))
print(#cjson.decode("[1,2,3]"))
']])
    assert.equal("", r.err)
    assert.equal(0, r.code)
    assert.equal('string\tdirectory\naaa\n{"a":1}\n3\n', r.out)
  end)
end)


describe("asynchost reports", function()
  it("a deadlock of the main task: exit 1, what each task waits on",
    function()
      local s = script([[
local async = require "asynchost"
async.Event():wait()
print("not reached")
]])
      local r = host(s)
      assert.equal(1, r.code)
      assert.equal("", r.out)
      assert.matches("deadlock", r.err, 1, true)
      assert.matches("waiting on an event", r.err, 1, true)
      assert.is_true(r.secs < 5, "took " .. r.secs)
    end)

  it("an error through a chain of awaits names every task", function()
    local s = script([[
local async = require "asynchost"
local function c() async.sleep(0.01); error("deepest") end
local function b() return async.await(async.spawn(c)) end
async.await(async.spawn(b))
print("not reached")
]])
    local r = host(s)
    assert.equal(1, r.code)
    assert.equal("", r.out)
    assert.matches("deepest", r.err, 1, true)
    local n = select(2, r.err:gsub("%(in task '", ""))
    assert.is_true(n >= 2, "stderr: " .. r.err)
    assert.matches("re-raised by the task awaiting it", r.err, 1, true)
    assert.matches("in task 'main'", r.err, 1, true)
  end)

  it("a failed task nobody awaited is reported, exit 0", function()
    local s = script([[
local async = require "asynchost"
async.spawn(function() error("lost error") end)
async.sleep(0.05)
]])
    local r = host(s)
    assert.equal(0, r.code)
    assert.equal("", r.out)
    assert.matches("never retrieved", r.err, 1, true)
    assert.matches("lost error", r.err, 1, true)
  end)

  it("tasks pending at exit are cancelled, cleaned up and reported",
    function()
      local s = script([[
local async = require "asynchost"
async.spawn(function()
  local guard <close> = setmetatable({}, {__close = function()
    print("cleanup ran")
  end})
  async.sleep(10)
end)
async.sleep(0.05)
]])
      local r = host(s)
      assert.equal(0, r.code)
      assert.equal("cleanup ran\n", r.out)
      assert.is_truthy(r.err:find("still pending when the main task ended", 1, true) or
                       r.err:find("cancelling task", 1, true),
                       "stderr: " .. r.err)
      assert.is_true(r.secs < 2, "took " .. r.secs)
    end)

  it("a task pending when the script fails is cancelled too", function()
    local s = script([[
local async = require "asynchost"
async.spawn(function()
  local guard <close> = setmetatable({}, {__close = function()
    print("cleanup ran")
  end})
  async.sleep(10)
end)
async.sleep(0.01)
error("main failed")
]])
    local r = host(s)
    assert.equal(1, r.code)
    assert.equal("cleanup ran\n", r.out)
    assert.matches("main failed", r.err, 1, true)
    assert.is_true(r.secs < 2, "took " .. r.secs)
  end)
end)


describe("asynchost Ctrl-C", function()
  -- Starts BIN on the script 'src' in the background, waits for it to
  -- print 'ready', sends SIGINT; if 'second' is given, waits for that
  -- text on its stdout and sends SIGINT again.  Returns {out, err, code,
  -- secs} where secs is from the last SIGINT to the end.
  local function interrupt(src, second)
    local _, name = script(src)
    local out, err = tempfile(), tempfile()
    local text = ([[
BIN SCRIPT >OUT 2>ERR </dev/null & pid=$!
( trap 'kill $nap; exit' TERM; sleep 15 & nap=$!; wait $nap; kill -KILL $pid
) >/dev/null 2>&1 </dev/null & dog=$!
waitfor () {
  i=0
  while ! grep -q "$1" OUT && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
}
waitfor ready
start=$(date +%s%N)
kill -INT $pid
if [ -n "SECOND" ]; then
  waitfor "SECOND"
  start=$(date +%s%N)
  kill -INT $pid
fi
wait $pid; rc=$?
stop=$(date +%s%N)
kill $dog 2>/dev/null
echo "$rc $((stop - start))"
]]):gsub("%u+", {BIN = q(BIN), SCRIPT = q(name), OUT = q(out),
                 ERR = q(err), SECOND = second or ""})
    local line = shell(text)
    local code, ns = line:match("(%d+) (%d+)")
    assert(code, "bad output from the shell: " .. line)
    return {out = readfile(out), err = readfile(err), code = tonumber(code),
            secs = tonumber(ns) / 1e9}
  end

  it("interrupts the main task: 'interrupted', non-zero, at once",
    function()
      local r = interrupt([[
local async = require "asynchost"
print("ready") io.stdout:flush()
async.sleep(10)
print("not reached")
]])
      assert.equal("ready\n", r.out)
      assert.matches("interrupted", r.err, 1, true)
      assert.is_true(r.code ~= 0, "exit code " .. r.code)
      assert.is_true(r.code ~= 137, "killed by the watchdog")
      assert.is_true(r.secs < 2, "took " .. r.secs)
    end)

  it("the interrupt is a CancelledError the main task may catch", function()
    local r = interrupt([[
local async = require "asynchost"
print("ready") io.stdout:flush()
local ok, e = pcall(async.sleep, 10)
print("caught", ok, async.CancelledError:is(e) and "CancelledError" or e)
async.current_task():uncancel()
print("cleaned up")
]])
    assert.equal("ready\ncaught\tfalse\tCancelledError\ncleaned up\n", r.out)
    assert.equal(0, r.code)
    assert.is_true(r.secs < 2, "took " .. r.secs)
  end)

  it("a swallowed interrupt is raised again at the next await", function()
    local r = interrupt([[
local async = require "asynchost"
print("ready") io.stdout:flush()
print("caught", pcall(async.sleep, 10)) io.stdout:flush()
async.sleep(10)
print("not reached")
]])
    assert.matches("^ready\ncaught\tfalse\t", r.out)
    assert.not_matches("not reached", r.out, 1, true)
    assert.matches("interrupted", r.err, 1, true)
    assert.equal(1, r.code)
    assert.is_true(r.secs < 2, "took " .. r.secs)
  end)

  it("a second Ctrl-C kills a task that ignores the first", function()
    local r = interrupt([[
local async = require "asynchost"
print("ready") io.stdout:flush()
pcall(async.sleep, 10)
async.current_task():uncancel()  -- really ignore it
print("ignored") io.stdout:flush()
async.sleep(10)
print("not reached")
]], "ignored")
    assert.equal("ready\nignored\n", r.out)
    assert.equal(130, r.code)  -- killed by SIGINT, from the shell's view
    assert.is_true(r.secs < 1, "took " .. r.secs)
  end)
end)


describe("asynchost stdin and the REPL", function()
  it("runs a piped stdin as one chunk when there is no script", function()
    local r = host("", {stdin = "print(1+1)\n"})
    assert.equal("", r.err)
    assert.equal("2\n", r.out)
    assert.equal(0, r.code)
    -- one chunk: locals are seen across lines, and it may await
    r = host("", {stdin = "local x = 20\n" ..
                          "require('asynchost').sleep(0.01)\n" ..
                          "print(x + 1)\n"})
    assert.equal("21\n", r.out)
  end)

  it("a piped stdin that errors exits 1", function()
    local r = host("", {stdin = "error('from stdin')\n"})
    assert.equal(1, r.code)
    assert.matches("from stdin", r.err, 1, true)
    -- the first line as lua5.4's (the traceback also names the task)
    local l = run(LUA, "", {stdin = "error('from stdin')\n"})
    assert.equal(l.err:match("^[^\n]*\n"):gsub("^" .. plain(LUA), ""),
                 (r.err:match("^[^\n]*\n"):gsub("^" .. plain(BIN), "")))
  end)

  it("-i reads statements and expressions from a piped stdin", function()
    local r = host("-i", {stdin = "x = 20\nprint(x + 1)\n"})
    assert.equal(0, r.code)
    assert.matches("21", r.out, 1, true)
  end)

  it("-i: expressions print, errors go on, lines continue", function()
    local r = host("-i", {stdin = table.concat({
      "x = 20",
      "x * 2",
      "= x + 2",
      "error('oops')",
      "for i = 1, 2 do",
      "  print('line', i)",
      "end",
      "local a = require 'asynchost'; a.sleep(0.01); print('awaited')",
      "",
    }, "\n")})
    assert.equal(0, r.code)
    assert.matches("> 40\n", r.out, 1, true)
    assert.matches("22\n", r.out, 1, true)
    assert.matches("line\t1\nline\t2\n", r.out, 1, true)
    assert.matches("awaited\n", r.out, 1, true)
    assert.matches("oops", r.err, 1, true)
  end)

  it("-i after a script keeps its globals", function()
    local s = script("y = 41\n")
    local r = host("-i " .. s, {stdin = "print(y + 1)\n"})
    assert.equal(0, r.code)
    assert.matches("42\n", r.out, 1, true)
  end)
end)

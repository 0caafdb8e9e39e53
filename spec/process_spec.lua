local async = require "asynchost"
require "asynchost.busted"
local lfs = require "lfs"
local helpers = require "spec.helpers"
local errclass, readfile, q = helpers.errclass, helpers.readfile, helpers.q
local process = async.process

-- {======================================================
-- helpers
-- =======================================================

local function nfds()
  local n = 0
  for _ in lfs.dir("/proc/self/fd") do n = n + 1 end
  return n
end

-- Does process 'pid' exist (a zombie counts)?  Its state letter too.
local function state(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return nil end
  local line = f:read("a")
  f:close()
  return line:match("^%d+ %b() (%a)")
end

-- Our children in the zombie state.
local function zombies()
  local me, list = process.getpid(), {}
  for name in lfs.dir("/proc") do
    if name:match("^%d+$") then
      local f = io.open("/proc/" .. name .. "/stat")
      local line = f and f:read("a")
      if f then f:close() end
      local st, ppid = (line or ""):match("^%d+ %b() (%a) (%d+)")
      if st == "Z" and tonumber(ppid) == me then list[#list + 1] = name end
    end
  end
  return list
end

-- Waits (up to 5 s) until 'file' holds a pid; returns it.
local function pidfrom(file)
  for _ = 1, 500 do
    local f = io.open(file)
    local pid = f and tonumber(f:read("a"))
    if f then f:close() end
    if pid then return pid end
    async.sleep(0.01)
  end
  error("no pid in " .. file)
end

local function tmpname()
  local name = os.tmpname()
  os.remove(name)
  return name
end

-- }======================================================

describe("async.process.run", function()
  it("captures stdout, stderr and the exit code", function()
    local r = process.run("sh", {"-c", "echo out; echo err >&2; exit 3"})
    assert.same({code = 3, stdout = "out\n", stderr = "err\n"}, r)
    r = process.run("echo", {"hello", 42})
    assert.equal(0, r.code)
    assert.is_nil(r.signal)
    assert.equal("hello 42\n", r.stdout)
    assert.equal("", r.stderr)
  end)

  it("finds the program in PATH and passes arguments as they are", function()
    local r = process.run("printf", {"[%s]", "a b", "", "$HOME", "'q'"})
    assert.equal("[a b][][$HOME]['q']", r.stdout)
  end)

  it("writes input to stdin, then closes it", function()
    assert.equal("abc", process.run("cat", nil, {input = "abc"}).stdout)
    assert.equal("0\n", process.run("wc", {"-c"}, {input = ""}).stdout)
    -- without input, stdin is /dev/null: cat ends at once
    assert.equal("", process.run("cat").stdout)
  end)

  it("env replaces the environment; inherit_env extends it", function()
    local r = process.run("env", nil, {env = {FOO = "x y"}})
    assert.equal("FOO=x y\n", r.stdout)
    local script = "echo \"$FOO|$HOME|${PATH:+path}\""
    local home = assert(os.getenv("HOME"))
    r = process.run("sh", {"-c", script},
                    {env = {FOO = 1}, inherit_env = true})
    assert.equal("1|" .. home .. "|path\n", r.stdout)
    r = process.run("sh", {"-c", script},
                    {env = {HOME = false}, inherit_env = true})
    assert.equal("||path\n", r.stdout)
  end)

  it("runs in cwd; a missing cwd is an error naming it", function()
    local dir = lfs.currentdir()
    local r = process.run("pwd", nil, {cwd = "/"})
    assert.equal("/\n", r.stdout)
    assert.equal(dir, lfs.currentdir())
    local err = errclass(async.FileNotFoundError, process.run, "pwd", nil,
                         {cwd = "/no/such/dir"})
    assert.equal("ENOENT: no such file or directory: /no/such/dir",
                 err.message)
    assert.equal("/no/such/dir", err.path)
  end)

  it("a missing program is a FileNotFoundError naming it", function()
    local before = nfds()
    local err = errclass(async.FileNotFoundError, process.run, "nosuchprog")
    assert.equal("FileNotFoundError: ENOENT: no such file or directory: "
                 .. "nosuchprog", tostring(err))
    assert.equal("ENOENT", err.code)
    assert.equal("nosuchprog", err.path)
    assert.is_true(async.OSError:is(err))
    err = errclass(async.FileNotFoundError, process.spawn, "/no/such/prog")
    assert.matches("/no/such/prog", tostring(err), 1, true)
    err = errclass(async.PermissionError, process.run, "/etc/passwd")
    assert.equal("EACCES", err.code)
    assert.equal(before, nfds())
  end)

  it("check = true raises ProcessError on a non-zero exit", function()
    local err = errclass(async.ProcessError, process.run, "false", nil,
                         {check = true})
    assert.equal("ProcessError: 'false' exited with code 1", tostring(err))
    assert.equal(1, err.code)
    assert.equal("false", err.cmd)
    local script = "echo partial; echo oops >&2; exit 7"
    err = errclass(async.ProcessError, process.run, "sh", {"-c", script},
                   {check = true})
    assert.equal(7, err.code)
    assert.is_nil(err.signal)
    assert.equal("partial\n", err.stdout)
    assert.equal("oops\n", err.stderr)
    assert.matches("^ProcessError: 'sh %-c .*' exited with code 7$",
                   tostring(err))
    assert.equal(0, process.run("true", nil, {check = true}).code)
  end)

  it("reports a child killed by a signal", function()
    local r = process.run("sh", {"-c", "kill -TERM $$"})
    assert.equal(-15, r.code)
    assert.equal("SIGTERM", r.signal)
    local err = errclass(async.ProcessError, process.run, "sh",
                         {"-c", "kill -KILL $$"}, {check = true})
    assert.equal("SIGKILL", err.signal)
    assert.matches("was killed by SIGKILL", tostring(err), 1, true)
  end)

  it("timeout kills the child, reaps it, and raises TimeoutError", function()
    local file = tmpname()
    local before = nfds()
    local t0 = async.loop_time()
    local err = errclass(async.TimeoutError, process.run, "sh",
                         {"-c", "echo $$ > " .. q(file) .. "; exec sleep 10"},
                         {timeout = 0.5})
    local took = async.loop_time() - t0
    assert.matches("^TimeoutError: 'sh %-c .*' timed out after 0.5 s$",
                   tostring(err))
    assert.equal("sh", err.cmd)
    assert.is_true(took >= 0.5 and took < 2.1, "took " .. took)
    local pid = pidfrom(file)
    os.remove(file)
    assert.is_nil(state(pid), "the child is still there")
    assert.same({}, zombies())
    assert.equal(before, nfds())
  end)

  it("a child ignoring SIGTERM gets SIGKILL after the grace", function()
    local t0 = async.loop_time()
    errclass(async.TimeoutError, process.run, "sh",
             {"-c", "trap '' TERM; exec sleep 10"},
             {timeout = 0.5, grace = 0.3})
    local took = async.loop_time() - t0
    assert.is_true(took >= 0.75 and took < 2.5, "took " .. took)
    assert.same({}, zombies())
  end)

  it("cancelling run kills and reaps the child, leaks no pipe", function()
    local file = tmpname()
    local before = nfds()
    local t = async.spawn(process.run, "sh",
                          {"-c", "echo $$ > " .. q(file) .. "; exec sleep 10"})
    local pid = pidfrom(file)
    os.remove(file)
    assert.is_not_nil(state(pid))
    local t0 = async.loop_time()
    t:cancel()
    errclass(async.CancelledError, async.await, t)
    -- the cancelled task ends once the child is reaped
    async.sleep(0)
    assert.is_true(t:cancelled())
    assert.is_true(async.loop_time() - t0 < 1.5)
    assert.is_nil(state(pid), "the child is still there")
    assert.same({}, zombies())
    assert.equal(before, nfds())
  end)

  it("moves several MB on stdout and stderr at once without deadlock",
    function()
      local script = "head -c 5000000 /dev/zero & " ..
                     "head -c 3000000 /dev/zero | tr '\\0' e >&2; wait"
      local r = process.run("sh", {"-c", script})
      assert.equal(0, r.code)
      assert.equal(5000000, #r.stdout)
      assert.equal(3000000, #r.stderr)
      assert.equal(("e"):rep(10), r.stderr:sub(-10))
      -- and through stdin as well: 4 MB in, 4 MB out
      local input = ("0123456789abcdef"):rep(256 * 1024)
      r = process.run("cat", nil, {input = input})
      assert.equal(#input, #r.stdout)
      assert.is_true(r.stdout == input)
    end, 30)

  it("a child that exits before reading its input is no error", function()
    local before = nfds()
    local r = process.run("true", nil, {input = ("x"):rep(4000000)})
    assert.equal(0, r.code)
    r = process.run("head", {"-c", "5"}, {input = ("y"):rep(4000000)})
    assert.equal("yyyyy", r.stdout)
    assert.equal(before, nfds())
  end)

  it("runs many at once", function()
    local ts = {}
    for i = 1, 20 do
      ts[i] = async.spawn(process.run, "sh", {"-c", "echo " .. i})
    end
    for i = 1, 20 do assert.equal(i .. "\n", ts[i]:await().stdout) end
    assert.same({}, zombies())
  end)

  it("checks its arguments", function()
    assert.has_error(function() process.run(nil) end,
      "bad argument #1 to 'run' (string expected, got nil)")
    assert.has_error(function() process.run("") end,
      "bad argument #1 to 'run' (empty command)")
    assert.has_error(function() process.run("ls", "-l") end,
      "bad argument #2 to 'run' (table expected, got string)")
    assert.has_error(function() process.run("ls", {cwd = "/"}) end,
      "bad argument #2 to 'run' (array of strings expected, got key "
      .. "'cwd' (options go in argument #3))")
    assert.has_error(function() process.run("ls", {{}}) end,
      "bad argument #2 to 'run' (string expected at index 1, got table)")
    assert.has_error(function() process.run("ls", nil, {timout = 1}) end,
      "bad argument #3 to 'run' (unknown option 'timout')")
    assert.has_error(function() process.run("ls", nil, {timeout = -1}) end,
      "bad argument #3 to 'run' (timeout: non-negative number expected, "
      .. "got -1)")
    assert.has_error(function() process.run("ls", nil, {env = {"x"}}) end,
      "bad argument #3 to 'run' (env: invalid variable name number)")
    assert.has_error(function() process.run("ls", nil, {env = {A = {}}}) end,
      "bad argument #3 to 'run' (env: string expected for 'A', got table)")
    assert.has_error(function() process.run("ls", nil, {input = 1}) end,
      "bad argument #3 to 'run' (input: string expected, got number)")
    assert.has_error(function() process.spawn("ls", nil, {stdout = "x"}) end,
      "bad argument #3 to 'spawn' (stdout: \"pipe\", \"inherit\", \"null\" "
      .. "or a file descriptor expected, got 'x')")
  end)
end)

describe("async.process.spawn", function()
  it("gives stdin and stdout as streams", function()
    local p <close> = process.spawn("sh", {"-c", "while read x; do " ..
                                    "echo \"got $x\"; done; exit 4"})
    assert.is_number(p.pid)
    assert.is_nil(p.stderr)  -- inherited by default
    assert.is_nil(p.returncode)
    assert.matches("^Process %d+ %(sh, running%)$", tostring(p))
    p.stdin:write("one\n")
    assert.equal("got one\n", p.stdout:readline())
    p.stdin:write("two\nthree\n")
    p.stdin:drain()
    assert.equal("got two\n", p.stdout:readline())
    assert.equal("got ", p.stdout:readexactly(4))
    assert.equal("three\n", p.stdout:readuntil("\n"))
    p.stdin:close()
    assert.is_nil(p.stdout:readline())
    local code, sig = p:wait()
    assert.equal(4, code)
    assert.is_nil(sig)
    assert.equal(4, p.returncode)
    assert.matches("^Process %d+ %(sh, exited with code 4%)$", tostring(p))
    assert.equal(4, (p:wait()))  -- again, at once
  end)

  it("stdio modes: pipe, null, inherit, a descriptor", function()
    local p <close> = process.spawn("sh", {"-c", "echo out; echo err >&2"},
                                    {stdin = "null", stdout = "null",
                                     stderr = "pipe"})
    assert.is_nil(p.stdin)
    assert.is_nil(p.stdout)
    assert.equal("err\n", p.stderr:read())
    assert.equal(0, (p:wait()))
    -- a descriptor of ours: that of a file we opened
    local file = tmpname()
    local f = assert(io.open(file, "w"))
    local fd
    for name in lfs.dir("/proc/self/fd") do
      if lfs.symlinkattributes("/proc/self/fd/" .. name, "target") == file
      then fd = tonumber(name) end
    end
    assert.is_number(fd)
    local p2 <close> = process.spawn("echo", {"to the file"}, {stdout = fd})
    assert.is_nil(p2.stdout)
    assert.equal(0, (p2:wait()))
    f:close()
    assert.equal("to the file\n", readfile(file))
    os.remove(file)
  end)

  it("wait() has many waiters; kill() sends SIGTERM by default", function()
    local p <close> = process.spawn("sleep", {"10"}, {stdin = "null"})
    local a = async.spawn(p.wait, p)
    local b = async.spawn(p.wait, p)
    async.sleep(0.05)
    assert.is_false(a:done())
    p:kill()
    assert.same({-15, "SIGTERM"}, {a:await()})
    assert.same({-15, "SIGTERM"}, {b:await()})
    assert.equal(-15, p.returncode)
    assert.matches("killed by SIGTERM", tostring(p))
    p:kill()  -- after the exit: nothing
    p:kill("KILL")
  end)

  it("kill takes names and numbers", function()
    for _, sig in ipairs{"SIGKILL", "KILL", "kill", 9} do
      local p <close> = process.spawn("sleep", {"10"}, {stdin = "null"})
      p:kill(sig)
      assert.same({-9, "SIGKILL"}, {p:wait()})
    end
    local p <close> = process.spawn("sleep", {"10"}, {stdin = "null"})
    p:kill("USR1")
    assert.same({-10, "SIGUSR1"}, {p:wait()})
    assert.has_error(function() p:kill("SIGFOO") end,
      "bad argument #1 to 'kill' (unknown signal 'SIGFOO')")
    assert.has_error(function() p:kill({}) end,
      "bad argument #1 to 'kill' (signal name or number expected, got table)")
  end)

  it("a cancelled wait leaves the child running", function()
    local p <close> = process.spawn("sleep", {"10"}, {stdin = "null"})
    local t = async.spawn(p.wait, p)
    async.sleep(0.02)
    t:cancel()
    errclass(async.CancelledError, async.await, t)
    assert.is_not_nil(state(p.pid))
    assert.is_nil(p.returncode)
    p:kill("SIGKILL")
    assert.equal(-9, (p:wait()))
  end)

  it("<close> kills and reaps a running child, closes its pipes", function()
    local before = nfds()
    local pid
    do
      local p <close> = process.spawn("sleep", {"10"})
      pid = p.pid
      assert.is_not_nil(state(pid))
    end
    assert.is_nil(state(pid))
    assert.equal(before, nfds())
    -- close(grace): SIGKILL for a child that ignores SIGTERM
    local p = process.spawn("sh", {"-c", "trap '' TERM; echo ready; " ..
                            "exec sleep 10"}, {stdin = "null"})
    assert.equal("ready\n", p.stdout:readline())
    local t0 = async.loop_time()
    p:close(0.1)
    assert.is_true(async.loop_time() - t0 < 1)
    assert.equal("SIGKILL", select(2, p:wait()))
    assert.same({}, zombies())
  end)

  it("a process dropped while running is reaped, not leaked", function()
    local pids = {}
    for i = 1, 5 do
      pids[i] = process.spawn("sh", {"-c", "sleep 0.05"},
                              {stdin = "null", stdout = "null"}).pid
    end
    collectgarbage()
    collectgarbage()
    local gone
    for _ = 1, 500 do  -- a zombie stays in /proc until reaped
      gone = true
      for _, pid in ipairs(pids) do
        if state(pid) then gone = false end
      end
      if gone then break end
      async.sleep(0.01)
    end
    assert.is_true(gone, "not reaped")
    assert.same({}, zombies())
  end)

  it("writing to a child that has exited is a ConnectionResetError",
    function()
      local p <close> = process.spawn("true", nil, {stdout = "null"})
      p:wait()
      local err = errclass(async.ConnectionResetError, function()
        for _ = 1, 100 do
          p.stdin:write(("x"):rep(65536))
          p.stdin:drain()
          async.sleep(0.001)
        end
      end)
      assert.equal("EPIPE", err.code)
    end)

  it("getpid is our own pid", function()
    local r = process.run("sh", {"-c", "echo $PPID"})
    assert.equal(process.getpid() .. "\n", r.stdout)
    assert.equal(lfs.symlinkattributes("/proc/self", "target"),
                 tostring(process.getpid()))
  end)
end)

--- async.process: child processes (bindings/process.c), their pipes as
-- the streams of async.net.
--
--   local r = async.process.run("ls", {"-l"}, {cwd = "/tmp", timeout = 5})
--   print(r.code, r.stdout)
--
--   local p <close> = async.process.spawn("sort")   -- stdin, stdout piped
--   p.stdin:write("b\na\n"); p.stdin:close()
--   print(p.stdout:read(), p:wait())
--
-- run() kills the child (SIGTERM, then SIGKILL after `grace` seconds) and
-- reaps it on timeout or cancellation; so does closing a process.  See
-- docs/process.md.
local core = require "asynchost.core.process"
local sigcore = require "asynchost.core.signal"
local tasks = require "asynchost.tasks"
local errors = require "asynchost.errors"
local check = require "asynchost.check"
local current_task = require("asynchost.core").current_task
local rawpcall = require("asynchost.core.coroutine").rawpcall

local argerror, typename = check.argerror, check.typename
local TimeoutError, ProcessError = errors.TimeoutError, errors.ProcessError
local CancelledError = errors.CancelledError

local M = {}

local GRACE = 1  -- seconds between SIGTERM and SIGKILL, by default

---------------------------------------------------------------------------
-- argument checks

local function checkcmd(cmd, fname)
  if type(cmd) ~= "string" then
    argerror(1, fname, "string expected, got " .. typename(cmd), 3)
  end
  if cmd == "" then argerror(1, fname, "empty command", 3) end
end

-- A fresh array of strings from args (numbers converted).
local function checkargs(args, fname)
  local list = {}
  if args == nil then return list end
  if type(args) ~= "table" then
    argerror(2, fname, "table expected, got " .. typename(args), 3)
  end
  local n = #args
  for k in pairs(args) do
    if math.type(k) ~= "integer" or k < 1 or k > n then
      argerror(2, fname, ("array of strings expected, got key %s (options "
               .. "go in argument #3)"):format(type(k) == "string"
               and ("'" .. k .. "'") or tostring(k)), 3)
    end
  end
  for i = 1, n do
    local v = args[i]
    if math.type(v) then v = tostring(v)
    elseif type(v) ~= "string" then
      argerror(2, fname, ("string expected at index %d, got %s")
               :format(i, typename(v)), 3)
    end
    list[i] = v
  end
  return list
end

local function checkstdio(v, key, fname)
  if v == nil or v == "pipe" or v == "inherit" or v == "null" then return end
  if math.type(v) == "integer" and v >= 0 then return end
  argerror(3, fname, ("%s: \"pipe\", \"inherit\", \"null\" or a file "
           .. "descriptor expected, got %s"):format(key,
           type(v) == "string" and ("'" .. v .. "'") or typename(v)), 4)
end

local function checknonneg(v, key, fname)
  if v ~= nil and (type(v) ~= "number" or not (v >= 0)) then
    argerror(3, fname, key .. ": non-negative number expected, got "
             .. (type(v) == "number" and tostring(v) or typename(v)), 4)
  end
end

local spawnkeys = {cwd = true, env = true, inherit_env = true, stdin = true,
                   stdout = true, stderr = true}
local runkeys = {input = true, timeout = true, check = true, grace = true}
for k in pairs(spawnkeys) do runkeys[k] = true end

local function checkopts(opts, fname, keys)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    argerror(3, fname, "table expected, got " .. typename(opts), 3)
  end
  for k in pairs(opts) do
    if not keys[k] then
      argerror(3, fname, "unknown option " .. (type(k) == "string"
               and ("'" .. k .. "'") or tostring(k)), 3)
    end
  end
  if opts.cwd ~= nil and type(opts.cwd) ~= "string" then
    argerror(3, fname, "cwd: string expected, got " .. typename(opts.cwd), 3)
  end
  if opts.env ~= nil then
    if type(opts.env) ~= "table" then
      argerror(3, fname, "env: table expected, got " .. typename(opts.env), 3)
    end
    for k, v in pairs(opts.env) do
      if type(k) ~= "string" or k == "" or k:find("=", 1, true) then
        argerror(3, fname, "env: invalid variable name " .. (type(k) ==
                 "string" and ("'" .. k .. "'") or typename(k)), 3)
      end
      if type(v) ~= "string" and not math.type(v)
         and not (v == false and opts.inherit_env) then
        argerror(3, fname, ("env: string expected for '%s', got %s")
                 :format(k, typename(v)), 3)
      end
    end
  end
  for _, key in ipairs{"stdin", "stdout", "stderr"} do
    checkstdio(opts[key], key, fname)
  end
  checknonneg(opts.timeout, "timeout", fname)
  checknonneg(opts.grace, "grace", fname)
  if opts.input ~= nil then
    if type(opts.input) ~= "string" then
      argerror(3, fname, "input: string expected, got "
               .. typename(opts.input), 3)
    end
    if opts.stdin ~= nil and opts.stdin ~= "pipe" then
      argerror(3, fname, "input: stdin must be a pipe", 3)
    end
  end
  return opts
end

-- "'ls -l /tmp'", for messages
local function cmdline(cmd, argv)
  local s = cmd
  if #argv > 0 then s = s .. " " .. table.concat(argv, " ") end
  if #s > 60 then s = s:sub(1, 57) .. "..." end
  return "'" .. s .. "'"
end

local function spawnopts(opts, stdin, stdout, stderr)
  return {cwd = opts.cwd, env = opts.env, inherit_env = opts.inherit_env,
          stdin = opts.stdin or stdin, stdout = opts.stdout or stdout,
          stderr = opts.stderr or stderr}
end

---------------------------------------------------------------------------
-- processes

local Process = core.Process  -- the metatable
local methods = core.methods

local function closepipes(p)
  local a, b, c = p.stdin, p.stdout, p.stderr
  if a then a:close() end
  if b then b:close() end
  if c then c:close() end
end

--- p:close([grace]): if the child still runs, SIGTERM, then SIGKILL after
-- `grace` seconds (default 1); waits for its end; closes the pipes.
-- Outside a task it sends SIGKILL and does not wait.  Also <close>.
function methods.close(p, grace)
  if grace ~= nil and (type(grace) ~= "number" or not (grace >= 0)) then
    argerror(1, "close", "non-negative number expected, got "
             .. (type(grace) == "number" and tostring(grace)
                 or typename(grace)), 2)
  end
  local err
  if p.returncode == nil then
    if current_task() == nil then
      p:kill("SIGKILL")  -- reaped by libuv when the loop runs
    else
      p:kill("SIGTERM")
      local ok, e = rawpcall(tasks.timeout, grace or GRACE, p.wait, p)
      if not ok then
        if CancelledError:is(e) then err = e end  -- not ours: pass it on
        p:kill("SIGKILL")
        while p.returncode == nil do
          ok, e = rawpcall(p.wait, p)
          if not ok and err == nil then err = e end
        end
      end
    end
  end
  closepipes(p)
  if err ~= nil then error(err, 0) end
end

function Process.__close(p)
  return p:close()
end

--- spawn(cmd, [args], [opts]) -> process.  opts: cwd, env, inherit_env,
-- stdin, stdout (both "pipe" by default), stderr ("inherit" by default).
function M.spawn(cmd, args, opts)
  checkcmd(cmd, "spawn")
  local argv = checkargs(args, "spawn")
  opts = checkopts(opts, "spawn", spawnkeys)
  return core.spawn(cmd, argv, spawnopts(opts, "pipe", "pipe", "inherit"))
end

local function readall(s)
  return function() return s:read() end
end

-- Feeds input, reads stdout and stderr to their ends, waits for the exit.
local function communicate(p, input)
  local out, err
  if input then
    p.stdin:write(input)  -- queued; a child that exits first: EPIPE, ignored
    p.stdin:close()
  end
  if p.stdout and p.stderr then
    local r = tasks.gather(readall(p.stdout), readall(p.stderr))
    out, err = r[1], r[2]
  elseif p.stdout then out = p.stdout:read()
  elseif p.stderr then err = p.stderr:read() end
  local code, sig = p:wait()
  return {code = code, signal = sig, stdout = out, stderr = err}
end

--- run(cmd, [args], [opts]) -> {code, signal, stdout, stderr}.
-- opts: those of spawn (stdin "null", stdout and stderr "pipe" by default),
-- input (a string for stdin), timeout (seconds), check (raise
-- ProcessError on a non-zero exit), grace (seconds from SIGTERM to SIGKILL
-- when killing on timeout or cancellation; default 1).
function M.run(cmd, args, opts)
  checkcmd(cmd, "run")
  local argv = checkargs(args, "run")
  opts = checkopts(opts, "run", runkeys)
  check.running("run")
  local input = opts.input
  local p = core.spawn(cmd, argv, spawnopts(opts, input and "pipe" or "null",
                                            "pipe", "pipe"))
  local ok, r = rawpcall(tasks.timeout, opts.timeout, communicate, p, input)
  if not ok then
    local ok2, err2 = rawpcall(p.close, p, opts.grace)
    if TimeoutError:is(r) then
      r = TimeoutError(("%s timed out after %g s"):format(cmdline(cmd, argv),
                                                         opts.timeout),
                       {cmd = cmd, args = argv, timeout = opts.timeout})
    end
    if not ok2 then error(err2, 0) end
    error(r, 0)
  end
  closepipes(p)
  if opts.check and r.code ~= 0 then
    local how = r.signal and ("was killed by " .. tostring(r.signal))
                or ("exited with code " .. r.code)
    error(ProcessError(cmdline(cmd, argv) .. " " .. how,
                       {code = r.code, signal = r.signal, stdout = r.stdout,
                        stderr = r.stderr, cmd = cmd, args = argv}), 0)
  end
  return r
end

--- getpid() -> the id of our own process
M.getpid = core.getpid

--- signum(name or number) -> number or nil (see async.signal)
M.signum = sigcore.signum

return M

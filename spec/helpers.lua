--- Helpers shared by the specs (require "spec.helpers").  asynchost is
-- loaded only by the helpers that await, so specs of the bare executable
-- can use the others.

local M = {}

--- s quoted for sh.
function M.q(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

--- The whole content of the file at path.
function M.readfile(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

--- Writes s to the file at path.
function M.writefile(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

--- Calls fn(...), expects an error of class cls; returns the error.
function M.errclass(cls, fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error")
  assert(cls:is(err), "expected a " .. tostring(cls) .. ", got " .. tostring(err))
  return err
end

--- Runs a shell command in the background, so that the loop (and the
-- servers of the spec) keep running; returns its output and exit status.
-- Bounded: raises after 'timeout' seconds (default 10).
function M.sh(cmd, timeout)
  local async = require "asynchost"
  local out, rc = os.tmpname(), os.tmpname()
  os.remove(rc)
  -- the status file appears whole (renamed into place): never half-written
  os.execute(("{ (%s) > %s 2>&1; echo $? > %s.tmp; mv %s.tmp %s; } &")
             :format(cmd, out, rc, rc, rc))
  local deadline = async.loop_time() + (timeout or 10)
  while async.loop_time() < deadline do
    local f = io.open(rc)
    if f then
      local code = tonumber(f:read("a"))
      f:close()
      local o = io.open(out)
      local text = o:read("a")
      o:close()
      os.remove(out); os.remove(rc)
      return text, code
    end
    async.sleep(0.02)
  end
  error("command did not finish: " .. cmd)
end

--- Reads one HTTP response from stream s: status, headers (lowercased
-- names), body (none after a HEAD).  nil at the end of the stream.
function M.response(s, head)
  local line = s:readline()
  if not line then return nil end
  local status = tonumber(line:match("^HTTP/1%.1 (%d+)"))
  local headers = {}
  while true do
    local h = s:readline()
    if h == "\r\n" then break end
    local k, v = h:match("^([^:]+):%s*(.-)\r\n$")
    headers[k:lower()] = v
  end
  local body
  if head then
    body = ""
  elseif headers["content-length"] then
    body = s:readexactly(tonumber(headers["content-length"]))
  elseif headers["transfer-encoding"] == "chunked" then
    local parts = {}
    while true do
      local size = tonumber(s:readline():match("^(%x+)"), 16)
      if size == 0 then s:readline(); break end
      parts[#parts + 1] = s:readexactly(size)
      s:readexactly(2)
    end
    body = table.concat(parts)
  end
  return status, headers, body
end

--- s as a Lua pattern that matches it literally.
function M.plain(s)
  return (s:gsub("%p", "%%%0"))
end

--- How many times the pattern pat matches in s.
function M.count(s, pat)
  local n = 0
  for _ in s:gmatch(pat) do n = n + 1 end
  return n
end

--- Whether there is a file at path.
function M.exists(path)
  local f = io.open(path, "r")
  if f then f:close() end
  return f ~= nil
end

--- Whether cmd is a command found on PATH.
function M.onpath(cmd)
  return os.execute("command -v " .. cmd .. " > /dev/null 2>&1") == true
end

-- {======================================================
-- the executable under test, run in subprocesses
-- =======================================================

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

--- The asynchost executable under test: $ASYNCHOST_BIN; else the
-- interpreter running the specs if it is asynchost; else, under lua5.4, the
-- one built beside the C module found on package.cpath (build-x/asynchost
-- for build-x/lua/asynchost.so); else build/asynchost.
M.BIN = os.getenv("ASYNCHOST_BIN")
if not M.BIN then
  local interp = arg and arg[-1]
  local so = package.searchpath("asynchost", package.cpath)
  local beside = so and dirname(dirname(so)) .. "/asynchost"
  if type(interp) == "string" and interp:match("asynchost$") then
    M.BIN = interp
  elseif beside and M.exists(beside) then
    M.BIN = beside
  else
    M.BIN = "build/asynchost"
  end
end

--- tests/ptyrun, which drives a program on a pseudo-terminal:
-- $ASYNCHOST_PTYRUN if it exists; else the one built beside M.BIN; else
-- build/ptyrun; nil if there is none.
M.PTYRUN = os.getenv("ASYNCHOST_PTYRUN")
if not M.PTYRUN or not M.exists(M.PTYRUN) then
  M.PTYRUN = nil
  for _, p in ipairs{dirname(M.BIN) .. "/ptyrun", "build/ptyrun"} do
    if M.exists(p) then M.PTYRUN = p break end
  end
end

local temps = {}

--- A fresh temporary name ending in suffix (default none), with nothing
-- there yet; removed by M.cleanup, whatever it then names.
function M.tempname(suffix)
  local name = os.tmpname()
  os.remove(name)
  name = name .. (suffix or "")
  temps[#temps + 1] = name
  return name
end

--- A temporary file holding s (default empty); removed by M.cleanup.
function M.tempfile(s)
  local name = os.tmpname()
  M.writefile(name, s or "")
  temps[#temps + 1] = name
  return name
end

--- A temporary directory; removed with its content by M.cleanup.
function M.tempdir()
  local name = M.tempname()
  assert(os.execute("mkdir " .. M.q(name)))
  return name
end

--- A temporary script: a file named *.lua holding src; removed by
-- M.cleanup.
function M.script(src)
  local name = M.tempname(".lua")
  M.writefile(name, src)
  return name
end

--- Removes what M.tempname, M.tempfile, M.tempdir and M.script made: a
-- spec that uses them calls after_each(helpers.cleanup).
function M.cleanup()
  for _, name in ipairs(temps) do os.execute("rm -rf " .. M.q(name)) end
  temps = {}
end

--- Runs the executable (M.BIN, or opts.bin) with the shell words args
-- (already quoted), bounded by 'timeout' (opts.timeout seconds, default
-- 60), without ASYNCHOST_DEBUG, ASYNCHOST_SLOW, LUA_INIT and LUA_INIT_5_4
-- from our environment.  opts.env: the variables to set (name = value);
-- opts.stdin: text piped to its stdin (else /dev/null).  Returns {out,
-- err, code, secs}.
function M.run(args, opts)
  opts = opts or {}
  local words = {"timeout", tostring(opts.timeout or 60), "env",
                 "-u ASYNCHOST_DEBUG -u ASYNCHOST_SLOW",
                 "-u LUA_INIT -u LUA_INIT_5_4"}
  local keys = {}
  for k in pairs(opts.env or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    words[#words + 1] = k .. "=" .. M.q(tostring(opts.env[k]))
  end
  local out, err = M.tempfile(), M.tempfile()
  local cmd = table.concat(words, " ") .. " " .. M.q(opts.bin or M.BIN)
              .. " " .. (args or "") .. " > " .. M.q(out) .. " 2> " .. M.q(err)
  if opts.stdin then
    cmd = "cat " .. M.q(M.tempfile(opts.stdin)) .. " | " .. cmd
  else
    cmd = cmd .. " < /dev/null"
  end
  local p = assert(io.popen("start=$(date +%s%N)\n" .. cmd .. "\nrc=$?\n"
                            .. "stop=$(date +%s%N)\n"
                            .. "echo \"$rc $((stop - start))\"\n", "r"))
  local line = p:read("a")
  p:close()
  local code, ns = line:match("(%d+) (%d+)")
  assert(code, "bad output from the shell: " .. line)
  return {out = M.readfile(out), err = M.readfile(err), code = tonumber(code),
          secs = tonumber(ns) / 1e9}
end

-- }======================================================

-- The fields every phase needs, per the trace-event format.
local TRACE_PHASES = {X = {"ts", "dur"}, B = {"ts"}, E = {"ts"}, M = {"args"},
                s = {"ts", "id"}, f = {"ts", "id"}, i = {"ts"}}

--- Checks a decoded --trace JSON document against the trace-event format
-- (Chrome/Perfetto): the fields each phase needs, their types.
function M.checktrace(doc)
  local assert = require "luassert"
  local cjson = require "cjson"
  assert.is_table(doc.traceEvents)
  assert.is_true(#doc.traceEvents > 0)
  for k, e in ipairs(doc.traceEvents) do
    local what = "event " .. k .. ": " .. cjson.encode(e)
    assert.is_string(e.name, what)
    assert.is_string(e.ph, what)
    assert.is_table(TRACE_PHASES[e.ph], "unknown phase: " .. what)
    assert.is_number(e.pid, what)
    assert.is_number(e.tid, what)
    for _, field in ipairs(TRACE_PHASES[e.ph]) do
      assert.is_not_nil(e[field], field .. " missing: " .. what)
    end
    if e.ts then
      assert.is_number(e.ts, what)
      assert.is_true(e.ts >= 0, what)
    end
    if e.ph == "X" then
      assert.is_number(e.dur, what)
      assert.is_true(e.dur >= 0, what)
    elseif e.ph == "M" then
      assert.is_true(e.name == "process_name" or e.name == "thread_name"
                     or e.name == "thread_sort_index", what)
    elseif e.ph == "f" then
      assert.equal("e", e.bp, what)
    end
  end
end


return M

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

return M

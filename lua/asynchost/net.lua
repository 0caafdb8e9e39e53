--- async.net: TCP streams, asyncio-streams style.
--
--   local s <close> = async.net.connect("127.0.0.1", 8080, {timeout = 5})
--   s:write("hello\n"); s:drain()
--   local line = s:readline()
--
--   local server = async.net.listen(function(s)   -- one task per client;
--     s:write(s:readline())                        -- the stream is closed
--   end, "127.0.0.1", 0)                           -- when it returns
--   local host, port = server:address()
--
-- Streams (bindings/net.c): read(n) (up to n bytes, nil at the end),
-- read() (all until the end), readline(), readuntil(sep), readexactly(n)
-- (IncompleteReadError with .partial at an early end), settimeout(s)
-- (each read then raises TimeoutError after s seconds), write(data) (never
-- waits), drain() (waits while more than 64 KiB is queued), write_eof(),
-- close() (sends what was written first; also <close>), reset() (closes at
-- once with a RST: the peer gets ECONNRESET), address(), peer().
-- Errors: ConnectionRefusedError, ConnectionResetError, DNSError (all
-- ConnectionError, with .code, .host, .port), TimeoutError.
local core = require "asynchost.core.net"
local tasks = require "asynchost.tasks"
local errors = require "asynchost.errors"
local check = require "asynchost.check"
local argerror, typename = check.argerror, check.typename
local rawpcall = require("asynchost.core.coroutine").rawpcall

local M = {}

local function checkhostport(host, port, fname, optport)
  if type(host) ~= "string" then
    argerror(1, fname, "string expected, got " .. typename(host), 3)
  end
  if host == "" then argerror(1, fname, "empty host name", 3) end
  if optport and port == nil then return 0 end
  if math.type(port) ~= "integer" then
    argerror(2, fname, "integer expected, got " .. typename(port), 3)
  end
  return port
end

--- connect(host, port [, {timeout = s}]) -> stream.  The name is resolved
-- by libuv (IPv4 and IPv6); each address is tried in turn.
function M.connect(host, port, opts)
  checkhostport(host, port, "connect")
  opts = opts or {}
  if type(opts) ~= "table" then
    argerror(3, "connect", "table expected, got " .. typename(opts), 2)
  end
  local t = opts.timeout
  if t ~= nil and (type(t) ~= "number" or not (t >= 0)) then
    argerror(3, "connect", "timeout: non-negative number expected, got "
             .. (type(t) == "number" and tostring(t) or typename(t)), 2)
  end
  check.running("connect")
  if opts.timeout == nil then return core.connect(host, port) end
  local ok, res = rawpcall(tasks.wait_for,
                           function() return core.connect(host, port) end,
                           opts.timeout)
  if ok then return res end
  if errors.TimeoutError:is(res) then
    error(errors.TimeoutError(("connecting to %s:%d timed out after %g s")
                              :format(host, port, opts.timeout),
                              {host = host, port = port}), 0)
  end
  error(res, 0)
end

--- listen(handler, [host = "127.0.0.1"], [port = 0], [{backlog = n}])
-- -> server.  handler(stream) runs in a task of its own for each client;
-- the stream is closed when it returns.  An error in a handler is reported
-- on stderr at once (the server keeps serving).  server:close() stops
-- listening; server:address() -> host, port (port 0 picks a free one).
function M.listen(handler, host, port, opts)
  if not check.callable(handler) then
    argerror(1, "listen", "function expected, got " .. typename(handler), 2)
  end
  host = host or "127.0.0.1"
  if type(host) ~= "string" then
    argerror(2, "listen", "string expected, got " .. typename(host), 2)
  end
  if host == "" then argerror(2, "listen", "empty host name", 2) end
  if port ~= nil and math.type(port) ~= "integer" then
    argerror(3, "listen", "integer expected, got " .. typename(port), 2)
  end
  opts = opts or {}
  if type(opts) ~= "table" then
    argerror(4, "listen", "table expected, got " .. typename(opts), 2)
  end
  local function serve(stream)
    local s <close> = stream
    local ok, err = xpcall(handler, debug.traceback, s)
    if not ok and not errors.CancelledError:is(err) then
      io.stderr:write("asynchost: error in a connection handler: ",
                      tostring(err), "\n")
    end
  end
  return core.listen(serve, host, port or 0, opts.backlog)
end

return M

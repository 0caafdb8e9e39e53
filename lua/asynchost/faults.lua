--- asynchost.faults: the misbehaving endpoints of the test server, so that
-- clients can be tried against what real servers and networks do to them.
--
--   local srv <close> = require("asynchost.testserver").start{}
--   local s <close> = async.http.session{base_url = srv.url, timeout = 2}
--   local ok, err = pcall(s.get, s, "/fault/drop")
--   --> false  ConnectionResetError: CURLE_PARTIAL_FILE: ...
--
-- GET (any method) /fault/{mode}[?n=N&interval=S&seconds=S] answers the
-- request in one of these ways (N: body bytes, default 100; the body is
-- N times "x"):
--
--   drop          headers announcing N bytes, N/2 of them, then the
--                 connection closes (FIN)
--   stall         headers announcing N bytes, then nothing: the connection
--                 stays open until the client leaves (or `seconds`,
--                 default 60)
--   garbage       N bytes that are not HTTP, then the connection closes
--   reset         headers and N/2 bytes, then a RST (SO_LINGER 0): the
--                 client reads ECONNRESET
--   empty         the connection closes without a byte sent
--   trickle       a correct response, sent one byte at a time, one every
--                 `interval` seconds (default 0.1); the headers too
--   length-short  Content-Length: N/2 with N bytes of body (the rest is
--                 left on a kept-alive connection), keep-alive
--   length-long   Content-Length: 2N with N bytes of body, then nothing
--                 (as stall: the client waits for bytes that never come)
--   bad-chunk     chunked transfer with a chunk size that is not hex
--
-- Each mode ends the connection afterwards (but length-short, whose point
-- is what a client does with the bytes left over: the server closes it
-- once the client sends its next request).  A client that leaves while a
-- handler stalls or trickles ends the handler quietly.  The modes are in
-- M.MODES; M.handle(srv, req, res) is the handler the test server routes
-- /fault/{mode} to.
local runtime = require "asynchost.core"
local errors = require "asynchost.errors"
local rawpcall = require("asynchost.core.coroutine").rawpcall

local M = {}

local MAX_N = 1024 * 1024

M.MODES = {"drop", "stall", "garbage", "reset", "empty", "trickle",
           "length-short", "length-long", "bad-chunk"}

local function head(n, extra)
  return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" ..
         "Content-Length: " .. n .. "\r\n" .. (extra or "") .. "\r\n"
end

-- Waits until the client closes the connection (or 'seconds' pass):
-- reads and drops what it sends meanwhile.
local function hold(s, seconds)
  s:settimeout(seconds)
  while s:read(65536) ~= nil do end
end

-- Bytes that no HTTP parser takes for a status line: drawn from a seed,
-- but never starting with "HTTP".
local function garbage(n)
  local t, x = {}, 12345
  for i = 1, n do
    x = (x * 1103515245 + 12345) % 2147483648
    t[i] = string.char(x >> 16 & 0xff)
  end
  return "\0\1garbage" .. table.concat(t):sub(1, math.max(0, n - 9))
end

local modes = {}

function modes.drop(s, n)
  s:write(head(n) .. ("x"):rep(n // 2))
  s:drain()
end

function modes.stall(s, n, opts)
  s:write(head(n))
  s:drain()
  hold(s, opts.seconds)
end

function modes.garbage(s, n)
  s:write(garbage(n))
  s:drain()
end

function modes.reset(s, n)
  s:write(head(n) .. ("x"):rep(n // 2))
  s:drain()
  runtime.sleep(0.01)  -- the bytes leave before the RST
  s:reset()
end

function modes.empty() end

function modes.trickle(s, n, opts)
  local data = head(n, "Connection: close\r\n") .. ("x"):rep(n)
  for i = 1, #data do
    s:write(data:sub(i, i))
    s:drain()
    runtime.sleep(opts.interval)
  end
end

modes["length-short"] = function(s, n)
  s:write(head(n // 2, "Connection: keep-alive\r\n") .. ("x"):rep(n))
  s:drain()
  s:settimeout(10)  -- until the client's next request (or it leaves)
  s:read(65536)
end

modes["length-long"] = function(s, n, opts)
  s:write(head(2 * n) .. ("x"):rep(n))
  s:drain()
  hold(s, opts.seconds)
end

modes["bad-chunk"] = function(s)
  s:write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" ..
          "5\r\nhello\r\nzz\r\nnot a chunk\r\n0\r\n\r\n")
  s:drain()
end

-- A number from the query, or def; nil if it is not a number in lo..hi.
local function queryarg(req, name, def, lo, hi)
  local v = req.query[name]
  if v == nil then return def end
  v = tonumber(v)
  if v == nil or not (v >= lo and v <= hi) then return nil end
  return v
end

--- The handler of /fault/{mode}: (srv, req, res) as the test server's.
function M.handle(_, req, res)
  local mode = modes[req.params.mode]
  local n = queryarg(req, "n", 100, 0, MAX_N)
  local opts = {interval = queryarg(req, "interval", 0.1, 0, 10),
                seconds = queryarg(req, "seconds", 60, 0, 3600)}
  if not mode or not n or not opts.interval or not opts.seconds then
    res:header("Content-Type", "text/plain")
    return res:send(not mode and "no such fault mode; modes: " ..
                    table.concat(M.MODES, ", ") .. "\n" or
                    "fault: n 0.." .. MAX_N .. ", interval 0..10, seconds "
                    .. "0..3600 expected\n", mode and 400 or 404)
  end
  -- the response is ours to send: the server must add nothing, and close
  res._sent, res._done, res._close = true, true, true
  local s = res._stream
  local ok, err = rawpcall(mode, s, math.tointeger(n) or math.floor(n), opts)
  -- a client that left (or a timeout of ours) ends the fault quietly
  if not ok and not errors.ConnectionError:is(err)
     and not errors.TimeoutError:is(err) then
    error(err, 0)
  end
  s:close()
end

return M

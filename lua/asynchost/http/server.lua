--- asynchost.http.server: an HTTP/1.1 server on async.net streams.
--
--   local server = require("asynchost.http.server").new{request_timeout = 10}
--   server:route("GET", "/hello/{name}", function(req, res)
--     res:json({hello = req.params.name})
--   end)
--   local host, port = server:listen("127.0.0.1", 8080)
--
-- Requests are parsed by http-parser (bindings/httpparse.c): keep-alive,
-- pipelined requests answered in order, chunked request bodies decoded.
-- Each connection is served by a task of its own; handlers may await.
--
-- req: method, target, path, query (table), version, headers (lowercased
-- names), header_list, body, params (from the route), peer (host, port),
-- req:json() (the body decoded; a bad body raises a 400).
-- res: res.status (200), res:header(name, value), res:send(body [, status]),
-- res:json(value [, status]), res:write(chunk) (chunked transfer: headers go
-- first, then each chunk), res:finish().  A handler that returns a string
-- sends it; a table, as JSON.  An error in a handler is a 500 (and is
-- printed on stderr).  Unknown path: 404; known path, other method: 405.
--
-- Limits (options of new): max_header (16 KiB: 431), max_body (1 MiB:
-- 413), request_timeout (30 s from a request's first byte to its end:
-- 408, so a slow client cannot hold a connection), idle_timeout (60 s
-- between requests on a kept-alive connection).  Malformed requests get a
-- 400; after any of these the connection is closed and the server goes on.
local runtime = require "asynchost.core"
local net = require "asynchost.net"
local errors = require "asynchost.errors"
local core = require "asynchost.core.http"
local check = require "asynchost.check"
local cjson = require "cjson"
local rawpcall = require("asynchost.core.coroutine").rawpcall

local argerror, typename = check.argerror, check.typename

local M = {}

local reasons = {
  [200] = "OK", [201] = "Created", [202] = "Accepted", [204] = "No Content",
  [301] = "Moved Permanently", [302] = "Found", [303] = "See Other",
  [304] = "Not Modified", [307] = "Temporary Redirect",
  [308] = "Permanent Redirect", [400] = "Bad Request",
  [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [408] = "Request Timeout",
  [413] = "Payload Too Large", [418] = "I'm a teapot",
  [429] = "Too Many Requests", [431] = "Request Header Fields Too Large",
  [500] = "Internal Server Error", [502] = "Bad Gateway",
  [503] = "Service Unavailable", [504] = "Gateway Timeout",
}
M.reasons = reasons

-- %XX escapes (paths: '+' is a '+')
local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h)
    return string.char(tonumber(h, 16))
  end))
end

-- form encoding (query strings): '+' is a space
local function unform(s)
  return unescape((s:gsub("+", " ")))
end

local function parsequery(q)
  local t = {}
  for pair in q:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    t[unform(k)] = unform(v)
  end
  return t
end
M.parsequery = parsequery

---------------------------------------------------------------------------
-- Responses

local Response = {}
Response.__index = Response

local function head(res, extra)
  local h = res._headers
  local lines = {("HTTP/1.1 %d %s\r\n"):format(res.status,
                 reasons[res.status] or "Unknown")}
  for i = 1, #h do lines[#lines + 1] = h[i][1] .. ": " .. h[i][2] .. "\r\n" end
  for name, value in pairs(extra) do
    if not res._set[name:lower()] then
      lines[#lines + 1] = name .. ": " .. value .. "\r\n"
    end
  end
  lines[#lines + 1] = "\r\n"
  return table.concat(lines)
end

--- Adds a response header (before anything is sent).
function Response:header(name, value)
  if self._sent then error("headers already sent", 2) end
  value = tostring(value)
  if name:find("[\r\n:]") or value:find("[\r\n]") then
    error("bad argument to 'header' (CR, LF or ':' in a header)", 2)
  end
  self._headers[#self._headers + 1] = {name, value}
  self._set[name:lower()] = true
  return self
end

--- Sends the whole response: body (a string) with Content-Length.
function Response:send(body, status)
  if self._sent then error("response already sent", 2) end
  body = body or ""
  if type(body) ~= "string" then
    argerror(1, "send", "string expected, got " .. typename(body), 2)
  end
  if status then self.status = status end
  self._sent, self._done = true, true
  local s = self._stream
  local h = head(self, {["Content-Length"] = #body,
                        ["Connection"] = self._close and "close" or "keep-alive"})
  if self._method ~= "HEAD" and #body > 0 then
    if #body <= 16384 then s:write(h .. body)  -- one segment
    else s:write(h); s:write(body) end
  else
    s:write(h)
  end
  s:drain()
end

--- Sends value as JSON.
function Response:json(value, status)
  if not self._set["content-type"] then
    self:header("Content-Type", "application/json")
  end
  self:send(cjson.encode(value), status)
end

--- Sends a chunk (chunked transfer encoding); the headers go first.
function Response:write(chunk)
  if self._done then error("response already finished", 2) end
  local s = self._stream
  if not self._sent then
    self._sent, self._chunked = true, true
    s:write(head(self, {["Transfer-Encoding"] = "chunked",
                        ["Connection"] = self._close and "close" or "keep-alive"}))
  end
  chunk = tostring(chunk)
  if #chunk > 0 and self._method ~= "HEAD" then
    s:write(("%x\r\n"):format(#chunk))
    s:write(chunk)
    s:write("\r\n")
  end
  s:drain()
end

--- Ends a chunked response (or sends an empty one if nothing was sent).
function Response:finish()
  if self._done then return end
  if not self._sent then return self:send("") end
  self._done = true
  if self._method ~= "HEAD" then self._stream:write("0\r\n\r\n") end
  self._stream:drain()
end

local function newresponse(stream, req, close)
  return setmetatable({status = 200, _headers = {}, _set = {},
                       _stream = stream, _method = req and req.method,
                       _close = close}, Response)
end

local function simple(stream, status, text)
  local res = newresponse(stream, nil, true)
  res:header("Content-Type", "text/plain")
  rawpcall(res.send, res, text or (reasons[status] .. "\n"), status)
end

---------------------------------------------------------------------------
-- Requests and routes

local Request = {}
Request.__index = Request

--- The body decoded from JSON; a body that is not JSON raises an error
-- the server answers with 400.
function Request:json()
  local ok, v = pcall(cjson.decode, self.body)
  if not ok then error({status = 400, message = "invalid JSON body"}, 0) end
  return v
end

local function compile(pattern)
  local names = {}
  local lua = "^" .. pattern:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")
                            :gsub("{(%w+)}", function(n)
                              names[#names + 1] = n
                              return "([^/]+)"
                            end) .. "$"
  return lua, names
end

local Server = {}
Server.__index = Server

local function checkserver(self, fname)
  if getmetatable(self) ~= Server then
    argerror(1, fname, "HTTP server expected, got " .. typename(self), 3)
  end
end

--- Adds a route: method ("GET", ..., or "*" for any), a path pattern where
-- {name} matches one path segment (req.params.name), and the handler.
function Server:route(method, pattern, handler)
  checkserver(self, "route")
  if type(method) ~= "string" then
    argerror(1, "route", "string expected, got " .. typename(method), 2)
  end
  if type(pattern) ~= "string" or pattern:sub(1, 1) ~= "/" then
    argerror(2, "route", "path pattern starting with '/' expected", 2)
  end
  if not check.callable(handler) then
    argerror(3, "route", "function expected, got " .. typename(handler), 2)
  end
  local lua, names = compile(pattern)
  self._routes[#self._routes + 1] = {method = method:upper(), lua = lua,
                                     names = names, handler = handler}
  return self
end

-- 'path' is as sent (still %-encoded): an encoded '/' stays inside its
-- segment, and each parameter is decoded once.
local function findroute(self, method, path)
  local pathmatched = false
  for _, r in ipairs(self._routes) do
    local caps = table.pack(path:match(r.lua))
    if caps[1] ~= nil then
      pathmatched = true
      if r.method == "*" or r.method == method
         or (method == "HEAD" and r.method == "GET") then
        local params = {}
        for i, n in ipairs(r.names) do params[n] = unescape(caps[i]) end
        return r, params
      end
    end
  end
  return nil, pathmatched
end

---------------------------------------------------------------------------
-- Connections

local function handle(self, s, req, close, peer)
  local path, query = req.target:match("^([^?]*)%??(.*)$")
  req.path = path:find("%%") and unescape(path) or path
  req.query = query ~= "" and parsequery(query) or {}
  req.peer = peer
  setmetatable(req, Request)
  local res = newresponse(s, req, close)
  local route, params = findroute(self, req.method, path)
  if not route then
    res:header("Content-Type", "text/plain")
    if params then return res:send("Method Not Allowed\n", 405) end
    return res:send("Not Found\n", 404)
  end
  req.params = params
  local ok, out = xpcall(route.handler, debug.traceback, req, res)
  if not ok then
    if type(out) == "table" and out.status then  -- an error for the client
      if not res._sent then
        res._headers, res._set = {}, {}
        res:header("Content-Type", "text/plain")
        res:send((out.message or reasons[out.status]) .. "\n", out.status)
      end
      return
    end
    if errors.CancelledError:is(out) then error(out, 0) end
    io.stderr:write("asynchost: error in an HTTP handler for ", req.method,
                    " ", req.target, ": ", tostring(out), "\n")
    if not res._sent then
      res._headers, res._set, res._close = {}, {}, true
      res:header("Content-Type", "text/plain")
      res:send("Internal Server Error\n", 500)
    else
      res._close = true  -- a half-sent response: the connection must go
    end
    return true
  end
  if not res._done then
    if type(out) == "string" then res:send(out)
    elseif type(out) == "table" then res:json(out)
    else res:finish() end
  end
  return res._close
end

local function serveconn(self, s)
  local p = core.parser(self.max_header, self.max_body)
  local deadline  -- of the request being received, from its first bytes
  local peer = {s:peer()}
  local conns = self._conns
  conns[s] = "idle"
  local _ <close> = setmetatable({}, {__close = function() conns[s] = nil end})
  while not self._closed do
    local req = p:take()
    if req then
      conns[s] = "busy"
      local close = not req.keep_alive or self._closed
      if handle(self, s, req, close, peer) or close then return end
      conns[s] = "idle"
    else
      s:settimeout(deadline and math.max(0, deadline - runtime.loop_time())
                   or self.idle_timeout)
      local ok, data = rawpcall(s.read, s, 65536)
      if not ok then
        if errors.TimeoutError:is(data) then
          if deadline then simple(s, 408) end  -- idle: just close
          return
        end
        if errors.ConnectionError:is(data) then return end
        error(data, 0)
      end
      if data == nil then return end  -- the client is done
      local err = p:feed(data)
      if err then
        if err == "body too large" then simple(s, 413)
        elseif err == "header too large" then simple(s, 431)
        else simple(s, 400, "Bad Request (" .. err .. ")\n") end
        return
      end
      if p:busy() then
        deadline = deadline or runtime.loop_time() + self.request_timeout
        conns[s] = "busy"
      else
        deadline = nil
      end
    end
  end
end

--- Starts serving on host (default "127.0.0.1"), port (default 0: any free
-- port); returns the host and port it listens on.
function Server:listen(host, port)
  checkserver(self, "listen")
  if host ~= nil and (type(host) ~= "string" or host == "") then
    argerror(1, "listen", "host name expected, got " .. (host == "" and
             "an empty string" or typename(host)), 2)
  end
  if port ~= nil and (math.type(port) ~= "integer" or port < 0 or
                      port > 65535) then
    argerror(2, "listen", "port 0..65535 expected, got " ..
             (type(port) == "number" and tostring(port) or typename(port)), 2)
  end
  if self._server then error("server is already listening", 2) end
  self._server = net.listen(function(s) serveconn(self, s) end,
                                  host or "127.0.0.1", port or 0,
                                  {backlog = self.backlog})
  return self._server:address()
end

--- Stops accepting connections and closes the idle ones; those in the
-- middle of a request end after answering it.
function Server:close()
  checkserver(self, "close")
  self._closed = true
  if self._server then self._server:close() end
  for s, state in pairs(self._conns) do
    if state == "idle" then s:close() end
  end
end
Server.__close = Server.close

function Server:address()
  checkserver(self, "address")
  if not self._server then error("server is not listening", 2) end
  return self._server:address()
end

--- new{max_header, max_body, request_timeout, idle_timeout, backlog}
function M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    argerror(1, "new", "table expected, got " .. typename(opts), 2)
  end
  for k, kind in pairs{max_header = "count", max_body = "count",
                       request_timeout = "seconds", idle_timeout = "seconds",
                       backlog = "integer"} do
    local v = opts[k]
    if v ~= nil and not (kind == "seconds" and type(v) == "number" and
                         v >= 0 or kind == "count" and
                         math.type(v) == "integer" and v >= 0 or
                         kind == "integer" and math.type(v) == "integer") then
      argerror(1, "new", ("%s: %s expected, got %s"):format(k,
               kind == "seconds" and "non-negative number" or
               kind == "count" and "non-negative integer" or "integer",
               type(v) == "number" and tostring(v) or typename(v)), 2)
    end
  end
  return setmetatable({
    _routes = {},
    _conns = setmetatable({}, {__mode = "k"}),  -- stream -> "idle"|"busy"
    max_header = opts.max_header or 16 * 1024,
    max_body = opts.max_body or 1024 * 1024,
    request_timeout = opts.request_timeout or 30,
    idle_timeout = opts.idle_timeout or 60,
    backlog = opts.backlog,
  }, Server)
end

return M

--- async.http: an HTTP client on libcurl's multi interface driven by the
-- loop (bindings/curl.c), and the HTTP/1.1 server (async.http.server).
--
--   local s <close> = async.http.session{base_url = url, timeout = 10}
--   local r = s:get("/get", {params = {q = "lua"}})
--   print(r.status, r:json().args.q)
--   local p = async.http.post(url .. "/post", {json = {a = 1}})
--
-- session{base_url, headers, timeout, connect_timeout, max_connections,
-- max_per_host, follow_redirects (true), max_redirects (10), verify_tls
-- (true), user_agent}: connections are pooled (kept alive) per session;
-- session.stats() -> {requests, reused, connections, bytes}.
-- session:request(method, url, {params, headers, body, json, form,
-- timeout}) and :get :post :put :patch :delete :head.  http.get(url, opts)
-- etc. use a shared default session.
--
-- {stream = true}: the request returns once the body begins; read it with
-- r:iter_chunks() (curl is paused while 1 MiB waits unread) or r:save(path).
--
-- Response: status, reason, headers (case-insensitive: r.headers["content
-- -type"] == r.headers["Content-Type"]; repeated headers joined by ", ";
-- r.header_list keeps each), body, text(), json() (bad JSON raises a clear
-- error), url (after redirects), elapsed (seconds), reused (the connection
-- was pooled), raise_for_status() (HTTPStatusError with .status, .url,
-- .response for 4xx/5xx).
-- Errors (all with .url and .code like "CURLE_COULDNT_CONNECT"):
-- ConnectionRefusedError, DNSError, TLSError, ConnectionResetError,
-- TimeoutError, TooManyRedirects.  Cancelling the awaiting task aborts the
-- transfer at once.
local curl = require "asynchost.core.curl"
local errors = require "asynchost.errors"
local check = require "asynchost.check"
local cjson = require "cjson"

local argerror, typename = check.argerror, check.typename

local M = {server = require "asynchost.http.server"}

local function escape(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c)
    return ("%%%02X"):format(c:byte())
  end))
end

local function encodeform(t)
  local parts = {}
  for k, v in pairs(t) do parts[#parts + 1] = escape(k) .. "=" .. escape(v) end
  table.sort(parts)
  return table.concat(parts, "&")
end
M.encodeform = encodeform

---------------------------------------------------------------------------
-- Responses

local Response = {}
Response.__index = Response

local function parsehead(raw)
  local list, map = {}, {}
  local status, reason = raw:match("^HTTP/[%d.]+ (%d+) ?([^\r\n]*)")
  for name, value in raw:gmatch("\n([^:\r\n]+):%s*([^\r\n]*)") do
    list[#list + 1] = {name, value}
    local k = name:lower()
    map[k] = map[k] and (map[k] .. ", " .. value) or value
  end
  -- case-insensitive lookup
  setmetatable(map, {__index = function(t, k)
    if type(k) == "string" then return rawget(t, k:lower()) end
  end})
  return tonumber(status), reason, map, list
end

--- The body as text.
function Response:text() return self.body end

--- The body decoded from JSON; raises a clear error if it is not JSON.
function Response:json()
  local ok, v = pcall(cjson.decode, self.body)
  if not ok then
    error(("response from %s is not JSON: %s"):format(self.url, tostring(v)), 2)
  end
  return v
end

--- Raises HTTPStatusError for a 4xx or 5xx response; returns self.
function Response:raise_for_status()
  if self.status >= 400 then
    error(errors.HTTPStatusError(("%d %s: %s"):format(self.status, self.reason,
                                 self.url),
                                 {status = self.status, url = self.url,
                                  response = self}), 2)
  end
  return self
end

--- for chunk in r:iter_chunks() do ... end: the body as it arrives (a
-- response requested with {stream = true}), else the whole body once.
function Response:iter_chunks()
  local b = self._stream
  if b == nil then
    local done = false
    return function()
      if done then return nil end
      done = true
      return self.body ~= "" and self.body or nil
    end
  end
  self._stream = nil
  return function() return b:read() end, nil, nil, b  -- b closes on break
end

--- Writes the body to the file at path (streamed when the response was
-- requested with {stream = true}); returns the number of bytes.
function Response:save(path)
  if type(path) ~= "string" then
    argerror(1, "save", "string expected, got " .. typename(path), 2)
  end
  local f, err = io.open(path, "wb")
  if not f then error(errors.Error(("cannot save %s: %s"):format(self.url, err),
                                   {path = path}), 2) end
  local n = 0
  local ok, e = pcall(function()
    for chunk in self:iter_chunks() do
      assert(f:write(chunk))
      n = n + #chunk
    end
  end)
  f:close()
  if not ok then error(e, 0) end
  return n
end

function Response:__tostring()
  return ("Response (%d %s, %d bytes)"):format(self.status, self.reason,
                                              #self.body)
end

---------------------------------------------------------------------------
-- Sessions

local Session = {}
Session.__index = Session

local methods = {"get", "post", "put", "patch", "delete", "head"}

--- session:request(method, url, opts) -> Response
function Session:request(method, url, opts)
  if getmetatable(self) ~= Session then
    argerror(1, "request", "session expected, got " .. typename(self), 2)
  end
  if type(method) ~= "string" then
    argerror(1, "request", "string expected, got " .. typename(method), 2)
  end
  if type(url) ~= "string" then
    argerror(2, "request", "string expected, got " .. typename(url), 2)
  end
  opts = opts or {}
  if type(opts) ~= "table" then
    argerror(3, "request", "table expected, got " .. typename(opts), 2)
  end
  if self.base_url and not url:match("^%a[%w+.-]*://") then
    url = self.base_url:gsub("/$", "") .. (url:sub(1, 1) == "/" and "" or "/") .. url
  end
  if opts.params then
    url = url .. (url:find("?", 1, true) and "&" or "?") .. encodeform(opts.params)
  end
  local headers, set = {}, {}
  local function add(k, v)
    headers[#headers + 1] = k .. ": " .. tostring(v)
    set[k:lower()] = true
  end
  for k, v in pairs(opts.headers or {}) do add(k, v) end
  for k, v in pairs(self.headers) do
    if not set[k:lower()] then add(k, v) end
  end
  local body = opts.body
  if opts.json ~= nil then
    body = cjson.encode(opts.json)
    if not set["content-type"] then add("Content-Type", "application/json") end
  elseif opts.form ~= nil then
    body = encodeform(opts.form)
    if not set["content-type"] then
      add("Content-Type", "application/x-www-form-urlencoded")
    end
  end
  if body ~= nil and type(body) ~= "string" then
    argerror(3, "request", "body must be a string", 2)
  end
  local status, raw, text, final, elapsed, reused, stream =
    self._core:perform(method:upper(), url, headers, body, {
      stream = opts.stream and 1 or 0,
      timeout = opts.timeout or self.timeout,
      connect_timeout = opts.connect_timeout or self.connect_timeout,
      follow = (opts.follow_redirects == nil and self.follow_redirects
                or opts.follow_redirects) and 1 or 0,
      max_redirects = opts.max_redirects or self.max_redirects,
      verify = self.verify_tls and 1 or 0,
      user_agent = self.user_agent,
    })
  local _, reason, map, list = parsehead(raw)
  return setmetatable({status = status, reason = reason, headers = map,
                       header_list = list, body = text, url = final,
                       elapsed = elapsed, reused = reused, _stream = stream},
                      Response)
end

for _, m in ipairs(methods) do
  Session[m] = function(self, url, opts)
    return self:request(m:upper(), url, opts)
  end
end

--- Counters of the session: requests, reused (connections), connections
-- (opened), bytes (of bodies received).
function Session:stats() return self._core:stats() end

--- Aborts the requests in flight and closes the pooled connections.
function Session:close() self._core:close() end
Session.__close = Session.close

--- session{...} (see the module's comment)
function M.session(opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    argerror(1, "session", "table expected, got " .. typename(opts), 2)
  end
  return setmetatable({
    _core = curl.session(opts.max_connections, opts.max_per_host),
    base_url = opts.base_url,
    headers = opts.headers or {},
    timeout = opts.timeout,
    connect_timeout = opts.connect_timeout,
    follow_redirects = opts.follow_redirects ~= false,
    max_redirects = opts.max_redirects,
    verify_tls = opts.verify_tls ~= false,
    user_agent = opts.user_agent or "asynchost/0.1",
  }, Session)
end

-- http.get(url, opts) and friends: a shared default session
local default
local function shared()
  default = default or M.session()
  return default
end

function M.request(method, url, opts) return shared():request(method, url, opts) end
for _, m in ipairs(methods) do
  M[m] = function(url, opts) return shared():request(m:upper(), url, opts) end
end

return M

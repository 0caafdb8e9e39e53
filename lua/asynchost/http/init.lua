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

-- reason, headers and header_list are parsed from the raw head when first
-- read: a client that only looks at status and body (most of them) does
-- not pay for it (W5: ~10% of the Lua time per request)
local LAZY = {reason = true, headers = true, header_list = true}
function Response.__index(r, k)
  local v = Response[k]
  if v ~= nil or not LAZY[k] or rawget(r, "_head") == nil then return v end
  local _, reason, map, list = parsehead(rawget(r, "_head"))
  r.reason, r.headers, r.header_list = reason, map, list
  r._head = nil
  return rawget(r, k)
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

-- What the fields of the options may hold (nil is always allowed).
local OPTKINDS = {
  base_url = "string", user_agent = "string", body = "string",
  headers = "table", params = "table", form = "table",
  timeout = "seconds", connect_timeout = "seconds",
  max_connections = "count", max_per_host = "count", max_redirects = "count",
}

-- Checks the options table opts, argument i of fname; returns it (or {}).
-- Errors blame the caller's caller 'level' levels up.
local NOOPTS = {}  -- a call without options (never written to)

local function checkopts(opts, i, fname, level)
  if opts == nil then return NOOPTS end
  if type(opts) ~= "table" then
    argerror(i, fname, "table expected, got " .. typename(opts), level + 1)
  end
  for k, kind in pairs(OPTKINDS) do
    local v = opts[k]
    if v ~= nil then
      local ok
      if kind == "seconds" then
        ok = type(v) == "number" and v >= 0
      elseif kind == "count" then
        ok = math.type(v) == "integer" and v >= 0
      else
        ok = type(v) == kind
      end
      if not ok then
        argerror(i, fname, ("%s: %s expected, got %s"):format(k,
                 kind == "seconds" and "non-negative number" or
                 kind == "count" and "non-negative integer" or kind,
                 type(v) == "number" and tostring(v) or typename(v)),
                 level + 1)
      end
    end
  end
  return opts
end

-- request(self, method, url, opts) with the arguments checked as those
-- of fname, whose first argument (after self) is number 'base'.
local function request(self, method, url, opts, fname, base)
  if getmetatable(self) ~= Session then
    argerror(1, fname, "session expected, got " .. typename(self), 3)
  end
  if type(method) ~= "string" then
    argerror(base - 1, fname, "string expected, got " .. typename(method), 3)
  end
  if type(url) ~= "string" then
    argerror(base, fname, "string expected, got " .. typename(url), 3)
  end
  opts = checkopts(opts, base + 1, fname, 3)
  return self:_request(method, url, opts)
end

--- session:request(method, url, opts) -> Response
function Session:request(method, url, opts)
  return request(self, method, url, opts, "request", 2)
end

-- The options of a transfer as curl.c's perform takes them: the request's
-- own over the session's.
local function transferopts(self, opts)
  return {
    stream = opts.stream and 1 or 0,
    timeout = opts.timeout or self.timeout,
    connect_timeout = opts.connect_timeout or self.connect_timeout,
    follow = (opts.follow_redirects == nil and self.follow_redirects
              or opts.follow_redirects) and 1 or 0,
    max_redirects = opts.max_redirects or self.max_redirects,
    verify = self.verify_tls and 1 or 0,
    user_agent = self.user_agent,
  }
end

function Session:_request(method, url, opts)
  if self.base_url and not url:match("^%a[%w+.-]*://") then
    url = self.base_url:gsub("/$", "") .. (url:sub(1, 1) == "/" and "" or "/") .. url
  end
  if opts.params then
    url = url .. (url:find("?", 1, true) and "&" or "?") .. encodeform(opts.params)
  end
  local body = opts.body
  local headers, set, add
  if opts.headers == nil and opts.json == nil and opts.form == nil then
    headers = self._hlines  -- the session's own, made once
  else
    headers, set = {}, {}
    function add(k, v)
      headers[#headers + 1] = k .. ": " .. tostring(v)
      set[k:lower()] = true
    end
    for k, v in pairs(opts.headers or NOOPTS) do add(k, v) end
    for k, v in pairs(self.headers) do
      if not set[k:lower()] then add(k, v) end
    end
  end
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
    error("bad argument to 'request' (body must be a string)", 3)
  end
  local status, raw, text, final, elapsed, reused, stream =
    self._core:perform(method:upper(), url, headers, body,
                       opts == NOOPTS and self._popts or transferopts(self, opts))
  return setmetatable({status = status, _head = raw, body = text, url = final,
                       elapsed = elapsed, reused = reused, _stream = stream},
                      Response)
end

for _, m in ipairs(methods) do
  local upper = m:upper()
  Session[m] = function(self, url, opts)
    return request(self, upper, url, opts, m, 1)
  end
end

local function checksession(self, fname)
  if getmetatable(self) ~= Session then
    argerror(1, fname, "session expected, got " .. typename(self), 3)
  end
end

--- Counters of the session: requests, reused (connections), connections
-- (opened), bytes (of bodies received).
function Session:stats()
  checksession(self, "stats")
  return self._core:stats()
end

--- Aborts the requests in flight and closes the pooled connections.
function Session:close()
  checksession(self, "close")
  self._core:close()
end
Session.__close = Session.close

--- session{...} (see the module's comment)
function M.session(opts)
  opts = checkopts(opts, 1, "session", 2)
  local self = setmetatable({
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
  -- what a request without options sends, made once: the settings are
  -- those given here (changing the fields afterwards is not supported)
  self._hlines = {}
  for k, v in pairs(self.headers) do
    self._hlines[#self._hlines + 1] = k .. ": " .. tostring(v)
  end
  self._popts = transferopts(self, NOOPTS)
  return self
end

-- http.get(url, opts) and friends: a shared default session
local default
local function shared()
  default = default or M.session()
  return default
end

function M.request(method, url, opts)
  return request(shared(), method, url, opts, "request", 2)
end
for _, m in ipairs(methods) do
  local upper = m:upper()
  M[m] = function(url, opts)
    return request(shared(), upper, url, opts, m, 1)
  end
end

return M

local async = require "asynchost"
require "asynchost.busted"
local httpserver = require "asynchost.http.server"

-- A server with the routes the tests use; returns server, port.
local function start(opts)
  local srv = httpserver.new(opts)
  srv:route("GET", "/json", function(_, res) res:json({hello = "world"}) end)
  srv:route("GET", "/hello/{name}", function(req)
    return "hi " .. req.params.name .. (req.query.x and (" " .. req.query.x) or "")
  end)
  srv:route("POST", "/echo", function(req, res)
    res:header("X-Length", #req.body)
    res:send(req.body)
  end)
  srv:route("GET", "/stream/{n}", function(req, res)
    for i = 1, tonumber(req.params.n) do res:write("line " .. i .. "\n") end
    res:finish()
  end)
  srv:route("GET", "/slow", function() async.sleep(0.2) return "slow" end)
  srv:route("GET", "/boom", function() error("handler failed on purpose") end)
  local _, port = srv:listen("127.0.0.1", 0)
  return srv, port
end

-- Reads one response from stream s: status, headers (lowercased), body.
local function response(s)
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
  if headers["content-length"] then
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

local function connect(port)
  return async.net.connect("127.0.0.1", port)
end

-- Runs a shell command in the background; returns its output and status.
local function sh(cmd, timeout)
  local out, rc = os.tmpname(), os.tmpname()
  os.remove(rc)
  -- the whole group in the background: the loop must keep serving
  os.execute(("{ (%s) > %s 2>&1; echo $? > %s; } &"):format(cmd, out, rc))
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

describe("http.server", function()
  it("answers, and keeps the connection alive", function()
    local srv, port = start()
    local c <close> = connect(port)
    for _ = 1, 3 do
      c:write("GET /json HTTP/1.1\r\nHost: x\r\n\r\n")
      local status, headers, body = response(c)
      assert.equal(200, status)
      assert.equal("application/json", headers["content-type"])
      assert.equal("keep-alive", headers["connection"])
      assert.equal('{"hello":"world"}', body)
    end
    srv:close()
  end)

  it("answers pipelined requests in order", function()
    local srv, port = start()
    local c <close> = connect(port)
    c:write("GET /hello/a HTTP/1.1\r\nHost: x\r\n\r\nGET /hello/b?x=1 HTTP/1.1\r\n"
            .. "Host: x\r\n\r\nGET /hello/c%20d HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.equal("hi a", select(3, response(c)))
    assert.equal("hi b 1", select(3, response(c)))
    assert.equal("hi c d", select(3, response(c)))
    srv:close()
  end)

  it("decodes chunked request bodies and sends chunked responses", function()
    local srv, port = start()
    local c <close> = connect(port)
    c:write("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            .. "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    local status, headers, body = response(c)
    assert.equal(200, status)
    assert.equal("11", headers["x-length"])
    assert.equal("hello world", body)
    c:write("GET /stream/3 HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body = response(c)
    assert.equal("chunked", headers["transfer-encoding"])
    assert.equal("line 1\nline 2\nline 3\n", body)
    srv:close()
  end)

  it("HTTP/1.0 and Connection: close end the connection", function()
    local srv, port = start()
    local c <close> = connect(port)
    c:write("GET /json HTTP/1.0\r\n\r\n")
    local status, headers = response(c)
    assert.equal(200, status)
    assert.equal("close", headers["connection"])
    assert.is_nil(c:read(1))
    local c2 <close> = connect(port)
    c2:write("GET /json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert.equal(200, (response(c2)))
    assert.is_nil(c2:read(1))
    srv:close()
  end)

  it("404, 405, HEAD without a body", function()
    local srv, port = start()
    local c <close> = connect(port)
    c:write("GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.equal(404, (response(c)))
    c:write("DELETE /json HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.equal(405, (response(c)))
    c:write("HEAD /json HTTP/1.1\r\nHost: x\r\n\r\n")
    local line = c:readline()
    assert.matches("^HTTP/1%.1 200", line)
    local len
    repeat
      local h = c:readline()
      len = len or h:match("^Content%-Length: (%d+)")
    until h == "\r\n"
    assert.equal("17", len)
    c:write("GET /json HTTP/1.1\r\nHost: x\r\n\r\n")  -- no body came before
    assert.equal(200, (response(c)))
    srv:close()
  end)

  it("garbage gets a 400 and the server keeps serving", function()
    local srv, port = start()
    local c <close> = connect(port)
    c:write("THIS IS NOT HTTP\r\n\r\n")
    local status = response(c)
    assert.equal(400, status)
    assert.is_nil(c:read(1))  -- closed
    local c2 <close> = connect(port)
    c2:write("GET /json HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.equal(200, (response(c2)))
    srv:close()
  end)

  it("enforces body and header limits", function()
    local srv, port = start{max_body = 10, max_header = 200}
    local c <close> = connect(port)
    c:write("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world")
    assert.equal(413, (response(c)))
    local c2 <close> = connect(port)
    c2:write("GET /json HTTP/1.1\r\nHost: x\r\nX-Big: " .. ("a"):rep(300) .. "\r\n\r\n")
    assert.equal(431, (response(c2)))
    local c3 <close> = connect(port)
    c3:write("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789")
    assert.equal("0123456789", select(3, response(c3)))
    srv:close()
  end)

  it("a slow client cannot hold a connection: 408 at the request deadline", function()
    local srv, port = start{request_timeout = 0.2}
    local c <close> = connect(port)
    local t0 = async.loop_time()
    c:write("GET /json HT")  -- and then only a byte now and then
    local trickler = async.spawn(function()
      for _ = 1, 20 do async.sleep(0.05); pcall(c.write, c, "T") end
    end)
    local status = response(c)
    local took = async.loop_time() - t0
    assert.equal(408, status)
    assert.is_true(took >= 0.2 and took < 1, "took " .. took)
    trickler:cancel()
    pcall(async.await, trickler)
    srv:close()
  end)

  it("closes idle kept-alive connections", function()
    local srv, port = start{idle_timeout = 0.1}
    local c <close> = connect(port)
    c:write("GET /json HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.equal(200, (response(c)))
    local t0 = async.loop_time()
    assert.is_nil(c:read(1))
    assert.is_true(async.loop_time() - t0 < 1)
    srv:close()
  end)

  it("a failing handler gets a 500 and closes its connection", function()
    local srv, port = start()
    local c <close> = connect(port)
    c:write("GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
    local status, headers = response(c)
    assert.equal(500, status)
    assert.equal("close", headers["connection"])
    srv:close()
  end)

  it("handlers may await; clients are served concurrently", function()
    local srv, port = start()
    local t0 = async.loop_time()
    local function get()
      local c <close> = connect(port)
      c:write("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
      return select(3, response(c))
    end
    local r = async.gather(get, get, get)
    assert.same({"slow", "slow", "slow", n = 3}, r)
    assert.is_true(async.loop_time() - t0 < 0.5)
    srv:close()
  end)

  it("decodes each path parameter once; '+' and %2F stay in their segment", function()
    local srv, port = start()
    local c <close> = connect(port)
    c:write("GET /hello/a%2541 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.equal("hi a%41", select(3, response(c)))
    c:write("GET /hello/a+b%2Fc?x=1+2 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.equal("hi a+b/c 1 2", select(3, response(c)))
    srv:close()
  end)

  it("close() also closes idle kept-alive connections", function()
    local srv, port = start()
    local c <close> = connect(port)
    c:write("GET /json HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.equal(200, (response(c)))
    srv:close()
    local t0 = async.loop_time()
    assert.is_nil(c:read(1))  -- closed by the server, not after 60 s
    assert.is_true(async.loop_time() - t0 < 0.5)
  end)

  it("refuses CR or LF in a response header", function()
    local srv = httpserver.new()
    local seen
    srv:route("GET", "/h", function(_, res)
      seen = select(2, pcall(res.header, res, "X-Evil", "a\r\nSet-Cookie: x"))
      return "ok"
    end)
    local _, port = srv:listen("127.0.0.1", 0)
    local c <close> = connect(port)
    c:write("GET /h HTTP/1.1\r\nHost: x\r\n\r\n")
    local status, headers = response(c)
    assert.equal(200, status)
    assert.is_nil(headers["set-cookie"])
    assert.matches("CR, LF", seen)
    srv:close()
  end)

  it("curl reuses the kept-alive connection and sends chunked bodies", function()
    local srv, port = start()
    local url = ("http://127.0.0.1:%d"):format(port)
    local out, code = sh(("curl -sv %s/json %s/hello/curl"):format(url, url))
    assert.equal(0, code, out)
    assert.matches('{"hello":"world"}', out)
    assert.matches("hi curl", out)
    assert.matches("Re%-using existing connection", out)
    out, code = sh(("printf 'abc%%.0s' $(seq 1000) | curl -s -H 'Transfer-Encoding: chunked' "
                    .. "--data-binary @- %s/echo"):format(url))
    assert.equal(0, code, out)
    assert.equal(3000, #out)
    srv:close()
  end)
end)

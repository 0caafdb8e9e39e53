local async = require "asynchost"
require "asynchost.busted"
local errclass = require("spec.helpers").errclass
local net = async.net

-- A server running handler for each client; returns server, port.
local function serve(handler)
  local server = net.listen(handler, "127.0.0.1", 0)
  local _, port = server:address()
  return server, port
end

describe("async.net streams", function()
  it("echo lines between a client and a server", function()
    local server, port = serve(function(s)
      for line in function() return s:readline() end do
        s:write("echo: " .. line)
      end
    end)
    local c <close> = net.connect("127.0.0.1", port)
    c:write("hello\n")
    c:write("world\n")
    assert.equal("echo: hello\n", c:readline())
    assert.equal("echo: world\n", c:readline())
    local host, cport = c:peer()
    assert.equal("127.0.0.1", host)
    assert.equal(port, cport)
    assert.equal("127.0.0.1", (c:address()))
    server:close()
  end)

  it("read(n), read(), readuntil, readexactly, readline at the end", function()
    local server, port = serve(function(s)
      s:write("abcdef--END--tail")
      s:write_eof()
      s:readline()  -- wait for the client to finish
    end)
    local c <close> = net.connect("127.0.0.1", port)
    assert.equal("abc", c:readexactly(3))
    assert.equal("de", c:read(2))
    assert.equal("f--END--", c:readuntil("--END--"))
    assert.equal("tail", c:readline())  -- the last line, without "\n"
    assert.is_nil(c:readline())
    assert.is_nil(c:read(10))
    assert.equal("", c:read())
    server:close()
  end)

  it("read() returns everything until the end", function()
    local server, port = serve(function(s)
      for i = 1, 100 do s:write(("%03d,"):format(i)) end
    end)  -- returning closes the stream
    local c <close> = net.connect("127.0.0.1", port)
    local all = c:read()
    assert.equal(400, #all)
    assert.equal("001,002,", all:sub(1, 8))
    server:close()
  end)

  it("an early end is an IncompleteReadError saying how much arrived", function()
    local server, port = serve(function(s) s:write("abcd") end)
    local c <close> = net.connect("127.0.0.1", port)
    local err = errclass(async.IncompleteReadError, c.readexactly, c, 10)
    assert.equal("abcd", err.partial)
    assert.equal(10, err.expected)
    assert.matches("after 4 of 10 bytes", tostring(err))
    local server2, port2 = serve(function(s) s:write("no separator") end)
    local c2 <close> = net.connect("127.0.0.1", port2)
    err = errclass(async.IncompleteReadError, c2.readuntil, c2, "\r\n")
    assert.equal("no separator", err.partial)
    server:close()
    server2:close()
  end)

  it("moves 16 MiB with backpressure: drain waits for a slow reader", function()
    -- more than loopback's socket buffers can hold (they grow to several
    -- MiB on each side), so that the writer must wait for the reader
    local N, CHUNK = 16 * 1024 * 1024, 64 * 1024
    local received, sum = 0, 0
    local server, port = serve(function(s)
      while true do
        local data = s:read(CHUNK)
        if not data then break end
        received = received + #data
        sum = (sum + data:byte(1) + data:byte(#data)) % 65536
        async.sleep(0.002)  -- a slow reader
      end
    end)
    local c = net.connect("127.0.0.1", port)
    local chunk = ("x"):rep(CHUNK - 1) .. "y"
    local waited, expect = 0, 0
    for _ = 1, N // CHUNK do
      c:write(chunk)
      local t0 = async.loop_time()
      c:drain()
      waited = waited + (async.loop_time() - t0)
      expect = (expect + ("x"):byte() + ("y"):byte()) % 65536
    end
    c:close()
    while received < N do async.sleep(0.01) end
    assert.equal(N, received)
    assert.is_true(waited > 0.05, "drain never waited: " .. waited)
    server:close()
  end, 30)

  it("a refused connection is a ConnectionRefusedError naming the address", function()
    local server, port = serve(function() end)
    server:close()
    local err = errclass(async.ConnectionRefusedError, net.connect, "127.0.0.1", port)
    assert.is_true(async.ConnectionError:is(err))
    assert.equal("ECONNREFUSED", err.code)
    assert.equal(port, err.port)
    assert.matches("ECONNREFUSED: connection refused: 127.0.0.1:" .. port, tostring(err))
  end)

  it("writing to a peer that has gone is a ConnectionResetError, not a crash", function()
    local server, port = serve(function(s) s:close() end)
    local c <close> = net.connect("127.0.0.1", port)
    async.sleep(0.05)
    local chunk = ("x"):rep(65536)
    local err = errclass(async.ConnectionResetError, function()
      for _ = 1, 200 do c:write(chunk); c:drain() end
    end)
    assert.is_true(err.code == "EPIPE" or err.code == "ECONNRESET", err.code)
    assert.matches("127%.0%.0%.1:" .. port, tostring(err))
    server:close()
  end)

  it("an unknown name is a DNSError", function()
    -- a name no resolver accepts: it fails here, without a DNS query
    local err = errclass(async.DNSError, net.connect, "bad host", 80)
    assert.matches("EAI_NONAME: .*: bad host:80", tostring(err))
  end)

  it("connect and read time out, and leave nothing behind", function()
    local server, port = serve(function(s) s:readline() end)
    errclass(async.TimeoutError, net.connect, "127.0.0.1", port, {timeout = 0})
    local c <close> = net.connect("localhost", port, {timeout = 5})
    errclass(async.TimeoutError, async.wait_for, function() return c:read(1) end, 0.02)
    c:write("bye\n")  -- still usable after the timed-out read
    server:close()
  end)

  it("settimeout bounds each read; the stream stays usable", function()
    local server, port = serve(function(s)
      s:readline()
      async.sleep(0.05)
      s:write("late\n")
      s:readline()
    end)
    local c <close> = net.connect("127.0.0.1", port)
    c:settimeout(0.01)
    c:write("go\n")
    local t0 = async.loop_time()
    local err = errclass(async.TimeoutError, c.readline, c)
    assert.matches("read timed out after 0.01", tostring(err))
    assert.is_true(async.loop_time() - t0 < 0.04)
    c:settimeout(nil)
    assert.equal("late\n", c:readline())  -- nothing lost, no limit now
    c:settimeout(1)
    local reader = async.spawn(function() return c:readline() end)
    async.sleep(0.01)
    reader:cancel()  -- a cancelled read stops its timer too
    errclass(async.CancelledError, async.await, reader)
    assert.has_error(function() c:settimeout(-1) end,
      "bad argument #1 to 'settimeout' (non-negative number expected)")
    c:write("bye\n")
    server:close()
  end)

  it("a task waiting to read can be cancelled", function()
    local server, port = serve(function(s) s:readline() end)
    local c <close> = net.connect("127.0.0.1", port)
    local reader = async.spawn(function() return c:readline() end)
    async.sleep(0.01)
    assert.has_error(function() c:read(1) end,
                     "another task is already reading this stream")
    reader:cancel()
    errclass(async.CancelledError, async.await, reader)
    c:write("done\n")
    server:close()
  end)

  it("<close> closes the stream: the peer reads the end", function()
    local got = async.Future()
    local server, port = serve(function(s) got:set_result(s:read()) end)
    do
      local c <close> = net.connect("127.0.0.1", port)
      c:write("last words")
    end
    assert.equal("last words", got:await())
    server:close()
  end)

  it("the server keeps serving after a handler fails", function()
    local n = 0
    local server, port = serve(function(s)
      n = n + 1
      if n == 1 then error("handler failed on purpose") end
      s:write("ok\n")
    end)
    local c1 <close> = net.connect("127.0.0.1", port)
    assert.is_nil(c1:readline())  -- closed after the error
    local c2 <close> = net.connect("127.0.0.1", port)
    assert.equal("ok\n", c2:readline())
    server:close()
  end)

  it("works over IPv6 when the machine has ::1", function()
    local ok, server = pcall(net.listen, function(s) s:write(s:readline()) end, "::1", 0)
    if not ok then return end  -- no IPv6 loopback here
    local _, port = server:address()
    local c <close> = net.connect("::1", port)
    c:write("six\n")
    assert.equal("six\n", c:readline())
    assert.equal("::1", (c:peer()))
    server:close()
  end)

  it("checks its arguments and refuses closed streams", function()
    assert.has_error(function() net.connect(1, 2) end,
      "bad argument #1 to 'connect' (string expected, got number)")
    assert.has_error(function() net.connect("", 80) end,
      "bad argument #1 to 'connect' (empty host name)")
    assert.has_error(function() net.connect("h", "x") end,
      "bad argument #2 to 'connect' (integer expected, got string)")
    assert.has_error(function() net.listen(nil) end,
      "bad argument #1 to 'listen' (function expected, got nil)")
    local server, port = serve(function(s) s:readline() end)
    local c = net.connect("127.0.0.1", port)
    c:close()
    assert.has_error(function() c:write("x") end, "attempt to use a closed stream")
    assert.matches("Stream %(closed%)", tostring(c))
    server:close()
  end)
end)

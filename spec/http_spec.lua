local async = require "asynchost"
require "asynchost.busted"
local ts = require "asynchost.testserver"
local errclass = require("spec.helpers").errclass
local http = async.http

describe("http client", function()
  it("GET with params, headers; JSON responses; case-insensitive headers", function()
    local srv <close> = ts.start{}
    local s <close> = http.session{base_url = srv.url, headers = {["X-Lab"] = "1"}}
    local r = s:get("/get", {params = {q = "lua async", n = 3}})
    assert.equal(200, r.status)
    assert.equal("OK", r.reason)
    assert.equal("application/json", r.headers["Content-Type"])
    assert.equal(r.headers["content-type"], r.headers["CONTENT-TYPE"])
    local body = r:json()
    assert.equal("lua async", body.args.q)
    assert.equal("3", body.args.n)
    assert.equal("1", body.headers["X-Lab"])
    assert.matches("asynchost", body.headers["User-Agent"])
  end)

  it("POST JSON and form bodies round-trip", function()
    local srv <close> = ts.start{}
    local s <close> = http.session{base_url = srv.url}
    local r = s:post("/post", {json = {name = "ada", tags = {"a", "b"}}})
    assert.same({name = "ada", tags = {"a", "b"}}, r:json().json)
    r = s:post("/post", {form = {a = "1", b = "two words"}})
    assert.same({a = "1", b = "two words"}, r:json().form)
    r = s:put("/put", {body = "raw text", headers = {["Content-Type"] = "text/plain"}})
    assert.equal("raw text", r:json().data)
  end)

  it("follows redirects, and can refuse to", function()
    local srv <close> = ts.start{}
    local s <close> = http.session{base_url = srv.url}
    local r = s:get("/redirect/3")
    assert.equal(200, r.status)
    assert.equal(srv.url .. "/get", r.url)
    r = s:get("/redirect/1", {follow_redirects = false})
    assert.equal(302, r.status)
    errclass(async.TooManyRedirects, s.get, s, "/redirect/5", {max_redirects = 2})
  end)

  it("raise_for_status and bad JSON are clear errors", function()
    local srv <close> = ts.start{}
    local s <close> = http.session{base_url = srv.url}
    local r = s:get("/status/503")
    local err = errclass(async.HTTPStatusError, r.raise_for_status, r)
    assert.equal(503, err.status)
    assert.equal(r, err.response)
    assert.matches("503 Service Unavailable: http://", tostring(err))
    assert.equal(200, s:get("/get"):raise_for_status().status)
    local html = s:get("/html")
    assert.has_error(function() html:json() end)
  end)

  it("requests overlap, and the connections are pooled", function()
    local srv <close> = ts.start{}
    local s <close> = http.session{base_url = srv.url}
    local t0 = async.loop_time()
    local rs = async.gather(function() return s:get("/delay/0.3") end,
                            function() return s:get("/delay/0.3") end,
                            function() return s:get("/delay/0.3") end)
    assert.is_true(async.loop_time() - t0 < 0.6)
    assert.equal(3, rs.n)
    for _ = 1, 5 do s:get("/get") end
    local st = s:stats()
    assert.equal(8, st.requests)
    assert.is_true(st.reused >= 5, "reused " .. st.reused)
    assert.is_true(st.connections <= 3)
  end)

  it("timeouts, refused connections and bad names are classed errors", function()
    local srv <close> = ts.start{}
    local s <close> = http.session{base_url = srv.url}
    local err = errclass(async.TimeoutError, s.get, s, "/delay/2", {timeout = 0.1})
    assert.equal("CURLE_OPERATION_TIMEDOUT", err.code)
    assert.matches("/delay/2", err.url)
    local dead = ts.start{}
    local url = dead.url
    dead:close()
    err = errclass(async.ConnectionRefusedError, http.get, url .. "/get")
    assert.is_true(async.ConnectionError:is(err))
    assert.matches(url, tostring(err))
    -- a 64-character label: the resolver refuses it without a DNS query
    errclass(async.DNSError, http.get, "http://" .. ("a"):rep(64) .. ".test/")
  end)

  it("cancelling the awaiting task aborts the transfer at once", function()
    local srv <close> = ts.start{}
    local s <close> = http.session{base_url = srv.url}
    local t = async.spawn(s.get, s, "/delay/5")
    async.sleep(0.05)
    local t0 = async.loop_time()
    t:cancel()
    errclass(async.CancelledError, async.await, t)
    assert.is_true(async.loop_time() - t0 < 0.1)
    errclass(async.TimeoutError, async.wait_for, function() return s:get("/delay/5") end, 0.05)
    assert.equal(200, s:get("/get").status)  -- the pool is fine
  end)

  it("cancel 1,000 in-flight requests, then 1,000 succeed", function()
    local srv <close> = ts.start{}
    local s <close> = http.session{base_url = srv.url, max_per_host = 50}
    local ts1 = {}
    for i = 1, 1000 do ts1[i] = async.spawn(s.get, s, "/delay/10") end
    async.sleep(0.2)
    for _, t in ipairs(ts1) do t:cancel() end
    local r = async.gather(ts1, {return_exceptions = true})
    for i = 1, r.n do assert.is_true(async.CancelledError:is(r[i])) end
    local ok = async.map(function() return s:get("/get").status end,
                         (function() local t = {} for i = 1, 1000 do t[i] = i end return t end)(),
                         {concurrency = 50})
    for i = 1, 1000 do assert.equal(200, ok[i]) end
  end, 60)

  it("1,000 requests to /delay/0.1 at concurrency 1,000 overlap", function()
    -- the test server in a process of its own, as a real server would be
    local bin = require("spec.helpers").BIN
    local out, pidf = os.tmpname(), os.tmpname()
    os.execute(("%s serve --port 0 > %s 2>&1 </dev/null & echo $! > %s")
               :format(bin, out, pidf))
    local f = io.open(pidf)
    local pid = tonumber(f:read("a"))
    f:close()
    local _ <close> = setmetatable({}, {__close = function()
      os.execute("kill " .. pid .. " 2>/dev/null")
      os.remove(out); os.remove(pidf)
    end})
    local url
    for _ = 1, 250 do
      local o = io.open(out)
      url = o and o:read("a"):match("serving on (http://[%d.:]+)")
      if o then o:close() end
      if url then break end
      async.sleep(0.02)
    end
    assert.is_not_nil(url, "the server did not start")
    local s <close> = http.session{base_url = url}
    local t0 = async.loop_time()
    local tasks = {}
    for i = 1, 1000 do tasks[i] = async.spawn(s.get, s, "/delay/0.1") end
    local r = async.gather(tasks)
    local took = async.loop_time() - t0
    for i = 1, r.n do assert.equal(200, r[i].status) end
    -- "well under 1 s" (0.19 s here); the sanitizer build is much slower
    local bound = os.getenv("ASAN_OPTIONS") and 5 or 1
    assert.is_true(took < bound, "took " .. took)
  end, 30)

  it("streams a body as it arrives, with backpressure", function()
    local srv = async.http.server.new()
    srv:route("GET", "/slow", function(_, res)
      for i = 1, 3 do res:write("part " .. i .. "\n"); async.sleep(0.1) end
      res:finish()
    end)
    local _, port = srv:listen()
    local s <close> = http.session()
    local t0 = async.loop_time()
    local r = s:get(("http://127.0.0.1:%d/slow"):format(port), {stream = true})
    local first, parts = nil, {}
    for chunk in r:iter_chunks() do
      first = first or (async.loop_time() - t0)
      parts[#parts + 1] = chunk
    end
    assert.equal("part 1\npart 2\npart 3\n", table.concat(parts))
    assert.is_true(#parts >= 3, "chunks: " .. #parts)
    assert.is_true(first < 0.1, "first chunk after " .. first)  -- before the end
    srv:close()
    -- a slow reader of 8 MiB never holds much more than 1 MiB unread
    local ts1 <close> = ts.start{}
    r = s:get(ts1.url .. "/bytes/8000000", {stream = true})
    local total, biggest = 0, 0
    for chunk in r:iter_chunks() do
      total = total + #chunk
      biggest = math.max(biggest, #chunk)
      async.sleep(0.001)
    end
    assert.equal(8000000, total)
    assert.is_true(biggest <= 1024 * 1024 + 256 * 1024, "chunk of " .. biggest)
  end)

  it("saves downloads to a file, streamed or not, and break closes", function()
    local srv <close> = ts.start{}
    local s <close> = http.session{base_url = srv.url}
    local whole = s:get("/bytes/3000000").body
    local path = os.tmpname()
    local r = s:get("/bytes/3000000", {stream = true})
    assert.equal(3000000, r:save(path))
    local f = io.open(path, "rb")
    assert.equal(whole, f:read("a"))
    f:close()
    assert.equal(100, s:get("/bytes/100"):save(path))
    os.remove(path)
    r = s:get("/bytes/3000000", {stream = true})
    for _ in r:iter_chunks() do break end  -- closes the transfer
    assert.equal(200, s:get("/get").status)
    assert.has_error(function() r:save(42) end,
      "bad argument #1 to 'save' (string expected, got number)")
  end)

  it("talks to a real nginx on 127.0.0.1 when nginx is installed", function()
    local nginx = io.open("/usr/sbin/nginx") and "/usr/sbin/nginx"
    if not nginx then return end  -- not installed: nothing to check against
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir .. "/www " .. dir .. "/logs"))
    local f = assert(io.open(dir .. "/www/data.json", "w"))
    f:write('{"from":"nginx"}')
    f:close()
    local port = 18000 + math.random(0, 999)
    f = assert(io.open(dir .. "/nginx.conf", "w"))
    f:write(([[
worker_processes 1; daemon off; pid %s/nginx.pid; error_log %s/logs/error.log;
events { worker_connections 64; }
http { access_log off; client_body_temp_path %s/tmp;
  server { listen 127.0.0.1:%d; location / { root %s/www; default_type application/json; } } }
]]):format(dir, dir, dir, port, dir))
    f:close()
    os.execute(("%s -p %s -c %s/nginx.conf >/dev/null 2>&1 & echo $! > %s/pid")
               :format(nginx, dir, dir, dir))
    local _ <close> = setmetatable({}, {__close = function()
      local p = io.open(dir .. "/pid")
      if p then os.execute("kill " .. p:read("a"):gsub("%s", "") .. " 2>/dev/null"); p:close() end
      os.execute("rm -rf " .. dir)
    end})
    local s <close> = http.session{base_url = ("http://127.0.0.1:%d"):format(port)}
    local r
    for _ = 1, 100 do  -- wait for nginx to listen
      local ok, res = pcall(s.get, s, "/data.json")
      if ok then r = res break end
      async.sleep(0.02)
    end
    assert.is_not_nil(r, "nginx did not start")
    assert.equal("nginx", r:json().from)
    for _ = 1, 10 do assert.equal(200, s:get("/data.json").status) end
    assert.equal(404, s:get("/missing").status)
    assert.is_true(s:stats().reused >= 10)
  end)

  it("checks its arguments", function()
    assert.has_error(function() http.session(5) end,
      "bad argument #1 to 'session' (table expected, got number)")
    local s <close> = http.session()
    assert.has_error(function() s:request(1, "x") end,
      "bad argument #1 to 'request' (string expected, got number)")
    assert.has_error(function() s:get("http://x/", {body = {}}) end)
    s:close()
    assert.has_error(function() s:get("http://127.0.0.1:9/") end,
                     "attempt to use a closed session")
  end)
end)

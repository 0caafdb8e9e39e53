-- The test server of the labs (asynchost.testserver): each endpoint, the
-- seeded parts, the site for crawlers, and 'asynchost serve'.
local async = require "asynchost"
require "asynchost.busted"
local ts = require "asynchost.testserver"
local cjson = require "cjson"
local helpers = require "spec.helpers"
local response = helpers.response

local BIN = helpers.BIN  -- the asynchost executable under test

-- Writes one request on stream s.  opts: headers (a table), body.
local function send(s, port, method, path, opts)
  opts = opts or {}
  local lines = {("%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n")
                 :format(method, path, port)}
  for k, v in pairs(opts.headers or {}) do
    lines[#lines + 1] = k .. ": " .. v .. "\r\n"
  end
  if opts.body then
    lines[#lines + 1] = "Content-Length: " .. #opts.body .. "\r\n"
  end
  lines[#lines + 1] = "\r\n" .. (opts.body or "")
  s:write(table.concat(lines))
end

-- One request on a connection of its own: status, headers, body.
local function request(srv, method, path, opts)
  local c <close> = async.net.connect("127.0.0.1", srv.port)
  opts = opts or {}
  opts.headers = opts.headers or {}
  opts.headers.Connection = "close"
  send(c, srv.port, method, path, opts)
  return response(c, method == "HEAD")
end

local function get(srv, path, opts) return request(srv, "GET", path, opts) end

local function getjson(srv, path, opts)
  local status, headers, body = get(srv, path, opts)
  assert.equal(200, status, body)
  assert.equal("application/json", headers["content-type"])
  return cjson.decode(body)
end

local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x+$"

describe("testserver", function()
  it("starts on a free port and counts what it serves", function()
    local srv <close> = ts.start{seed = 42}
    assert.is_true(srv.port > 0)
    assert.equal("http://127.0.0.1:" .. srv.port, srv.url)
    getjson(srv, "/get")
    getjson(srv, "/get?x=1")
    getjson(srv, "/ip")
    assert.equal(3, srv.stats.requests)
    assert.equal(2, srv.stats.paths["/get"])
    assert.equal(1, srv.stats.paths["/ip"])
  end)

  it("rejects bad options", function()
    assert.has_error(function() ts.start{flaky_rate = 2} end,
      "bad argument #1 to 'start' (flaky_rate: number 0..1 expected, got 2)")
    assert.has_error(function() ts.start{port = "80"} end,
      "bad argument #1 to 'start' (port: integer 0..65535 expected)")
  end)

  it("/get, /headers, /ip, /user-agent echo the request", function()
    local srv <close> = ts.start()
    local t = getjson(srv, "/get?x=1&name=a%20b",
                      {headers = {["User-Agent"] = "lab/1", ["X-Lab"] = "yes"}})
    assert.same({x = "1", name = "a b"}, t.args)
    assert.equal("yes", t.headers["X-Lab"])
    assert.equal("127.0.0.1", t.origin)
    assert.equal(srv.url .. "/get?x=1&name=a%20b", t.url)
    t = getjson(srv, "/headers", {headers = {["X-Lab"] = "yes"}})
    assert.equal("yes", t.headers["X-Lab"])
    assert.equal("127.0.0.1:" .. srv.port, t.headers.Host)
    assert.same({origin = "127.0.0.1"}, getjson(srv, "/ip"))
    assert.same({["user-agent"] = "lab/1"},
                getjson(srv, "/user-agent",
                        {headers = {["User-Agent"] = "lab/1"}}))
  end)

  it("/json is a fixed document, / and /html are HTML", function()
    local srv <close> = ts.start()
    local t = getjson(srv, "/json")
    assert.equal("Sample Slide Show", t.slideshow.title)
    assert.equal(2, #t.slideshow.slides)
    for _, path in ipairs{"/", "/html"} do
      local status, headers, body = get(srv, path)
      assert.equal(200, status)
      assert.equal("text/html; charset=utf-8", headers["content-type"])
      assert.matches("<title>[^<]+</title>", body)
    end
  end)

  it("/uuid gives v4 UUIDs, the same sequence for the same seed", function()
    local a <close> = ts.start{seed = 42}
    local b <close> = ts.start{seed = 42}
    local c <close> = ts.start{seed = 7}
    local ua1, ua2 = getjson(a, "/uuid").uuid, getjson(a, "/uuid").uuid
    assert.matches(UUID, ua1)
    assert.matches(UUID, ua2)
    assert.not_equal(ua1, ua2)
    assert.equal(ua1, getjson(b, "/uuid").uuid)
    assert.equal(ua2, getjson(b, "/uuid").uuid)
    assert.not_equal(ua1, getjson(c, "/uuid").uuid)
  end)

  it("/status/{code}: the status, an empty body, Location on 3xx", function()
    local srv <close> = ts.start()
    local status, headers, body = get(srv, "/status/404")
    assert.equal(404, status)
    assert.equal("", body)
    status, headers, body = get(srv, "/status/302")
    assert.equal(302, status)
    assert.equal("/get", headers.location)
    assert.equal("", body)
    assert.equal(503, (request(srv, "POST", "/status/503")))
    assert.equal(400, (get(srv, "/status/abc")))
    assert.equal(400, (get(srv, "/status/99")))
  end)

  it("/delay: requests overlap", function()
    local srv <close> = ts.start()
    local t0 = async.loop_time()
    local function delayed() return getjson(srv, "/delay/0.2?n=1").args.n end
    assert.same({"1", "1", "1", n = 3}, async.gather(delayed, delayed, delayed))
    local took = async.loop_time() - t0
    assert.is_true(took >= 0.2 and took < 0.5, "took " .. took)
    assert.equal(400, (get(srv, "/delay/-1")))
  end)

  it("/delay is capped at max_delay", function()
    local srv <close> = ts.start{max_delay = 0.1}
    local t0 = async.loop_time()
    assert.equal("127.0.0.1", getjson(srv, "/delay/30").origin)
    local took = async.loop_time() - t0
    assert.is_true(took >= 0.1 and took < 1, "took " .. took)
  end)

  it("close cancels the handlers in progress", function()
    local srv = ts.start()
    local slow = async.spawn(get, srv, "/delay/5")
    while not srv.stats.paths["/delay/5"] do async.sleep(0.01) end
    local t0 = async.loop_time()
    srv:close()
    assert.is_nil((async.await(slow)))  -- closed without an answer
    assert.is_true(async.loop_time() - t0 < 1)
  end)

  it("/bytes/{n}: n bytes, the same for the same seed, at most 10 MiB",
    function()
      local a <close> = ts.start{seed = 42}
      local b <close> = ts.start{seed = 42}
      local c <close> = ts.start{seed = 43}
      local status, headers, body = get(a, "/bytes/1000")
      assert.equal(200, status)
      assert.equal("application/octet-stream", headers["content-type"])
      assert.equal(1000, #body)
      assert.equal(body, select(3, get(a, "/bytes/1000")))
      assert.equal(body, select(3, get(b, "/bytes/1000")))
      assert.not_equal(body, select(3, get(c, "/bytes/1000")))
      assert.is_true(#body:gsub("%z", "") > 990)  -- not all zeros
      assert.equal(13, #select(3, get(a, "/bytes/13")))
      status, headers = request(a, "HEAD", "/bytes/20000000")
      assert.equal(200, status)
      assert.equal(tostring(10 * 1024 * 1024), headers["content-length"])
    end)

  it("/stream/3 gives 3 JSON lines, chunked", function()
    local srv <close> = ts.start()
    local status, headers, body = get(srv, "/stream/3")
    assert.equal(200, status)
    assert.equal("chunked", headers["transfer-encoding"])
    local ids = {}
    for line in body:gmatch("[^\n]+") do
      local t = cjson.decode(line)
      assert.equal("127.0.0.1", t.origin)
      ids[#ids + 1] = t.id
    end
    assert.same({0, 1, 2}, ids)
  end)

  it("/post echoes a JSON body, a form, or the data", function()
    local srv <close> = ts.start()
    local function post(ctype, body)
      local status, headers, out = request(srv, "POST", "/post",
        {headers = {["Content-Type"] = ctype}, body = body})
      assert.equal(200, status)
      assert.equal("application/json", headers["content-type"])
      return cjson.decode(out)
    end
    local t = post("application/json", '{"a":1,"b":["x","y"]}')
    assert.same({a = 1, b = {"x", "y"}}, t.json)
    assert.equal("application/json", t.headers["Content-Type"])
    t = post("application/x-www-form-urlencoded", "a=1&b=x+y&c=%26")
    assert.same({a = "1", b = "x y", c = "&"}, t.form)
    assert.equal(cjson.null, t.json)
    t = post("text/plain", "just text")
    assert.equal("just text", t.data)
    assert.equal(cjson.null, t.json)
    assert.same({}, t.form)
    assert.equal(405, (get(srv, "/post")))
  end)

  it("/anything, /put, /patch, /delete echo too", function()
    local srv <close> = ts.start()
    local status, _, body = request(srv, "PUT", "/anything/x?q=1",
                                    {body = "[1,2]"})
    assert.equal(200, status)
    local t = cjson.decode(body)
    assert.equal("PUT", t.method)
    assert.same({1, 2}, t.json)
    assert.same({q = "1"}, t.args)
    for _, m in ipairs{"PUT", "PATCH", "DELETE"} do
      status, _, body = request(srv, m, "/" .. m:lower(), {body = "x"})
      assert.equal(200, status)
      assert.equal("x", cjson.decode(body).data)
    end
  end)

  it("/redirect/3 is a chain of 3 redirects ending at /get", function()
    local srv <close> = ts.start()
    local path, hops = "/redirect/3", {}
    while true do
      local status, headers = get(srv, path)
      if status ~= 302 then
        assert.equal(200, status)
        break
      end
      path = headers.location
      hops[#hops + 1] = path
      assert.is_true(#hops <= 3)
    end
    assert.same({"/redirect/2", "/redirect/1", "/get"}, hops)
    assert.equal(400, (get(srv, "/redirect/0")))
  end)

  it("a JSON API: posts, users, comments; 404 beyond the range", function()
    local srv <close> = ts.start()
    local posts = getjson(srv, "/posts")
    assert.equal(100, #posts)
    local p = getjson(srv, "/posts/42")
    assert.same(posts[42], p)
    assert.equal(5, p.userId)
    assert.is_string(p.title)
    assert.equal(10, #getjson(srv, "/posts?userId=3"))
    assert.equal("[]", select(3, get(srv, "/posts?userId=99")))
    local comments = getjson(srv, "/posts/42/comments")
    assert.equal(5, #comments)
    for _, c in ipairs(comments) do assert.equal(42, c.postId) end
    assert.same(comments, getjson(srv, "/comments?postId=42"))
    local users = getjson(srv, "/users")
    assert.equal(10, #users)
    assert.same(users[10], getjson(srv, "/users/10"))
    assert.equal(10, #getjson(srv, "/users/10/posts"))
    for _, path in ipairs{"/posts/0", "/posts/101", "/posts/abc",
                          "/posts/101/comments", "/users/0", "/users/11"} do
      assert.equal(404, (get(srv, path)), path)
    end
    local status, _, body = request(srv, "POST", "/posts",
      {headers = {["Content-Type"] = "application/json"},
       body = '{"title":"t","userId":1}'})
    assert.equal(201, status)
    assert.same({id = 101, title = "t", userId = 1}, cjson.decode(body))
  end)

  it("/flaky fails for exactly the rate of 100 requests, per seed", function()
    local function failures(srv, path)
      local c <close> = async.net.connect("127.0.0.1", srv.port)
      local fails = {}
      for i = 1, 100 do  -- on one kept-alive connection
        send(c, srv.port, "GET", path)
        local status, _, body = response(c)
        assert.is_true(status == 200 or status == 503, status)
        assert.equal(i, cjson.decode(body).request)
        if status == 503 then fails[#fails + 1] = i end
      end
      return fails
    end
    local a <close> = ts.start{seed = 42, flaky_rate = 0.3}
    local b <close> = ts.start{seed = 42, flaky_rate = 0.3}
    local c <close> = ts.start{seed = 43, flaky_rate = 0.3}
    local fa = failures(a, "/flaky")
    assert.equal(30, #fa)
    assert.same(fa, failures(b, "/flaky"))
    assert.not_same(fa, failures(c, "/flaky"))
    assert.equal(50, #failures(a, "/flaky?rate=0.5"))
    assert.equal(0, #failures(a, "/flaky?rate=0"))
    assert.equal(400, (get(a, "/flaky?rate=2")))
  end)

  it("robots.txt disallows /site/private/", function()
    local srv <close> = ts.start()
    local status, headers, body = get(srv, "/robots.txt")
    assert.equal(200, status)
    assert.equal("text/plain", headers["content-type"])
    assert.matches("User%-agent: %*\nDisallow: /site/private/\n", body)
  end)

  it("/site: 30 pages within depth 3 for a crawler that respects robots",
    function()
      local srv <close> = ts.start()
      local disallow = {}
      local robots = select(3, get(srv, "/robots.txt"))
      for prefix in robots:gmatch("Disallow: (%S+)") do
        disallow[#disallow + 1] = prefix
      end
      local function allowed(path)
        for _, prefix in ipairs(disallow) do
          if path:sub(1, #prefix) == prefix then return false end
        end
        return true
      end
      local function resolve(base, href)  -- a path, or nil outside
        href = href:gsub("#.*", "")
        if href == "" or href:match("^%a[%w+.-]*:") then return nil end
        if href:sub(1, 1) ~= "/" then href = base:gsub("[^/]*$", "") .. href end
        local parts = {}
        for seg in href:gmatch("[^/]+") do
          if seg == ".." then parts[#parts] = nil
          elseif seg ~= "." then parts[#parts + 1] = seg end
        end
        return "/" .. table.concat(parts, "/")
               .. (href:match("/$") and "/" or "")
      end
      local depth, titles, queue, missing, skipped = {["/site/"] = 0}, {},
                                                       {"/site/"}, {}, {}
      local external = 0
      local i = 1
      while queue[i] do
        local path = queue[i]
        i = i + 1
        local status, headers, body = get(srv, path)
        if status == 404 then
          missing[#missing + 1] = path
        else
          assert.equal(200, status, path)
          assert.equal("text/html; charset=utf-8", headers["content-type"])
          titles[path] = body:match("<title>([^<]+)</title>")
          assert.is_string(titles[path], path)
          for href in body:gmatch('<a [^>]*href="([^"]*)"') do
            local target = resolve(path, href)
            if not target then
              if href:match("^%a+:") then external = external + 1 end
            elseif not allowed(target) then
              skipped[target] = true
            elseif not depth[target] then
              depth[target] = depth[path] + 1
              queue[#queue + 1] = target
            end
          end
        end
      end
      local n, deepest = 0, 0
      for path in pairs(titles) do
        n = n + 1
        deepest = math.max(deepest, depth[path])
      end
      assert.equal(30, n)
      assert.equal(3, deepest)
      assert.equal(3, depth["/site/docs/api/sleep.html"])
      assert.same({"/site/blog/draft.html"}, missing)
      assert.is_true(external > 5)
      assert.equal("asynchost test site", titles["/site/"])
      assert.equal("News", titles["/site/news/"])
      assert.equal("Launch day - News", titles["/site/news/launch.html"])
      assert.equal("API: sleep", titles["/site/docs/api/sleep.html"])
      assert.same({["/site/private/"] = true,
                   ["/site/private/admin.html"] = true}, skipped)
      for path in pairs(srv.stats.paths) do
        assert.is_nil(path:find("/site/private/", 1, true), path)
      end
      -- the private pages are there for crawlers that do not look
      assert.equal(200, (get(srv, "/site/private/")))
      assert.equal(200, (get(srv, "/site/private/keys.html")))
      local status, headers = get(srv, "/site")
      assert.equal(301, status)
      assert.equal("/site/", headers.location)
    end)

  it("'asynchost serve' answers until interrupted", function()
    local out, err, pidf, rcf = os.tmpname(), os.tmpname(), os.tmpname(),
                                os.tmpname()
    os.remove(rcf)
    local pid
    local _ <close> = setmetatable({}, {__close = function()
      if pid and not io.open(rcf) then os.execute("kill -KILL " .. pid) end
      for _, f in ipairs{out, err, pidf, rcf} do os.remove(f) end
    end})
    assert(os.execute(("( %s serve --port 0 --seed 42 >%s 2>%s </dev/null & "
                       .. "echo $! >%s; wait $!; echo $? >%s ) "
                       .. ">/dev/null 2>&1 </dev/null &")
                      :format(BIN, out, err, pidf, rcf)))
    local function waitfor(fn, what)
      local deadline = async.loop_time() + 5
      while async.loop_time() < deadline do
        local v = fn()
        if v then return v end
        async.sleep(0.02)
      end
      error("timed out waiting for " .. what)
    end
    local function read(name)
      local f = io.open(name)
      if not f then return nil end
      local s = f:read("a")
      f:close()
      return s
    end
    pid = tonumber(waitfor(function()
      return (read(pidf) or ""):match("^(%d+)\n")
    end, "the pid"))
    local port = tonumber(waitfor(function()
      return (read(out) or ""):match("serving on http://127%.0%.0%.1:(%d+)\n")
    end, "'serving on'"))
    local srv = {port = port}
    local t = getjson(srv, "/get?via=cli")
    assert.same({via = "cli"}, t.args)
    local uuid = getjson(srv, "/uuid").uuid
    local ref <close> = ts.start{seed = 42}
    assert.equal(getjson(ref, "/uuid").uuid, uuid)
    os.execute("kill -INT " .. pid)
    local rc = tonumber(waitfor(function()  -- the shell creates the file, then writes
      return (read(rcf) or ""):match("^(%d+)\n")
    end, "the exit"))
    assert.equal(0, rc, read(err))
    assert.matches("GET /get?via=cli 200", read(out), 1, true)
    assert.equal("\nasynchost serve: stopped\n", read(err))  -- after ^C
    local ok = pcall(async.net.connect, "127.0.0.1", port)
    assert.is_false(ok)
  end)

  it("'asynchost serve': usage errors; a script named serve still runs",
    function()
      local function run(cmd)
        local f = io.popen(cmd .. " 2>&1; echo \"rc=$?\"")
        local s = f:read("a")
        f:close()
        return s
      end
      local out = run(BIN .. " serve --port 70000")
      assert.matches("asynchost serve: bad port '70000' (0..65535 expected)\n"
                     .. "usage: asynchost serve", out, 1, true)
      assert.matches("rc=1\n$", out)
      assert.matches("unknown option '--nope'", run(BIN .. " serve --nope"),
                     1, true)
      local dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir " .. dir))
      local f = assert(io.open(dir .. "/serve", "w"))
      f:write("print('the script', ...)\n")
      f:close()
      out = run(("B=$(realpath %s) && cd %s && \"$B\" serve --port 1")
                :format(BIN, dir))
      os.execute("rm -r " .. dir)
      assert.equal("the script\t--port\t1\nrc=0\n", out)
    end)
end)

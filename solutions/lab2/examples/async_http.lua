--- Lab 2, example 3: HTTP requests.
--
-- Run it:  asynchost exercises/lab2/examples/async_http.lua
--
-- async.http is an HTTP client: a session keeps connections open between
-- requests (use one per program or per job, in a <close> variable), and
-- its requests suspend only the task that makes them. The server here is
-- asynchost's test server, started in this process on 127.0.0.1.
local async = require "asynchost"
local testserver = require "asynchost.testserver"

local SCALE = tonumber(os.getenv("LAB_TIME_SCALE")) or 1

local srv <close> = testserver.start{}
local session <close> = async.http.session{base_url = srv.url, timeout = 5}

-- GET with query parameters; JSON answers decode with r:json()
local r = session:get("/get", {params = {lang = "lua"}})
print(("GET /get -> %d, args.lang = %s"):format(r.status, r:json().args.lang))

-- a JSON API
local post = session:get("/posts/1"):json()
print(("post 1 by user %d: %q"):format(post.userId, post.title))

-- POST a JSON body
r = session:post("/post", {json = {name = "Ada", langs = {"lua", "c"}}})
print(("POST /post -> %d, echoed name = %s"):format(r.status,
      r:json().json.name))

-- several requests at once: they overlap
local t0 = async.loop_time()
local delay = ("%g"):format(0.5 * SCALE)
local function slow() return session:get("/delay/" .. delay) end
local pages = async.gather(slow, slow, slow)
print(("3 requests of 0.5 s at once: %.2f s, statuses %d %d %d")
      :format(async.loop_time() - t0, pages[1].status, pages[2].status,
              pages[3].status))

-- an error status is an answer; raise_for_status makes it an error
r = session:get("/status/404")
print(("GET /status/404 -> %d"):format(r.status))
local ok, err = pcall(r.raise_for_status, r)
print(("raise_for_status: %s"):format(tostring(err)))

-- a request that takes too long
ok, err = pcall(session.get, session, "/delay/5", {timeout = 0.2 * SCALE})
print(("a slow answer with a short timeout: %s"):format(
      async.TimeoutError:is(err) and "TimeoutError" or tostring(err)))

-- nobody listening
local gone = testserver.start{}
local url = gone.url
gone:close()
ok, err = pcall(session.get, session, url .. "/get")  -- a full URL
print(("a closed port: %s"):format(async.ConnectionError:is(err)
      and "ConnectionError" or tostring(err)))
print(("session: %d requests on %d connections"):format(
      session:stats().requests, session:stats().connections))

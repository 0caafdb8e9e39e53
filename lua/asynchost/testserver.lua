--- asynchost.testserver: an httpbin-style server for the labs, so that
-- nothing they fetch or crawl reaches the internet.
--
--   local ts = require "asynchost.testserver"
--   local srv <close> = ts.start{seed = 42}     -- inside a task
--   print(srv.url)                              --> http://127.0.0.1:PORT
--
-- or from a shell: asynchost serve [--host H] [--port P] [--seed N].
--
-- start{host = "127.0.0.1", port = 0, seed = 1, max_delay = 10,
-- flaky_rate = 0.3, log, idle_timeout, request_timeout, max_body} returns
-- srv: srv.url, srv.host, srv.port, srv.seed, srv.stats ({requests = n,
-- paths = {[path] = n}}: the requests that reached an endpoint), and
-- srv:close() (also <close>): stops listening and cancels the handlers in
-- progress (a /delay...).  log(line) is called with "GET /get 200" after
-- each request.
--
-- Endpoints (JSON unless told; "echo" is {args, headers, origin, url}):
--   /                      an HTML list of these endpoints
--   /get                   echo
--   /anything[/x]          any method: echo + method, data, form, json
--   /post /put /patch /delete  echo + data, form, json: json is the body
--                          decoded if it is JSON (else null), form the
--                          fields of an x-www-form-urlencoded body (data
--                          is then ""), data the body as it came
--   /json                  a fixed sample document (httpbin's slideshow)
--   /uuid /headers /ip /user-agent
--   /html                  a small HTML page
--   /robots.txt            disallows /site/private/
--   /status/{code}         that status (200..599), empty body; 3xx but 304
--                          with Location: /get
--   /delay/{s}             echo after s seconds (fractional, capped at
--                          max_delay); an async sleep, so delays overlap
--   /bytes/{n}             n pseudo-random bytes (at most 10 MiB),
--                          application/octet-stream: the same bytes for the
--                          same n and seed, whatever came before
--   /stream/{n}            n JSON lines (echo + id 0..n-1, at most 100),
--                          one chunk each (chunked transfer)
--   /redirect/{n}          302 to /redirect/{n-1} ... /redirect/1 to /get
--   /posts /posts/{id} /posts/{id}/comments /comments /users /users/{id}
--   /users/{id}/posts      a fixed JSON API like jsonplaceholder's: 100
--                          posts (10 per user), 10 users, 5 comments per
--                          post; ?userId= filters /posts, ?postId=
--                          /comments; ids out of range 404; POST /posts
--                          answers 201 with the post and id 101
--   /flaky[?rate=r]        503 for a share 'rate' (default flaky_rate) of
--                          the requests, else 200 {ok, request}.  Counted
--                          per rate, in blocks of 100 requests: exactly
--                          floor(rate * 100 + 0.5) of each block fail, at
--                          places drawn from the seed (so 100 requests
--                          with rate 0.3 give exactly 30 failures)
--   /site/                 a site for crawlers: 30 linked HTML pages at
--                          depth 0..3, external links, one broken link,
--                          and 3 pages under /site/private/ (robots.txt
--                          disallows them); see SECTIONS below.  Any
--                          page with ?delay=s comes after s seconds
--   /fault/{mode}          a response that goes wrong (drop, stall,
--                          garbage, reset, trickle...): asynchost/faults.lua
--
-- Everything random comes from the server's own generator (xoshiro256**,
-- as math.random, seeded from opts.seed), so a seed gives the same UUIDs
-- in the same order, and math.random is left alone.
local runtime = require "asynchost.core"
local tasks = require "asynchost.tasks"
local errors = require "asynchost.errors"
local check = require "asynchost.check"
local httpserver = require "asynchost.http.server"
local cjson = require "cjson"
local coro = require "asynchost.core.coroutine"
local faults = require "asynchost.faults"

local rawpcall, pcall = coro.rawpcall, coro.pcall

local argerror, typename = check.argerror, check.typename

local M = {}

local MAX_BYTES = 10 * 1024 * 1024
local MAX_STREAM = 100
local MAX_REDIRECTS = 100

---------------------------------------------------------------------------
-- A seeded generator: xoshiro256** seeded by splitmix64 (Lua integers wrap)

local Random = {}
Random.__index = Random

local function bits(v)  -- 64 bits from a number or a string
  if math.type(v) == "integer" then return v end
  if type(v) == "number" then
    return (string.unpack("<i8", string.pack("<d", v)))
  end
  local h = 0
  for i = 1, #v do h = h * 31 + v:byte(i) end
  return h
end

local function splitmix(x)
  x = x + 0x9E3779B97F4A7C15
  local z = x
  z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
  z = (z ~ (z >> 27)) * 0x94D049BB133111EB
  return x, z ~ (z >> 31)
end

--- A generator seeded from any number of numbers and strings.
local function newrandom(...)
  local x, _ = 0, nil
  for i = 1, select("#", ...) do  -- x: the hash of the seeds so far
    _, x = splitmix(x ~ bits((select(i, ...))))
  end
  local s = {}
  for i = 1, 4 do x, s[i] = splitmix(x) end
  return setmetatable(s, Random)
end

local function rotl(x, k) return (x << k) | (x >> (64 - k)) end

--- 64 random bits, as an integer.
function Random:next()
  local s0, s1, s2, s3 = self[1], self[2], self[3], self[4]
  local r = rotl(s1 * 5, 7) * 9
  local t = s1 << 17
  s2 = s2 ~ s0
  s3 = s3 ~ s1
  s1 = s1 ~ s2
  s0 = s0 ~ s3
  s2 = s2 ~ t
  s3 = rotl(s3, 45)
  self[1], self[2], self[3], self[4] = s0, s1, s2, s3
  return r
end

--- An integer in 1..n.
function Random:int(n)
  return (self:next() >> 11) % n + 1
end

function Random:bytes(n)
  local parts = {}
  for i = 1, n // 8 do parts[i] = string.pack("<i8", self:next()) end
  if n % 8 > 0 then
    parts[#parts + 1] = string.pack("<i8", self:next()):sub(1, n % 8)
  end
  return table.concat(parts)
end

function Random:uuid()
  local hi, lo = self:next(), self:next()
  hi = (hi & ~0xF000) | 0x4000                        -- version 4
  lo = (lo & 0x3FFFFFFFFFFFFFFF) | math.mininteger    -- variant 10
  local h, l = ("%016x"):format(hi), ("%016x"):format(lo)
  return ("%s-%s-%s-%s-%s"):format(h:sub(1, 8), h:sub(9, 12), h:sub(13, 16),
                                   l:sub(1, 4), l:sub(5, 16))
end

---------------------------------------------------------------------------
-- Fixed data: the JSON sample, the jsonplaceholder-like API, the site

local SLIDESHOW = {
  slideshow = {
    author = "Yours Truly",
    date = "date of publication",
    title = "Sample Slide Show",
    slides = {
      {title = "Wake up to WonderWidgets!", type = "all"},
      {title = "Overview", type = "all",
       items = {"Why <em>WonderWidgets</em> are great",
                "Who <em>buys</em> WonderWidgets"}},
    },
  },
}

local WORDS = {
  "lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing",
  "elit", "sed", "do", "eiusmod", "tempor", "incididunt", "ut", "labore",
  "et", "dolore", "magna", "aliqua", "enim", "ad", "minim", "veniam",
  "quis", "nostrud", "exercitation", "ullamco", "laboris", "nisi",
  "aliquip", "ex", "ea", "commodo", "consequat", "duis", "aute", "irure",
  "in", "reprehenderit", "voluptate", "velit", "esse", "cillum", "fugiat",
  "nulla", "pariatur", "excepteur", "sint", "occaecat", "cupidatat",
}

local function words(rng, n)
  local t = {}
  for i = 1, n do t[i] = WORDS[rng:int(#WORDS)] end
  return table.concat(t, " ")
end

local function sentences(rng, n)
  local t = {}
  for i = 1, n do
    local s = words(rng, 6 + rng:int(8))
    t[i] = s:sub(1, 1):upper() .. s:sub(2) .. "."
  end
  return table.concat(t, " ")
end

local USERS = {
  {"Ada Lovelace", "ada", "London"}, {"Alan Turing", "alan", "Manchester"},
  {"Grace Hopper", "grace", "Arlington"},
  {"Edsger Dijkstra", "edsger", "Nuenen"},
  {"Barbara Liskov", "barbara", "Boston"}, {"Donald Knuth", "don", "Stanford"},
  {"Margaret Hamilton", "margaret", "Cambridge"},
  {"Tony Hoare", "tony", "Oxford"}, {"Frances Allen", "fran", "Peru"},
  {"Roberto Ierusalimschy", "roberto", "Rio de Janeiro"},
}

local api  -- {posts, users, comments}, made on first use

local function apidata()
  if api then return api end
  api = {posts = {}, users = {}, comments = {}}
  for id, u in ipairs(USERS) do
    api.users[id] = {id = id, name = u[1], username = u[2],
                     email = u[2] .. "@example.invalid",
                     website = u[2] .. ".example.invalid",
                     address = {city = u[3]},
                     company = {name = u[1]:match("%S+$") .. " & Co"}}
  end
  for id = 1, 100 do
    local rng = newrandom("post", id)
    api.posts[id] = {id = id, userId = (id - 1) // 10 + 1,
                     title = words(rng, 3 + rng:int(5)),
                     body = sentences(rng, 3)}
    for k = 1, 5 do
      local cid = (id - 1) * 5 + k
      local who = USERS[rng:int(#USERS)][2]
      api.comments[cid] = {id = cid, postId = id,
                           name = words(rng, 2 + rng:int(4)),
                           email = who .. cid .. "@example.invalid",
                           body = sentences(rng, 2)}
    end
  end
  return api
end

-- The site: /site/ (depth 0) links to 4 sections (depth 1), each with 5
-- pages (depth 2); /site/docs/api.html alone links to 5 pages under
-- /site/docs/api/ (depth 3): 30 pages.  Links are absolute paths,
-- relative ones ("launch.html", "../", "api/sleep.html") and "#top";
-- some go outside (http://example.invalid/..., https://..., mailto:),
-- /site/blog/crawlers.html links to a missing page (404), and the index
-- and /site/shop/cart.html link to /site/private/, which robots.txt
-- disallows (3 more pages: /site/private/, admin.html, keys.html).
local SECTIONS = {
  {"news", "News", {{"launch", "Launch day"}, {"release-0-1", "Release 0.1"},
                    {"roadmap", "Roadmap"}, {"meetup", "Meetup in Lyon"},
                    {"interview", "An interview"}}},
  {"docs", "Documentation", {{"install", "Installing"},
                             {"tutorial", "Tutorial"},
                             {"api", "API reference"}, {"faq", "FAQ"},
                             {"changelog", "Changelog"}}},
  {"shop", "Shop", {{"mugs", "Mugs"}, {"shirts", "T-shirts"},
                    {"stickers", "Stickers"}, {"books", "Books"},
                    {"cart", "Your cart"}}},
  {"blog", "Blog", {{"hello-world", "Hello, world"},
                    {"tasks", "Tasks explained"},
                    {"cancellation", "On cancellation"},
                    {"backpressure", "Backpressure"},
                    {"crawlers", "Writing a crawler"}}},
}
local APIPAGES = {{"sleep", "sleep"}, {"spawn", "spawn"},
                  {"gather", "gather"}, {"timeout", "timeout"},
                  {"queue", "Queue"}}
local SITE_TITLE = "asynchost test site"

local function html(title, text, links)
  local out = {"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n",
               "<meta charset=\"utf-8\">\n<title>", title, "</title>\n",
               "</head>\n<body id=\"top\">\n<h1>", title, "</h1>\n<p>", text,
               "</p>\n<ul>\n"}
  for _, l in ipairs(links or {}) do
    local attrs = l[1]:match("^%a+:") and "class=\"ext\" " or ""
    out[#out + 1] = ("<li><a %shref=\"%s\">%s</a></li>\n")
                    :format(attrs, l[1], l[2])
  end
  out[#out + 1] = "</ul>\n</body>\n</html>\n"
  return table.concat(out)
end

local site  -- [path] = html, made on first use

local function sitepages()
  if site then return site end
  site = {}
  local function text(path) return sentences(newrandom("site", path), 4) end
  local links = {}
  for _, s in ipairs(SECTIONS) do
    links[#links + 1] = {"/site/" .. s[1] .. "/", s[2]}
  end
  links[#links + 1] = {"/site/private/", "Staff only"}
  links[#links + 1] = {"http://example.invalid/x", "Our partners"}
  links[#links + 1] = {"https://example.invalid/", "Elsewhere"}
  links[#links + 1] = {"mailto:webmaster@example.invalid", "Write to us"}
  site["/site/"] = html(SITE_TITLE, text("/site/"), links)
  for si, s in ipairs(SECTIONS) do
    local slug, name, pages = s[1], s[2], s[3]
    local nextsec = SECTIONS[si % #SECTIONS + 1]
    local base = "/site/" .. slug .. "/"
    links = {{"/site/", "Home"}}
    for _, p in ipairs(pages) do links[#links + 1] = {p[1] .. ".html", p[2]} end
    links[#links + 1] = {"/site/" .. nextsec[1] .. "/", nextsec[2]}
    links[#links + 1] = {"http://example.invalid/" .. slug,
                         name .. " elsewhere"}
    site[base] = html(name, text(base), links)
    for pi, p in ipairs(pages) do
      local path = base .. p[1] .. ".html"
      local prev = pages[(pi - 2) % #pages + 1]
      local nextp = pages[pi % #pages + 1]
      local other = nextsec[3][pi]
      links = {{"../", name}, {"/site/", "Home"}, {"#top", "Top"},
               {prev[1] .. ".html", "Previous: " .. prev[2]},
               {base .. nextp[1] .. ".html", "Next: " .. nextp[2]},
               {"/site/" .. nextsec[1] .. "/" .. other[1] .. ".html",
                "See also: " .. other[2]}}
      if pi % 2 == 1 then
        links[#links + 1] = {"http://example.invalid/x?from=" .. p[1],
                             "Elsewhere"}
      end
      if path == "/site/docs/api.html" then
        for _, a in ipairs(APIPAGES) do
          links[#links + 1] = {"api/" .. a[1] .. ".html", a[2]}
        end
      elseif path == "/site/shop/cart.html" then
        links[#links + 1] = {"/site/private/admin.html", "Admin"}
      elseif path == "/site/blog/crawlers.html" then
        links[#links + 1] = {"/site/blog/draft.html", "A draft"}  -- 404
      end
      site[path] = html(p[2] .. " - " .. name, text(path), links)
    end
  end
  for ai, a in ipairs(APIPAGES) do
    local path = "/site/docs/api/" .. a[1] .. ".html"
    local nexta = APIPAGES[ai % #APIPAGES + 1]
    site[path] = html("API: " .. a[2], text(path),
                      {{"../api.html", "API reference"}, {"/site/", "Home"},
                       {nexta[1] .. ".html", "Next: " .. nexta[2]},
                       {"https://example.invalid/docs/" .. a[1], "Upstream"}})
  end
  site["/site/private/"] = html("Private area", text("/site/private/"),
                                {{"admin.html", "Admin"},
                                 {"keys.html", "API keys"},
                                 {"/site/", "Home"}})
  site["/site/private/admin.html"] = html("Private: Admin",
    "Crawlers that respect robots.txt never see this page.",
    {{"/site/private/", "Private area"}, {"keys.html", "API keys"}})
  site["/site/private/keys.html"] = html("Private: API keys",
    "Crawlers that respect robots.txt never see this page.",
    {{"/site/private/", "Private area"}})
  return site
end

local ROBOTS = [[
# robots.txt of the asynchost test server
User-agent: *
Disallow: /site/private/
]]

local HTMLPAGE = html("The asynchost test server",
  "This page is served by asynchost's test server, so that the labs can " ..
  "fetch and crawl without reaching the internet. Every page here is " ..
  "made by code: nothing is read from files.",
  {{"/site/", "A site to crawl"}, {"/json", "Some JSON"}})

local ENDPOINTS = {
  "/get", "/anything", "/post", "/put", "/patch", "/delete", "/json",
  "/uuid", "/headers", "/ip", "/user-agent", "/html", "/robots.txt",
  "/status/418", "/delay/1", "/bytes/64", "/stream/5", "/redirect/3",
  "/posts", "/posts/1", "/posts/1/comments", "/comments?postId=1",
  "/users", "/users/1", "/users/1/posts", "/flaky", "/flaky?rate=0.5",
  "/site/",
}

local function indexpage()
  local links = {}
  for i, e in ipairs(ENDPOINTS) do links[i] = {e, e} end
  return html("asynchost test server",
              "httpbin-style endpoints, a JSON API and a site to crawl.",
              links)
end

---------------------------------------------------------------------------
-- Handlers

local function titlecase(name)  -- user-agent -> User-Agent
  return (name:gsub("%f[%w]%l", string.upper))
end

local function headersof(req)
  local t = {}
  for k, v in pairs(req.headers) do t[titlecase(k)] = v end
  return t
end

local function echo(srv, req)
  return {args = req.query, headers = headersof(req), origin = req.peer[1],
          url = "http://" .. (req.headers.host or srv.authority) .. req.target}
end

local function bodyecho(srv, req)
  local t = echo(srv, req)
  local ctype = (req.headers["content-type"] or ""):lower()
  t.data, t.form, t.json = req.body, {}, cjson.null
  if ctype:find("application/x-www-form-urlencoded", 1, true) then
    t.form, t.data = httpserver.parsequery(req.body), ""
  elseif req.body ~= "" then
    local ok, v = rawpcall(cjson.decode, req.body)
    if ok then t.json = v end
  end
  return t
end

local function fail(res, status, msg)
  res:header("Content-Type", "text/plain")
  res:send(msg .. "\n", status)
end

local function sendhtml(res, page, status)
  res:header("Content-Type", "text/html; charset=utf-8")
  res:send(page, status)
end

local function sendlist(res, list)  -- cjson makes {} of an empty array
  if #list == 0 then
    res:header("Content-Type", "application/json")
    return res:send("[]")
  end
  res:json(list)
end

local function integer(s)
  local n = tonumber(s)
  return n and math.tointeger(n)
end

local function flaky(srv, rate)
  local st = srv._flaky[rate]
  if not st then
    st = {n = 0}
    srv._flaky[rate] = st
  end
  st.n = st.n + 1
  local k = st.n
  local block = (k - 1) // 100
  if st.block ~= block then  -- draw this block's failures
    local rng = newrandom(srv.seed, rate, block)
    local places, nfail = {}, math.floor(rate * 100 + 0.5)
    for i = 1, 100 do places[i] = i end
    st.block, st.fails = block, {}
    for i = 1, nfail do  -- a partial Fisher-Yates shuffle
      local j = i - 1 + rng:int(101 - i)
      places[i], places[j] = places[j], places[i]
      st.fails[places[i]] = true
    end
  end
  return st.fails[(k - 1) % 100 + 1] == true, k
end

local function anything(srv, req)
  local t = bodyecho(srv, req)
  t.method = req.method
  return t
end

-- Each route: method, pattern, handler(srv, req, res).
local ROUTES = {
  {"GET", "/", function(_, _, res) sendhtml(res, indexpage()) end},
  {"GET", "/get", echo},
  {"*", "/anything", anything},
  {"*", "/anything/{rest}", anything},
  {"POST", "/post", bodyecho},
  {"PUT", "/put", bodyecho},
  {"PATCH", "/patch", bodyecho},
  {"DELETE", "/delete", bodyecho},
  {"GET", "/json", function() return SLIDESHOW end},
  {"GET", "/uuid", function(srv) return {uuid = srv._rng:uuid()} end},
  {"GET", "/headers", function(_, req) return {headers = headersof(req)} end},
  {"GET", "/ip", function(_, req) return {origin = req.peer[1]} end},
  {"GET", "/user-agent", function(_, req)
    return {["user-agent"] = req.headers["user-agent"] or cjson.null}
  end},
  {"GET", "/html", function(_, _, res) sendhtml(res, HTMLPAGE) end},
  {"GET", "/robots.txt", function(_, _, res)
    res:header("Content-Type", "text/plain")
    res:send(ROBOTS)
  end},
  {"*", "/status/{code}", function(_, req, res)
    local code = integer(req.params.code)
    if not code or code < 200 or code > 599 then
      return fail(res, 400, "status code 200..599 expected")
    end
    if code >= 300 and code < 400 and code ~= 304 then
      res:header("Location", "/get")
    end
    res:send("", code)
  end},
  {"*", "/delay/{seconds}", function(srv, req, res)
    local s = tonumber(req.params.seconds)
    if not s or not (s >= 0) then
      return fail(res, 400, "delay: non-negative number of seconds expected")
    end
    runtime.sleep(math.min(s, srv.max_delay))
    return echo(srv, req)
  end},
  {"GET", "/bytes/{n}", function(srv, req, res)
    local n = integer(req.params.n)
    if not n or n < 0 then
      return fail(res, 400, "bytes: non-negative integer expected")
    end
    res:header("Content-Type", "application/octet-stream")
    res:send(newrandom(srv.seed, "bytes", math.min(n, MAX_BYTES))
             :bytes(math.min(n, MAX_BYTES)))
  end},
  {"GET", "/stream/{n}", function(srv, req, res)
    local n = integer(req.params.n)
    if not n or n < 0 then
      return fail(res, 400, "stream: non-negative integer expected")
    end
    res:header("Content-Type", "application/json")
    for i = 1, math.min(n, MAX_STREAM) do
      local t = echo(srv, req)
      t.id = i - 1
      res:write(cjson.encode(t) .. "\n")
    end
    res:finish()
  end},
  {"GET", "/redirect/{n}", function(_, req, res)
    local n = integer(req.params.n)
    if not n or n < 1 or n > MAX_REDIRECTS then
      return fail(res, 400, "redirect: integer 1.." .. MAX_REDIRECTS
                            .. " expected")
    end
    res:header("Location", n == 1 and "/get" or "/redirect/" .. (n - 1))
    res:send("", 302)
  end},
  {"GET", "/posts", function(_, req, res)
    local user, list = integer(req.query.userId), {}
    for _, p in ipairs(apidata().posts) do
      if req.query.userId == nil or p.userId == user then
        list[#list + 1] = p
      end
    end
    sendlist(res, list)
  end},
  {"POST", "/posts", function(_, req, res)
    local post = req:json()
    if type(post) ~= "table" then post = {value = post} end
    post.id = #apidata().posts + 1
    res:json(post, 201)
  end},
  {"GET", "/posts/{id}", function(_, req, res)
    local p = apidata().posts[integer(req.params.id) or 0]
    if not p then return fail(res, 404, "no such post") end
    return p
  end},
  {"GET", "/posts/{id}/comments", function(_, req, res)
    local id = integer(req.params.id) or 0
    if not apidata().posts[id] then return fail(res, 404, "no such post") end
    local list = {}
    for k = 1, 5 do list[k] = api.comments[(id - 1) * 5 + k] end
    sendlist(res, list)
  end},
  {"GET", "/comments", function(_, req, res)
    local post, list = integer(req.query.postId), {}
    for _, c in ipairs(apidata().comments) do
      if req.query.postId == nil or c.postId == post then
        list[#list + 1] = c
      end
    end
    sendlist(res, list)
  end},
  {"GET", "/users", function() return apidata().users end},
  {"GET", "/users/{id}", function(_, req, res)
    local u = apidata().users[integer(req.params.id) or 0]
    if not u then return fail(res, 404, "no such user") end
    return u
  end},
  {"GET", "/users/{id}/posts", function(_, req, res)
    local id = integer(req.params.id) or 0
    if not apidata().users[id] then return fail(res, 404, "no such user") end
    local list = {}
    for k = 1, 10 do list[k] = api.posts[(id - 1) * 10 + k] end
    sendlist(res, list)
  end},
  {"GET", "/flaky", function(srv, req, res)
    local rate = srv.flaky_rate
    if req.query.rate then
      rate = tonumber(req.query.rate)
      if not rate or not (rate >= 0 and rate <= 1) then
        return fail(res, 400, "flaky: rate 0..1 expected")
      end
    end
    local failed, k = flaky(srv, rate)
    if failed then
      return res:json({error = "failed on purpose", request = k}, 503)
    end
    return {ok = true, request = k}
  end},
  {"*", "/fault/{mode}", faults.handle},
  {"GET", "/site", function(_, _, res)
    res:header("Location", "/site/")
    res:send("", 301)
  end},
}

local function sitepage(srv, req, res)
  local delay = tonumber(req.query.delay)  -- ?delay=s: a slow page
  if delay and delay > 0 then runtime.sleep(math.min(delay, srv.max_delay)) end
  local page = sitepages()[req.path]
  if not page then
    return sendhtml(res, html("Not found", "No page at " .. req.path .. "."),
                    404)
  end
  sendhtml(res, page)
end
for _, pattern in ipairs{"/site/", "/site/{a}", "/site/{a}/", "/site/{a}/{b}",
                         "/site/{a}/{b}/", "/site/{a}/{b}/{c}"} do
  ROUTES[#ROUTES + 1] = {"GET", pattern, sitepage}
end

-- The handler the HTTP server calls: counts, tracks, sends, logs.
local function wrap(srv, fn)
  return function(req, res)
    local stats = srv.stats
    stats.requests = stats.requests + 1
    stats.paths[req.path] = (stats.paths[req.path] or 0) + 1
    local t = runtime.current_task()
    srv._active[t] = true
    local _ <close> = setmetatable({}, {__close = function()
      srv._active[t] = nil
    end})
    local out = fn(srv, req, res)
    if type(out) == "table" then res:json(out)
    elseif type(out) == "string" then res:send(out)
    else res:finish() end
    if srv._log then
      srv._log(("%s %s %d"):format(req.method, req.target, res.status))
    end
  end
end

---------------------------------------------------------------------------
-- Servers

local methods = {}
local Server = {__index = methods, __name = "asynchost.testserver"}

--- Stops listening and cancels the handlers in progress (waiting, inside
-- a task, for them to end).
function methods:close()
  if self._closed then return end
  self._closed = true
  self._app:close()
  local me, cancelled = runtime.current_task(), {}
  for t in pairs(self._active) do
    if t ~= me and t:cancel("test server closed") then
      cancelled[#cancelled + 1] = t
    end
  end
  if me and #cancelled > 0 then
    rawpcall(tasks.wait, cancelled, {timeout = 1})
  end
end
Server.__close = methods.close

function Server.__tostring(srv)
  return "test server " .. srv.url
end

-- opts[name], if given: a number in lo..hi (or any but NaN if no lo).
local function checknumber(opts, name, lo, hi)
  local v = opts[name]
  if v == nil then return nil end
  if type(v) ~= "number" or not (v == v and (not lo or v >= lo and v <= hi))
  then
    argerror(1, "start", ("%s: number%s expected, got %s")
             :format(name, lo and (" " .. lo .. ".." .. hi) or "",
                     type(v) == "number" and v or typename(v)), 3)
  end
  return v
end

--- start{host, port, seed, max_delay, flaky_rate, log, idle_timeout,
-- request_timeout, max_body} -> server; inside a task.
function M.start(opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    argerror(1, "start", "table expected, got " .. typename(opts), 2)
  end
  local host = opts.host or "127.0.0.1"
  if type(host) ~= "string" then
    argerror(1, "start", "host: string expected, got " .. typename(host), 2)
  end
  local port = opts.port or 0
  if math.type(port) ~= "integer" or port < 0 or port > 65535 then
    argerror(1, "start", "port: integer 0..65535 expected", 2)
  end
  if opts.log ~= nil and not check.callable(opts.log) then
    argerror(1, "start", "log: function expected, got "
             .. typename(opts.log), 2)
  end
  local seed = checknumber(opts, "seed") or 1
  check.running("start")
  local app = httpserver.new{idle_timeout = opts.idle_timeout,
                             request_timeout = opts.request_timeout,
                             max_body = opts.max_body}
  local srv = setmetatable({
    seed = seed,
    max_delay = checknumber(opts, "max_delay", 0, math.huge) or 10,
    flaky_rate = checknumber(opts, "flaky_rate", 0, 1) or 0.3,
    stats = {requests = 0, paths = {}},
    _app = app, _rng = newrandom(seed, "uuid"), _flaky = {}, _active = {},
    _log = opts.log,
  }, Server)
  for _, r in ipairs(ROUTES) do app:route(r[1], r[2], wrap(srv, r[3])) end
  srv.host, srv.port = app:listen(host, port)
  srv.authority = ("%s:%d"):format(srv.host:find(":", 1, true)
                                   and "[" .. srv.host .. "]" or srv.host,
                                   srv.port)
  srv.url = "http://" .. srv.authority
  return srv
end

---------------------------------------------------------------------------
-- asynchost serve

local USAGE = [[
usage: asynchost serve [--host HOST] [--port PORT] [--seed N]
  --host HOST  the address to listen on (default 127.0.0.1)
  --port PORT  the port, 0 for any free one (default 8080)
  --seed N     the seed of /uuid, /bytes and /flaky (default 1)
Serves until Ctrl-C; see lua/asynchost/testserver.lua for the endpoints.
]]

local function usage(msg, short)
  io.stderr:write("asynchost serve: ", msg, "\n", short and "" or USAGE)
  io.stderr:flush()
  return false
end

--- The 'asynchost serve' command: args as the script's 'arg' (options at
-- 1..n).  Prints "serving on URL", logs each request on stdout, serves
-- until the task is cancelled (Ctrl-C).  Returns true, or false after a
-- message on stderr.
function M.main(args)
  local opts = {host = "127.0.0.1", port = 8080,
                log = function(line) print(line) io.stdout:flush() end}
  local i = 1
  while args and args[i] ~= nil do
    local a = args[i]
    local name, value = a:match("^%-%-(%a+)=(.*)$")
    if not name then
      name = a:match("^%-%-(%a+)$")
      if a == "-h" or name == "help" then
        io.stdout:write(USAGE)
        return true
      end
      if name == "host" or name == "port" or name == "seed" then
        i = i + 1
        value = args[i]
        if value == nil then
          return usage("option '" .. a .. "' needs a value")
        end
      end
    end
    if name == "host" then
      if value == "" then return usage("empty host") end
      opts.host = value
    elseif name == "port" then
      opts.port = value:find("^%d+$") and integer(value)
      if not opts.port or opts.port > 65535 then
        return usage("bad port '" .. value .. "' (0..65535 expected)")
      end
    elseif name == "seed" then
      opts.seed = value:find("^%-?%d+$") and integer(value)
      if not opts.seed then
        return usage("bad seed '" .. value .. "' (an integer expected)")
      end
    else
      return usage("unknown option '" .. a .. "'")
    end
    i = i + 1
  end
  local ok, srv = rawpcall(M.start, opts)
  if not ok then return usage("cannot listen: " .. tostring(srv), true) end
  print("serving on " .. srv.url)
  io.stdout:flush()
  local err
  ok, err = pcall(runtime.sleep, math.huge)  -- until Ctrl-C
  local me = runtime.current_task()
  if not errors.CancelledError:is(err) then error(err, 0) end
  me:uncancel()
  srv:close()
  -- connections kept alive wait in the server's read: end them too
  local others = {}
  for _, t in ipairs(runtime.all_tasks()) do
    if t ~= me and t:cancel("test server closed") then
      others[#others + 1] = t
    end
  end
  if #others > 0 then rawpcall(tasks.wait, others, {timeout = 1}) end
  io.stderr:write("asynchost serve: stopped\n")
  return true
end

return M

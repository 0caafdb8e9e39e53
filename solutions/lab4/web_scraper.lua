--- Lab 4, project: an asynchronous web scraper (solution).
--
-- Run it:  asynchost solutions/lab4/web_scraper.lua            (the test site)
--          asynchost solutions/lab4/web_scraper.lua --help     (the options)
--          asynchost solutions/lab4/web_scraper.lua -d 1 -o pages.json URL...
--
-- From one or more start pages, it fetches pages concurrently, extracts
-- their title and links, and follows the links up to a depth (the start
-- pages are depth 0), staying on each start page's site unless told
-- otherwise.  It is polite: at most `max_concurrency` requests at once,
-- at least `rate_limit` seconds between two requests to the same site
-- (host and port), and nothing that the site's robots.txt disallows.
-- Errors (a refused connection, a 404, a timeout) are counted and
-- reported, never fatal.  Without a URL it starts asynchost's test server
-- and crawls its /site/: nothing leaves the machine.
local async = require "asynchost"
local html = require "asynchost.html"
local cjson = require "cjson"

local M = {}

-- The default delays (rate_limit, timeout) are in "lab seconds",
-- multiplied by time_scale (LAB_TIME_SCALE, default 1; specs set the
-- field).  Values given as options are used as they are.
M.time_scale = tonumber(os.getenv("LAB_TIME_SCALE")) or 1

M.USER_AGENT = "asynchost-lab-scraper/1.0"

-- Links to files a scraper of pages has no use for.
local SKIP_EXTENSIONS = {jpg = true, jpeg = true, png = true, gif = true,
                         svg = true, pdf = true, zip = true, gz = true,
                         mp3 = true, mp4 = true, css = true, js = true}

---------------------------------------------------------------------------
-- robots.txt

--- The rules of a robots.txt text for `agent`: the group naming the agent
-- (its product token, case-insensitive) if any, else the "*" group.
-- Returns {allow = {prefixes}, disallow = {prefixes}}.
function M.parse_robots(text, agent)
  local token = (agent or M.USER_AGENT):match("^[^/%s]+"):lower()
  local groups, current, ingroup = {}, nil, false
  for line in (text .. "\n"):gmatch("([^\r\n]*)\r?\n") do
    line = line:gsub("#.*$", ""):match("^%s*(.-)%s*$")
    local field, value = line:match("^([%w%-]+)%s*:%s*(.-)$")
    field = field and field:lower()
    if field == "user-agent" then
      if not ingroup then  -- a new group starts
        current = {agents = {}, allow = {}, disallow = {}}
        groups[#groups + 1] = current
        ingroup = true
      end
      current.agents[#current.agents + 1] = value:lower()
    elseif (field == "allow" or field == "disallow") and current then
      ingroup = false
      if value ~= "" then  -- "Disallow:" (empty) allows everything
        table.insert(current[field], value)
      end
    elseif field then
      ingroup = false
    end
  end
  local star
  for _, g in ipairs(groups) do
    for _, a in ipairs(g.agents) do
      if a == token then return {allow = g.allow, disallow = g.disallow} end
      if a == "*" then star = star or g end
    end
  end
  return star and {allow = star.allow, disallow = star.disallow}
         or {allow = {}, disallow = {}}
end

--- Do `rules` (from parse_robots) allow `path` ("/a/b?q")?  The longest
-- matching prefix decides; Allow wins a tie.
function M.robots_allows(rules, path)
  local best, allowed = -1, true
  for _, kind in ipairs{"disallow", "allow"} do
    for _, prefix in ipairs(rules[kind]) do
      if path:sub(1, #prefix) == prefix and #prefix >= best then
        best, allowed = #prefix, kind == "allow"
      end
    end
  end
  return allowed
end

---------------------------------------------------------------------------
-- URLs

--- The URL without its fragment, scheme and host in lowercase, and a
-- path of at least "/".
function M.normalize(url)
  local u = html.split_url(url)
  if not u.scheme or not u.authority then return (url:gsub("#.*$", "")) end
  local out = u.scheme .. "://" .. u.authority:lower()
              .. (u.path == "" and "/" or u.path)
  if u.query then out = out .. "?" .. u.query end
  return out
end

--- The site of an absolute URL: "host:port" (lowercase), or nil.
function M.site(url)
  local u = html.split_url(url)
  if not u.host then return nil end
  return u.host .. ":" .. (u.port or (u.scheme == "https" and 443 or 80))
end

---------------------------------------------------------------------------
-- The scraper

local Scraper = {}
Scraper.__index = Scraper
Scraper.__name = "Scraper"

local function checkopt(opts, name, ok, what)
  if opts[name] ~= nil and not ok(opts[name]) then
    error(("bad argument #1 to 'Scraper' (%s must be %s)"):format(name, what),
          3)
  end
end

local function positive(v) return type(v) == "number" and v > 0 end
local function nonneg(v) return type(v) == "number" and v >= 0 end
local function count(v) return math.type(v) == "integer" and v >= 1 end

--- A scraper: Scraper{max_concurrency = 5, rate_limit = 1, timeout = 10,
-- same_domain = true, respect_robots = true, user_agent, on_page}.
-- on_page(record), if given, is called as each page is scraped (progress).
-- Use it as a to-be-closed variable (it owns an HTTP session).
function M.Scraper(opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error("bad argument #1 to 'Scraper' (table expected, got "
          .. type(opts) .. ")", 2)
  end
  checkopt(opts, "max_concurrency", count, "an integer >= 1")
  checkopt(opts, "rate_limit", nonneg, "a number >= 0")
  checkopt(opts, "timeout", positive, "a positive number")
  local self = setmetatable({
    max_concurrency = opts.max_concurrency or 5,
    rate_limit = opts.rate_limit or 1 * M.time_scale,
    timeout = opts.timeout or 10 * M.time_scale,
    same_domain = opts.same_domain ~= false,
    respect_robots = opts.respect_robots ~= false,
    user_agent = opts.user_agent or M.USER_AGENT,
    on_page = opts.on_page,
    visited = {},     -- [normalized url] = true: fetched or queued
    robots = {},      -- [site] = task fetching its rules
    turns = {},       -- [site] = Lock: one request of a site at a time
    last = {},        -- [site] = loop time of its last request
    stats = {fetched = 0, failed = 0, disallowed = 0},
    errors = {},      -- {url, error}
  }, Scraper)
  self.semaphore = async.Semaphore(self.max_concurrency)
  self.session = async.http.session{timeout = self.timeout,
                                    user_agent = self.user_agent}
  return self
end

function Scraper:close()
  self.session:close()
end
Scraper.__close = Scraper.close

-- Waits for the turn of `site`: a slot among max_concurrency and
-- rate_limit seconds since the site's last request.  Returns the
-- semaphore, to release (it is its own <close> guard).
--
-- The site's lock is held while waiting for the slot and the delay, so
-- that the delay counts from the moment the previous request really went
-- out; only one task per site holds a slot while it sleeps, so a slow
-- site cannot take every slot from the others.
function Scraper:_turn(site)
  local lock = self.turns[site]
  if not lock then
    lock = async.Lock()
    self.turns[site] = lock
  end
  local _ <close> = lock:acquire()
  local slot = self.semaphore:acquire()
  local ok, err = pcall(function()
    local wait = (self.last[site] or -math.huge) + self.rate_limit
                 - async.loop_time()
    if wait > 0 then async.sleep(wait) end
  end)
  if not ok then
    slot:release()
    error(err, 0)
  end
  self.last[site] = async.loop_time()
  return slot
end

--- GETs url politely; returns the response, or nil and an error message.
function Scraper:request(url)
  local slot <close> = self:_turn(M.site(url) or url)
  local ok, r = pcall(self.session.get, self.session, url)
  if not ok then
    if async.CancelledError:is(r) then error(r, 0) end
    return nil, tostring(r)
  end
  return r
end

--- Does the site's robots.txt let us fetch url?  The rules of each site
-- are fetched once (the first caller fetches them, the others wait).
function Scraper:allowed(url)
  if not self.respect_robots then return true end
  local site = M.site(url)
  if not site then return true end
  local task = self.robots[site]
  if not task then
    local u = html.split_url(url)
    local robots_url = u.scheme .. "://" .. u.authority .. "/robots.txt"
    task = async.spawn(function()
      local r = self:request(robots_url)
      if r and r.status == 200 then
        return M.parse_robots(r.body, self.user_agent)
      end
      return {allow = {}, disallow = {}}  -- no robots.txt: all allowed
    end)
    self.robots[site] = task
  end
  -- shield: a caller cancelled must not cancel the fetch the others share
  local rules = async.shield(task)
  local u = html.split_url(url)
  local path = (u.path == "" and "/" or u.path)
               .. (u.query and "?" .. u.query or "")
  return M.robots_allows(rules, path)
end

--- Should a link to url, found on base_url, be followed?  http(s) only,
-- the same site unless same_domain is false, no file of SKIP_EXTENSIONS,
-- not seen yet.
function Scraper:should_follow(url, base_url)
  local u = html.split_url(url)
  if u.scheme ~= "http" and u.scheme ~= "https" then return false end
  if not u.host or u.host == "" then return false end
  if self.same_domain and M.site(url) ~= M.site(base_url) then
    return false
  end
  local ext = u.path:match("%.(%w+)$")
  if ext and SKIP_EXTENSIONS[ext:lower()] then return false end
  return not self.visited[M.normalize(url)]
end

--- The links of a page to follow: absolute, normalized, each once.
function Scraper:extract_links(page, base_url)
  local base = page.base and html.join_url(base_url, page.base) or base_url
  local links, seen = {}, {}
  for _, href in ipairs(page.links) do
    local ok, abs = pcall(html.join_url, base, href)
    if ok then
      abs = M.normalize(abs)
      if not seen[abs] and self:should_follow(abs, base_url) then
        seen[abs] = true
        links[#links + 1] = abs
      end
    end
  end
  return links
end

--- What we keep of a page: {url, depth, status, title, links, words}.
function Scraper:extract_data(page, url, depth, status)
  local words = 0
  for _ in page.text:gmatch("%S+") do words = words + 1 end
  return {url = url, depth = depth, status = status,
          title = page.title or "No title", links = #page.links,
          words = words}
end

-- Scrapes url at depth, then spawns its links in the group.
function Scraper:_visit(tg, results, url, depth, max_depth)
  if not self:allowed(url) then
    self.stats.disallowed = self.stats.disallowed + 1
    return
  end
  local r, err = self:request(url)
  if r and r.status ~= 200 then err = "HTTP " .. r.status end
  if err then
    self.stats.failed = self.stats.failed + 1
    self.errors[#self.errors + 1] = {url = url, error = err}
    if self.on_page then self.on_page({url = url, depth = depth, error = err}) end
    return
  end
  self.stats.fetched = self.stats.fetched + 1
  local ctype = r.headers["content-type"] or ""
  local page = ctype:find("html", 1, true) and html.parse(r.body)
               or {links = {}, text = ""}
  local record = self:extract_data(page, url, depth, r.status)
  results[#results + 1] = record
  if self.on_page then self.on_page(record) end
  if depth < max_depth then
    for _, link in ipairs(self:extract_links(page, url)) do
      self.visited[link] = true
      tg:spawn(self._visit, self, tg, results, link, depth + 1, max_depth)
    end
  end
end

--- Crawls from start_urls (a URL or an array of them) following links up
-- to max_depth (default 2; 0: the start pages alone).  Returns the
-- records of the pages scraped, by depth then URL.
function Scraper:crawl(start_urls, max_depth)
  if type(start_urls) == "string" then start_urls = {start_urls} end
  if type(start_urls) ~= "table" then
    error("bad argument #1 to 'crawl' (string or table expected, got "
          .. type(start_urls) .. ")", 2)
  end
  max_depth = max_depth or 2
  if math.type(max_depth) ~= "integer" or max_depth < 0 then
    error("bad argument #2 to 'crawl' (depth must be an integer >= 0)", 2)
  end
  local results = {}
  do
    local tg <close> = async.task_group()
    for _, url in ipairs(start_urls) do
      url = M.normalize(url)
      if not self.visited[url] then
        self.visited[url] = true
        tg:spawn(self._visit, self, tg, results, url, 0, max_depth)
      end
    end
  end
  table.sort(results, function(a, b)
    if a.depth ~= b.depth then return a.depth < b.depth end
    return a.url < b.url
  end)
  return results
end

--- Writes the records, the statistics and the errors to `path` as JSON.
function M.save_results(path, results, scraper, extra)
  local doc = {stats = scraper.stats, errors = scraper.errors}
  for k, v in pairs(extra or {}) do doc[k] = v end
  -- cjson writes an empty table as {}: arrays are written by hand
  local function array(t)
    if #t == 0 then return "[]" end
    return cjson.encode(t)
  end
  local parts = {}
  for k, v in pairs(doc) do
    local value = (k == "errors" or k == "start") and array(v)
                  or cjson.encode(v)
    parts[#parts + 1] = cjson.encode(k) .. ":" .. value
  end
  table.sort(parts)
  parts[#parts + 1] = "\"pages\":" .. array(results)
  local f <close> = assert(io.open(path, "w"))
  f:write("{", table.concat(parts, ","), "}\n")
end

---------------------------------------------------------------------------
-- Command line

local USAGE = [[
usage: asynchost web_scraper.lua [options] [URL ...]
Scrapes from each URL (default: asynchost's test server, started here,
at /site/), following links up to a depth; prints each page as it goes.
  -d, --depth N          links to follow from the start pages (default 2)
  -c, --concurrency N    requests at once (default 5)
  -r, --rate SECONDS     at least this long between two requests to the
                         same site (default 1)
  -t, --timeout SECONDS  for each request (default 10)
  -o, --output FILE      also save the results there, as JSON
  -a, --all-domains      follow links to other sites too
      --ignore-robots    do not read robots.txt
  -q, --quiet            no line per page, only the summary
  -h, --help             this help
]]

--- Parses the command line: options (a table) or nil and a message.
function M.parse_args(args)
  local o = {urls = {}, depth = 2}
  local names = {d = "depth", c = "concurrency", r = "rate", t = "timeout",
                 o = "output", a = "all-domains", q = "quiet", h = "help"}
  local valued = {depth = true, concurrency = true, rate = true,
                  timeout = true, output = true}
  local i = 1
  while args[i] ~= nil do
    local a = args[i]
    local name, value = a:match("^%-%-([%w-]+)=(.*)$")
    if not name then
      name = a:match("^%-%-([%w-]+)$") or names[a:match("^%-(%a)$") or ""]
      if a:match("^%-%a$") and not name then
        return nil, "unknown option '" .. a .. "'"
      end
    end
    if not name then
      if a:sub(1, 1) == "-" then return nil, "unknown option '" .. a .. "'" end
      o.urls[#o.urls + 1] = a
    elseif valued[name] then
      if value == nil then
        i = i + 1
        value = args[i]
        if value == nil then
          return nil, "option '" .. a .. "' needs a value"
        end
      end
      if name == "output" then
        o.output = value
      else
        local n = tonumber(value)
        local int = n and math.tointeger(n)
        local ok = n and ((name == "depth" and int and n >= 0)
                          or (name == "concurrency" and int and n >= 1)
                          or (name == "rate" and n >= 0)
                          or (name == "timeout" and n > 0))
        if not ok then
          return nil, ("bad value '%s' for --%s"):format(value, name)
        end
        o[name] = int or n
      end
    elseif name == "all-domains" or name == "ignore-robots"
           or name == "quiet" or name == "help" then
      if value ~= nil then
        return nil, "option '--" .. name .. "' takes no value"
      end
      o[name] = true
    else
      return nil, "unknown option '" .. a .. "'"
    end
    i = i + 1
  end
  for _, u in ipairs(o.urls) do
    local p = html.split_url(u)
    if (p.scheme ~= "http" and p.scheme ~= "https") or not p.host
       or p.host == "" then
      return nil, "not an http(s) URL: '" .. u .. "'"
    end
  end
  return o
end

local function progress_line(rec)
  if rec.error then
    return ("  failed  d%d %s: %s"):format(rec.depth, rec.url, rec.error)
  end
  return ("  %3d     d%d %s  %s"):format(rec.status, rec.depth, rec.url,
                                        rec.title)
end

--- The command: returns true, or false after a message on stderr.
function M.main(args)
  local o, err = M.parse_args(args or {})
  if not o then
    io.stderr:write("web_scraper: ", err, "\n", USAGE)
    return false
  end
  if o.help then
    io.stdout:write(USAGE)
    return true
  end
  local srv
  if #o.urls == 0 then
    srv = require("asynchost.testserver").start{}
    o.urls[1] = srv.url .. "/site/"
    print("Started the test server at " .. srv.url)
  end
  local _ <close> = srv
  local n = 0
  local scraper <close> = M.Scraper{
    max_concurrency = o.concurrency, rate_limit = o.rate,
    timeout = o.timeout, same_domain = not o["all-domains"],
    respect_robots = not o["ignore-robots"],
    on_page = function(rec)
      n = n + 1
      if not o.quiet then
        print(("[%3d]"):format(n) .. progress_line(rec))
      end
    end,
  }
  print(("Scraping %s to depth %d (%d at once, %.2g s between requests "
         .. "to a site)"):format(table.concat(o.urls, " "), o.depth,
                                 scraper.max_concurrency,
                                 scraper.rate_limit))
  local t0 = async.loop_time()
  local results = scraper:crawl(o.urls, o.depth)
  local elapsed = async.loop_time() - t0
  local s = scraper.stats
  print(("\nDone in %.2f s: %d pages scraped, %d failed, %d disallowed by "
         .. "robots.txt"):format(elapsed, s.fetched, s.failed, s.disallowed))
  for i = 1, math.min(5, #results) do
    print(("%d. %s - %s"):format(i, results[i].title, results[i].url))
  end
  if #results > 5 then print(("...and %d more"):format(#results - 5)) end
  if o.output then
    M.save_results(o.output, results, scraper,
                   {start = o.urls, depth = o.depth, elapsed = elapsed})
    print("Saved to " .. o.output)
  end
  return true
end

-- Run as a script (not when a spec loads the file).
if arg and arg[0] and arg[0]:find("web_scraper%.lua$") then
  if not M.main(arg) then os.exit(2) end
end
return M

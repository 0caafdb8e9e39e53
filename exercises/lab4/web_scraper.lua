--- Lab 4, project: an asynchronous web scraper (exercise).
--
-- Run it:  asynchost exercises/lab4/web_scraper.lua            (the test site)
--          asynchost exercises/lab4/web_scraper.lua --help     (the options)
--          asynchost exercises/lab4/web_scraper.lua -d 1 -o pages.json URL...
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
--
-- Yours to write, in five steps (the README walks through them): the
-- functions that end in a TODO(project.N).  The URL helpers, the
-- scraper's constructor and the command line are given.  Check your work
-- with:  asynchost lab check lab4/web_scraper
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
  -- Lines "Field: value" (comments after #).  Consecutive User-agent
  -- lines open a group; Allow/Disallow lines add prefixes to the current
  -- group (an empty Disallow allows all).  Return the rules of the group
  -- naming `token` (the agent's name before "/", lowercase), else of
  -- the "*" group, else empty rules.
  local token = (agent or M.USER_AGENT):match("^[^/%s]+"):lower()
  error("TODO(project.4): implement parse_robots — see exercises/lab4/README.md", 2)
end

--- Do `rules` (from parse_robots) allow `path` ("/a/b?q")?  The longest
-- matching prefix decides; Allow wins a tie.
function M.robots_allows(rules, path)
  -- The longest prefix of `path` in rules.allow or rules.disallow
  -- decides; none: allowed.
  error("TODO(project.4): implement robots_allows — see exercises/lab4/README.md", 2)
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
  -- 1. The site's async.Lock (make it on first use, in self.turns):
  --    hold it for the whole wait (`local _ <close> = lock:acquire()`).
  -- 2. Take a slot: local slot = self.semaphore:acquire().
  -- 3. Sleep until self.last[site] + self.rate_limit (if that is later
  --    than now); if the sleep is cancelled, release the slot and
  --    re-raise.
  -- 4. Note self.last[site] = now, return the slot.
  error("TODO(project.2): implement _turn — see exercises/lab4/README.md", 2)
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
  -- Once per site (self.robots[site]): a task that requests
  -- scheme://authority/robots.txt and parses it (no robots.txt: all
  -- allowed).  Every caller awaits it through async.shield, then asks
  -- M.robots_allows about the path (and query) of url.
  error("TODO(project.4): implement allowed — see exercises/lab4/README.md", 2)
end

--- Should a link to url, found on base_url, be followed?  http(s) only,
-- the same site unless same_domain is false, no file of SKIP_EXTENSIONS,
-- not seen yet.
function Scraper:should_follow(url, base_url)
  -- html.split_url(url): scheme http or https, a host, the same site as
  -- base_url when self.same_domain (M.site), no extension of
  -- SKIP_EXTENSIONS, not in self.visited (by M.normalize(url)).
  error("TODO(project.1): implement should_follow — see exercises/lab4/README.md", 2)
end

--- The links of a page to follow: absolute, normalized, each once.
function Scraper:extract_links(page, base_url)
  -- Resolve each href of page.links with html.join_url (against
  -- page.base if the page has one), normalize it, keep it once if
  -- should_follow agrees.
  error("TODO(project.1): implement extract_links — see exercises/lab4/README.md", 2)
end

--- What we keep of a page: {url, depth, status, title, links, words}.
function Scraper:extract_data(page, url, depth, status)
  -- {url, depth, status, title = page.title or "No title",
  --  links = #page.links, words = the words of page.text}
  error("TODO(project.1): implement extract_data — see exercises/lab4/README.md", 2)
end

-- Scrapes url at depth, then spawns its links in the group.
function Scraper:_visit(tg, results, url, depth, max_depth)
  -- 1. Not allowed by robots.txt: count it in stats.disallowed, stop.
  -- 2. self:request(url); an error or a status other than 200: count it
  --    in stats.failed, add {url, error} to self.errors, tell on_page.
  -- 3. Else count it in stats.fetched, parse it (html.parse, if the
  --    content-type is html), add extract_data's record to results,
  --    tell on_page.
  -- 4. Below max_depth: for each link of extract_links, mark it visited
  --    and tg:spawn(self._visit, self, tg, results, link, depth + 1,
  --    max_depth).
  error("TODO(project.3): implement _visit — see exercises/lab4/README.md", 2)
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
  -- In a task group: for each start url (normalized, not yet visited),
  -- mark it visited and spawn self._visit at depth 0.  When the group
  -- is done, sort the records by depth, then url.
  error("TODO(project.3): implement crawl — see exercises/lab4/README.md", 2)
end

--- Writes the records, the statistics and the errors to `path` as JSON.
function M.save_results(path, results, scraper, extra)
  -- A JSON object: stats, errors, the fields of `extra` and "pages" (the
  -- records).  cjson.encode writes an empty table as {}: write an empty
  -- array as "[]" yourself.
  error("TODO(project.5): implement save_results — see exercises/lab4/README.md", 2)
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

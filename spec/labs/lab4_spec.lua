-- Lab 4: the four exercises and the web scraper, in solutions/ (or
-- exercises/ with LAB_DIR=exercises), and the HTML parser they use
-- (asynchost.html).  Delays run at a tenth of the lab's (labhelp.scale);
-- timing bounds leave room for a loaded machine.
local async = require "asynchost"
require "asynchost.busted"
local lab = require "spec.labs.labhelp"
local ts = require "asynchost.testserver"
local html = require "asynchost.html"
local cjson = require "cjson"

local S = lab.scale

local function load(name) return lab.load("lab4", name .. ".lua") end

describe("lab4/download_files", function()
  it("one download takes its size in seconds", function()
    local m, out = load("download_files")
    local dt, r = lab.timed(m.download_file, "a.bin", 2)
    assert.same({name = "a.bin", size = 2, seconds = 2}, r)
    assert.is_true(dt >= 2 * S - 0.005 and dt < 2 * S + 0.15, "took " .. dt)
    assert.is_true(out:has("a.bin"))
    assert.has_error(function() m.download_file(1, 2) end,
      "bad argument #1 to 'download_file' (string expected, got number)")
    assert.has_error(function() m.download_file("x", -1) end,
      "bad argument #2 to 'download_file' (size in MB must be a number >= 0)")
  end)

  it("in turn they add up; together they take the largest", function()
    local m = load("download_files")
    local files = {{"a", 2}, {"b", 1}, {"c", 3}, {"d", 0.5}}
    local r, dt = m.download_sequentially(files)
    assert.equal(4, #r)
    assert.equal("c", r[3].name)
    assert.is_true(dt >= 6.5 * S - 0.01 and dt < 6.5 * S + 0.3,
                   "in turn took " .. dt)
    r, dt = m.download_concurrently(files)
    assert.equal(4, #r)
    assert.equal("d", r[4].name)
    assert.is_true(dt >= 3 * S - 0.005 and dt < 4.5 * S,
                   "together took " .. dt)
  end)

  it("as_completed hands each result over as it ends", function()
    local m = load("download_files")
    local seen = {}
    local dt, order = lab.timed(m.download_as_completed,
      {{"a", 2}, {"b", 1}, {"c", 3}, {"d", 0.5}},
      function(r) seen[#seen + 1] = r.name end)
    assert.same({"d", "b", "a", "c"}, order)
    assert.same(order, seen)
    assert.is_true(dt < 4.5 * S, "took " .. dt)
  end)
end)

describe("lab4/web_crawler", function()
  it("reads a page's title", function()
    local m = load("web_crawler")
    local srv <close> = ts.start{}
    local session <close> = async.http.session{}
    local r = m.fetch_title(session, srv.url .. "/site/docs/tutorial.html", 2)
    assert.same({url = srv.url .. "/site/docs/tutorial.html", status = 200,
                 title = "Tutorial - Documentation"}, r)
    r = m.fetch_title(session, srv.url .. "/json", 2)
    assert.equal(200, r.status)
    assert.is_nil(r.title)
    assert.is_nil(r.error)
  end)

  it("fetches every title at once, giving up on the slow page", function()
    local m = load("web_crawler")
    local srv <close> = ts.start{}
    local dead = "http://127.0.0.1:" .. lab.closedport() .. "/"
    local urls = m.demo_urls(srv.url, dead)
    local dt, r = lab.timed(m.crawl_titles, urls, {timeout = 0.2})
    assert.is_true(dt >= 0.19 and dt < 0.8, "took " .. dt)
    assert.equal(#urls, r.n or #r)
    local by = {}
    for i, url in ipairs(urls) do
      assert.equal(url, r[i].url)
      by[url:gsub("^http://[^/]+", "")] = r[i]
    end
    assert.equal("asynchost test site", by["/site/"].title)
    assert.equal("News", by["/site/news/"].title)
    assert.equal("The asynchost test server", by["/html"].title)
    local slow = by[("/site/shop/?delay=%g"):format(3 * S)]
    assert.equal("timed out after 0.2 s", slow.error)
    assert.is_nil(slow.title)
    assert.equal(404, by["/site/blog/draft.html"].status)
    assert.equal("HTTP 404", by["/site/blog/draft.html"].error)
    assert.is_nil(by["/json"].title)
    assert.is_string(by["/"].error)  -- the dead port
  end)

  it("bounds how many pages it fetches at once", function()
    local m = load("web_crawler")
    local srv <close> = ts.start{}
    local urls = {}
    for i = 1, 4 do
      urls[i] = ("%s/site/?delay=0.1&n=%d"):format(srv.url, i)
    end
    local dt, r = lab.timed(m.crawl_titles, urls, {concurrency = 2,
                                                   timeout = 2})
    assert.equal("asynchost test site", r[4].title)
    assert.is_true(dt >= 0.19 and dt < 0.6, "4 x 0.1 s by 2 took " .. dt)
    assert.has_error(function() m.crawl_titles(nil) end,
      "bad argument #1 to 'crawl_titles' (table expected, got nil)")
  end)
end)

describe("lab4/data_processor", function()
  it("source and stage are async generators", function()
    local m = load("data_processor")
    local g = m.source({"a", "b"}, 1)
    assert.matches("^Generator", tostring(g))
    local dt, ok, v = lab.timed(g.next, g)
    assert.is_true(ok)
    assert.equal("a", v)
    assert.is_true(dt >= S - 0.005, "no delay before the item")
    local out = {}
    for x in m.stage(function(s)
      async.sleep(0.01)
      if s ~= "skip" then return s:upper() end
    end, m.source({"x", "skip", "y"})) do
      out[#out + 1] = x
    end
    assert.same({"X", "Y"}, out)
  end)

  it("the pipeline runs every stage and drops what a stage rejects",
     function()
    local m = load("data_processor")
    local dt, lines = lab.timed(m.pipeline, m.RECORDS, m.STAGES)
    assert.equal(7, #lines)
    assert.equal(("%-10s %3d  %s"):format("ada", 93, "A"), lines[1])
    assert.equal(("%-10s %3d  %s"):format("don", 64, "D"), lines[5])
    for _, l in ipairs(lines) do assert.is_nil(l:find("edsger")) end
    -- 8 parses, 7 grades, 7 formats, one after the other
    local serial = (8 * 0.1 + 7 * 0.2 + 7 * 0.1) * S
    assert.is_true(dt >= serial - 0.01, "took " .. dt)
    assert.same({}, m.pipeline({}, m.STAGES))
  end)

  it("a task per stage overlaps the stages, same results", function()
    -- at least 0.3 lab seconds a second: at 0.1 the steps are 10-20 ms,
    -- which a loaded 2-core machine stretches past the margin
    local scale = math.max(S, 0.3)
    local m = lab.load("lab4", "data_processor.lua", scale)
    local _, expected = lab.timed(m.pipeline, m.RECORDS, m.STAGES)
    local dt, lines = lab.timed(m.pipeline_concurrent, m.RECORDS, m.STAGES)
    assert.same(expected, lines)
    local serial = (8 * 0.1 + 7 * 0.2 + 7 * 0.1) * scale
    assert.is_true(dt < serial * 0.75, ("took %.3f s of %.3f"):format(dt,
                                                                    serial))
  end)

  it("an error in a stage is raised", function()
    local m = load("data_processor")
    local bad = function(x)
      if x == 2 then error("bad item 2", 0) end
      return x
    end
    local ok, err = lab.pcall(m.pipeline, {1, 2, 3}, {bad})
    assert.is_false(ok)
    assert.equal("bad item 2", err)
    ok, err = lab.pcall(m.pipeline_concurrent, {1, 2, 3}, {bad})
    assert.is_false(ok)
    assert.matches("bad item 2", tostring(err))
  end)
end)

describe("lab4/file_processor", function()
  it("processes a file: lines, words, bytes", function()
    local m = load("file_processor")
    local dir, _ <close> = async.fs.tempdir()
    async.fs.write_file(dir .. "/a.txt", "one two\nthree\nfour")
    local dt, r = lab.timed(m.process_file, dir .. "/a.txt")
    assert.same({name = "a.txt", path = dir .. "/a.txt", bytes = 18,
                 lines = 3, words = 4}, r)
    assert.is_true(dt >= 0.5 * S - 0.005, "took " .. dt)
    assert.is_true(m.wanted("report.csv"))
    assert.is_false(m.wanted(".hidden"))
    assert.is_false(m.wanted("big.csv.part"))
    assert.is_false(m.wanted("notes.txt~"))
  end)

  it("processes the files there and those that come, a few at a time",
     function()
    local m = load("file_processor")
    local dir, _ <close> = async.fs.tempdir()
    async.fs.write_file(dir .. "/old1.txt", "a\n")
    async.fs.write_file(dir .. "/old2.txt", "b\n")
    async.fs.write_file(dir .. "/.hidden", "c\n")
    async.fs.mkdir(dir .. "/subdir")
    local running, peak, calls, progress = 0, 0, {}, {}
    local dropper = async.spawn(function()
      async.sleep(0.05)
      m.drop_files(dir, {{"n1.txt", "1"}, {"n2.txt", "2"}, {"n3.txt", "3"},
                         {"n4.txt", "4 4"}})
    end)
    local dt, results = lab.timed(m.watch_and_process, dir, {
      max_concurrent = 2, expected = 6,
      process = function(path)
        calls[#calls + 1] = path:match("[^/]+$")
        running = running + 1
        peak = math.max(peak, running)
        local r = m.process_file(path)
        running = running - 1
        return r
      end,
      on_progress = function(done, total, record)
        progress[#progress + 1] = {done, total, record.name}
      end,
    })
    async.await(dropper)
    assert.equal(6, #results)
    table.sort(calls)
    assert.same({"n1.txt", "n2.txt", "n3.txt", "n4.txt", "old1.txt",
                 "old2.txt"}, calls)
    assert.equal(2, peak)
    assert.equal(6, #progress)
    assert.equal(6, progress[6][1])
    assert.equal(6, progress[6][2])
    -- 6 files of 0.05 s, 2 at a time, after 0.05 s
    assert.is_true(dt >= 3 * 0.5 * S + 0.04 and dt < 2, "took " .. dt)
  end)

  it("stops when told, and reports a file that fails", function()
    local m = load("file_processor")
    local dir, _ <close> = async.fs.tempdir()
    local stop = async.Event()
    local task = async.spawn(m.watch_and_process, dir, {
      stop = stop, on_progress = function() stop:set() end,
      process = function(path) error("cannot read " .. path, 0) end,
    })
    async.sleep(0.05)
    async.fs.write_file(dir .. "/x.txt", "x")
    local results = async.wait_for(task, 2)
    assert.equal(1, #results)
    assert.equal("x.txt", results[1].name)
    assert.equal("cannot read " .. dir .. "/x.txt", results[1].error)
    assert.has_error(function() m.watch_and_process(dir, {max_concurrent = 0})
    end, "bad argument #2 to 'watch_and_process' (max_concurrent must be "
         .. "an integer >= 1)")
  end)
end)

describe("lab4/web_scraper", function()
  it("reads robots.txt rules", function()
    local m = load("web_scraper")
    local rules = m.parse_robots([[
# comment
User-agent: otherbot
Disallow: /

User-agent: *
Disallow: /private/   # staff only
Allow: /private/public.html
Disallow:
]], "lab-scraper/1.0")
    assert.same({"/private/"}, rules.disallow)
    assert.is_true(m.robots_allows(rules, "/"))
    assert.is_true(m.robots_allows(rules, "/site/private"))
    assert.is_false(m.robots_allows(rules, "/private/"))
    assert.is_false(m.robots_allows(rules, "/private/keys.html"))
    assert.is_true(m.robots_allows(rules, "/private/public.html"))
    local mine = m.parse_robots("User-agent: Lab-Scraper\nDisallow: /x\n\n"
                                .. "User-agent: *\nDisallow: /\n",
                                "lab-scraper/1.0")
    assert.is_true(m.robots_allows(mine, "/y"))
    assert.is_false(m.robots_allows(mine, "/x/1"))
    assert.is_true(m.robots_allows(m.parse_robots("", "a"), "/anything"))
  end)

  it("follows http links of its site only, once", function()
    local m = load("web_scraper")
    local sc <close> = m.Scraper{}
    local base = "http://127.0.0.1:8080/site/"
    assert.is_true(sc:should_follow("http://127.0.0.1:8080/site/a.html", base))
    assert.is_false(sc:should_follow("http://127.0.0.1:8081/site/", base))
    assert.is_false(sc:should_follow("http://example.invalid/x", base))
    assert.is_false(sc:should_follow("mailto:a@example.invalid", base))
    assert.is_false(sc:should_follow("javascript:void(0)", base))
    assert.is_false(sc:should_follow("ftp://127.0.0.1:8080/f", base))
    assert.is_false(sc:should_follow("http://127.0.0.1:8080/logo.PNG", base))
    sc.visited["http://127.0.0.1:8080/seen"] = true
    assert.is_false(sc:should_follow("http://127.0.0.1:8080/seen", base))
    local all <close> = m.Scraper{same_domain = false}
    assert.is_true(all:should_follow("http://127.0.0.1:8081/site/", base))
  end)

  it("extracts absolute links without fragments, and a page's data",
     function()
    local m = load("web_scraper")
    local sc <close> = m.Scraper{}
    local page = html.parse([[<title> A  page </title>
      <a href="b.html#top">b</a> <a href="#top">self</a>
      <a href="B.html">case</a> <a href="b.html">again</a>
      <a href="/c/">c</a> <a href="http://other.invalid/">x</a>
      <p>five words in this paragraph</p>]])
    local links = sc:extract_links(page, "http://h:1/dir/page.html")
    assert.same({"http://h:1/dir/b.html", "http://h:1/dir/page.html",
                 "http://h:1/dir/B.html", "http://h:1/c/"}, links)
    local d = sc:extract_data(page, "http://h:1/dir/page.html", 1, 200)
    assert.equal("A page", d.title)
    assert.equal(1, d.depth)
    assert.equal(6, d.links)
    assert.is_true(d.words >= 5)
    assert.equal("No title", sc:extract_data(html.parse("<p>x</p>"), "u", 0,
                                             200).title)
  end)

  it("crawls to a depth, honouring robots.txt", function()
    local m = load("web_scraper")
    local srv <close> = ts.start{}
    local seen = {}
    local sc <close> = m.Scraper{rate_limit = 0, on_page = function(r)
      seen[#seen + 1] = r.url
    end}
    local pages = sc:crawl(srv.url .. "/site/", 1)
    assert.equal(5, #pages)  -- the index and its 4 sections
    assert.equal(srv.url .. "/site/", pages[1].url)
    assert.equal("asynchost test site", pages[1].title)
    assert.equal(0, pages[1].depth)
    for i = 2, 5 do assert.equal(1, pages[i].depth) end
    assert.equal(5, #seen)
    assert.equal(1, sc.stats.disallowed)
    assert.equal(1, srv.stats.paths["/robots.txt"])
    for path in pairs(srv.stats.paths) do
      assert.is_nil(path:find("^/site/private"), path .. " was fetched")
    end
    assert.equal(6, srv.stats.requests)
  end)

  it("crawls the whole site once, counting the broken link", function()
    local m = load("web_scraper")
    local srv <close> = ts.start{}
    local sc <close> = m.Scraper{rate_limit = 0, max_concurrency = 8}
    local pages = sc:crawl(srv.url .. "/site/", 3)
    assert.equal(30, #pages)
    assert.equal(30, sc.stats.fetched)
    assert.equal(1, sc.stats.failed)  -- /site/blog/draft.html
    assert.equal(srv.url .. "/site/blog/draft.html", sc.errors[1].url)
    assert.is_true(sc.stats.disallowed >= 1)
    for path, n in pairs(srv.stats.paths) do
      assert.equal(1, n, path .. " fetched " .. n .. " times")
      assert.is_nil(path:find("^/site/private"), path .. " was fetched")
    end
    local free <close> = m.Scraper{rate_limit = 0, respect_robots = false}
    assert.equal(6, #free:crawl(srv.url .. "/site/", 1))  -- + /site/private/
  end)

  it("spaces requests per site, not overall", function()
    local m = load("web_scraper")
    local times = {a = {}, b = {}}
    local function logger(list)
      return function() list[#list + 1] = async.loop_time() end
    end
    local a <close> = ts.start{log = logger(times.a)}
    local b <close> = ts.start{log = logger(times.b)}
    local sc <close> = m.Scraper{rate_limit = 0.1, max_concurrency = 5}
    local dt, pages = lab.timed(sc.crawl, sc, {a.url .. "/site/",
                                               b.url .. "/site/"}, 1)
    assert.equal(10, #pages)
    for _, list in pairs(times) do
      assert.equal(6, #list)  -- robots.txt and 5 pages
      for i = 2, #list do
        assert.is_true(list[i] - list[i - 1] >= 0.08,
          ("two requests %.3f s apart"):format(list[i] - list[i - 1]))
      end
    end
    -- the two sites are crawled side by side: 6 turns, not 12
    assert.is_true(dt >= 0.5 and dt < 1.05, "took " .. dt)
  end)

  it("counts a timeout as a failure and goes on", function()
    local m = load("web_scraper")
    local srv <close> = ts.start{}
    local sc <close> = m.Scraper{rate_limit = 0, timeout = 0.1}
    local dt, pages = lab.timed(sc.crawl, sc, srv.url .. "/site/?delay=1", 0)
    assert.same({}, pages)
    assert.equal(1, sc.stats.failed)
    assert.is_true(dt < 0.8)
    assert.has_error(function() sc:crawl(srv.url, -1) end,
      "bad argument #2 to 'crawl' (depth must be an integer >= 0)")
  end)

  it("reads its command line", function()
    local m = load("web_scraper")
    local o = m.parse_args({"-d", "3", "--concurrency=4", "-r", "0.5",
                            "--output", "out.json", "--all-domains",
                            "--ignore-robots", "-q", "http://h:1/",
                            "https://x/"})
    assert.same({urls = {"http://h:1/", "https://x/"}, depth = 3,
                 concurrency = 4, rate = 0.5, output = "out.json",
                 ["all-domains"] = true, ["ignore-robots"] = true,
                 quiet = true}, o)
    assert.same({urls = {}, depth = 2}, m.parse_args({}))
    assert.same({urls = {}, depth = 2, help = true}, m.parse_args({"-h"}))
    for args, msg in pairs{
      [{"--depth", "-1"}] = "bad value '-1' for --depth",
      [{"-c", "0"}] = "bad value '0' for --concurrency",
      [{"--rate"}] = "option '--rate' needs a value",
      [{"--nope"}] = "unknown option '--nope'",
      [{"-z"}] = "unknown option '-z'",
      [{"ftp://h/"}] = "not an http(s) URL: 'ftp://h/'",
    } do
      local ok, err = m.parse_args(args)
      assert.is_nil(ok)
      assert.equal(msg, err)
    end
  end)

  it("runs from the command line and saves its results", function()
    local srv <close> = ts.start{}
    local dir = lab.tempdir()
    local file = dir .. "/pages.json"
    local script = lab.q(lab.path("lab4", "web_scraper.lua"))
    local out, rc = lab.sh(("%s %s -d 1 -r 0 -o %s %s/site/"):format(
      lab.q(lab.bin), script, lab.q(file), srv.url), 20)
    local ok, doc = pcall(function() return cjson.decode(lab.readfile(file)) end)
    lab.rmtree(dir)
    assert.equal(0, rc, out)
    assert.matches("[  1]", out, 1, true)
    assert.matches("Saved to " .. file, out, 1, true)
    assert.is_true(ok, "no results file")
    assert.equal(5, #doc.pages)
    assert.equal(1, doc.stats.disallowed)
    assert.equal(srv.url .. "/site/", doc.start[1])
    assert.equal(1, doc.depth)
    out, rc = lab.sh(("%s %s --depth x"):format(lab.q(lab.bin), script))
    assert.equal(2, rc)
    assert.matches("bad value 'x' for --depth", out, 1, true)
    assert.matches("usage:", out, 1, true)
  end, 30)

  it("crawls the built-in test server when given no URL", function()
    local out, rc = lab.sh(("LAB_TIME_SCALE=0.01 %s %s -d 1 -q"):format(
      lab.q(lab.bin), lab.q(lab.path("lab4", "web_scraper.lua"))), 20)
    assert.equal(0, rc, out)
    assert.matches("Started the test server", out, 1, true)
    assert.matches("5 pages scraped, 0 failed, 1 disallowed", out, 1, true)
    assert.is_nil(out:find("[  1]", 1, true))  -- quiet
  end, 30)
end)

describe("asynchost.html", function()
  it("finds titles and links in tricky markup", function()
    local page = html.parse([[<!DOCTYPE html><HTML><head>
<TITLE>  Tom &amp; Jerry&#39;s &#x41;
 page </TITLE><base href="/x/">
<script>var s = "<a href='/nope'>"; if (a<b) {}</script >
<style>a > b { }</style>
<!-- <a href="/commented">no</a> -- > still a comment -->
</head><body>
<a href=unquoted.html>one</a> <A HREF='single.html' class=x>two</A>
<a class="x" href = "spaced.html?a=1&amp;b=2" >three</a>
<a name=anchor>no href</a> <area href="/area">
a < b and 3 <= 4
<p>caf&eacute; &unknown; &copy 2024 &#128512;</p>
<a href="#top"/><a href=/abs/path/>abs</a>
<textarea><a href="/in-textarea"></textarea>
</body>]])
    assert.equal("Tom & Jerry's A page", page.title)
    assert.same({"unquoted.html", "single.html", "spaced.html?a=1&b=2",
                 "/area", "#top", "/abs/path/"}, page.links)
    assert.equal("/x/", page.base)
    assert.matches("a < b and 3 <= 4", page.text, 1, true)
    assert.matches("café &unknown; © 2024 😀", page.text, 1, true)
    assert.is_nil(page.text:find("var s", 1, true))
    assert.is_nil(html.title("<p>no title</p>"))
    assert.equal("", html.title("<title></title>"))
    assert.equal("cut", html.title("<title>cut"))
    assert.equal("x", html.title("<title>x</title><title>y</title>"))
    assert.same({""}, html.links("<a>no link</a><a href>"))
  end)

  it("tokenizes tags, attributes, comments and text", function()
    local toks = {}
    for t in html.tokens('<img SRC="a.png" alt=\'x > y\' data-x disabled/>'
                         .. '<!--c--><p>hi</p></x >') do
      toks[#toks + 1] = t
    end
    assert.equal("start", toks[1].type)
    assert.equal("img", toks[1].name)
    assert.same({src = "a.png", alt = "x > y", ["data-x"] = "",
                 disabled = ""}, toks[1].attrs)
    assert.is_true(toks[1].selfclosing)
    assert.same({type = "comment", text = "c"}, toks[2])
    assert.equal("p", toks[3].name)
    assert.same({type = "text", text = "hi"}, toks[4])
    assert.same({type = "end", name = "p"}, toks[5])
    assert.same({type = "end", name = "x"}, toks[6])
    assert.is_nil(toks[7])
    assert.has_error(function() html.parse(nil) end,
      "bad argument #1 to 'parse' (string expected, got no value)")
  end)

  it("resolves links as browsers do (RFC 3986)", function()
    local base = "http://a/b/c/d;p?q"
    local cases = {
      ["g"] = "http://a/b/c/g", ["./g"] = "http://a/b/c/g",
      ["g/"] = "http://a/b/c/g/", ["/g"] = "http://a/g",
      ["?y"] = "http://a/b/c/d;p?y", ["g?y"] = "http://a/b/c/g?y",
      ["#s"] = "http://a/b/c/d;p?q#s", [""] = "http://a/b/c/d;p?q",
      ["."] = "http://a/b/c/", [".."] = "http://a/b/",
      ["../g"] = "http://a/b/g", ["../../../g"] = "http://a/g",
      ["/./g"] = "http://a/g", ["g/../h"] = "http://a/b/c/h",
      ["g:h"] = "g:h", ["HTTP://X.org/y"] = "http://X.org/y",
    }
    for ref, want in pairs(cases) do
      assert.equal(want, html.join_url(base, ref), "ref '" .. ref .. "'")
    end
    assert.equal("http://h:8/site/docs/api/sleep.html",
                 html.join_url("http://h:8/site/docs/api.html",
                               "api/sleep.html"))
    local u = html.split_url("HTTP://User@Example.COM:8080/p?q=1#f")
    assert.equal("http", u.scheme)
    assert.equal("example.com", u.host)
    assert.equal(8080, u.port)
    assert.equal("/p", u.path)
    assert.equal("q=1", u.query)
    assert.equal("f", u.fragment)
  end)
end)

-- asynchost --trace FILE: a Chrome trace-event JSON file (Perfetto,
-- chrome://tracing) or a self-contained HTML timeline of every task.  The
-- executable (ASYNCHOST_BIN) runs in subprocesses; the HTML is rendered by
-- headless Chromium when it is installed (the screenshot is kept in
-- /tmp/asynchost-test-output/).

local cjson = require "cjson"
local helpers = require "spec.helpers"
local q, readfile = helpers.q, helpers.readfile
local run, script, tempname = helpers.run, helpers.script, helpers.tempname

local OUTDIR = "/tmp/asynchost-test-output"

after_each(helpers.cleanup)

-- The events of the trace, indexed: tasks by name, their tids, waits and
-- flows by tid.
local function index(doc)
  local ix = {task = {}, tid = {}, waits = {}, flows = {s = {}, f = {}},
              names = {}}
  for _, e in ipairs(doc.traceEvents) do
    if e.ph == "X" and e.cat == "task" then
      ix.task[e.name] = e
      ix.tid[e.name] = e.tid
    elseif e.ph == "X" and e.cat == "wait" then
      local l = ix.waits[e.tid] or {}
      ix.waits[e.tid] = l
      l[#l + 1] = e
    elseif e.ph == "s" or e.ph == "f" then
      ix.flows[e.ph][e.id] = e
    elseif e.ph == "M" and e.name == "thread_name" then
      ix.names[e.tid] = e.args.name
    end
  end
  return ix
end

local GATHER3 = [[
local async = require "asynchost"
local function nap(i) async.sleep(0.3); return i end
local tasks = {}
for i = 1, 3 do
  tasks[i] = async.spawn(nap, i)
  tasks[i]:set_name("sleeper-" .. i)
end
local r = async.gather(tasks)
print(r[1] + r[2] + r[3])
]]

describe("--trace out.json", function()
  it("writes the trace-event format: three overlapping sleeps, named, "
     .. "with their parent", function()
    local out = tempname(".json")
    local r = run("--trace " .. q(out) .. " " .. q(script(GATHER3)))
    assert.equal(0, r.code, r.err)
    assert.equal("6\n", r.out)
    assert.matches("trace written to", r.err, 1, true)
    local doc = cjson.decode(readfile(out))
    helpers.checktrace(doc)
    local ix = index(doc)
    local main = ix.task.main
    assert.is_table(main, "the main task has a span")
    local latest_start, earliest_end = -math.huge, math.huge
    for i = 1, 3 do
      local name = "sleeper-" .. i
      local span = ix.task[name]
      assert.is_table(span, name)
      assert.equal("done", span.args.outcome)
      assert.equal(main.tid, span.args.parent)
      assert.equal(name, ix.names[span.tid])
      -- µs: about 0.3 s each
      assert.is_true(span.dur >= 0.29e6 and span.dur < 0.3e6 * 1.6 + 0.2e6,
                     name .. " lasted " .. span.dur .. " µs")
      latest_start = math.max(latest_start, span.ts)
      earliest_end = math.min(earliest_end, span.ts + span.dur)
      -- its wait, named after what it waited on
      local waits = ix.waits[span.tid]
      assert.is_table(waits, name .. " has waits")
      assert.equal(1, #waits)
      assert.matches("^sleep 0%.3", waits[1].name)
      assert.equal("sleep", waits[1].args.wait)
      assert.is_true(waits[1].dur >= 0.29e6)
      assert.is_true(waits[1].ts >= span.ts and
                     waits[1].ts + waits[1].dur <= span.ts + span.dur)
      -- parent -> child flow
      local s, f = ix.flows.s[span.tid], ix.flows.f[span.tid]
      assert.is_table(s, name .. " flow start")
      assert.is_table(f, name .. " flow end")
      assert.equal(main.tid, s.tid)
      assert.equal(span.tid, f.tid)
      assert.is_true(f.ts >= s.ts)
    end
    -- all three at once: each starts before any ends
    assert.is_true(latest_start < earliest_end)
    assert.is_true(earliest_end - latest_start > 0.25e6)
    -- the main task waited on the gather for as long
    local mw = ix.waits[main.tid]
    assert.is_table(mw)
    assert.equal("a gather", mw[#mw].name)
  end)

  it("labels waits on queues, locks, events and HTTP requests (with the "
     .. "URL)", function()
    local out = tempname(".json")
    local r = run("--trace=" .. q(out) .. " " .. q(script([[
local async = require "asynchost"
local ts = require "asynchost.testserver"
local srv <close> = ts.start{}
local q, lock, ev = async.Queue(), async.Lock(), async.Event()
local getter = async.spawn(function() return q:get() end)
getter:set_name("getter")
local locker = async.spawn(function()
  local g <close> = lock:acquire()
end)
locker:set_name("locker")
local evw = async.spawn(function() ev:wait() end)
evw:set_name("event-waiter")
local fetch = async.spawn(function()
  return async.http.get(srv.url .. "/delay/0.1").status
end)
fetch:set_name("fetcher")
do
  local g <close> = lock:acquire()
  async.sleep(0.05)
end
q:put(1)
ev:set()
assert(fetch:await() == 200)
getter:await(); locker:await(); evw:await()
]])))
    assert.equal(0, r.code, r.err)
    local doc = cjson.decode(readfile(out))
    helpers.checktrace(doc)
    local ix = index(doc)
    local function waitnames(name)
      local l = {}
      for _, w in ipairs(ix.waits[ix.tid[name]] or {}) do l[#l + 1] = w.name end
      return table.concat(l, "|")
    end
    assert.matches("an empty queue", waitnames("getter"), 1, true)
    assert.matches("a lock", waitnames("locker"), 1, true)
    assert.matches("an event", waitnames("event-waiter"), 1, true)
    assert.matches("an HTTP request GET http://127%.0%.0%.1:%d+/delay/0%.1",
                   waitnames("fetcher"))
    assert.matches("a task 'fetcher'", waitnames("main"), 1, true)
  end)

  it("is written when the script fails, and after os.exit", function()
    local out = tempname(".json")
    local r = run("--trace " .. q(out) .. " " .. q(script([[
local async = require "asynchost"
async.spawn(function() async.sleep(10) end):set_name("left")
async.sleep(0.05)
error("boom")
]])))
    assert.equal(1, r.code)
    assert.matches("boom", r.err, 1, true)
    local ix = index(cjson.decode(readfile(out)))
    assert.equal("failed", ix.task.main.args.outcome)
    assert.equal("cancelled", ix.task.left.args.outcome)

    out = tempname(".json")
    r = run("--trace " .. q(out) .. " " .. q(script([[
local async = require "asynchost"
async.spawn(function() async.sleep(10) end):set_name("pending")
async.sleep(0.05)
os.exit(3)
]])))
    assert.equal(3, r.code)
    local doc = cjson.decode(readfile(out))
    helpers.checktrace(doc)
    ix = index(doc)
    assert.equal("pending", ix.task.pending.args.outcome)
    assert.equal("pending", ix.task.main.args.outcome)
  end)

  it("fails clearly when the file cannot be written; needs its argument",
     function()
    local r = run("--trace /nonexistent-dir/x.json -e 'print(1)'")
    assert.equal(1, r.code)
    assert.equal("", r.out)
    assert.matches("cannot open the trace file '/nonexistent-dir/x.json'",
                   r.err, 1, true)
    r = run("--trace")
    assert.equal(1, r.code)
    assert.matches("'--trace' needs argument", r.err, 1, true)
  end)

  it("leaves the script's arguments alone", function()
    local out = tempname(".json")
    local r = run("--trace " .. q(out) .. " " ..
                  q(script("print(#arg, arg[1], arg[2])")) .. " a --trace")
    assert.equal(0, r.code, r.err)
    assert.equal("2\ta\t--trace\n", r.out)
  end)
end)

describe("--trace out.html", function()
  it("is a self-contained page with the trace; Chromium renders a row per "
     .. "task", function()
    local out = tempname(".html")
    local r = run("--trace " .. q(out) .. " " .. q(script(GATHER3)))
    assert.equal(0, r.code, r.err)
    local html = readfile(out)
    assert.matches("^<!DOCTYPE html>", html)
    assert.not_matches("https?://", html)
    assert.not_matches("<link", html)
    assert.not_matches("<script[^>]* src=", html)
    local json = html:match('<script id="trace%-data" type="application/json">'
                            .. "(.-)</script>")
    assert.is_string(json)
    helpers.checktrace(cjson.decode(json))
    if not helpers.onpath("chromium") then
      pending("chromium is not installed: the page was not rendered")
      return
    end
    local home = tempname()
    assert(os.execute("mkdir -p " .. q(home) .. " " .. q(OUTDIR)))
    local flags = ("--headless --no-sandbox --disable-gpu --user-data-dir=%s")
                  :format(q(home))
    -- the page's script ran: the chart holds a row per task (a busy
    -- machine can make Chromium give up: up to three tries)
    local dom, domfile, errfile = "", tempname(), tempname()
    for _ = 1, 3 do
      os.execute(("HOME=%s timeout 120 chromium %s --dump-dom %s > %s 2> %s")
                 :format(q(home), flags, q("file://" .. out), q(domfile),
                         q(errfile)))
      dom = readfile(domfile)
      if dom:find("<svg", 1, true) then break end
    end
    assert.matches("<svg", dom, 1, true, "chromium said: " .. readfile(errfile))
    for i = 1, 3 do
      assert.matches(">sleeper%-" .. i .. "<", dom)
    end
    assert.matches(">main<", dom)
    -- and the screenshot
    local png = OUTDIR .. "/trace.png"
    local data = ""
    for _ = 1, 3 do
      os.remove(png)
      os.execute(("HOME=%s timeout 120 chromium %s --screenshot=%s "
                  .. "--window-size=1200,600 %s > /dev/null 2>&1")
                 :format(q(home), flags, q(png), q("file://" .. out)))
      local f = io.open(png, "rb")
      if f then data = f:read("a"); f:close() end
      if #data > 10000 then break end
    end
    assert.equal("\137PNG", data:sub(1, 4))
    assert.is_true(#data > 10000, "a screenshot of " .. #data .. " bytes")
    print("\ntrace screenshot: " .. png)
  end)
end)

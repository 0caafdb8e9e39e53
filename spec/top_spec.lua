-- asynchost --top: a live dashboard of the tasks on the terminal (stderr),
-- driven here through a pty made by script(1) (util-linux): the dashboard
-- appears, refreshes, and the terminal is given back at the end, after an
-- error, on Ctrl-C and after os.exit.

local helpers = require "spec.helpers"
local q, readfile, count = helpers.q, helpers.readfile, helpers.count
local BIN, script, tempname = helpers.BIN, helpers.script, helpers.tempname

local ENTER, LEAVE = "\27[?1049h", "\27[?1049l"  -- the alternate screen

after_each(helpers.cleanup)

local function haspty() return helpers.onpath("script") end

-- Runs 'cmd' (shell words) in a pty; returns what the terminal got and the
-- exit status.  'during' (shell) runs beside it, with $pidfile holding the
-- pid of the command.
local function inpty(cmd, during)
  local out, rc, pidfile = tempname(), tempname(), tempname()
  local inner = ("stty rows 40 cols 110 2> /dev/null; echo $$ > %s; "
                 .. "exec env -u ASYNCHOST_DEBUG %s")
                :format(q(pidfile), cmd)
  os.execute(("pidfile=%s; TERM=xterm timeout 60 "
              .. "script -qec %s /dev/null > %s < /dev/null & spid=$!; %s; "
              .. "wait $spid; echo $? > %s")
             :format(q(pidfile), q(inner), q(out), during or ":", q(rc)))
  return readfile(out), tonumber(readfile(rc))
end

-- waits until the command wrote its pid (it runs), then 'extra' shell
local function oncestarted(extra)
  return "for i in $(seq 100); do [ -s \"$pidfile\" ] && break; sleep 0.05; "
         .. "done; " .. extra
end

describe("--top", function()
  it("draws the dashboard while the script runs and gives the terminal "
     .. "back", function()
    if not haspty() then pending("script(1) is not installed") return end
    local path = script([[
local async = require "asynchost"
local q = async.Queue(10)
local producer = async.spawn(function()
  for i = 1, 40 do q:put(i); async.sleep(0.03) end
end)
producer:set_name("producer")
for i = 1, 3 do
  async.spawn(function()
    while true do q:get(); async.sleep(0.05) end
  end):set_name("consumer-" .. i)
end
producer:await()
print("script output")
]])
    local term, code = inpty(q(BIN) .. " --top " .. q(path))
    assert.equal(0, code, term)
    local enter, leave = term:find(ENTER, 1, true), term:find(LEAVE, 1, true)
    assert.is_number(enter, "the alternate screen")
    assert.is_number(leave, "the terminal restored")
    assert.is_true(enter < leave)
    assert.equal(1, count(term, "\27%[%?1049l"))
    local during = term:sub(enter, leave)
    -- refreshed (about 2 per second, the run lasts over a second), in place
    assert.is_true(count(during, "asynchost %-%-top") >= 3)
    assert.matches("\27[1;1H", during, 1, true)  -- cursor home, no scrolling
    assert.matches("tasks: %d+ live %(", during)
    assert.matches("consumer%-1 +[%d.]+s +waiting on", during)
    assert.matches("producer", during, 1, true)
    assert.matches("an empty queue", during, 1, true)
    assert.matches("Queue [^\n]*:2 +%d+ +10", during)
    assert.matches("loop lag [%d.]+ ms", during)
    assert.matches("http: +0 in flight", during)
    -- the script's own output went through, and the last frame stays after
    assert.matches("script output", term, 1, true)
    local after = term:sub(leave)
    assert.matches("asynchost --top (at exit)", after, 1, true)
    assert.matches("tasks: 3 live (0 running, ", after, 1, true)
    assert.matches("5 spawned, 2 done, 0 failed, 0 cancelled", after, 1, true)
  end)

  it("gives the terminal back before an error is reported", function()
    if not haspty() then pending("script(1) is not installed") return end
    local path = script([[
local async = require "asynchost"
async.sleep(0.6)
error("boom")
]])
    local term, code = inpty(q(BIN) .. " --top " .. q(path))
    assert.equal(1, code)
    local leave = term:find(LEAVE, 1, true)
    local boom = term:find("boom", 1, true)
    assert.is_number(leave)
    assert.is_number(boom)
    assert.is_true(leave < boom)
  end)

  it("gives the terminal back on Ctrl-C and after os.exit", function()
    if not haspty() then pending("script(1) is not installed") return end
    local path = script([[
local async = require "asynchost"
async.sleep(20)
]])
    local term, code = inpty(q(BIN) .. " --top " .. q(path),
                             oncestarted("sleep 0.8; kill -INT $(cat \"$pidfile\")"))
    assert.equal(1, code)
    assert.is_number(term:find(ENTER, 1, true))
    local leave = term:find(LEAVE, 1, true)
    assert.is_number(leave)
    assert.is_true(leave < term:find("interrupted!", 1, true))

    path = script([[
local async = require "asynchost"
async.sleep(0.6)
os.exit(4)
]])
    term, code = inpty(q(BIN) .. " --top " .. q(path))
    assert.equal(4, code)
    assert.is_number(term:find(LEAVE, 1, true))
  end)

  it("without a terminal, says so and runs the script", function()
    local out, err = tempname(), tempname()
    local ok, _, code = os.execute(("%s --top %s > %s 2> %s < /dev/null")
      :format(q(BIN), q(script("print('ran')")), q(out), q(err)))
    assert.is_true(ok, tostring(code))
    assert.equal("ran\n", readfile(out))
    assert.matches("--top needs a terminal on stderr", readfile(err), 1, true)
  end)
end)

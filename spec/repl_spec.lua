-- The interactive REPL, driven as a user drives it: on a pseudo-terminal,
-- through tests/ptyrun (built beside the host; ASYNCHOST_PTYRUN names it),
-- which types what a script says and prints what the terminal shows.
--
-- Under stock lua5.4 the specs drive the asynchost binary (see BIN below);
-- under the ASan build, the REPL runs under ASan and every transcript is
-- checked for its reports.

local helpers = require "spec.helpers"
local q, readfile, plain = helpers.q, helpers.readfile, helpers.plain
local tempfile, tempdir = helpers.tempfile, helpers.tempdir

-- The binary under test, and tests/ptyrun: see spec/helpers.lua.
local BIN, PTYRUN = helpers.BIN, helpers.PTYRUN

-- {======================================================
-- helpers
-- =======================================================

after_each(helpers.cleanup)

-- The steps of a ptyrun script; their text is written with escapes.
local function esc(s)
  return (s:gsub("[%c\\]", function(c) return ("\\x%02x"):format(c:byte()) end))
end
local function send(s) return "send " .. esc(s) end
local function expect(s) return "expect " .. esc(s) end
local function sleep(secs) return "sleep " .. secs end
local PROMPT = expect("\n> ")     -- a fresh prompt, at the start of a line
local PROMPT2 = expect("\n>> ")
local CTRLC, CTRLD, WAIT = "ctrl-c", "ctrl-d", "wait"
local UP = send("\27[A")

local function now()
  local p = assert(io.popen("date +%s%N"))
  local ns = tonumber(p:read("a"))
  p:close()
  return ns / 1e9
end

-- Runs the REPL ('args': more shell words) on a pseudo-terminal through
-- 'steps'.  Returns {screen = what the terminal shows, code = the exit
-- status (nil if it had to be killed), ok = every expect matched, secs}.
-- opts.home: $HOME (default: a fresh empty directory).
local function repl(steps, opts)
  opts = opts or {}
  local script = tempfile(table.concat(steps, "\n") .. "\n")
  local cmd = table.concat({
    q(PTYRUN), "-t 120 -e 30", q(script), "--",
    "env -u LUA_INIT -u LUA_INIT_5_4", "HOME=" .. q(opts.home or tempdir()),
    "TERM=xterm", q(BIN), opts.args or ""}, " ")
  local t0 = now()
  local p = assert(io.popen(cmd .. " 2>&1", "r"))
  local out = p:read("a")
  local _, _, status = p:close()
  local r = {screen = out, ok = status == 0, secs = now() - t0,
             code = tonumber(out:match("%[exit (%d+)%]\n$"))}
  -- nothing from the sanitizers, whatever the test (the ASan build)
  assert.not_matches("Sanitizer", out, 1, true)
  assert.not_matches("runtime error:", out, 1, true)
  return r
end

-- Asserts that the run went as scripted and ended with exit status 0.
local function clean(r)
  assert(r.ok, "the REPL did not do what the script expected:\n" .. r.screen)
  assert.equal(0, r.code, r.screen)
end

-- Does the screen show 'line' as one whole line?
local function hasline(screen, line)
  return ("\n" .. screen):find("\n" .. plain(line) .. "\n") ~= nil
end

-- }======================================================


describe("the REPL", function()
  if not PTYRUN then
    pending("needs tests/ptyrun: build it (cmake --build build) or set " ..
            "ASYNCHOST_PTYRUN to its path")
    return
  end

  it("awaits at the prompt: the input runs as a task", function()
    local r = repl{
      PROMPT,
      send("t0 = async.loop_time() async.sleep(0.2)\n"), PROMPT,
      send("async.loop_time() - t0 >= 0.2, await(async.spawn(function() " ..
           "async.sleep(0.05) return 'awaited' end))\n"),
      expect("true\tawaited"), PROMPT,
      CTRLD, WAIT,
    }
    clean(r)
    assert.matches("^asynchost [%d.]+ %(libuv", r.screen)
  end)

  it("prints values as lua does, tables readably, tasks by name", function()
    local r = repl{
      PROMPT, send("1 + 1\n"), expect("\n2"),
      PROMPT, send("=3 * 2\n"), expect("\n6"),
      PROMPT, send("return 1, 'two', nil\n"), expect("\n1\ttwo\tnil"),
      PROMPT, send("{1, 2, x = 'y', [10] = {true}}\n"),
      expect('\n{1, 2, x = "y", [10] = {true}}'),
      PROMPT, send("t = {1} t.self = t\n"),
      PROMPT, send("t\n"), expect("\n{1, self = <cycle>}"),
      PROMPT, send("{a = {b = {c = {d = 1}}}}\n"),
      expect("\n{a = {b = {c = {...}}}}"),
      PROMPT, send("async.current_task()\n"), expect("\nTask 'input "),
      PROMPT, send("x = 1\n"),
      PROMPT, send("print('done')\n"), expect("\ndone"),
      PROMPT, CTRLD, WAIT,
    }
    clean(r)
    -- statements print nothing
    assert.is_true(hasline(r.screen, "> x = 1"))
    assert.matches("> x = 1\n> print", r.screen, 1, true)
  end)

  it("keeps background tasks running and printing while the user types, " ..
     "redrawing the line being edited", function()
    local r = repl{
      PROMPT,
      send("async.spawn(function() for i = 1, 2 do async.sleep(0.3) " ..
           "print('tick-' .. i) end io.write('no newline') end)\n"),
      PROMPT,
      send("local x = "),   -- typed, not yet entered, while tasks print
      expect("tick-1"), expect("tick-2"), expect("no newline"),
      expect("local x = "),  -- redrawn after the output
      send("5 print(x * 2)\n"), expect("\n10"),
      PROMPT, CTRLD, WAIT,
    }
    clean(r)
    assert.is_true(hasline(r.screen, "tick-1"), r.screen)
    assert.is_true(hasline(r.screen, "tick-2"), r.screen)
    assert.is_true(hasline(r.screen, "no newline"), r.screen)
    assert.is_true(hasline(r.screen, "> local x = 5 print(x * 2)"), r.screen)
    assert.not_matches("local x = tick", r.screen, 1, true)
  end)

  it("cancels the running input on Ctrl-C and goes on", function()
    local r = repl{
      PROMPT, send("bg = async.spawn(function() async.sleep(100) end)\n"),
      PROMPT, send("async.sleep(30)\n"), expect("async.sleep(30)\n"),
      sleep(0.3), CTRLC,
      expect("interrupted!"), expect("stdin:1:"), PROMPT,
      send("bg:done(), 1 + 1\n"), expect("\nfalse\t2"),
      PROMPT, CTRLD, WAIT,
    }
    clean(r)
    assert.is_true(r.secs < 28, "took " .. r.secs)
  end)

  it("stops code that never awaits on a second Ctrl-C", function()
    local r = repl{
      PROMPT, send("while true do end\n"), expect("end\n"),
      sleep(0.3), CTRLC, sleep(0.3), CTRLC,
      expect("interrupted!"), PROMPT,
      send("1 + 1\n"), expect("\n2"),
      PROMPT, CTRLD, WAIT,
    }
    clean(r)
  end)

  it("clears the line on Ctrl-C at the prompt; twice when empty exits",
     function()
    local r = repl{
      PROMPT, send("abc"), expect("abc"), CTRLC,
      PROMPT, send("1 + 1\n"), expect("\n2"),  -- 'abc' is gone
      PROMPT, send("for i = 1, 2 do"), send("\n"), PROMPT2, CTRLC,
      PROMPT, send("3\n"), expect("\n3"),  -- so is the unfinished 'for'
      PROMPT, CTRLC, expect("to exit"), PROMPT, CTRLC, WAIT,
    }
    clean(r)
  end)

  it("continues an unfinished statement on '>>' lines", function()
    local r = repl{
      PROMPT, send("for i = 1, 3 do\n"), PROMPT2,
      send("local s = 'n' ..\n"), PROMPT2,
      send("i print(s) end\n"), expect("n1\nn2\nn3"),
      PROMPT, send("function f()\n"), PROMPT2,
      send("return 'f!' end\n"), PROMPT, send("f()\n"), expect("\nf!"),
      PROMPT, CTRLD, WAIT,
    }
    clean(r)
    assert.matches("> for i = 1, 3 do\n>> local s = 'n' ..\n>> i print(s) end",
                   r.screen, 1, true)
  end)

  it("completes globals, fields and methods on Tab", function()
    local r = repl{
      PROMPT, send("async.ga\t"), expect("async.gather"),
      send("\n"), expect("\nfunction: "),
      PROMPT, send("t = async.spawn(function() end) t:set_name('tsk')\n"),
      PROMPT, send("t:get_n\t"), expect("t:get_name"), send("()\n"),
      expect("\ntsk"),
      PROMPT, send("pri\t"), expect("print"), send("('printed')\n"),
      expect("\nprinted"),
      PROMPT, CTRLD, WAIT,
    }
    clean(r)
    assert.is_true(hasline(r.screen, "> async.gather"), r.screen)
    assert.is_true(hasline(r.screen, "> t:get_name()"), r.screen)
  end)

  it("keeps the history across runs in ~/.asynchost_history", function()
    local home = tempdir()
    clean(repl({
      PROMPT, send("answer = 41\n"), PROMPT,
      send("for i = 1, 2 do\n"), PROMPT2, send("print('line', i) end\n"),
      PROMPT, CTRLD, WAIT,
    }, {home = home}))
    assert.matches("answer = 41", readfile(home .. "/.asynchost_history"),
                   1, true)
    local r = repl({
      PROMPT, UP, expect("for i = 1, 2 do\nprint('line', i) end"),
      send("\n"), expect("line\t2"), PROMPT,
      UP, UP, UP, expect("answer = 41"), send("\n"), PROMPT,
      send("answer + 1\n"), expect("\n42"), PROMPT,
      CTRLD, WAIT,
    }, {home = home})
    clean(r)
  end)

  it("lists the live tasks with .tasks, and helps with .help", function()
    local r = repl{
      PROMPT,
      send("s = async.spawn(function() async.sleep(100) end) " ..
           "s:set_name('sleeper')\n"),
      PROMPT, send(".tasks\n"), expect("1 live task"), expect("sleeper"),
      PROMPT, send("s:cancel() async.sleep(0)\n"),
      PROMPT, send(".tasks\n"), expect("no live tasks"),
      PROMPT, send(".help\n"), expect(".tasks"),
      PROMPT, send(".nope\n"), expect("unknown command '.nope'"),
      PROMPT, CTRLD, WAIT,
    }
    clean(r)
    assert.matches("task 'sleeper'[^\n]*waiting on sleep", r.screen)
  end)

  it("prints an error with its traceback and goes on", function()
    local r = repl{
      PROMPT, send("local function f() error('boom') end f()\n"),
      expect("stdin:1: boom"), expect("stack traceback:"),
      expect("in local 'f'"), PROMPT,
      send("x = 1 +\n"), PROMPT2, send("+\n"), expect("unexpected symbol"),
      PROMPT, send("async.Event():wait()\n"), expect("deadlock"),
      PROMPT, send("1 + 1\n"), expect("\n2"),
      PROMPT, CTRLD, WAIT,
    }
    clean(r)
  end)

  it("exits 0 on Ctrl-D or .exit, cancelling the tasks left", function()
    local r = repl{
      PROMPT, send("async.spawn(function() async.sleep(100) end)\n"),
      PROMPT, CTRLD, WAIT,
    }
    clean(r)
    assert.matches("cancelling task", r.screen, 1, true)
    assert.is_true(r.secs < 60, "took " .. r.secs)
    clean(repl{PROMPT, send(".exit\n"), WAIT})
  end)

  it("-i runs the script, then the REPL with its globals", function()
    local s = tempfile("y = 41\nprint('script ran')\n")
    local r = repl({
      expect("script ran"), PROMPT, send("y + 1\n"), expect("\n42"),
      PROMPT, CTRLD, WAIT,
    }, {args = "-i " .. q(s)})
    clean(r)
  end)
end)


describe("asynchost without a terminal", function()
  local function sh(cmd)
    local p = assert(io.popen(cmd .. " 2>&1", "r"))
    local out = p:read("a")
    local _, _, code = p:close()
    return out, code
  end

  it("runs a piped stdin as one chunk in the main task, with async",
     function()
    local out, code = sh("echo 'async.sleep(0.1) print(\"ok\")' | " ..
                         "env -u LUA_INIT -u LUA_INIT_5_4 " .. q(BIN))
    assert.equal("ok\n", out)
    assert.equal(0, code)
  end)

  it("-i reads lines from a piped stdin, printing values", function()
    local out, code = sh("printf 'x = {1, 2}\\nx\\nasync.sleep(0.01) " ..
                         "return #x\\n' | env -u LUA_INIT -u LUA_INIT_5_4 " ..
                         q(BIN) .. " -i")
    assert.equal(0, code)
    assert.matches("{1, 2}\n", out, 1, true)
    assert.matches("> 2\n", out, 1, true)
  end)
end)

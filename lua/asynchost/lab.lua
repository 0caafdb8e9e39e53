--- asynchost.lab: the learner's runner of the labs (`asynchost lab ...`).
--
--   asynchost lab                       the labs, their exercises and states
--   asynchost lab check lab4/web_crawler   run that exercise's specs
--   asynchost lab watch [exercise]      re-check on every save, move on
--   asynchost lab hint lab4/web_crawler    the next hint
--   asynchost lab solution lab4/web_crawler [--yes]   the solution
--
-- The labs live in a directory holding exercises/, solutions/ and
-- spec/labs/ (the asynchost source tree): the current directory or one
-- above it, or $ASYNCHOST_LABS.  An exercise is exercises/<lab>/<file>;
-- its specs are the `describe("<lab>/<name>")` block of
-- spec/labs/<lab>_spec.lua, run by busted under this very executable with
-- LAB_DIR=exercises.  Results, hints shown and solutions seen are kept in
-- <labs>/.lab-state (JSON).  The order of the exercises and their hints
-- come from asynchost.hints.<lab>.  See docs/labs.md.
local async = require "asynchost"
local core = require "asynchost.core"
local cjson = require "cjson"

local fs, process = async.fs, async.process

local M = {}

local STATE_FILE = ".lab-state"
local CHECK_TIMEOUT = 300  -- seconds: a check that hangs is stopped

---------------------------------------------------------------------------
-- Output: colours only on a terminal

local tty = false

local COLORS = {red = "31", green = "32", yellow = "33", blue = "34",
                bold = "1", dim = "2"}

local function paint(color, s)
  if not tty then return s end
  return "\27[" .. COLORS[color] .. "m" .. s .. "\27[0m"
end

local function say(...)
  io.stdout:write(...)
  io.stdout:write("\n")
  io.stdout:flush()
end

local STATE_LOOK = {
  done = {"green", "done"},
  failing = {"red", "failing"},
  ["not started"] = {"dim", "not started"},
}

local function mark(ok)
  if tty then return ok and paint("green", "✓") or paint("red", "✗") end
  return ok and "ok  " or "FAIL"
end

---------------------------------------------------------------------------
-- Paths and files

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

local function isdir(path)
  local ok, st = pcall(fs.stat, path)
  return ok and st.type == "directory"
end

local function readfile(path)
  local ok, data = pcall(fs.read_file, path)
  if ok then return data end
  return nil, data
end

local cwd_cache
local function cwd()
  if not cwd_cache then
    local pwd = os.getenv("PWD")
    local ok, r = pcall(process.run, "pwd", {})
    cwd_cache = ok and r.code == 0 and trim(r.stdout) or pwd or "."
  end
  return cwd_cache
end

local function absolute(path)
  if path:sub(1, 1) == "/" then return path end
  return cwd() .. "/" .. path:gsub("^%./", "")
end

local function labsdir(dir)
  return isdir(dir .. "/exercises") and isdir(dir .. "/spec/labs")
end

--- The directory of the labs: $ASYNCHOST_LABS, or the current directory
-- or the nearest one above it with exercises/ and spec/labs/.  nil and a
-- message if none.
function M.find_root()
  local env = os.getenv("ASYNCHOST_LABS")
  if env and env ~= "" then
    env = absolute(env)
    if labsdir(env) then return env end
    return nil, "ASYNCHOST_LABS=" .. env .. " has no exercises/ and "
                .. "spec/labs/ directories"
  end
  local dir = cwd()
  while dir ~= "" do
    if labsdir(dir) then return dir end
    dir = dir:match("^(.*)/[^/]*$") or ""
  end
  return nil, "no labs here: run this in the asynchost directory (the one "
              .. "with exercises/ and spec/labs/), or set ASYNCHOST_LABS"
end

-- The executable running us, for busted --lua=...
local function selfbin()
  local env = os.getenv("ASYNCHOST_BIN")
  if env and env ~= "" then return absolute(env) end
  local ok, r = pcall(process.run, "readlink",
                      {"/proc/" .. process.getpid() .. "/exe"})
  if ok and r.code == 0 and trim(r.stdout) ~= "" then return trim(r.stdout) end
  local a = arg and arg[-1]
  if a and a:find("/", 1, true) then return absolute(a) end
  return a or "asynchost"
end

--- A fingerprint of the files' contents (FNV-1a, 32 bits, and sizes).
local function fingerprint(root, files)
  local h = 0x811c9dc5
  local sizes = {}
  for _, f in ipairs(files) do
    local data = readfile(root .. "/exercises/" .. f) or ""
    sizes[#sizes + 1] = #data
    for i = 1, #data do
      h = ((h ~ data:byte(i)) * 16777619) & 0xffffffff
    end
  end
  return ("%08x-%s"):format(h, table.concat(sizes, "."))
end

---------------------------------------------------------------------------
-- The catalogue: labs, exercises, hints

local function natural(a, b)  -- lab2 < lab10
  local na, nb = tonumber(a:match("%d+$")), tonumber(b:match("%d+$"))
  if na and nb and a:gsub("%d+$", "") == b:gsub("%d+$", "") then
    return na < nb
  end
  return a < b
end

--- The labs under root: an array of {id, title, exercises}, each
-- exercise {id = "lab4/web_crawler", lab, name, file, files, hints}.
function M.catalogue(root)
  local labs = {}
  local ok, names = pcall(fs.listdir, root .. "/exercises")
  if not ok then return labs end
  table.sort(names, natural)
  for _, labname in ipairs(names) do
    if isdir(root .. "/exercises/" .. labname) then
      local okh, info = pcall(require, "asynchost.hints." .. labname)
      if not okh or type(info) ~= "table" then info = {} end
      local lab = {id = labname, title = info.title or labname,
                   exercises = {}}
      local known = {}
      local function add(e)
        local file = e.file or (e.name .. ".lua")
        if not readfile(root .. "/exercises/" .. labname .. "/" .. file) then
          return
        end
        local files = {}
        for i, f in ipairs(e.files or {file}) do
          files[i] = labname .. "/" .. f
        end
        known[file] = true
        lab.exercises[#lab.exercises + 1] = {
          id = labname .. "/" .. e.name, lab = labname, name = e.name,
          file = labname .. "/" .. file, files = files,
          hints = e.hints or {}, topic = e.topic,
        }
      end
      for _, e in ipairs(info.exercises or {}) do add(e) end
      local okd, files = pcall(fs.listdir, root .. "/exercises/" .. labname)
      for _, f in ipairs(okd and files or {}) do
        if f:match("%.lua$") and not known[f] then
          add({name = f:gsub("%.lua$", "")})
        end
      end
      if #lab.exercises > 0 then labs[#labs + 1] = lab end
    end
  end
  return labs
end

local function allexercises(labs)
  local list = {}
  for _, lab in ipairs(labs) do
    for _, ex in ipairs(lab.exercises) do list[#list + 1] = ex end
  end
  return list
end

--- The exercise `name` names: "lab4/web_crawler", "web_crawler" (if only
-- one lab has it), or its path "exercises/lab4/web_crawler.lua".
function M.find_exercise(labs, name)
  name = name:gsub("^%./", ""):gsub("^exercises/", ""):gsub("%.lua$", "")
  local found = {}
  for _, ex in ipairs(allexercises(labs)) do
    if ex.id == name or ex.file:gsub("%.lua$", "") == name then
      return ex
    end
    if ex.name == name then found[#found + 1] = ex end
  end
  if #found == 1 then return found[1] end
  if #found > 1 then
    local ids = {}
    for i, ex in ipairs(found) do ids[i] = ex.id end
    return nil, ("'%s' is in more than one lab: %s"):format(name,
                                                            table.concat(ids, ", "))
  end
  return nil, ("no exercise '%s' (asynchost lab lists them)"):format(name)
end

---------------------------------------------------------------------------
-- State: .lab-state in the labs' directory

local function loadstate(root)
  local data = readfile(root .. "/" .. STATE_FILE)
  if data then
    local ok, st = pcall(cjson.decode, data)
    if ok and type(st) == "table" and type(st.exercises) == "table" then
      return st
    end
    io.stderr:write("asynchost lab: ", STATE_FILE,
                    " is damaged; starting afresh\n")
  end
  return {version = 1, exercises = {}}
end

local function savestate(root, st)
  local ok, err = pcall(fs.write_file, root .. "/" .. STATE_FILE,
                        cjson.encode(st) .. "\n", {atomic = true})
  if not ok then
    io.stderr:write("asynchost lab: cannot save ", STATE_FILE, ": ",
                    tostring(err), "\n")
  end
end

local function record(st, ex)
  local r = st.exercises[ex.id]
  if not r then
    r = {}
    st.exercises[ex.id] = r
  end
  return r
end

-- Files of exercises/ that differ from the last commit, if root is in a
-- git work tree: a set of paths relative to exercises/, or nil.
local function gitmodified(root)
  local ok, r = pcall(process.run, "git",
                      {"-C", root, "ls-files", "--modified", "--others",
                       "--exclude-standard", "--", "exercises"})
  if not ok or r.code ~= 0 then return nil end
  local ok2, t = pcall(process.run, "git",
                       {"-C", root, "ls-files", "--", "exercises"})
  if not ok2 or t.code ~= 0 or t.stdout == "" then return nil end  -- untracked
  local set = {}
  for line in r.stdout:gmatch("[^\n]+") do
    set[(line:gsub("^exercises/", ""))] = true
  end
  return set
end

--- The state of each exercise ("done", "failing", "not started"), and
-- the exercises edited since their last check (to check again).
-- Records the first fingerprint of every exercise seen.
local function states(root, labs, st)
  local modified = gitmodified(root)
  local out, stale = {}, {}
  for _, ex in ipairs(allexercises(labs)) do
    local r = record(st, ex)
    local fp = fingerprint(root, ex.files)
    r.first = r.first or fp
    local edited
    if modified then
      edited = false
      for _, f in ipairs(ex.files) do
        if modified[f] then edited = true end
      end
    else
      edited = fp ~= r.first
    end
    if r.result and r.fingerprint == fp then
      out[ex.id] = r.result
    elseif r.result or edited then
      out[ex.id] = r.result or "failing"
      stale[#stale + 1] = ex
    else
      out[ex.id] = "not started"
    end
  end
  return out, stale
end

---------------------------------------------------------------------------
-- Checking an exercise: busted on its specs

local function luapattern(s)
  return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
end

-- The JSON busted printed last on stdout, and what came before it (the
-- exercise's own output).
local function busted_json(stdout)
  local before, last = stdout:match("^(.*)\n(%{[^\n]*)\n?$")
  if not last then last = stdout:match("^(%{[^\n]*)\n?$"); before = "" end
  if not last then return nil end
  local ok, doc = pcall(cjson.decode, last)
  if not ok or type(doc) ~= "table" then return nil end
  return doc, before
end

--- Runs the specs of exercise ex against exercises/; returns
-- {ok, passed, total, tests = {{name, ok, message}}, output}, or nil and
-- a message when the specs could not run.
function M.check(root, ex)
  local spec = "spec/labs/" .. ex.lab .. "_spec.lua"
  if not readfile(root .. "/" .. spec) then
    return nil, "no specs for " .. ex.lab .. " (" .. spec .. " is missing)"
  end
  local bin = selfbin()
  local ok, r = pcall(process.run, "busted", {
    "--lua=" .. bin, "-o", "json",
    "--filter=^" .. luapattern(ex.id) .. " ", spec,
  }, {cwd = root, inherit_env = true, timeout = CHECK_TIMEOUT,
      env = {LAB_DIR = "exercises", ASYNCHOST_BIN = bin,
             LAB_TIME_SCALE = false}})
  if not ok then
    if async.CancelledError:is(r) then error(r, 0) end
    if async.FileNotFoundError:is(r) then
      return nil, "busted is not installed (Debian: apt install lua-busted)"
    end
    if async.TimeoutError:is(r) then
      return nil, ("the specs did not finish in %d s: is something waiting "
                   .. "forever?"):format(CHECK_TIMEOUT)
    end
    return nil, tostring(r)
  end
  local doc, before = busted_json(r.stdout)
  if not doc then
    return nil, "busted failed:\n" .. trim(r.stdout .. "\n" .. r.stderr)
  end
  local res = {tests = {}, passed = 0, output = before,
               stderr = r.stderr}
  local prefix = ex.id .. " "
  local function add(list, passed)
    for _, t in ipairs(list or {}) do
      local name = t.name or (t.element and t.element.name) or "?"
      if name:sub(1, #prefix) == prefix then name = name:sub(#prefix + 1) end
      res.tests[#res.tests + 1] = {
        name = name, ok = passed, message = t.message,
        traceback = t.trace and t.trace.traceback,
        line = t.element and t.element.trace and t.element.trace.currentline,
      }
      if passed then res.passed = res.passed + 1 end
    end
  end
  add(doc.successes, true)
  add(doc.failures, false)
  add(doc.errors, false)
  table.sort(res.tests, function(a, b)
    return (a.line or 0) < (b.line or 0)
  end)
  res.total = #res.tests
  res.ok = res.total > 0 and res.passed == res.total
  if res.total == 0 then
    return nil, ("no specs match '%s' in %s"):format(ex.id, spec)
  end
  return res
end

-- The message of a failed test, made readable: a TODO first; the spec's
-- place on a line of its own.
local function showmessage(msg, maxlines)
  msg = tostring(msg or "(no message)")
  local todo = msg:match("(TODO%([^\n]*)")  -- an unfinished exercise
  if todo then msg = todo:gsub("'$", "") end
  local where, rest = msg:match("^([^\n:]+%.lua:%d+): (.*)$")
  if where and not todo then msg = rest end
  local lines, n = {}, 0
  for line in (msg .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if n > maxlines then
      lines[#lines + 1] = "      " .. paint("dim", "...")
      break
    end
    lines[#lines + 1] = "      " .. line
  end
  if where and not todo then
    lines[#lines + 1] = "      " .. paint("dim", "(" .. where .. ")")
  end
  return table.concat(lines, "\n")
end

-- Prints the outcome of a check.
local function report(ex, res, verbose)
  if verbose and res.output and trim(res.output) ~= "" then
    say(paint("dim", "--- output of the exercise ---"))
    say(trim(res.output))
    say(paint("dim", "------------------------------"))
  end
  local shown = 0
  for _, t in ipairs(res.tests) do
    say("  ", mark(t.ok), " ", t.name)
    if not t.ok then
      shown = shown + 1
      say(showmessage(t.message, verbose and 1000 or (shown == 1 and 20 or 4)))
      if verbose and t.traceback and t.traceback:find("exercises/", 1, true)
      then
        say(paint("dim", trim(t.traceback)))
      end
    end
  end
  if res.ok then
    say(paint("green", ("  All %d checks pass: %s is done."):format(res.total,
                                                                  ex.id)))
  else
    say(paint("yellow", ("  %d of %d checks pass."):format(res.passed,
                                                          res.total)),
        " Stuck? asynchost lab hint ", ex.id)
  end
end

-- Checks ex, prints the result, records it; returns the result (nil if
-- the specs could not run).
local function docheck(root, st, ex, verbose)
  say(paint("bold", "Checking " .. ex.id), "  ",
      paint("dim", "(exercises/" .. ex.file .. ")"))
  local fp = fingerprint(root, ex.files)
  local res, err = M.check(root, ex)
  if not res then
    say(paint("red", "  cannot check: ") .. err)
    return nil
  end
  report(ex, res, verbose)
  local r = record(st, ex)
  r.result = res.ok and "done" or "failing"
  r.fingerprint, r.passed, r.total = fp, res.passed, res.total
  r.checked = os.time()
  savestate(root, st)
  return res
end

---------------------------------------------------------------------------
-- Commands

local USAGE = [[
usage: asynchost lab [command] [exercise] [options]

  asynchost lab                  list the labs and the state of each exercise
  asynchost lab check [EX]       run the specs of an exercise (default: the
                                 first one not done) against exercises/
  asynchost lab watch [EX]       check on every save; move on when it passes
  asynchost lab hint EX          show the next hint of an exercise
  asynchost lab solution EX      show the solution (asks first; --yes does not)

EX names an exercise: lab4/web_crawler, or web_crawler when only one lab has
it.  Options: -v/--verbose (check, watch: the exercise's output and full
messages), -y/--yes (solution), --no-check (list: do not re-check edited
exercises).  The labs are found in the current directory or above it (the
one with exercises/ and spec/labs/), or in $ASYNCHOST_LABS.
]]

local function usage(msg)
  io.stderr:write("asynchost lab: ", msg, "\n", USAGE)
  return false, 2
end

-- A mistake that needs no usage text (an unknown exercise).
local function fail(msg)
  io.stderr:write("asynchost lab: ", msg, "\n")
  return false, 2
end

-- s wrapped at 76 columns, each line indented by `indent`.
local function wrap(s, indent)
  local lines, line = {}, indent
  for word in s:gmatch("%S+") do
    if #line > #indent and #line + 1 + #word > 76 then
      lines[#lines + 1] = line
      line = indent
    end
    line = line .. (#line > #indent and " " or "") .. word
  end
  lines[#lines + 1] = line
  return table.concat(lines, "\n")
end

local function first_pending(labs, st_states, after)
  local list = allexercises(labs)
  local start = 1
  if after then
    for i, ex in ipairs(list) do
      if ex == after then start = i + 1 end
    end
  end
  for k = 0, #list - 1 do
    local ex = list[(start - 1 + k) % #list + 1]
    if st_states[ex.id] ~= "done" then return ex end
  end
  return nil
end

local function cmd_list(root, labs, st, opts)
  local st_states, stale = states(root, labs, st)
  savestate(root, st)
  if #stale > 0 and not opts["no-check"] then
    say(paint("dim", ("Checking %d edited exercise%s..."):format(#stale,
        #stale == 1 and "" or "s")))
    for _, ex in ipairs(stale) do
      local fp = fingerprint(root, ex.files)
      local res = M.check(root, ex)
      if res then
        local r = record(st, ex)
        r.result = res.ok and "done" or "failing"
        r.fingerprint, r.passed, r.total = fp, res.passed, res.total
        r.checked = os.time()
        st_states[ex.id] = r.result
      end
    end
    savestate(root, st)
  end
  local stalemap = {}  -- the edited exercises still not checked
  for _, ex in ipairs(stale) do
    if opts["no-check"] or not (st.exercises[ex.id] or {}).fingerprint
       or st.exercises[ex.id].fingerprint ~= fingerprint(root, ex.files) then
      stalemap[ex.id] = true
    end
  end
  local done, total = 0, 0
  say(paint("bold", "asynchost labs"), "  ", paint("dim", root))
  for _, lab in ipairs(labs) do
    say("")
    say(paint("bold", lab.title))
    local width = 0
    for _, ex in ipairs(lab.exercises) do width = math.max(width, #ex.id) end
    for _, ex in ipairs(lab.exercises) do
      local s = st_states[ex.id]
      local look = STATE_LOOK[s]
      local extra = ""
      local r = st.exercises[ex.id]
      if stalemap[ex.id] then
        extra = paint("dim", "  (changed since the last check)")
      elseif s == "failing" and r and r.total then
        extra = paint("dim", ("  (%d of %d checks pass)"):format(r.passed or 0,
                                                                r.total))
      end
      say("  ", ex.id, (" "):rep(width - #ex.id + 2),
          paint(look[1], look[2]), extra)
      total = total + 1
      if s == "done" then done = done + 1 end
    end
  end
  say("")
  say(("Progress: %d of %d exercises done."):format(done, total))
  local nextex = first_pending(labs, st_states)
  if nextex then
    say("Next: ", paint("bold", nextex.id), " (exercises/", nextex.file,
        ") -- asynchost lab check ", nextex.id,
        ", or asynchost lab watch")
  else
    say(paint("green", "Every exercise is done. Well done!"))
  end
  return true
end

local function resolve(labs, st, root, name)
  if name then return M.find_exercise(labs, name) end
  local st_states = states(root, labs, st)
  local ex = first_pending(labs, st_states)
  if not ex then return nil, "every exercise is done" end
  return ex
end

local function cmd_check(root, labs, st, name, opts)
  local ex, err = resolve(labs, st, root, name)
  if not ex then return fail(err) end
  local res = docheck(root, st, ex, opts.verbose)
  return res ~= nil and res.ok, 1
end

local function cmd_hint(root, labs, st, name)
  if not name then return usage("hint: which exercise? (asynchost lab hint "
                                .. "lab4/web_crawler)") end
  local ex, err = M.find_exercise(labs, name)
  if not ex then return fail(err) end
  local r = record(st, ex)
  local hints = ex.hints
  if #hints == 0 then
    say("No hints for ", ex.id, ": see exercises/", ex.lab, "/README.md.")
    return true
  end
  local n = math.min((r.hints or 0) + 1, #hints)
  r.hints = n
  savestate(root, st)
  for i = 1, n do
    local head = ("Hint %d of %d for %s:"):format(i, #hints, ex.id)
    if i < n then
      say(paint("dim", head))
      say(paint("dim", wrap(hints[i], "  ")))
    else
      say(paint("bold", head))
      say(wrap(hints[i], "  "))
    end
  end
  if n == #hints then
    say(paint("dim", "That was the last hint. Still stuck? "
              .. "asynchost lab solution " .. ex.id))
  else
    say(paint("dim", "Run it again for the next hint."))
  end
  return true
end

local function cmd_solution(root, labs, st, name, opts)
  if not name then return usage("solution: which exercise?") end
  local ex, err = M.find_exercise(labs, name)
  if not ex then return fail(err) end
  local files = {}
  for _, f in ipairs(ex.files) do
    local path = "solutions/" .. f
    local text = readfile(root .. "/" .. path)
    if not text then
      say("No solution found for ", ex.id, " (", path, " is missing).")
      return false, 1
    end
    files[#files + 1] = {path, text}
  end
  if not opts.yes then
    io.stdout:write(("Show the solution of %s? It gives the exercise away. "
                     .. "[y/N] "):format(ex.id))
    io.stdout:flush()
    local answer = io.stdin:read("l")
    if not answer or not trim(answer):lower():match("^y") then
      say(answer and "Not shown." or "\nNot shown (no answer).")
      return false, 1
    end
  end
  for _, f in ipairs(files) do
    say(paint("bold", "==> " .. f[1] .. " <=="))
    io.stdout:write(f[2])
    if f[2]:sub(-1) ~= "\n" then io.stdout:write("\n") end
  end
  record(st, ex).solution = true
  savestate(root, st)
  return true
end

-- The exercises a changed path belongs to.
local function owners(labs, root, path)
  local rel = path:sub(1, #root + 11) == root .. "/exercises/"
              and path:sub(#root + 12) or nil
  if not rel then return {} end
  local list = {}
  for _, ex in ipairs(allexercises(labs)) do
    for _, f in ipairs(ex.files) do
      if f == rel then list[#list + 1] = ex end
    end
  end
  return list
end

local function clear()
  if tty then io.stdout:write("\27[2J\27[H") end
end

local function cmd_watch(root, labs, st, name, opts)
  local current, err = resolve(labs, st, root, name)
  if not current then
    if err == "every exercise is done" then
      say(paint("green", "Every exercise is done. Well done!"))
      return true
    end
    return fail(err)
  end
  local watcher <close> = fs.watch(root .. "/exercises", {recursive = true,
                                                         debounce = 0.1})
  local function footer(ex)
    say("")
    say(paint("dim", wrap(("Watching exercises/: save exercises/%s to "
                           .. "check it again; asynchost lab hint %s for a "
                           .. "hint; Ctrl-C to stop."):format(ex.file, ex.id),
                          "")))
  end
  local runs = 0
  local function run(ex)
    clear()
    runs = runs + 1
    if runs > 1 and not tty then say("") end
    local res = docheck(root, st, ex, opts.verbose)
    while res and res.ok do
      local st_states = states(root, labs, st)
      local nextex = first_pending(labs, st_states, ex)
      if not nextex then
        say("")
        say(paint("green", "Every exercise is done. Well done!"))
        return true
      end
      say("")
      say(paint("bold", "Next: " .. nextex.id), "  ",
          paint("dim", "(exercises/" .. nextex.file .. ")"))
      ex = nextex
      current = ex
      say("")
      res = docheck(root, st, ex, opts.verbose)
    end
    footer(ex)
    return false
  end
  local ok, result = pcall(function()
    if run(current) then return true end
    while true do
      local ev = watcher:next()
      if ev == nil then return false end
      local list = ev.path:match("%.lua$") and owners(labs, root, ev.path)
                   or {}
      -- the exercise being edited becomes the current one
      local ex = list[1]
      for _, e in ipairs(list) do
        if e == current then ex = e break end
        if "exercises/" .. e.file == ev.path:sub(#root + 2) then ex = e end
      end
      if ex and fingerprint(root, ex.files) ~= record(st, ex).fingerprint then
        current = ex
        if run(current) then return true end
      end
    end
  end)
  if not ok then
    if async.CancelledError:is(result) then  -- Ctrl-C: a normal way out
      async.current_task():uncancel()
      say("")
      say("Stopped watching.")
      return true
    end
    error(result, 0)
  end
  return result
end

-- Options and arguments: the command, the exercise, flags.
local function parse(args)
  local opts, words = {}, {}
  local flags = {["-v"] = "verbose", ["--verbose"] = "verbose",
                 ["-y"] = "yes", ["--yes"] = "yes",
                 ["--no-check"] = "no-check", ["-h"] = "help",
                 ["--help"] = "help"}
  for i = 1, #args do
    local a = args[i]
    if flags[a] then opts[flags[a]] = true
    elseif a:sub(1, 1) == "-" then return nil, "unknown option '" .. a .. "'"
    else words[#words + 1] = a end
  end
  return opts, words
end

--- The command `asynchost lab ...`: args as a script's `arg` (the words
-- at 1..n).  Returns true, or false after printing why (and sets the
-- exit status through os.exit when it is not 0).
function M.main(args)
  tty = core.isatty(1) and os.getenv("TERM") ~= "dumb"
        and os.getenv("NO_COLOR") == nil
  local opts, words = parse(args or {})
  local ok, status
  if not opts then
    ok, status = usage(words)
  elseif opts.help or words[1] == "help" then
    io.stdout:write(USAGE)
    ok = true
  else
    local root, err = M.find_root()
    if not root then
      io.stderr:write("asynchost lab: ", err, "\n")
      ok, status = false, 2
    else
      local labs = M.catalogue(root)
      local st = loadstate(root)
      local cmd, name = words[1] or "list", words[2]
      if #words > 2 then
        ok, status = usage("too many arguments")
      elseif cmd == "list" then ok, status = cmd_list(root, labs, st, opts)
      elseif cmd == "check" then ok, status = cmd_check(root, labs, st, name, opts)
      elseif cmd == "watch" then ok, status = cmd_watch(root, labs, st, name, opts)
      elseif cmd == "hint" then ok, status = cmd_hint(root, labs, st, name)
      elseif cmd == "solution" then
        ok, status = cmd_solution(root, labs, st, name, opts)
      else
        ok, status = usage("unknown command '" .. cmd .. "'")
      end
    end
  end
  io.stdout:flush()
  if not ok then os.exit(status or 1) end
  return true
end

return M

--- Helpers shared by the labs' specs (spec/labs/*_spec.lua):
--
--   local H = require "spec.labs.helpers"
--   local lab = H.load("lab1", "concurrent_execution")
--
-- The specs check solutions/<lab>/<file>.lua by default; with LAB_DIR set
-- (LAB_DIR=exercises) they check that tree instead, and then fail with the
-- exercises' TODO messages until the work is done.
--
-- Time: every lab file multiplies its delays by its field `time_scale`
-- (from LAB_TIME_SCALE, default 1). H.load sets it to H.SCALE (0.2), so a
-- "1 s" download takes 0.2 s here; H.script runs a whole file with
-- LAB_TIME_SCALE=H.SCRIPT_SCALE (0.05). Timing assertions are written in
-- the lab's own seconds and scaled: H.at_least(t, 3) means t >= 3 *
-- H.SCALE (less a little), H.at_most(t, 1.5) t <= 1.5 * H.SCALE plus a
-- slack for a busy machine.
local helpers = require "spec.helpers"

local M = {}

M.SCALE = 0.2
M.SCRIPT_SCALE = 0.05
M.SLACK = 0.1  -- seconds a busy 2-core machine may add to a wait
M.DIR = os.getenv("LAB_DIR") or "solutions"
M.BIN = helpers.BIN  -- the executable under test (spec/helpers.lua)

--- The path of a lab file: DIR/lab/name.lua.
function M.path(lab, name)
  return ("%s/%s/%s.lua"):format(M.DIR, lab, name)
end

--- Loads a lab file as a module (its demo does not run): returns the table
-- of its functions, with time_scale set to M.SCALE.
function M.load(lab, name)
  local path = M.path(lab, name)
  local chunk, err = loadfile(path)
  if not chunk then error(err, 2) end
  local mod = chunk()
  if type(mod) ~= "table" then
    error(path .. " must end with 'return M' (its table of functions)", 2)
  end
  mod.time_scale = M.SCALE
  return mod
end

--- Calls fn(...); returns the seconds it took, then its results.
function M.elapsed(fn, ...)
  local async = require "asynchost"
  local t0 = async.loop_time()
  local r = table.pack(fn(...))
  return async.loop_time() - t0, table.unpack(r, 1, r.n)
end

--- Asserts that t (seconds) is at least lab_seconds (scaled), less 1 ms
-- for the clock's rounding.
function M.at_least(t, lab_seconds, what)
  local min = lab_seconds * M.SCALE - 0.001
  assert(t >= min, ("%s took %.3f s, expected at least %.3f s")
                   :format(what or "it", t, min))
end

--- Asserts that t (seconds) is at most lab_seconds (scaled) plus slack.
function M.at_most(t, lab_seconds, what)
  local max = lab_seconds * M.SCALE + M.SLACK
  assert(t <= max, ("%s took %.3f s, expected at most %.3f s")
                   :format(what or "it", t, max))
end

--- Asserts that err is an error of class cls (async.TimeoutError...);
-- the failure shows what err was (a TODO message, say).
function M.assert_class(cls, err)
  if not cls:is(err) then
    error(("expected a %s, got: %s"):format(tostring(cls), tostring(err)), 2)
  end
end

--- Awaits task t and asserts that it was cancelled; an error of the task
-- (a TODO message, say) is raised as it is.
function M.await_cancelled(t)
  local async = require "asynchost"
  local ok, err = pcall(async.await, t)
  if ok then error("the task ended normally instead of being cancelled", 2) end
  if not async.CancelledError:is(err) then error(err, 0) end
  assert(t:cancelled(), "the task was not cancelled")
end

--- Calls fn(...) with print replaced: returns the lines printed (an
-- array), then fn's results. print is restored even on an error.
function M.capture(fn, ...)
  local lines, saved = {}, print
  print = function(...)  -- luacheck: ignore
    local parts = table.pack(...)
    for i = 1, parts.n do parts[i] = tostring(parts[i]) end
    for line in (table.concat(parts, "\t", 1, parts.n) .. "\n")
                :gmatch("(.-)\n") do
      lines[#lines + 1] = line
    end
  end
  local _ <close> = setmetatable({}, {__close = function() print = saved end})
  local r = table.pack(fn(...))
  return lines, table.unpack(r, 1, r.n)
end

--- The first line of `lines` that matches the Lua pattern `pat`, or nil.
function M.find(lines, pat)
  for _, l in ipairs(lines) do
    if l:match(pat) then return l end
  end
end

--- Asserts that each pattern of `pats` matches a line of `text` (a string
-- or an array of lines), in that order.
function M.expect_lines(text, pats)
  local lines = text
  if type(text) == "string" then
    lines = {}
    for l in (text .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = l end
  end
  local i = 1
  for _, pat in ipairs(pats) do
    while i <= #lines and not lines[i]:match(pat) do i = i + 1 end
    assert(i <= #lines, ("no line matching %q (in order) in:\n%s")
                        :format(pat, table.concat(lines, "\n")))
    i = i + 1
  end
end

--- Runs DIR/lab/name.lua as a script with the host (ASYNCHOST_BIN) and
-- LAB_TIME_SCALE=M.SCRIPT_SCALE; returns its output (stdout and stderr)
-- and exit status. Bounded by `timeout` seconds (default 20).
function M.script(lab, name, timeout)
  return helpers.sh(("LAB_TIME_SCALE=%s %s %s"):format(M.SCRIPT_SCALE,
                    helpers.q(M.BIN), helpers.q(M.path(lab, name))),
                    timeout or 20)
end

--- A new empty directory, and removing them all (call it in after_each):
-- spec/helpers.lua's.
M.tempdir, M.cleanup = helpers.tempdir, helpers.cleanup

M.readfile, M.writefile, M.q = helpers.readfile, helpers.writefile, helpers.q

return M

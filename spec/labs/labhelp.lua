--- Helpers of the specs of lab3, lab4 and the runner (require
-- "spec.labs.labhelp").
--
-- The specs check solutions/ by default; LAB_DIR=exercises checks the
-- exercises instead (they then fail with their TODO messages), which is
-- what `asynchost lab check` does.  Each top-level describe is named
-- after the exercise it checks, "<lab>/<file without .lua>", so that
-- `busted --filter='^lab4/web_crawler '` runs that exercise's specs.
local M = {}

--- The tree under test: "solutions" or "exercises".
M.dir = os.getenv("LAB_DIR") or "solutions"

--- The time scale the lab files get (their `time_scale` field): their
-- delays, in "lab seconds", shrink to a tenth.
M.scale = 0.1

--- The asynchost executable, for the specs that run a lab as a script
-- (spec/helpers.lua's rule).
M.bin = require("spec.helpers").BIN

--- The path of `file` of `lab` in the tree under test.
function M.path(lab, file)
  return M.dir .. "/" .. lab .. "/" .. file
end

local Output = {}
Output.__index = Output

--- Everything printed so far, one line per print.
function Output:text() return table.concat(self, "\n") end

--- Does some printed line contain `s` (plain text)?
function Output:has(s)
  for _, line in ipairs(self) do
    if line:find(s, 1, true) then return true end
  end
  return false
end

--- Loads `file` of `lab` as a module and returns it and its output: what
-- it prints is kept in the output (a list of lines), not shown.  Files it
-- loads itself with loadfile share that output.  Raises a readable error
-- if the file does not load.  The module's time_scale is set to `scale`
-- (default M.scale).
function M.load(lab, file, scale)
  local path = M.path(lab, file)
  local out = setmetatable({}, Output)
  local env = setmetatable({}, {__index = _G})
  env.arg = {}  -- not run as a script
  env.print = function(...)
    local t = table.pack(...)
    for i = 1, t.n do t[i] = tostring(t[i]) end
    out[#out + 1] = table.concat(t, "\t", 1, t.n)
  end
  env.loadfile = function(p, mode, e) return loadfile(p, mode, e or env) end
  local chunk, err = loadfile(path, "t", env)
  if not chunk then error(path .. " does not load: " .. err, 2) end
  local ok, mod = pcall(chunk)
  if not ok then
    error(path .. " fails while loading: " .. tostring(mod), 2)
  end
  if type(mod) ~= "table" then
    error(path .. " must return its table of functions (return M)", 2)
  end
  if mod.time_scale ~= nil then mod.time_scale = scale or M.scale end
  return mod, out
end

--- Calls fn(...) and returns the seconds it took, then its results.
M.timed = require("spec.labs.helpers").elapsed

--- pcall(fn, ...), but an unfinished exercise's TODO error is raised, so
-- that a spec expecting an error reports the TODO, not a wrong error.
function M.pcall(fn, ...)
  local r = table.pack(pcall(fn, ...))
  if not r[1] and type(r[2]) == "string" and r[2]:find("TODO(", 1, true) then
    error(r[2], 0)
  end
  return table.unpack(r, 1, r.n)
end

--- A port on 127.0.0.1 where nothing listens (it did a moment ago).
function M.closedport()
  local async = require "asynchost"
  local server = async.net.listen(function() end, "127.0.0.1", 0)
  local _, port = server:address()
  server:close()
  return port
end

--- Runs a shell command in the background (the loop goes on); its output
-- and exit status.
M.sh = require("spec.helpers").sh
M.q = require("spec.helpers").q
M.readfile = require("spec.helpers").readfile
M.writefile = require("spec.helpers").writefile

--- A new empty directory; removed by M.rmtree.
function M.tempdir()
  local p = os.tmpname()
  os.remove(p)
  assert(os.execute("mkdir -p " .. M.q(p)))
  return p
end

function M.rmtree(p)
  if p and p:find("^/tmp/") then os.execute("rm -rf " .. M.q(p)) end
end

return M

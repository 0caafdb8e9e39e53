--- Async generators: async.generator(fn).
--
--   local ticks = async.generator(function(yield, n, interval)
--     for i = 1, n do
--       async.sleep(interval)      -- may await anywhere
--       yield(i, i * i)            -- one or more values
--     end
--   end)
--   for i, sq in ticks(3, 0.1) do print(i, sq) end
--
-- `async.generator(fn)` returns a factory; `gen(...)` makes a generator
-- object that runs fn(yield, ...) in a coroutine of its own, one step at a
-- time.  The object is also what a generic `for` needs: `gen(...)` returns
-- it as the iterator (it has __call) and as the closing value (__close),
-- so `for` closes it on `break`, on an error and at the end.
--
-- Outside `for`, the object's methods:
--   g:next()   runs the body to its next yield: returns true and the
--              values yielded, or false once the body has ended (then
--              always).  An error of the body is raised here, once.
--   g:close()  closes a generator suspended at a yield (see below);
--              nothing to do if it never started or has ended.
--              `local g <close> = gen(...)` calls it at the end of scope.
--   tostring(g)  "Generator (suspended)", "(running)" or "(dead)".
--
-- Awaits in the body suspend the task that called next (they pass
-- through the generator's coroutine, see bindings/coro.c), so the body
-- runs in that task: a cancellation reaches the body where it awaits.
-- An error of the body is raised by next unchanged (no traceback added).
-- The body's return values are dropped.  In a `for`, a first value of nil
-- ends the loop, as for any iterator (next() has no such limit).
-- `yield` returns nothing; call it from the body's own coroutine, not from
-- one the body made, and do not use coroutine.yield at the body's level.
--
-- Closing a generator suspended at a yield resumes it with a stop request:
-- that yield raises a private error object (tostring "GeneratorExit"),
-- which unwinds the body inside its coroutine, so its `<close>` handlers
-- and pcall handlers run and may await.  The generator takes that error as
-- a normal end; any other error of the cleanup is raised by close.  A
-- body that catches it and yields again is dropped without more cleanup,
-- and close raises "generator ignored the close request".  A generator
-- dropped while suspended, without close, never runs its cleanup.
--
-- A generator runs in one task at a time: next or close while its body
-- runs (in another task, or from inside the body) raises "generator is
-- already running".
local cocore = require("asynchost.core.coroutine")
local check = require "asynchost.check"
local typename = check.typename

-- resume passes awaits on to the task (it is the one coroutine.resume
-- becomes once asynchost is loaded); create and running are Lua's
local resume, status = cocore.coroutine.resume, cocore.coroutine.status
local coyield = cocore.coroutine.yield
local create, running = coroutine.create, coroutine.running
-- Lua's own pcall: a cancellation the body raises is raised again by next,
-- not swallowed, so it must not be noted as caught (docs/cancellation.md)
local rawpcall = cocore.rawpcall
local pack, unpack = table.pack, table.unpack

local M = {}

local YIELDED = {}  -- first value a body's yield hands to resume
local STOP = {}     -- what close resumes the body with

-- The stop request, as the body sees it.  Not an async.Error: a body that
-- catches errors of the runtime's classes lets it through.
local GeneratorExit = {__name = "GeneratorExit"}
GeneratorExit.__index = GeneratorExit

function GeneratorExit.__tostring(e)
  return "GeneratorExit: " .. e.message
end

local function isexit(err)
  return type(err) == "table" and getmetatable(err) == GeneratorExit
end

local methods = {}
local Generator = {__index = methods, __name = "asynchost.Generator"}

local function checkgen(g, fname)
  if getmetatable(g) ~= Generator then
    error(("bad argument #1 to '%s' (generator expected, got %s)")
          :format(fname, typename(g)), 3)
  end
end

-- Resumes the body with 'msg' (nil or STOP).  Returns the packed results
-- of resume; the generator is "dead" after it unless the body yielded.
local function step(g, msg, level)
  if g.state == "running" then
    error("generator is already running", level + 1)
  end
  g.state = "running"
  local r = pack(rawpcall(resume, g.co, msg))
  if r[1] and r[2] and status(g.co) == "suspended" then
    g.state = "suspended"
    return r
  end
  g.state, g.co = "dead", nil
  if not r[1] then error(r[2], 0) end  -- resume could not pass an await on
  if not r[2] then error(r[3], 0) end
  return r
end

-- One step of iteration: true and the values yielded, or false.
local function advance(g, level)
  if g.state == "dead" then return false end
  local r = step(g, nil, level + 1)
  if g.state == "dead" then  -- the body ended: r is resume's, then pcall's
    if not r[3] and not isexit(r[4]) then error(r[4], 0) end
    return false
  end
  if r[3] ~= YIELDED then
    g.state, g.co = "dead", nil
    error("generator body yielded with coroutine.yield (use the yield "
          .. "function it was given)", level + 1)
  end
  return true, unpack(r, 4, r.n)
end

--- Runs the body to its next yield: returns true and the values yielded,
-- or false when the body has ended.
function methods:next()
  checkgen(self, "next")
  return advance(self, 2)
end

-- Closes g (see close below); errors blame the caller's caller at 'level'.
local function closegen(g, level)
  if g.state == "dead" then return end
  if g.state == "suspended" and not g.started then
    g.state, g.co = "dead", nil  -- the body never ran
    return
  end
  local r = step(g, STOP, level + 1)
  if g.state ~= "dead" then  -- it caught the stop request and yielded
    g.state, g.co = "dead", nil
    error("generator ignored the close request", level + 1)
  end
  if not r[3] and not isexit(r[4]) then error(r[4], 0) end
end

--- Closes the generator: a body suspended at a yield is unwound (its
-- cleanup runs and may await).  Raises the cleanup's own errors.
function methods:close()
  checkgen(self, "close")
  return closegen(self, 2)
end

function Generator:__call()
  local r = pack(advance(self, 2))
  if r[1] then return unpack(r, 2, r.n) end
  return nil
end

function Generator:__close()
  return closegen(self, 2)
end

function Generator:__tostring()
  return "Generator (" .. self.state .. ")"
end

local function new(fn, ...)
  local args = pack(...)
  local g = setmetatable({state = "suspended", started = false}, Generator)
  local function yield(...)
    if running() ~= g.co then
      error("yield called outside its generator's body", 2)
    end
    if coyield(YIELDED, ...) == STOP then
      error(setmetatable({message = "generator closed"}, GeneratorExit), 0)
    end
  end
  g.co = create(function()
    g.started = true
    return rawpcall(fn, yield, unpack(args, 1, args.n))
  end)
  return g
end

--- async.generator(fn) returns a factory: gen(...) returns a generator
-- running fn(yield, ...), and the values of a generic `for` over it.
function M.generator(fn)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'generator' (function expected, got "
          .. typename(fn) .. ")", 2)
  end
  return function(...)
    local g = new(fn, ...)
    return g, nil, nil, g
  end
end

return M

--- Argument checks shared by asynchost's Lua modules (internal).
-- Errors read like Lua's own: "bad argument #2 to 'wait_for' (non-negative
-- number expected)", blaming the line that called the API function.
local current_task = require("asynchost.core").current_task

local M = {}

--- The type of x as error messages name it: its metatable's __name if any.
function M.typename(x)
  local mt = getmetatable(x)
  return (type(mt) == "table" and type(mt.__name) == "string" and mt.__name)
         or type(x)
end

--- Raises "bad argument #i to 'fname' (msg)"; level as error()'s, counted
-- from the function that calls argerror.
function M.argerror(i, fname, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(i, fname, msg), level + 1)
end

--- Is f a function or a callable table/userdata?
function M.callable(f)
  if type(f) == "function" then return true end
  local mt = getmetatable(f)
  return type(mt) == "table" and mt.__call ~= nil
end

--- The running task, or the error every await point raises outside one,
-- blaming the caller of the function that calls running (level 2, the
-- default) or further up.
function M.running(fname, level)
  local t = current_task()
  if t == nil then
    error(("cannot await outside a task (%s was called outside async.run "
           .. "or async.spawn)"):format(fname), (level or 2) + 1)
  end
  return t
end

return M

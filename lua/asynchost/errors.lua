--- Error classes of asynchost.
--
-- An error is a table whose metatable is its class.  `Class:is(err)` tells
-- whether `err` is of that class or a subclass; `tostring(err)` reads
-- "ClassName: message".  Fields: `message`, `traceback` (where it was
-- raised, set by the runtime), and whatever the raiser added (`code`,
-- `path`, `url`, `errors`...).
-- One set of classes per Lua state, even if this module is loaded again
-- (busted's insulation does that): the C core raises these very classes.
local registry = require("debug").getregistry()
if type(registry["asynchost.errors"]) == "table" then
  return registry["asynchost.errors"]
end

local M = {}

local Error = {}
Error.__index = Error
Error.__name = "Error"

function Error.__tostring(e)
  local cls = getmetatable(e)
  local name = rawget(cls, "__name") or "Error"
  if e.message == nil or e.message == "" then return name end
  return name .. ": " .. tostring(e.message)
end

local function new(cls, message, fields)
  local e = {}
  if fields ~= nil then
    for k, v in pairs(fields) do e[k] = v end
  end
  if type(message) == "table" and fields == nil then  -- Class{...}
    for k, v in pairs(message) do e[k] = v end
  else
    e.message = message
  end
  return setmetatable(e, cls)
end

--- Makes a subclass named `name` of this class.
function Error:extend(name)
  if type(name) ~= "string" then
    error("bad argument #1 to 'extend' (string expected, got "
          .. type(name) .. ")", 2)
  end
  local cls = {}
  for k, v in pairs(self) do
    if type(k) == "string" and k:sub(1, 2) == "__" then cls[k] = v end
  end
  cls.__index = cls
  cls.__name = name
  cls.super = self
  return setmetatable(cls, {__index = self, __call = new,
                            __tostring = function() return name end})
end

--- Is `v` an error of this class (or of a subclass)?
function Error:is(v)
  if type(v) ~= "table" then return false end
  local mt = getmetatable(v)
  while mt ~= nil do
    if mt == self then return true end
    mt = rawget(mt, "super")
  end
  return false
end

setmetatable(Error, {__call = new, __tostring = function() return "Error" end})

M.Error = Error
M.CancelledError = Error:extend("CancelledError")
M.TimeoutError = Error:extend("TimeoutError")
M.InvalidStateError = Error:extend("InvalidStateError")
M.DeadlockError = Error:extend("DeadlockError")
M.QueueEmpty = Error:extend("QueueEmpty")
M.QueueFull = Error:extend("QueueFull")
M.QueueShutDown = Error:extend("QueueShutDown")
M.TaskGroupError = Error:extend("TaskGroupError")
M.BrokenBarrierError = Error:extend("BrokenBarrierError")
M.RetryError = Error:extend("RetryError")  -- .attempts, .errors, .last
-- network: .code ("ECONNREFUSED"), .host, .port
M.ConnectionError = Error:extend("ConnectionError")
M.ConnectionRefusedError = M.ConnectionError:extend("ConnectionRefusedError")
M.ConnectionResetError = M.ConnectionError:extend("ConnectionResetError")
M.DNSError = M.ConnectionError:extend("DNSError")
M.TLSError = M.ConnectionError:extend("TLSError")
-- HTTP: .url; HTTPStatusError also .status and .response
M.TooManyRedirects = Error:extend("TooManyRedirects")
M.HTTPStatusError = Error:extend("HTTPStatusError")
-- streams: .partial (what arrived), .expected (bytes, or nil)
M.IncompleteReadError = Error:extend("IncompleteReadError")
M.LimitOverrunError = Error:extend("LimitOverrunError")
-- files and the OS: .code ("ENOENT"), .errno (the libuv number), .path
-- (and .dest for rename/copy); the message reads
-- "ENOENT: no such file or directory: data/x.txt"
M.OSError = Error:extend("OSError")
M.FileNotFoundError = M.OSError:extend("FileNotFoundError")      -- ENOENT
M.FileExistsError = M.OSError:extend("FileExistsError")          -- EEXIST
M.PermissionError = M.OSError:extend("PermissionError")          -- EACCES, EPERM
M.NotADirectoryError = M.OSError:extend("NotADirectoryError")    -- ENOTDIR
M.IsADirectoryError = M.OSError:extend("IsADirectoryError")      -- EISDIR
-- processes: ProcessError when `check` finds a non-zero exit (.code,
-- .signal, .stdout, .stderr, .cmd); a missing program is FileNotFoundError
M.ProcessError = Error:extend("ProcessError")
-- worker threads: an error raised in the worker (.traceback is the
-- worker's; .value the original error value when it was a plain value)
M.WorkerError = Error:extend("WorkerError")

--- "TaskGroupError: 2 tasks failed: x.lua:3: boom; y.lua:5: bang"
function M.TaskGroupError.__tostring(e)
  local parts = {}
  for i, err in ipairs(e.errors or {}) do parts[i] = tostring(err) end
  return (rawget(getmetatable(e), "__name") or "TaskGroupError") .. ": " ..
         (e.message or "") ..
         (#parts > 0 and (": " .. table.concat(parts, "; ")) or "")
end

registry["asynchost.errors"] = M
return M

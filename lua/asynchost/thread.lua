--- async.to_thread and async.executor (scaffold: being written)
local M = {}
return M

--- async.signal and async.wait_signal (scaffold: being written)
local M = {}
return M

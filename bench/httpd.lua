-- The HTTP server benchmark's asynchost side: serves bench/data.json's
-- bytes on /json (port from arg[1]) until killed.  Run by bench/httpd.sh.
local async = require "asynchost"
local f = assert(io.open(arg[2] or "bench/data.json", "rb"))
local body = f:read("a")
f:close()
local srv = async.http.server.new()
srv:route("GET", "/json", function(_, res)
  res:header("Content-Type", "application/json")
  res:send(body)
end)
local host, port = srv:listen("127.0.0.1", tonumber(arg[1]) or 18090)
print(("serving on http://%s:%d"):format(host, port))
io.stdout:flush()
async.sleep(math.huge)

-- W6 http-delay (asynchost): N = 1,000 GETs of W6_URL (a server that
-- answers after W6_MS = 100 ms), all started at once, each on its own
-- connection; every answer must be 200 with exactly {"ok":true,"ms":100}.
-- Timed: first request started to last body read.  Same workload as the
-- peers' w6_delay_*.  Prints one RESULT line; exits 1 if a check fails.
local async = require "asynchost"
local N = tonumber(arg and arg[1]) or 1000
local MS = tonumber(os.getenv("W6_MS")) or 100
local URL = os.getenv("W6_URL") or ("http://127.0.0.1:18081/delay?ms=" .. MS)
local EXPECT = ('{"ok":true,"ms":%d}'):format(MS)

local session = async.http.session{max_per_host = N, max_connections = N}
local ok_responses, bad = 0, 0

local function one()
  local r = session:get(URL)
  if r.status == 200 and r.body == EXPECT then ok_responses = ok_responses + 1
  else bad = bad + 1 end
end

local t0 = async.loop_time()
local tasks = {}
for i = 1, N do tasks[i] = async.spawn(one) end
async.gather(tasks)
local dt = async.loop_time() - t0
session:close()
local ok = (ok_responses == N and bad == 0 and dt >= MS / 1000) and 1 or 0
print(("RESULT w=W6 rt=asynchost n=%d c=%d ok_responses=%d ok=%d inner_s=%.6f "
       .. "metric=%.1f unit=ms_for_all"):format(N, N, ok_responses, ok, dt, dt * 1000))
if ok ~= 1 then os.exit(1) end

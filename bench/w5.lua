-- W5 http-client (asynchost): N = 10,000 GETs of the 1,024-byte JSON from
-- the local nginx (W5_URL), by C = 100 workers in one process sharing one
-- session (a pool of up to 100 kept-alive connections); every response
-- must be 200 with a 1,024-byte body.  Timed: first request to last body
-- (the session is created before).  Same workload as the peers'
-- w5_http_*.  Prints one RESULT line; exits 1 if a check fails.
local async = require "asynchost"
local N = tonumber(arg and arg[1]) or 10000
local C = tonumber(arg and arg[2]) or 100
local URL = os.getenv("W5_URL") or "http://127.0.0.1:18080/data.json"
local BODY_LEN = 1024

local session = async.http.session{max_per_host = C, max_connections = C}
local st = {next = 0, ok = 0, bad = 0, bytes = 0}

local function worker()
  while st.next < N do
    st.next = st.next + 1
    local r = session:get(URL)
    if r.status == 200 and #r.body == BODY_LEN then
      st.ok = st.ok + 1
      st.bytes = st.bytes + #r.body
    else
      st.bad = st.bad + 1
    end
  end
end

local t0 = async.loop_time()
local workers = {}
for i = 1, C do workers[i] = worker end
async.gather(workers)
local dt = async.loop_time() - t0
local conns = session:stats().connections
session:close()
local ok = (st.ok == N and st.bad == 0 and st.bytes == N * BODY_LEN) and 1 or 0
print(("RESULT w=W5 rt=asynchost n=%d c=%d ok_responses=%d bad=%d bytes=%d ok=%d "
       .. "inner_s=%.6f metric=%.0f unit=req/s conns=%d"):format(N, C, st.ok, st.bad,
       st.bytes, ok, dt, N / dt, conns))
if ok ~= 1 then os.exit(1) end

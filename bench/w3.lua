-- W3 queue (asynchost): 1,000,000 items through a Queue of maxsize 100, one
-- producer task, one consumer task; the consumer sums what it gets.  Same
-- workload as the peers' w3_queue_*.{py,js,lua} (definition: W3 in the
-- peers' bench README).  Timed: the queue already exists; from creating the
-- two tasks until both are gathered.  Prints one RESULT line; exits 1 if a
-- check fails.
local async = require "asynchost"
local now = async.loop_time
local N = tonumber(arg and arg[1]) or 1000000

local q = async.Queue(100)
local producer_done = false

local function producer()
  local put = q.put
  for i = 0, N - 1 do put(q, i) end
  producer_done = true
  return N
end

local function consumer()
  local get = q.get
  local count, sum = 0, 0
  for _ = 1, N do
    sum = sum + get(q)
    count = count + 1
  end
  return count, sum
end

local count, sum
local t0 = now()
local p = async.spawn(producer)
local c = async.spawn(consumer)
async.gather(p, c)
local dt = now() - t0
count, sum = c:result()

local expect = N * (N - 1) // 2
local ok = (count == N and sum == expect and producer_done) and 1 or 0
print(string.format(
  "RESULT w=W3 rt=asynchost n=%d count=%d sum=%d expect=%d ok=%d inner_s=%.6f metric=%.0f unit=items/s",
  N, count, sum, expect, ok, dt, N / dt))
if ok ~= 1 then os.exit(1) end

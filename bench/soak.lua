--- The soak: minutes of task churn and HTTP traffic in one process, with
-- its memory and fds sampled; fails (exit 1) if they grow after warm-up.
--
--   asynchost bench/soak.lua                 # 5 minutes
--   asynchost bench/soak.lua --seconds 25    # or SOAK_SECONDS=25
--   options: --minutes M, --seconds S, --warmup S, --interval S,
--            --workers churn,timeouts,sync,http,net (all by default;
--            "leak" leaks on purpose, to see the soak fail)
--
-- Workers, each in a loop of short rounds until the time is up:
--   churn     spawns 50 tasks, cancels half of them, gathers the rest;
--             task groups with a failing child
--   timeouts  wait_for and timeout() that expire, shield, call_later
--   sync      queues (FIFO, LIFO, priority) with producers, consumers,
--             join and shutdown; semaphores, locks, events, conditions,
--             barriers; map and retry
--   http      a session per round against the in-process test server:
--             GET, POST, streams, bytes, a transfer cancelled half-way,
--             the fault modes (drop, reset, garbage, stall with a timeout)
--   net       raw TCP requests to the test server
-- Every few seconds the workers park between rounds (so no connection is
-- in flight), a full GC runs, and a sample is taken: RSS (/proc/self/
-- statm), the Lua heap (collectgarbage "count"), open fds (/proc/self/fd).
-- After the warm-up, the median of the last third of the samples must not
-- exceed the median of the first third by more than the tolerance:
--   RSS       max(6 MiB, 10 %): malloc and mimalloc keep freed pages and
--             give them back late, in whole segments: from one sample to
--             the next RSS moves by up to ~4 MiB that are not leaks (the
--             medians of the thirds stay within 1 MiB); a leak of 100
--             bytes per round (~3,000 rounds a second) adds 18 MiB a
--             minute
--   Lua heap  max(64 KiB, 5 %): measured right after a full collection,
--             so only live objects count, and the samples themselves are
--             stored in columns allocated up front; it stays flat to the
--             byte but for the connections a sample catches closing
--   fds       0: at the sampling point nothing is in flight (the workers
--             are parked, 100 ms given to the last closes), so the count
--             is exact
-- (Under AddressSanitizer RSS is shown but not judged: freed memory waits
-- in its quarantine.)  Errors that no worker expects (any but the classes
-- its faults raise) fail the soak too.
local async = require "asynchost"
local ts = require "asynchost.testserver"

local function usage(msg)
  io.stderr:write("soak: ", msg, "\nusage: asynchost bench/soak.lua ",
                  "[--minutes M | --seconds S] [--warmup S] [--interval S] "
                  .. "[--workers a,b]\n")
  os.exit(2)
end

local opts = {seconds = tonumber(os.getenv("SOAK_SECONDS") or "") or 300}
do
  local args, i = arg or {}, 1
  while args[i] do
    local name, value = args[i], tonumber(args[i + 1] or "")
    if name == "--workers" then value = 1 end
    if not value or value <= 0 then usage("bad option " .. name) end
    if name == "--minutes" then opts.seconds = value * 60
    elseif name == "--seconds" then opts.seconds = value
    elseif name == "--warmup" then opts.warmup = value
    elseif name == "--interval" then opts.interval = value
    elseif name == "--workers" then opts.workers = args[i + 1]
    else usage("unknown option " .. name) end
    i = i + 2
  end
end
opts.warmup = opts.warmup or math.min(60, opts.seconds / 4)
opts.interval = opts.interval or math.max(1, math.min(5, opts.seconds / 60))

---------------------------------------------------------------------------
-- Measures

local lfs do
  local ok, m = pcall(require, "lfs")
  lfs = ok and m or nil
end

local PAGE = 4096
local function rss()  -- bytes
  local f = assert(io.open("/proc/self/statm"))
  local pages = f:read("a"):match("^%d+%s+(%d+)")
  f:close()
  return tonumber(pages) * PAGE
end

local function nfds()
  if lfs then
    local n = 0
    for _ in lfs.dir("/proc/self/fd") do n = n + 1 end
    return n - 3  -- ., .. and the directory being read
  end
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("a"):match("^%d+")
  f:close()
  local p = assert(io.popen("ls /proc/" .. pid .. "/fd | wc -l"))
  local n = tonumber(p:read("a"))
  p:close()
  return n - 1  -- the pipe of the popen
end

---------------------------------------------------------------------------
-- Workers

local counts = {}  -- [kind] = number of operations
local unexpected = {}  -- errors no worker expected

local function count(kind, n)
  counts[kind] = (counts[kind] or 0) + (n or 1)
end

local function oops(where, err)
  if #unexpected < 20 then
    unexpected[#unexpected + 1] = where .. ": " .. tostring(err)
  else
    unexpected.more = (unexpected.more or 0) + 1
  end
end

-- Expects fn() to raise an error of class cls.
local function expect(cls, where, fn, ...)
  local ok, err = pcall(fn, ...)
  if ok then oops(where, "no error")
  elseif not cls:is(err) then oops(where, err) end
end

local gate = {paused = false, parked = 0, resume = async.Event()}

local function checkpoint()
  if gate.paused then
    gate.parked = gate.parked + 1
    gate.resume:wait()
    gate.parked = gate.parked - 1
  end
end

local rounds = {}

function rounds.churn()
  local ts_ = {}
  for i = 1, 50 do
    ts_[i] = async.spawn(function(d) async.sleep(d) return d end,
                         (i % 5) * 0.001)
  end
  for i = 2, 50, 2 do ts_[i]:cancel() end
  local r = async.gather(ts_, {return_exceptions = true})
  for i = 1, 50 do  -- the even ones were cancelled before they ran
    if (i % 2 == 0 and not async.CancelledError:is(r[i])) or
       (i % 2 == 1 and r[i] ~= (i % 5) * 0.001) then
      oops("churn", r[i])
    end
  end
  count("tasks", 50)
  -- a task group whose child fails: the others are cancelled
  expect(async.TaskGroupError, "task group", function()
    local tg <close> = async.task_group()
    for i = 1, 5 do tg:spawn(function() async.sleep(0.01 * i) end) end
    tg:spawn(function() async.sleep(0.002) error("boom") end)
  end)
  count("tasks", 6)
end

function rounds.timeouts()
  expect(async.TimeoutError, "wait_for", async.wait_for,
         function() async.sleep(1) end, 0.002)
  expect(async.TimeoutError, "timeout", async.timeout, 0.002,
         function() async.sleep(1) end)
  local inner = async.spawn(function() async.sleep(0.005) return 1 end)
  expect(async.TimeoutError, "shield", async.wait_for, function()
    return async.shield(inner)
  end, 0.001)
  if async.await(inner) ~= 1 then oops("shield", "inner lost") end
  local f = async.Future()
  async.call_later(0.001, function() f:set_result("ok") end)
  if async.await(f) ~= "ok" then oops("call_later", "no result") end
  count("timeouts", 4)
end

function rounds.sync()
  for _, make in ipairs{async.Queue, async.LifoQueue, async.PriorityQueue} do
    local q = make(10)
    local got = 0
    local consumers = {}
    for c = 1, 2 do
      consumers[c] = async.spawn(function()
        while true do
          local ok = pcall(q.get, q)
          if not ok then return end  -- shut down
          got = got + 1
          q:task_done()
        end
      end)
    end
    for i = 1, 100 do q:put(i) end
    q:join()
    q:shutdown()
    for _, c in ipairs(consumers) do async.await(c) end
    if got ~= 100 then oops("queue", got .. " items of 100") end
    count("items", 100)
  end
  local sem, lock, ev = async.Semaphore(3), async.Lock(), async.Event()
  local cond, barrier = async.Condition(), async.Barrier(4)
  local ready = 0
  local r = async.gather(function()
    ev:wait()
    local _ <close> = cond:acquire()
    cond:wait_for(function() return ready >= 3 end)
    return barrier:wait()
  end, function()
    for _ = 1, 3 do
      local _ <close> = sem:acquire()
      local _ <close> = lock:acquire()
      async.sleep(0)
      local _ <close> = cond:acquire()
      ready = ready + 1
      cond:notify_all()
    end
    return barrier:wait()
  end, function()
    async.sleep(0.001)
    ev:set()
    return barrier:wait()
  end, function() return barrier:wait() end)
  if r.n ~= 4 then oops("sync", "gather lost results") end
  local m = async.map(function(x) async.sleep(0) return x * 2 end,
                      {1, 2, 3, 4, 5, 6, 7, 8}, {concurrency = 3})
  if m[8] ~= 16 then oops("map", "wrong result") end
  local n = 0
  local v = async.retry(function()
    n = n + 1
    if n < 3 then error("not yet") end
    return n
  end, {attempts = 5, delay = 0.001})
  if v ~= 3 then oops("retry", "wrong result") end
  count("sync", 1)
end

local srv  -- the test server

function rounds.http()
  local s <close> = async.http.session{base_url = srv.url, timeout = 5}
  local function get(path, o)
    local ok, r = pcall(s.get, s, path, o)
    if not ok then oops("GET " .. path, r) return nil end
    count("requests")
    return r
  end
  local r = get("/get", {params = {q = "soak"}})
  if r and r:json().args.q ~= "soak" then oops("/get", "bad echo") end
  r = get("/bytes/2048")
  if r and #r.body ~= 2048 then oops("/bytes", #r.body) end
  get("/stream/3")
  get("/json")
  local ok, p = pcall(s.post, s, "/post", {json = {a = 1}})
  if not ok then oops("POST", p) else count("requests") end
  r = get("/status/503")
  if r and r.status ~= 503 then oops("/status/503", r.status) end
  -- cancelled half-way: the transfer is dropped, the pool stays sound
  expect(async.TimeoutError, "cancel", async.wait_for, function()
    return s:get("/delay/0.03")
  end, 0.01)
  -- the faults
  for _, mode in ipairs{"drop", "reset", "empty", "bad-chunk"} do
    expect(async.ConnectionError, "fault " .. mode, s.get, s,
           "/fault/" .. mode)
    count("faults")
  end
  expect(async.ConnectionError, "fault garbage", s.get, s, "/fault/garbage")
  expect(async.TimeoutError, "fault stall", s.get, s, "/fault/stall",
         {timeout = 0.05})
  r = get("/fault/length-short")
  if r and #r.body ~= 50 then oops("length-short", #r.body) end
  count("faults", 3)
  -- streamed, read in chunks
  ok, r = pcall(s.get, s, "/bytes/100000", {stream = true})
  if ok then
    local n = 0
    for chunk in r:iter_chunks() do n = n + #chunk end
    if n ~= 100000 then oops("stream", n) end
    count("requests")
  else
    oops("stream", r)
  end
end

function rounds.net()
  local c <close> = async.net.connect("127.0.0.1", srv.port, {timeout = 5})
  c:settimeout(5)
  c:write("GET /uuid HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")
  local body = c:read()
  if not body:find("^HTTP/1.1 200") then oops("net", body:sub(1, 40)) end
  count("connections")
end

-- A leak on purpose (--workers churn,leak), to see the soak fail: 10 KiB
-- of Lua strings and one fd every round.
local leaked = {}
function rounds.leak()
  leaked[#leaked + 1] = ("leak"):rep(2560) .. #leaked
  leaked[#leaked + 1] = io.open("/dev/null")
  async.sleep(0.1)
end

local function worker(name, deadline)
  local round = rounds[name]
  while async.loop_time() < deadline do
    checkpoint()
    local ok, err = pcall(round)
    if not ok then oops(name, err) end
    count("rounds")
  end
end

---------------------------------------------------------------------------
-- Sampling and verdict

local function median(list, i, j)
  local t = {}
  for k = i, j do t[#t + 1] = list[k] end
  table.sort(t)
  local n = #t
  if n == 0 then return 0 end
  if n % 2 == 1 then return t[(n + 1) // 2] end
  return (t[n // 2] + t[n // 2 + 1]) / 2
end

-- The samples, in columns allocated up front: the Lua heap they are part
-- of must not grow as they are taken.
local S = {}

local function newsamples(n)
  for _, k in ipairs{"t", "rss", "lua", "fds", "ops"} do
    S[k] = {}
    for i = 1, n do S[k][i] = 0 end
  end
  S.n, S.max = 0, n
end

-- Parks the workers, takes sample number S.n + 1, lets them go on.
local function sample(t0, nworkers)
  gate.resume:clear()
  gate.paused = true
  local limit = async.loop_time() + 10
  while gate.parked < nworkers and async.loop_time() < limit do
    async.sleep(0.005)
  end
  async.sleep(0.1)  -- the server's side of the last connections closes
                    -- (the handler of the cancelled /delay/0.03 too)
  local k = S.n + 1
  if k <= S.max then
    collectgarbage()
    collectgarbage()
    local t, lua = async.loop_time() - t0, collectgarbage("count") * 1024
    S.t[k], S.lua[k], S.rss[k], S.fds[k] = t, lua, rss(), nfds()
    S.ops[k], S.n = counts.rounds or 0, k
  end
  gate.paused = false
  gate.resume:set()
  return k
end

local MiB = 1024 * 1024

-- Under AddressSanitizer, freed memory waits in a quarantine (256 MiB by
-- default) before reuse: RSS grows by design, so it is shown, not judged.
local function asan()
  local f = io.open("/proc/self/maps")
  if not f then return false end
  local maps = f:read("a")
  f:close()
  return maps:find("libasan", 1, true) ~= nil
end

local function printsample(k, note)
  io.write(("%8.1f %10.2f %10.1f %6d %10d %s\n"):format(S.t[k],
           S.rss[k] / MiB, S.lua[k] / 1024, S.fds[k], S.ops[k], note))
  io.flush()
end

local function main()
  local t0 = async.loop_time()
  local deadline = t0 + opts.seconds
  newsamples(math.ceil(opts.seconds / opts.interval) + 3)
  srv = ts.start{}
  io.write(("soak: %g s (warm-up %g s, a sample every %g s), test server"
            .. " %s\n"):format(opts.seconds, opts.warmup, opts.interval,
                               srv.url))
  io.write(("%8s %10s %10s %6s %10s %s\n"):format("t (s)", "RSS (MiB)",
           "Lua (KiB)", "fds", "rounds", ""))
  local names = {}
  for name in (opts.workers or "churn,timeouts,sync,http,net"):gmatch("[^,]+")
  do
    if not rounds[name] then usage("no worker " .. name) end
    names[#names + 1] = name
  end
  local workers = {}
  for i, name in ipairs(names) do
    workers[i] = async.spawn(worker, name, deadline)
  end
  local nextat, firstpost = t0, nil
  while true do
    local now = async.loop_time()
    if now >= deadline then break end
    if now >= nextat then
      local k = sample(t0, #workers)
      local warm = S.t[k] < opts.warmup
      if not warm then firstpost = firstpost or k end
      printsample(k, warm and "warm-up" or "")
      nextat = nextat + opts.interval
    end
    async.sleep(math.max(0, math.min(nextat, deadline) - async.loop_time()))
  end
  for _, w in ipairs(workers) do
    local ok, err = pcall(async.await, w)
    if not ok then oops("worker", err) end
  end
  printsample(sample(t0, 0), "end")
  srv:close()

  -- the verdict, on the samples after the warm-up
  local post = {rss = {}, lua = {}, fds = {}}
  for k = firstpost or S.n + 1, S.n do
    post.rss[#post.rss + 1] = S.rss[k]
    post.lua[#post.lua + 1] = S.lua[k]
    post.fds[#post.fds + 1] = S.fds[k]
  end
  local n = #post.rss
  local failures = {}
  local parts = {}
  if n < 6 then
    failures[#failures + 1] = ("only %d samples after the warm-up (6 "
                               .. "needed): run longer"):format(n)
  else
    local third = n // 3
    for _, m in ipairs{{"rss", "RSS", 6 * MiB, MiB, "MiB", 0.10},
                       {"lua", "Lua heap", 64 * 1024, 1024, "KiB", 0.05},
                       {"fds", "fds", 0, 1, ""}} do
      local key, label, floor, unit, uname, share = table.unpack(m)
      local first = median(post[key], 1, third)
      local final = median(post[key], n - third + 1, n)
      local tol = key == "fds" and 0 or math.max(floor, first * share)
      local grew = final - first
      parts[#parts + 1] = ("%s %.1f -> %.1f %s (%+.1f, tolerance %.1f)")
                          :format(label, first / unit, final / unit, uname,
                                  grew / unit, tol / unit)
      if key == "rss" and asan() then
        parts[#parts] = parts[#parts]:gsub("tolerance [%d.]+", "not judged "
                                           .. "under AddressSanitizer")
      elseif grew > tol then
        failures[#failures + 1] = ("%s grew by %.1f %s after the warm-up "
                                   .. "(tolerance %.1f)"):format(label,
                                   grew / unit, uname, tol / unit)
      end
    end
  end
  local kinds = {}
  for k, v in pairs(counts) do kinds[#kinds + 1] = k .. " " .. v end
  table.sort(kinds)
  io.write("soak: ", table.concat(kinds, ", "), "\n")
  io.write("soak: ", table.concat(parts, "; "), "\n")
  for _, e in ipairs(unexpected) do
    failures[#failures + 1] = "unexpected error: " .. e
  end
  if unexpected.more then
    failures[#failures + 1] = unexpected.more .. " more unexpected errors"
  end
  if #failures > 0 then
    for _, f in ipairs(failures) do io.write("soak: FAIL: ", f, "\n") end
    io.flush()
    return false
  end
  io.write(("soak: PASS (%.1f minutes, %d samples after the warm-up)\n")
           :format((async.loop_time() - t0) / 60, n))
  io.flush()
  return true
end

local ok
if async.current_task() then ok = main() else ok = async.run(main) end
if not ok then os.exit(1) end

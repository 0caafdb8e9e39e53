--- Lab 1, exercise 8: best practices (solution).
--
-- Run it:  asynchost solutions/lab1/best_practices.lua
-- Faster:  LAB_TIME_SCALE=0.1 asynchost solutions/lab1/best_practices.lua
--
-- The habits that keep async code correct and fast: resources in <close>
-- variables, one HTTP session reused for many requests, retries with
-- exponential backoff on the errors worth retrying, a semaphore around
-- what must not run too many at once, a queue between producers and
-- consumers with a clear end, tasks that are owned and shut down, and a
-- log line that says which task did what.
local async = require "asynchost"
local testserver = require "asynchost.testserver"

local M = {}

-- Every delay of this file is in "lab seconds", multiplied by time_scale
-- (LAB_TIME_SCALE, default 1; the specs set the field to run faster).
M.time_scale = tonumber(os.getenv("LAB_TIME_SCALE")) or 1

local function sleep(s) async.sleep(s * M.time_scale) end

---------------------------------------------------------------------------
-- Logging: one line per event, with the time and the task.

M.logs = {}
M.quiet = false  -- true: keep the lines in M.logs without printing them

function M.log(level, fmt, ...)
  local task = async.current_task()
  local line = ("%8.3f %-5s [%s] %s"):format(async.loop_time(), level,
               task and task:get_name() or "-", fmt:format(...))
  M.logs[#M.logs + 1] = line
  if not M.quiet then print(line) end
end

---------------------------------------------------------------------------
-- Resources

local Managed = {}
Managed.__index = Managed

--- An HTTP session (keep-alive connections, pooled) for `local s <close> =
-- managed_http_session{...}`: s:get(url, opts) and s:request(method, url,
-- opts) as a session's; closing it closes its connections, once.
-- opts: base_url, timeout (default 10 s), headers.
function M.managed_http_session(opts)
  opts = opts or {}
  local session = async.http.session{base_url = opts.base_url,
    timeout = opts.timeout or 10, headers = opts.headers,
    user_agent = "lab1-best-practices"}
  M.log("INFO", "session opened")
  return setmetatable({session = session}, Managed)
end

function Managed:get(url, opts) return self.session:get(url, opts) end

function Managed:request(method, url, opts)
  return self.session:request(method, url, opts)
end

function Managed:close()
  if self.closed then return end
  self.closed = true
  self.session:close()
  M.log("INFO", "session closed")
end
Managed.__close = Managed.close

--- GETs `url` with `session`, retrying connection errors, timeouts and
-- 5xx answers with exponential backoff (opts.attempts, default 3;
-- opts.delay before the first retry, default 0.2 s, doubled each time).
-- Returns the body; a 4xx answer is raised at once (HTTPStatusError).
function M.fetch_with_retry(session, url, opts)
  opts = opts or {}
  return async.retry(function(attempt)
    local r = session:get(url)
    r:raise_for_status()
    if attempt > 1 then
      M.log("INFO", "%s worked at attempt %d", url, attempt)
    end
    return r.body
  end, {
    attempts = opts.attempts or 3,
    delay = (opts.delay or 0.2) * M.time_scale,
    backoff = 2,
    retry_on = function(err)
      if async.HTTPStatusError:is(err) then return err.status >= 500 end
      return async.ConnectionError:is(err) or async.TimeoutError:is(err)
    end,
    on_retry = function(attempt, err, wait)
      M.log("WARN", "attempt %d failed: %s; retrying in %.2f s", attempt,
            tostring(err), wait)
    end,
  })
end

---------------------------------------------------------------------------
-- Limits

--- How many rate_limited_task bodies run now, and the most at once.
M.active, M.peak = 0, 0

--- Does 0.2 s of work while holding a permit of `semaphore`.
function M.rate_limited_task(semaphore, name)
  local _ <close> = semaphore:acquire()
  M.active = M.active + 1
  M.peak = math.max(M.peak, M.active)
  local ok, err = pcall(sleep, 0.2)
  M.active = M.active - 1
  if not ok then error(err, 0) end
  return name .. " done"
end

---------------------------------------------------------------------------
-- Producer and consumers

--- Puts item-1 .. item-n on `queue` (0.05 s apart), then shuts the queue
-- down: the consumers take what is left and stop.
function M.produce_items(queue, n)
  for i = 1, n do
    sleep(0.05)
    queue:put("item-" .. i)
    M.log("INFO", "produced item-%d", i)
  end
  queue:shutdown()
end

--- Takes items from `queue` until it is shut down and empty, handling each
-- in 0.1 s; returns the items it handled.
function M.consume_items(queue, id)
  local got = {}
  while true do
    local ok, item = pcall(queue.get, queue)
    if not ok then
      if async.QueueShutDown:is(item) then break end
      error(item, 0)
    end
    sleep(0.1)
    got[#got + 1] = item
    M.log("INFO", "consumer %d handled %s", id, item)
    queue:task_done()
  end
  return got
end

---------------------------------------------------------------------------
-- Task lifecycle: a manager that owns its tasks

local Manager = {}
Manager.__index = Manager
M.TaskManager = Manager

--- `local tm <close> = TaskManager.new()`: leaving the scope shuts it
-- down (cancels what still runs and waits for it).
function Manager.new()
  return setmetatable({tasks = {}}, Manager)
end

--- Starts fn(...) as a task named `name`, owned by the manager. Its error,
-- if any, is logged when it ends.
function Manager:spawn(name, fn, ...)
  local t = async.spawn(fn, ...)
  t:set_name(name)
  self.tasks[#self.tasks + 1] = t
  t:add_done_callback(function(task)
    if not task:cancelled() and task:exception() ~= nil then
      M.log("ERROR", "task %s failed: %s", name, tostring(task:exception()))
    end
  end)
  return t
end

--- {name = state} of every task: running, done, failed or cancelled.
function Manager:status()
  local s = {}
  for _, t in ipairs(self.tasks) do
    s[t:get_name()] = not t:done() and "running" or t:cancelled()
      and "cancelled" or (t:exception() ~= nil and "failed" or "done")
  end
  return s
end

--- Gives the tasks `grace` seconds (default 0) to finish, then cancels the
-- others and waits until all have ended.
function Manager:shutdown(grace)
  local pending = {}
  for _, t in ipairs(self.tasks) do
    if not t:done() then pending[#pending + 1] = t end
  end
  if #pending == 0 then return end
  if grace and grace > 0 then
    local _
    _, pending = async.wait(pending, {timeout = grace * M.time_scale})
  end
  for _, t in ipairs(pending) do t:cancel("shutting down") end
  if #pending > 0 then async.wait(pending) end
  M.log("INFO", "task manager shut down (%d cancelled)", #pending)
end
Manager.__close = function(self) self:shutdown() end

function M.main()
  local srv <close> = testserver.start{seed = 3}  -- /flaky fails twice first
  do
    local session <close> = M.managed_http_session{base_url = srv.url}
    local data = M.fetch_with_retry(session, "/json")
    print(("Fetched data: %s..."):format(data:sub(1, 60):gsub("%s+", " ")))
    -- /flaky?rate=0.5 answers 503 to half the requests: retries help
    local body = M.fetch_with_retry(session, "/flaky?rate=0.5",
                                    {attempts = 5, delay = 0.1})
    print("Flaky endpoint: " .. body:gsub("%s+", " "))
  end

  local semaphore = async.Semaphore(3)
  local tasks = {}
  for i = 1, 10 do
    tasks[i] = async.spawn(M.rate_limited_task, semaphore, "task_" .. (i - 1))
  end
  local t0 = async.loop_time()
  local results = async.gather(tasks)
  print(("Rate limited tasks completed: %d in %.2f s (at most %d at once)")
        :format(results.n, async.loop_time() - t0, M.peak))

  local queue = async.Queue()
  local producer = async.spawn(M.produce_items, queue, 5)
  producer:set_name("producer")
  local consumers = {}
  for i = 1, 3 do
    consumers[i] = async.spawn(M.consume_items, queue, i)
    consumers[i]:set_name("consumer-" .. i)
  end
  async.gather(producer, table.unpack(consumers))
  print("Producer-consumer pattern completed")

  do
    local tm <close> = M.TaskManager.new()
    tm:spawn("quick", sleep, 0.1)
    tm:spawn("slow", sleep, 10)
    tm:spawn("broken", function() sleep(0.05); error("disk full", 0) end)
    sleep(0.2)
    local st = tm:status()
    print(("Tasks: quick %s, slow %s, broken %s"):format(st.quick, st.slow,
          st.broken))
  end  -- shuts the manager down: "slow" is cancelled
end

-- Run as a script (not when a spec loads the file): the demo.
if arg and arg[0] and arg[0]:match("best_practices%.lua$") then
  M.main()
end
return M

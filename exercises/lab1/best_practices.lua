--- Lab 1, exercise 8: best practices (exercise).
--
-- Fill in every function that raises a TODO error: exercises/lab1/README.md
-- says what each must do. Check your work with
--   asynchost lab check lab1/best_practices
-- or LAB_DIR=exercises busted --lua=asynchost --filter='lab1/best_practices' spec/labs/lab1_spec.lua
--
-- Run it:  asynchost exercises/lab1/best_practices.lua
-- Faster:  LAB_TIME_SCALE=0.1 asynchost exercises/lab1/best_practices.lua
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

-- Each unfinished function raises this: the message names the function
-- and where the instructions are.
local function todo(name)
  error(("TODO(ex8): implement %s — see exercises/lab1/README.md")
        :format(name), 2)
end

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
  todo("managed_http_session")
end

function Managed:get(url, opts)
  todo("managed session:get")
end

function Managed:request(method, url, opts)
  todo("managed session:request")
end

function Managed:close()
  todo("managed session:close")
end
Managed.__close = Managed.close

--- GETs `url` with `session`, retrying connection errors, timeouts and
-- 5xx answers with exponential backoff (opts.attempts, default 3;
-- opts.delay before the first retry, default 0.2 s, doubled each time).
-- Returns the body; a 4xx answer is raised at once (HTTPStatusError).
function M.fetch_with_retry(session, url, opts)
  todo("fetch_with_retry")
end

---------------------------------------------------------------------------
-- Limits

--- How many rate_limited_task bodies run now, and the most at once.
M.active, M.peak = 0, 0

--- Does 0.2 s of work while holding a permit of `semaphore`.
function M.rate_limited_task(semaphore, name)
  todo("rate_limited_task")
end

---------------------------------------------------------------------------
-- Producer and consumers

--- Puts item-1 .. item-n on `queue` (0.05 s apart), then shuts the queue
-- down: the consumers take what is left and stop.
function M.produce_items(queue, n)
  todo("produce_items")
end

--- Takes items from `queue` until it is shut down and empty, handling each
-- in 0.1 s; returns the items it handled.
function M.consume_items(queue, id)
  todo("consume_items")
end

---------------------------------------------------------------------------
-- Task lifecycle: a manager that owns its tasks

local Manager = {}
Manager.__index = Manager
M.TaskManager = Manager

--- `local tm <close> = TaskManager.new()`: leaving the scope shuts it
-- down (cancels what still runs and waits for it).
function Manager.new()
  todo("TaskManager.new")
end

--- Starts fn(...) as a task named `name`, owned by the manager. Its error,
-- if any, is logged when it ends.
function Manager:spawn(name, fn, ...)
  todo("TaskManager:spawn")
end

--- {name = state} of every task: running, done, failed or cancelled.
function Manager:status()
  todo("TaskManager:status")
end

--- Gives the tasks `grace` seconds (default 0) to finish, then cancels the
-- others and waits until all have ended.
function Manager:shutdown(grace)
  todo("TaskManager:shutdown")
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

-- Bad input everywhere: every public function and method, called with
-- wrong types, missing arguments, negative and huge numbers, NaN and inf,
-- a wrong self, and on closed objects.  Each call must end with a clear
-- "bad argument #i to 'name'" (or a documented error, or an error of a
-- class): never a crash, a hang, or an error from inside the library.
--
-- The tables below drive it; to cover a new function, add an entry to
-- FUNCS (plain functions), METHODS (objects) or CLOSED (used-up objects).
local async = require "asynchost"
require "asynchost.busted"

local NAN, INF = 0 / 0, math.huge
local F = function() end
local BIG = 2 ^ 70  -- a float with no integer representation

-- {======================================================
-- kinds of parameters: the values each must refuse
-- =======================================================

local KINDS = {
  any = {},
  number = {"abc", {}, true, F},
  delay = {"abc", {}, true, F, NAN, -1, -INF},  -- seconds >= 0
  count = {"abc", {}, true, 1.5, NAN, -1, INF, -INF, BIG},  -- integer >= 0
  posint = {"abc", {}, true, 1.5, NAN, 0, -1, INF, BIG},
  integer = {"abc", {}, true, 1.5, NAN, INF, BIG},
  port = {"abc", {}, 1.5, NAN, -1, 65536, INF},
  string = {{}, true, F},
  sep = {{}, true, ""},                          -- a non-empty string
  host = {{}, true, F, ""},
  func = {"abc", {}, 1, true},
  table = {"abc", 1, true, F},                   -- options, when given
  awaitable = {"abc", 1, {}, true},
  gathered = {"abc", 1, true},                   -- or an array of them
  list = {"abc", 1, true, {}, {1}},              -- an array of tasks
  tasklist = {"abc", 1, true, {1}},              -- one that may be empty
  lock = {"abc", 1, {}, true},
  bool = {},                                     -- any value is a truth
  mode = {{}, true, "zz", "rw"},                 -- of fs.open
  cmd = {{}, true, F, ""},                       -- a command to run
  work = {1, {}, true, print},                   -- for to_thread
  signal = {{}, true, "SIGNOPE", 0, -1, 1.5, 100000, "SIGKILL"},
}

local function show(v)
  if v ~= v then return "nan" end
  if v == INF then return "inf" end
  if v == -INF then return "-inf" end
  if v == BIG then return "2^70" end
  if type(v) == "string" then return ("%q"):format(v) end
  if type(v) == "table" then return "{}" end
  if type(v) == "function" then return "function" end
  return tostring(v)
end

-- {======================================================
-- the functions: call expression, parameters {kind, good value,
-- optional}, and for option tables, the kinds of their fields
-- =======================================================

-- A good value made afresh for each call (a task, a list of tasks).
local MAKERS = {}
local function fresh(fn)
  local t = {}
  MAKERS[t] = fn
  return t
end
local task = fresh(function() return async.spawn(F) end)
local tasks = fresh(function() return {async.spawn(F)} end)
local function opt(kind, good, fields)
  return {kind, good, optional = true, fields = fields}
end
local function req(kind, good, fields)
  return {kind, good, fields = fields}
end

local FUNCS = {
  {"async.spawn", req("func", F)},
  {"async.create_task", req("func", F)},
  {"async.sleep", req("delay", 0)},
  {"async.await", req("awaitable", task)},
  {"async.run", req("func", F)},
  {"async.call_later", req("delay", 0), req("func", F)},
  {"async.dump_tasks", opt("string", "t")},
  {"async.gather", opt("gathered", task)},  -- gather() is an empty gather
  {"async.wait", req("list", tasks), opt("table", nil,
    {timeout = "delay", return_when = {"X", 1, {}}})},
  {"async.as_completed", req("tasklist", tasks), opt("table", nil,
    {timeout = "delay"})},
  -- nil seconds: no time limit
  {"async.wait_for", req("awaitable", task), opt("delay", 1)},
  {"async.timeout", opt("delay", 1), req("func", F)},
  {"async.shield", req("awaitable", task)},
  {"async.Semaphore", opt("count", 1)},
  {"async.BoundedSemaphore", opt("count", 1)},
  {"async.Condition", opt("lock", nil)},
  {"async.Barrier", req("posint", 2)},
  {"async.Queue", opt("integer", 1)},
  {"async.LifoQueue", opt("integer", 1)},
  {"async.PriorityQueue", opt("integer", 1)},
  {"async.retry", req("func", F), opt("table", nil,
    {attempts = "posint", delay = "delay", backoff = "delay",
     max_delay = "delay", jitter = {"abc", -1, 2, NAN},
     retry_on = {"abc", 1, {1}}})},
  {"async.RateLimiter", req("table", {rate = 1}, {rate = {"abc", 0, -1, NAN},
    per = {"abc", 0, -1, NAN}, burst = {"abc", 0, NAN}})},
  {"async.map", req("func", F), req("table", {}), opt("table", nil,
    {concurrency = "posint", on_progress = {"abc", 1}})},
  {"async.generator", req("func", F)},
  {"async.net.connect", req("host", "127.0.0.1"), req("port", 1),
   opt("table", nil, {timeout = "delay"})},
  {"async.net.listen", req("func", F), opt("host", "127.0.0.1"),
   opt("port", 0), opt("table", nil, {backlog = "integer"})},
  {"async.http.session", opt("table", nil,
    {base_url = "string", headers = "table", timeout = "delay",
     connect_timeout = "delay", max_connections = "count",
     max_per_host = "count", max_redirects = "count",
     user_agent = "string"})},
  {"async.http.get", req("string", "http://127.0.0.1:1/"),
   opt("table", nil, {timeout = "delay", params = "table",
     headers = "table", body = "string", form = "table",
     connect_timeout = "delay", max_redirects = "count"})},
  {"async.http.post", req("string", "http://127.0.0.1:1/"), opt("table")},
  {"async.http.request", req("string", "GET"),
   req("string", "http://127.0.0.1:1/"), opt("table")},
  {"async.http.server.new", opt("table", nil,
    {max_header = "count", max_body = "count", request_timeout = "delay",
     idle_timeout = "delay", backlog = "integer"})},
}

-- The modules of the other runtime issues, as far as they exist.
local NOWHERE = "/nonexistent-asynchost/x"
local function addmodule(name, entries)
  local ok = pcall(function()
    local mod = async[name]
    return type(mod) == "table" or type(mod) == "function"
  end)
  if not ok then return end
  for _, e in ipairs(entries) do
    local fname = e[1]:match("[%w_]+$")
    local mod = e[1]:match("^async%.(%w+)%.") and async[name]
                or async
    if type(mod) == "table" and mod[fname] ~= nil then
      FUNCS[#FUNCS + 1] = e
    end
  end
end
addmodule("fs", {
  {"async.fs.read_file", req("string", NOWHERE)},
  {"async.fs.write_file", req("string", NOWHERE), req("string", "d"),
   opt("table")},
  {"async.fs.append_file", req("string", NOWHERE), req("string", "d")},
  {"async.fs.open", req("string", NOWHERE), opt("mode", "r")},
  {"async.fs.stat", req("string", NOWHERE)},
  {"async.fs.lstat", req("string", NOWHERE)},
  {"async.fs.exists", req("string", NOWHERE)},
  {"async.fs.remove", req("string", NOWHERE)},
  {"async.fs.rename", req("string", NOWHERE), req("string", NOWHERE)},
  {"async.fs.copy", req("string", NOWHERE), req("string", NOWHERE),
   opt("table")},
  {"async.fs.listdir", req("string", NOWHERE)},
  {"async.fs.scandir", req("string", NOWHERE)},
  {"async.fs.mkdir", req("string", NOWHERE), opt("table", nil,
    {mode = {"abc", -1, 4096, 1.5, NAN}})},
  {"async.fs.rmtree", req("string", NOWHERE)},
  {"async.fs.lines", req("string", NOWHERE)},
  {"async.fs.watch", req("string", NOWHERE), opt("table", nil,
    {debounce = "delay"})},
})
addmodule("process", {
  {"async.process.run", req("cmd", "true"), opt("table"), opt("table", nil,
    {timeout = "delay", cwd = "string", env = "table"})},
  {"async.process.spawn", req("cmd", "true"), opt("table"), opt("table")},
})
addmodule("to_thread", {
  {"async.to_thread", req("work", "return 1")},
  {"async.executor", opt("table", nil, {workers = "posint"})},
})
addmodule("signal", {
  {"async.signal", req("signal", "SIGUSR2"), req("func", F)},
  {"async.wait_signal", req("signal", "SIGUSR2")},
})

-- Objects: how to make one (inside the test's task), and each method's
-- parameters.  Every method is also called with a wrong self.
local srvport  -- a listening test server's port, for streams

local OBJECTS = {
  {"task", function() return async.spawn(async.sleep, 0) end,
   {cancel = {opt("string", "m")}, cancelling = {}, uncancel = {},
    done = {}, cancelled = {}, get_name = {}, traceback = {},
    add_done_callback = {req("func", F)},
    remove_done_callback = {req("func", F)}}},
  {"future", async.Future,
   {cancel = {opt("string", "m")}, done = {}, cancelled = {},
    set_exception = {req("any", "e")},
    add_done_callback = {req("func", F)},
    remove_done_callback = {req("func", F)}}},
  {"semaphore", async.Semaphore,
   {acquire = {}, release = {}, locked = {}, value = {}, owned = {}}},
  {"lock", async.Lock, {acquire = {}, locked = {}, owned = {}}},
  {"event", async.Event, {set = {}, clear = {}, is_set = {}}},
  {"condition", async.Condition,
   {acquire = {}, locked = {}, notify = {opt("count", 1)},
    wait_for = {req("func", F)}}},
  {"barrier", function() return async.Barrier(2) end,
   {reset = {}, abort = {}, n_waiting = {}, broken = {}}},
  {"queue", async.Queue,
   {put = {req("any", 1)}, put_nowait = {req("any", 1)}, qsize = {},
    empty = {}, full = {}, maxsize = {}, is_shutdown = {}}},
  {"priority queue", async.PriorityQueue,
   {put = {req("any", 1), opt("any", 1)},
    put_nowait = {req("any", 1), opt("any", 1)}, qsize = {}}},
  {"rate limiter", function() return async.RateLimiter{rate = 1000} end,
   {acquire = {opt("any", "k")}, try_acquire = {opt("any", "k")}}},
  {"generator", function()
     return async.generator(function(yield) yield(1) end)()
   end, {next = {}, close = {}}},
  {"task group", function() return async.task_group() end,
   {spawn = {req("func", F)}, create_task = {req("func", F)}},
   {create_task = "spawn"}},  -- an alias: errors name spawn
  {"stream", function()
     return async.net.connect("127.0.0.1", srvport)
   end,
   {read = {opt("posint", 1)}, readexactly = {req("count", 1)},
    readuntil = {req("sep", "\n")}, settimeout = {opt("delay", 1)},
    write = {req("string", "x")}, write_eof = {}, address = {}, peer = {},
    close = {}, reset = {}}},
  {"server", function()
     return async.net.listen(F, "127.0.0.1", 0)
   end, {address = {}, close = {}}},
  {"http session", function() return async.http.session() end,
   {request = {req("string", "GET"), req("string", "http://127.0.0.1:1/"),
               opt("table", nil, {timeout = "delay", params = "table",
                                  headers = "table", body = "string"})},
    get = {req("string", "http://127.0.0.1:1/"), opt("table")},
    post = {req("string", "http://127.0.0.1:1/"), opt("table")},
    head = {req("string", "http://127.0.0.1:1/")},
    stats = {}, close = {}}},
  {"http server", function() return async.http.server.new() end,
   {route = {req("string", "GET"), req("string", "/x"), req("func", F)},
    listen = {opt("host", "127.0.0.1"), opt("port", 0)}, close = {}}},
}

-- Gaps left for now, each with its reason (remove the entry once fixed).
local KNOWN = {
}

-- {======================================================
-- running calls
-- =======================================================

local packs = table.pack

-- A function calling 'expr' (like "async.sleep" or "o:put") with its
-- arguments, compiled so that error messages name it as a user's call.
local function caller(expr, o)
  local src = ("local async, o = ...\nreturn function(...) return %s(...) end")
              :format(expr)
  return assert(load(src, "=call"))(async, o)
end

local function resolve(v)  -- good values may be made on demand
  if MAKERS[v] then return MAKERS[v]() end
  return v
end

-- Runs fn(args) in a task of its own for at most 5 s; returns "ok",
-- "hang" or the error as text.
local function outcome(fn, args)
  local ok, err = pcall(async.wait_for, function()
    return fn(table.unpack(args, 1, args.n))
  end, 5)
  if ok then return "ok" end
  if async.TimeoutError:is(err) and err.message == "timed out after 5 s"
  then
    return "hang"
  end
  return tostring(err)
end

-- Does msg read "bad argument #i to 'name'" (or Lua's "bad self")?
local function isbadarg(msg, i, name)
  return msg:find(("bad argument #%d to '%s'"):format(i, name), 1, true)
         or (i == 0 and msg:find(("calling '%s' on bad self"):format(name),
                                 1, true))
end

-- Checks every bad call of one function; returns the failures.
local function checkfunc(expr, name, params, o, offset)
  offset = offset or 0
  local fails = {}
  local fn = caller(expr, o)
  local function expectbad(args, i, what)
    local got = outcome(fn, args)
    if not isbadarg(got, i + offset, name) then
      fails[#fails + 1] = ("%s(%s): expected bad argument #%d, got %s")
                          :format(expr, what, i + offset, got)
    end
  end
  local function goodargs(upto)
    local args = {n = upto}
    for k = 1, upto do args[k] = resolve(params[k][2]) end
    return args
  end
  for i, p in ipairs(params) do
    -- missing (a wrong count): only required parameters
    if not p.optional then
      expectbad(goodargs(i - 1), i, ("%d argument%s"):format(i - 1,
                                    i == 2 and "" or "s"))
    end
    -- wrong values
    for _, bad in ipairs(KINDS[p[1]]) do
      local args = goodargs(#params)
      args[i] = bad
      expectbad(args, i, ("#%d = %s"):format(i, show(bad)))
    end
    -- wrong fields of an option table
    for field, kind in pairs(p.fields or {}) do
      local bads = type(kind) == "table" and kind or KINDS[kind]
      for _, bad in ipairs(bads) do
        local args = goodargs(#params)
        local t = {}
        for k, v in pairs(type(args[i]) == "table" and args[i] or {}) do
          t[k] = v
        end
        t[field] = bad
        args[i] = t
        expectbad(args, i, ("#%d.%s = %s"):format(i, field, show(bad)))
      end
    end
  end
  return fails
end

local function report(fails)
  if #fails > 0 then
    error(#fails .. " call(s) not refused clearly:\n  "
          .. table.concat(fails, "\n  "), 0)
  end
end

-- The objects a test made, closed at its end.
local made = {}
local function make(fn)
  local o = fn()
  made[#made + 1] = o
  return o
end
local function cleanup()
  for _, o in ipairs(made) do
    local mt = getmetatable(o)
    if type(o) == "userdata" or type(o) == "table" then
      if async.isfuture(o) then
        o:cancel()
      elseif mt and (mt.__close or (type(mt.__index) == "table"
                                    and mt.__index.close)) then
        pcall(function() (mt.__index.close or mt.__close)(o) end)
      end
    end
  end
  made = {}
  async.sleep(0.01)  -- cancelled tasks end
end

-- {======================================================
-- the specs
-- =======================================================

describe("bad input to functions", function()
  for _, entry in ipairs(FUNCS) do
    local expr = entry[1]
    it(expr, function()
      local params = {table.unpack(entry, 2)}
      report(checkfunc(expr, expr:match("[%w_]+$"), params))
    end)
  end
end)

describe("bad input to methods", function()
  local ts = require "asynchost.testserver"
  for _, entry in ipairs(OBJECTS) do
    local what, maker, methods, aliases = entry[1], entry[2], entry[3],
                                          entry[4] or {}
    it(what, function()
      local srv <close> = ts.start{}
      srvport = srv.port
      local fails = {}
      local names = {}
      for m in pairs(methods) do names[#names + 1] = m end
      table.sort(names)
      for _, m in ipairs(names) do
        -- arguments: a fresh object for each method
        local o = make(maker)
        local name = aliases[m] or m
        for _, f in ipairs(checkfunc("o:" .. m, name, methods[m], o)) do
          fails[#fails + 1] = f
        end
        -- a wrong self: numbers, tables, another kind of object
        for _, bad in ipairs{42, {}, "str", async.Event(), async.Queue()} do
          if getmetatable(bad) ~= getmetatable(o)
             and not KNOWN[what .. "." .. m] then
            local got = outcome(caller("o." .. m, o), packs(bad))
            if not isbadarg(got, 1, name) then
              fails[#fails + 1] = ("%s.%s(%s): expected bad argument #1, "
                                   .. "got %s"):format(what, m, show(bad), got)
            end
          end
        end
      end
      cleanup()
      report(fails)
    end, 30)
  end
end)

-- {======================================================
-- huge and odd values that are valid: they must work (or fail with an
-- error of a class), never crash or overflow
-- =======================================================

local SURVIVE = {
  "async.wait_for(function() async.sleep(1e308) end, 0.01)",
  "async.wait_for(function() async.sleep(math.huge) end, 0.01)",
  "async.wait_for(function() return 1 end, 1e308)",
  "async.wait_for(function() return 1 end, math.huge)",
  "async.timeout(math.huge, function() return 1 end)",
  "async.call_later(1e308, print):cancel()",
  "async.call_later(math.huge, print):cancel()",
  "async.Semaphore(math.maxinteger):release()",
  "async.BoundedSemaphore(math.maxinteger):acquire():release()",
  "async.Barrier(math.maxinteger):n_waiting()",
  "async.Queue(math.maxinteger):put_nowait(1)",
  "async.Queue(math.mininteger):put_nowait(1)",
  "async.LifoQueue(-1):put_nowait(1)",
  "local q = async.PriorityQueue() q:put_nowait(1, 0/0) return q:get()",
  "local q = async.PriorityQueue() q:put_nowait(0/0) return q:get()",
  "local q = async.PriorityQueue() q:put(1, math.huge) q:put(2, -math.huge)"
    .. " return q:get()",
  "local c = async.Condition() local _ <close> = c:acquire()"
    .. " c:notify(math.maxinteger)",
  "async.retry(function() return 1 end, {attempts = math.maxinteger,"
    .. " delay = 1e308, max_delay = math.huge})",
  "async.map(function(x) return x end, {1, 2}, {concurrency ="
    .. " math.maxinteger})",
  "async.RateLimiter{rate = 1e308, per = 1e-308}:acquire()",
  "async.RateLimiter{rate = 1e-308, per = 1e308}:try_acquire()",
  "async.RateLimiter{rate = 1, burst = 1e308}:try_acquire()",
  "async.dump_tasks(('x'):rep(100000))",
  "async.spawn(print):set_name(('x'):rep(100000))",
  "async.Future():cancel(('x'):rep(100000))",
  "async.sleep(0)  async.sleep(-0.0)  async.sleep(1e-308)",
  "local s = async.net.connect('127.0.0.1', PORT) s:settimeout(1e308)"
    .. " s:settimeout(math.huge) s:close()",
  "local s = async.net.connect('127.0.0.1', PORT) s:write(('x'):rep(1 <<"
    .. " 22)) s:close()",
  "local s <close> = async.net.connect('127.0.0.1', PORT)"
    .. " s:write('GET /get HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')"
    .. " return s:read(math.maxinteger)",
  "local s = async.http.session{timeout = 1e308, max_redirects ="
    .. " math.maxinteger, max_connections = math.maxinteger}"
    .. " s:get(URL .. '/get') s:close()",
  "local s <close> = async.http.session() s:get(URL .. '/get',"
    .. " {timeout = 1e-308})",
  "local s <close> = async.http.session() s:get(URL .. '/get',"
    .. " {params = {[('k'):rep(10000)] = ('v'):rep(100000)}})",
  "local s <close> = async.http.session() s:get(URL .. '/get',"
    .. " {headers = {['X-Big'] = ('v'):rep(100000)}})",
  "local s <close> = async.http.session() s:get(URL .. '/get',"
    .. " {headers = {['X-Bad'] = 'a\\r\\nInjected: 1'}})",
  -- (/bytes/ of math.maxinteger is capped at 10 MiB, which the test
  -- server takes seconds to make: not here)
  "local s <close> = async.http.session() s:get(URL .. '/bytes/' .."
    .. " math.mininteger)",
  "local s <close> = async.http.session() s:get(URL .. '/delay/nan')",
  "local s <close> = async.http.session() s:get(URL .. '/delay/' .."
    .. " 1e308, {timeout = 0.05})",
  "local s <close> = async.http.session() s:get('http://127.0.0.1:0/')",
  "local s <close> = async.http.session() s:get('not a url')",
  "local s <close> = async.http.session() s:get('ftp://127.0.0.1:1/')",
  "local s <close> = async.http.session() s:get(URL .. '/\\0/x')",
  "local s <close> = async.http.session() s:post(URL .. '/post',"
    .. " {json = {a = 0/0, b = math.huge}})",
  "local s <close> = async.http.session() s:post(URL .. '/post',"
    .. " {json = setmetatable({}, {__index = error})})",
}

describe("odd but valid values", function()
  it("end with a result or an error of a class, never a crash", function()
    local ts = require "asynchost.testserver"
    local srv <close> = ts.start{}
    local fails = {}
    for _, src in ipairs(SURVIVE) do
      local code = src:gsub("PORT", tostring(srv.port))
                      :gsub("URL", ("%q"):format(srv.url))
      local fn = assert(load("local async = ...\n" .. code, "=survive"))
      local got = outcome(function() return fn(async) end, packs())
      -- a class error, a string error of the runtime (a clear message),
      -- or a result; never a hang
      if got == "hang" then
        fails[#fails + 1] = src .. ": hung"
      elseif got ~= "ok" and (got:find("attempt to ", 1, true)
                               and not got:find("attempt to use a closed",
                                                1, true)) then
        fails[#fails + 1] = src .. ": " .. got
      end
    end
    report(fails)
  end, 60)
end)

-- {======================================================
-- closed, shut down or used-up objects
-- =======================================================

local CLOSED = {
  {"closed stream", function()
     local s = async.net.connect("127.0.0.1", srvport)
     s:close()
     return s
   end, {{"o:write('x')", "attempt to use a closed stream"},
         {"o:write_eof()", "attempt to use a closed stream"},
         {"o:address()", "attempt to use a closed stream"},
         {"o:peer()", "attempt to use a closed stream"},
         {"o:read(1)", "ok"}, {"o:read()", "ok"}, {"o:readline()", "ok"},
         {"o:readexactly(1)", "IncompleteReadError"},
         {"o:readuntil('x')", "IncompleteReadError"},
         {"o:drain()", "ok"}, {"o:settimeout(1)", "ok"},
         {"o:close()", "ok"}, {"o:reset()", "ok"}, {"tostring(o)", "ok"}}},
  {"reset stream", function()
     local s = async.net.connect("127.0.0.1", srvport)
     s:reset()
     return s
   end, {{"o:write('x')", "attempt to use a closed stream"},
         {"o:read(1)", "ok"}, {"o:close()", "ok"}}},
  {"closed server", function()
     local v = async.net.listen(F, "127.0.0.1", 0)
     v:close()
     return v
   end, {{"o:address()", "attempt to use a closed server"},
         {"o:close()", "ok"}, {"tostring(o)", "ok"}}},
  {"closed http session", function()
     local s = async.http.session()
     s:close()
     return s
   end, {{"o:get(URL .. '/get')", "attempt to use a closed session"},
         {"o:request('GET', URL .. '/get')",
          "attempt to use a closed session"},
         {"o:stats()", "ok"}, {"o:close()", "ok"}}},
  {"shut down queue", function()
     local q = async.Queue()
     q:shutdown()
     return q
   end, {{"o:put(1)", "QueueShutDown"}, {"o:put_nowait(1)", "QueueShutDown"},
         {"o:get()", "QueueShutDown"}, {"o:get_nowait()", "QueueShutDown"},
         {"o:join()", "ok"}, {"o:shutdown()", "ok"},
         {"o:task_done()", "task_done() called too many times"}}},
  {"aborted barrier", function()
     local b = async.Barrier(2)
     b:abort()
     return b
   end, {{"o:wait()", "BrokenBarrierError"}, {"o:abort()", "ok"},
         {"o:reset()", "ok"}}},
  {"done future", function()
     local f = async.Future()
     f:set_result(1)
     return f
   end, {{"o:set_result(2)", "InvalidStateError"},
         {"o:set_exception('e')", "InvalidStateError"},
         {"o:cancel()", "ok"}, {"o:result()", "ok"}}},
  {"cancelled future", function()
     local f = async.Future()
     f:cancel()
     return f
   end, {{"o:result()", "CancelledError"}, {"o:exception()", "CancelledError"},
         {"o:set_result(1)", "InvalidStateError"}, {"o:await()",
          "CancelledError"}}},
  {"finished task", function()
     local t = async.spawn(function() return 1 end)
     async.await(t)
     return t
   end, {{"o:cancel()", "ok"}, {"o:result()", "ok"}, {"o:uncancel()", "ok"},
         {"o:await()", "ok"}}},
  {"unlocked lock", async.Lock,
   {{"o:release()", "attempt to release an unlocked lock"}}},
  {"full bounded semaphore", async.BoundedSemaphore,
   {{"o:release()", "BoundedSemaphore released too many times"}}},
  {"condition not held", async.Condition,
   {{"o:wait()", "cannot wait on an un-acquired lock"},
    {"o:notify()", "cannot notify on an un-acquired lock"},
    {"o:notify_all()", "cannot notify on an un-acquired lock"},
    {"o:release()", "attempt to release an unlocked lock"}}},
  {"closed generator", function()
     local g = async.generator(function(yield) yield(1) yield(2) end)()
     g:close()
     return g
   end, {{"o:next()", "ok"}, {"o:close()", "ok"}}},
  {"closed task group", function()
     local tg = async.task_group()
     tg:close()
     return tg
   end, {{"o:spawn(print)", "task group is closed"}}},
  {"cancelled call_later", function()
     local h = async.call_later(1, F)
     h:cancel()
     return h
   end, {{"o:cancel()", "ok"}}},
  {"closed http server", function()
     local app = async.http.server.new()
     app:listen("127.0.0.1", 0)
     app:close()
     return app
   end, {{"o:listen()", "server is already listening"}, {"o:close()", "ok"},
         {"o:address()", "attempt to use a closed server"}}},
}

describe("closed and used-up objects", function()
  for _, entry in ipairs(CLOSED) do
    local what, maker, calls = entry[1], entry[2], entry[3]
    it(what, function()
      local ts = require "asynchost.testserver"
      local srv <close> = ts.start{}
      srvport = srv.port
      local fails = {}
      for _, c in ipairs(calls) do
        local o = maker()
        local code = c[1]:gsub("URL", ("%q"):format(srv.url))
        local fn = assert(load("local async, o = ...\nreturn " .. code,
                               "=closed"))
        local got = outcome(function() return fn(async, o) end, packs())
        if not (got == c[2] or (c[2] ~= "ok" and got:find(c[2], 1, true)))
        then
          fails[#fails + 1] = ("%s: %s: expected %s, got %s")
                              :format(what, c[1], c[2], got)
        end
      end
      report(fails)
    end)
  end
end)

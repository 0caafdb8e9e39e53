--- The exercises of lab 1, in order, and their hints (asynchost lab).
-- Each entry: name (the file without .lua), hints (shown one at a time).
return {
  title = "Lab 1: async/await fundamentals",
  exercises = {
    {name = "basic_async_await", hints = {
      "A pretend download is just a wait: async.sleep(seconds) suspends the "
        .. "task and lets the others run.",
      "One after the other: a plain for loop calling your functions. At once: "
        .. "async.spawn one task per url, then async.gather(tasks).",
      "gather returns a table of first results in input order, with a field "
        .. "n: use r.n, not #r, when a result may be nil.",
    }},
    {name = "coroutines_tasks", hints = {
      "async.spawn(fn, ...) starts a task on the next loop turn and returns "
        .. "it; task:set_name names it, task:done() tells if it ended.",
      "To watch tasks, loop: count those done, print, async.sleep(interval), "
        .. "until all are done.",
      "Cancelling after a timeout: async.wait(tasks, {timeout = t}) returns "
        .. "done and pending; call task:cancel() on each pending one, then "
        .. "await them inside pcall (they raise CancelledError).",
    }},
    {name = "concurrent_execution", hints = {
      "I/O-like work waits (async.sleep); CPU-like work computes without "
        .. "awaiting, so it holds the loop until it is done.",
      "gather keeps the input order; async.as_completed(tasks) hands you the "
        .. "tasks in the order they finish: for t in async.as_completed(ts) "
        .. "do ... t:result() ... end.",
      "At most N at a time: an async.Semaphore(N), and in each job "
        .. "`local _ <close> = sem:acquire()` before the work.",
    }},
    {name = "async_context_managers", hints = {
      "Lua's async context manager is a to-be-closed variable: "
        .. "`local x <close> = thing` calls getmetatable(x).__close when the "
        .. "scope ends, also on an error, and __close may await.",
      "Give each object a close method and set __close = close in its "
        .. "metatable; make close safe to call twice (a `closed` flag).",
      "A pool: a Queue of free connections; acquire takes one (waiting if "
        .. "none) and returns a lease whose __close puts it back.",
    }},
    {name = "async_iterators", hints = {
      "A generic for calls its iterator until it returns nil: an object with "
        .. "__call can be that iterator, and its __call may await.",
      "async.generator(function(yield, ...) ... end) makes an async "
        .. "generator: call yield(value) for each value.",
      "A pipeline: each stage is a generator reading the previous one with "
        .. "`for x in previous do ... end`.",
    }},
    {name = "error_handling", hints = {
      "Errors in tasks are values: pcall(async.await, task) gives false and "
        .. "the error; Class:is(err) tells its class.",
      "Retry: a loop around pcall(fn) with async.sleep(delay) between tries "
        .. "and delay = delay * backoff; never retry a CancelledError.",
      "async.gather(..., {return_exceptions = true}) puts each error in "
        .. "place of its result; async.wait_for(fn, s) raises TimeoutError; "
        .. "async.shield(task) protects work from being cancelled.",
    }},
    {name = "real_world_examples", hints = {
      "The HTTP exercises run against the test server: "
        .. "require('asynchost.testserver').start{} inside a task, and "
        .. "srv.url as the base URL.",
      "Files without blocking: async.fs.read_file and write_file; many at "
        .. "once with async.gather or async.map.",
      "Rate limits: count the calls in a window and sleep until the oldest "
        .. "leaves it (or use async.RateLimiter); pools: a Semaphore.",
    }},
    {name = "best_practices", hints = {
      "Own what you open: sessions and tasks belong to an object whose "
        .. "__close releases them.",
      "A task manager keeps its tasks in a table; shutdown cancels them and "
        .. "waits at most `grace` seconds (async.wait with a timeout).",
      "Producers and consumers: a bounded async.Queue gives backpressure; "
        .. "queue:shutdown() tells the consumers to stop.",
    }},
    {name = "integration_project", hints = {
      "Build it piece by piece: the crawler, the processor, the client, the "
        .. "monitor, the scheduler, then the dashboard; the specs check each "
        .. "part on its own.",
      "The crawler and client reuse what you did before: a session, a "
        .. "semaphore or RateLimiter, retries with backoff, a cache table.",
      "The monitor uses async.fs.watch(dir); the dashboard is a task that "
        .. "redraws every interval until stopped.",
    }},
  },
}

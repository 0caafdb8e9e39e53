--- The exercises of lab 3, in order, and their hints (asynchost lab).
-- async_utils comes first: main.lua uses its functions.
return {
  title = "Lab 3: asynchronous programming for DevOps",
  exercises = {
    {name = "async_utils", file = "helpers/async_utils.lua", hints = {
      "Start with fetch_url (ex2): pcall(session.get, session, url, "
        .. "{timeout = timeout}); a session you made yourself is closed with "
        .. "`local _ <close> = own`.",
      "Errors are values with classes: async.TimeoutError:is(err), "
        .. "async.CancelledError:is(err). Re-raise a cancellation with "
        .. "error(err, 0), never turn it into a result.",
      "run_tasks: an async.Semaphore(max_concurrent), each function wrapped "
        .. "as function() local _ <close> = sem:acquire(); return fn() end, "
        .. "then async.gather(wrapped, {return_exceptions = true}).",
      "retry_async: table.pack(pcall(fn)) keeps every result; print the "
        .. "retry line, async.sleep(wait), then wait = wait * backoff_factor. "
        .. "timeout_after: pcall(async.wait_for, fn, timeout) and raise "
        .. "async.TimeoutError(\"operation timed out after ...\").",
      "rate_limited: keep only the times newer than time_period in "
        .. "operation_times; while rate_limit of them remain, sleep "
        .. "time_period - (now - oldest), then look again.",
    }},
    {name = "main", files = {"main.lua", "helpers/async_utils.lua"}, hints = {
      "Go demo by demo: ex1 first (run_sequentially, run_concurrently); "
        .. "LAB_TIME_SCALE=0.1 asynchost exercises/lab3/main.lua runs it fast.",
      "ex1 and ex2 are the same pattern: a for loop one after the other, or "
        .. "async.gather of one function per item at once; return the results "
        .. "and now() - t0.",
      "ex4: task:cancel(), then pcall(async.await, task): false and a "
        .. "CancelledError means it was cancelled. shutdown cancels all, then "
        .. "gathers them with return_exceptions.",
      "ex5: the producer puts STOP once per consumer at the end; a consumer "
        .. "calls queue:task_done() for every item it takes, STOP included.",
    }},
  },
}

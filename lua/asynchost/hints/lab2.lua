--- The exercises of lab 2, in order, and their hints (asynchost lab).
return {
  title = "Lab 2: first steps, HTTP and pipelines",
  exercises = {
    {name = "exercise_1", hints = {
      "An async function in Lua is a plain function that awaits: "
        .. "async.sleep(delay) inside fetch_data.",
      "main_async calls fetch_data for each name in turn: the times add up "
        .. "(about 3 s for three 1-second fetches).",
    }},
    {name = "exercise_2", hints = {
      "async.gather(f1, f2, f3) runs functions as tasks at once: three "
        .. "1-second fetches take about 1 s.",
      "With tasks: async.spawn each one first, then async.await each (or "
        .. "gather the tasks); the results keep their order.",
    }},
    {name = "exercise_3", hints = {
      "One async.http.session for every request, closed at the end: "
        .. "`local s <close> = async.http.session{}`.",
      "session:get(url) returns a response: r.status, r:json(); wrap it in "
        .. "pcall to turn a failure into a result instead of an error.",
      "All at once: async.gather of one function per url; one after the "
        .. "other: a for loop.",
    }},
    {name = "exercise_4", hints = {
      "The connection is a to-be-closed value: give Database a close method "
        .. "and __close = close, and write `local db <close> = "
        .. "Database.connect(name)`.",
      "Concurrent queries: one task per query, each with its own "
        .. "connection, gathered.",
    }},
    {name = "exercise_5", hints = {
      "Three steps per item: fetch (HTTP), process (pure Lua), save "
        .. "(async.fs.write_file).",
      "Run the items at once but bounded: async.map(fn, ids, {concurrency = "
        .. "n}) or a Semaphore.",
    }},
  },
}

--- The exercises of lab 4, in order, and their hints (asynchost lab).
return {
  title = "Lab 4: introduction to asynchronous programming",
  exercises = {
    {name = "download_files", hints = {
      "A download of size MB is async.sleep(size * M.time_scale): 1 s per MB.",
      "Sequential: a for loop; concurrent: async.gather with one function "
        .. "per file; both return the results and async.loop_time() - t0.",
      "as_completed: spawn the tasks first, then `for t in "
        .. "async.as_completed(tasks) do local r = t:result() ... end`.",
    }},
    {name = "web_crawler", hints = {
      "html.title(body) reads the <title> of a page (require "
        .. "\"asynchost.html\").",
      "A timeout per page: pcall(async.wait_for, function() return "
        .. "session:get(url) end, timeout); async.TimeoutError:is(err) tells "
        .. "a timeout from another failure.",
      "All pages at once but bounded: async.map(fn, urls, {concurrency = n}) "
        .. "returns the results in the order of urls.",
    }},
    {name = "data_processor", hints = {
      "An async generator: async.generator(function(yield, ...) ... end); "
        .. "its body calls yield(item) and may sleep.",
      "stage reads upstream with `for item in upstream do ... end` and "
        .. "yields fn(item) unless it is nil.",
      "pipeline: gen = M.source(items, delay), then gen = M.stage(fn, gen) "
        .. "for each stage, then collect with a for loop.",
      "pipeline_concurrent: a task per stage, async.Queue between them, "
        .. "DONE passed down the line; the task group waits for all.",
    }},
    {name = "file_processor", hints = {
      "process_file: async.fs.read_file(path), then count lines (\\n) and "
        .. "words (%S+).",
      "Watch first, then list what is already there: "
        .. "`local w <close> = async.fs.watch(dir)`, `for ev in w do ... "
        .. "ev.path ... end` in a task of its own.",
      "Limit the work with a Semaphore: the dispatcher acquires a slot "
        .. "before it spawns the work, the work releases it "
        .. "(`local _ <close> = slots`).",
      "Stop: an async.Event; wait for it, close the watcher, cancel the "
        .. "dispatcher; the task group lets the files in progress finish.",
    }},
    {name = "web_scraper", hints = {
      "Step 1: html.split_url and html.join_url do the URL work; "
        .. "M.site(url) is the site (host:port) to compare.",
      "Step 2: per site, a Lock held while waiting for a slot of the "
        .. "semaphore and for rate_limit seconds since the site's last "
        .. "request; note the time just before the request goes out.",
      "Step 3: a task group; each page spawns its links into the same group "
        .. "(tg:spawn works while the group waits), marking them visited "
        .. "first so no page is fetched twice.",
      "Step 4: fetch robots.txt once per site in a task of its own; the "
        .. "other callers await it through async.shield.",
      "Step 5: cjson.encode writes {} for an empty table: write \"[]\" "
        .. "yourself for an empty array.",
    }},
  },
}

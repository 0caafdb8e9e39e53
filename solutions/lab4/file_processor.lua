--- Lab 4, exercise 4: a directory watcher that processes new files
-- (solution).
--
-- Run it:  asynchost solutions/lab4/file_processor.lua
-- Faster:  LAB_TIME_SCALE=0.1 asynchost solutions/lab4/file_processor.lua
--
-- It watches a directory (async.fs.watch) and processes each file that
-- appears there, a few at a time (a semaphore), reporting progress as it
-- goes.  Three kinds of tasks work together: the watcher puts the paths
-- it sees into a queue, the dispatcher takes them out and starts a task
-- per file once a slot is free, and the main task waits until it is told
-- to stop.  The demo makes a temporary directory and drops files into it
-- while the processor runs.
--
-- Files should appear whole: write them under a name starting with "."
-- (or ending in ".part"), then rename them (as drop_files does).  Such
-- names are never processed.
local async = require "asynchost"

local fs = async.fs

local M = {}

-- Every delay of this file is in "lab seconds", multiplied by time_scale
-- (LAB_TIME_SCALE, default 1; the specs set the field to run faster).
M.time_scale = tonumber(os.getenv("LAB_TIME_SCALE")) or 1

local function sleep(s) async.sleep(s * M.time_scale) end

local function basename(path) return path:match("([^/]*)/*$") end

--- Is a file of this name one to process?  Not a hidden file (".x"), not
-- one being written (".part", ".tmp", "~").
function M.wanted(name)
  return name ~= "" and name:sub(1, 1) ~= "."
         and not name:find("%.part$") and not name:find("%.tmp$")
         and not name:find("~$")
end

--- Processes the file at path: reads it and counts its lines and words
-- (the analysis takes 0.5 lab seconds).  Returns {name, path, bytes,
-- lines, words}.
function M.process_file(path)
  local text = fs.read_file(path)
  sleep(0.5)  -- the analysis
  local _, lines = text:gsub("\n", "")
  if text ~= "" and text:sub(-1) ~= "\n" then lines = lines + 1 end
  local words = 0
  for _ in text:gmatch("%S+") do words = words + 1 end
  return {name = basename(path), path = path, bytes = #text, lines = lines,
          words = words}
end

local function print_progress(done, total, record, active)
  if record.error then
    print(("[%d/%d] %s: failed: %s"):format(done, total, record.name,
                                           record.error))
  else
    print(("[%d/%d] %s: %d lines, %d words (%d in progress)")
          :format(done, total, record.name, record.lines, record.words,
                  active))
  end
end

--- Watches `dir` and processes every file in it, those there at the
-- start and those that appear, each once, at most opts.max_concurrent
-- (default 2) at a time.  Options:
--   expected     stop after this many files (default: never)
--   stop         an async.Event: stop when it is set
--   process      function(path) -> record (default M.process_file)
--   on_progress  function(done, total, record, active), after each file
--                (default: prints a line); total counts the files seen
-- Returns the records in the order the files were done.  A file that
-- fails gives {name, path, error}.  Files being processed when it stops
-- are finished first.
function M.watch_and_process(dir, opts)
  if type(dir) ~= "string" then
    error("bad argument #1 to 'watch_and_process' (string expected, got "
          .. type(dir) .. ")", 2)
  end
  opts = opts or {}
  local max = opts.max_concurrent or 2
  if math.type(max) ~= "integer" or max < 1 then
    error("bad argument #2 to 'watch_and_process' (max_concurrent must be "
          .. "an integer >= 1)", 2)
  end
  local process = opts.process or M.process_file
  local progress = opts.on_progress or print_progress
  local stop = opts.stop or async.Event()
  local queue, seen, results = async.Queue(), {}, {}
  local total, active = 0, 0

  local function offer(path)
    if seen[path] or not M.wanted(basename(path)) then return end
    local ok, st = pcall(fs.stat, path)
    if not ok or st.type ~= "file" then return end  -- gone, or a directory
    seen[path] = true
    total = total + 1
    queue:put_nowait(path)
  end

  local watcher <close> = fs.watch(dir)  -- before the scan: nothing missed
  local dirslash = dir:sub(-1) == "/" and dir or dir .. "/"
  for _, name in ipairs(fs.listdir(dir)) do offer(dirslash .. name) end

  local slots = async.Semaphore(max)
  local tg <close> = async.task_group()

  local function work(path)
    local _ <close> = slots  -- the slot the dispatcher took for us
    active = active + 1
    local ok, record = pcall(process, path)
    active = active - 1
    if not ok then
      if async.CancelledError:is(record) then error(record, 0) end
      record = {name = basename(path), path = path, error = tostring(record)}
    end
    results[#results + 1] = record
    progress(#results, total, record, active)
    if opts.expected and #results >= opts.expected then stop:set() end
  end

  tg:spawn(function()  -- the watcher: new files go into the queue
    for ev in watcher do offer(ev.path) end  -- ends when it is closed
  end)
  local dispatcher = tg:spawn(function()
    while true do
      local path = queue:get()
      slots:acquire()  -- wait for a free slot, then start the work
      tg:spawn(work, path)
    end
  end)

  stop:wait()
  watcher:close()
  dispatcher:cancel()
  return results  -- the group waits for the files in progress first
end

--- Writes the files ({name, text} each) into dir, `interval` lab seconds
-- apart, each under a temporary name first and then renamed.
function M.drop_files(dir, files, interval)
  for _, f in ipairs(files) do
    sleep(interval or 0)
    local tmp = dir .. "/." .. f[1] .. ".part"
    fs.write_file(tmp, f[2])
    fs.rename(tmp, dir .. "/" .. f[1])
  end
end

M.SAMPLES = {
  {"access.log", "GET / 200\nGET /docs 200\nGET /x 404\n"},
  {"notes.txt", "Watch the directory.\nProcess each new file.\n"},
  {"report.csv", "name,score\nada,93\nalan,78\ngrace,88\n"},
  {"todo.md", "- write the watcher\n- limit the work\n- report progress\n"},
  {"poem.txt", "Tasks wait,\nthe loop turns,\nfiles arrive.\n"},
  {"empty.txt", ""},
}

function M.main()
  local dir, _ <close> = fs.tempdir("lab4-inbox-")
  print("Watching " .. dir .. " (2 files at a time)\n")
  fs.write_file(dir .. "/already-there.txt", "This one was here first.\n")
  local dropper = async.spawn(M.drop_files, dir, M.SAMPLES, 0.15)
  local t0 = async.loop_time()
  local results = M.watch_and_process(dir, {max_concurrent = 2,
                                            expected = #M.SAMPLES + 1})
  async.await(dropper)
  local lines, words = 0, 0
  for _, r in ipairs(results) do
    lines, words = lines + (r.lines or 0), words + (r.words or 0)
  end
  print(("\n%d files, %d lines, %d words in %.2f s"):format(#results, lines,
        words, async.loop_time() - t0))
end

-- Run as a script (not when a spec loads the file).
if arg and arg[0] and arg[0]:find("file_processor%.lua$") then
  M.main()
end
return M

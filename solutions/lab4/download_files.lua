--- Lab 4, exercise 1: simulating concurrent downloads (solution).
--
-- Run it:  asynchost solutions/lab4/download_files.lua
-- Faster:  LAB_TIME_SCALE=0.1 asynchost solutions/lab4/download_files.lua
--
-- A download of `size` MB takes `size` seconds (a sleep stands in for
-- the network).  One after the other, the downloads add up; started
-- together, they take as long as the largest one.
local async = require "asynchost"

local M = {}

-- Every delay of this file is in "lab seconds", multiplied by time_scale
-- (LAB_TIME_SCALE, default 1; the specs set the field to run faster).
M.time_scale = tonumber(os.getenv("LAB_TIME_SCALE")) or 1

--- The files of the demo: {name, size in MB}.
M.FILES = {{"report.pdf", 2}, {"photo.jpg", 1}, {"dataset.csv", 3},
           {"notes.txt", 0.5}}

--- "Downloads" file_name, `size` MB at 1 MB a second; returns
-- {name, size, seconds} (seconds: the lab seconds it took).
function M.download_file(file_name, size)
  if type(file_name) ~= "string" then
    error("bad argument #1 to 'download_file' (string expected, got "
          .. type(file_name) .. ")", 2)
  end
  if type(size) ~= "number" or not (size >= 0) then
    error("bad argument #2 to 'download_file' (size in MB must be a "
          .. "number >= 0)", 2)
  end
  print(("Downloading %s (%g MB)..."):format(file_name, size))
  async.sleep(size * M.time_scale)  -- 1 s per MB
  print(("Finished %s"):format(file_name))
  return {name = file_name, size = size, seconds = size}
end

--- Downloads the files ({name, size} each) one after the other; returns
-- the results in order and the seconds it took.
function M.download_sequentially(files)
  local t0, results = async.loop_time(), {}
  for i, f in ipairs(files) do
    results[i] = M.download_file(f[1], f[2])
  end
  return results, async.loop_time() - t0
end

--- The same, all at once; results in the order of `files`.
function M.download_concurrently(files)
  local t0, jobs = async.loop_time(), {}
  for i, f in ipairs(files) do
    jobs[i] = function() return M.download_file(f[1], f[2]) end
  end
  local results = async.gather(jobs)
  return results, async.loop_time() - t0
end

--- All at once again, but each result is handled as soon as its download
-- ends: calls on_done(result) in order of completion; returns the names
-- in that order.
function M.download_as_completed(files, on_done)
  local tasks = {}
  for i, f in ipairs(files) do
    tasks[i] = async.spawn(M.download_file, f[1], f[2])
  end
  local order = {}
  for t in async.as_completed(tasks) do
    local r = t:result()
    order[#order + 1] = r.name
    if on_done then on_done(r) end
  end
  return order
end

function M.main()
  local total = 0
  for _, f in ipairs(M.FILES) do total = total + f[2] end
  print(("%d files, %g MB in all\n"):format(#M.FILES, total))

  print("One after the other:")
  local _, seq = M.download_sequentially(M.FILES)
  print(("Sequential: %.2f s\n"):format(seq))

  print("All at once:")
  local _, conc = M.download_concurrently(M.FILES)
  print(("Concurrent: %.2f s\n"):format(conc))
  print(("Concurrent downloads were %.1fx faster"):format(seq / conc))

  print("\nAll at once, handled as each one ends:")
  M.download_as_completed(M.FILES, function(r)
    print(("  -> %s is ready (%g MB)"):format(r.name, r.size))
  end)
end

-- Run as a script (not when a spec loads the file).
if arg and arg[0] and arg[0]:find("download_files%.lua$") then
  M.main()
end
return M

--- Lab 4, exercise 1: simulating concurrent downloads (exercise).
--
-- Run it:  asynchost exercises/lab4/download_files.lua
-- Faster:  LAB_TIME_SCALE=0.1 asynchost exercises/lab4/download_files.lua
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
  -- Print "Downloading <name> (<size> MB)...", sleep size * M.time_scale
  -- seconds, print "Finished <name>", return the record.
  error("TODO(ex1): implement download_file — see exercises/lab4/README.md", 2)
end

--- Downloads the files ({name, size} each) one after the other; returns
-- the results in order and the seconds it took.
function M.download_sequentially(files)
  -- Note async.loop_time(), call M.download_file(f[1], f[2]) for each
  -- file in turn, return the results and the seconds it took.
  error("TODO(ex1): implement download_sequentially — see exercises/lab4/README.md", 2)
end

--- The same, all at once; results in the order of `files`.
function M.download_concurrently(files)
  -- The same with async.gather: one function per file.
  error("TODO(ex1): implement download_concurrently — see exercises/lab4/README.md", 2)
end

--- All at once again, but each result is handled as soon as its download
-- ends: calls on_done(result) in order of completion; returns the names
-- in that order.
function M.download_as_completed(files, on_done)
  -- Spawn a task per file (async.spawn(M.download_file, name, size)),
  -- then `for t in async.as_completed(tasks) do ... t:result() ... end`.
  error("TODO(ex1): implement download_as_completed — see exercises/lab4/README.md", 2)
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

-- Reading 1,000 small files with async.fs: all at once (gather) against one
-- after another, and Lua's blocking io.open for reference.  The files are
-- in the page cache (read once first): this measures the cost of the
-- requests (a round trip through libuv's thread pool, 4 threads by
-- default: UV_THREADPOOL_SIZE), not the disk.
--
--   build/asynchost bench/fsread.lua [files = 1000] [bytes = 1024] [runs = 5]
local async = require "asynchost"
local fs = async.fs

local N = math.tointeger(tonumber(arg and arg[1] or "")) or 1000
local SIZE = math.tointeger(tonumber(arg and arg[2] or "")) or 1024
local RUNS = math.tointeger(tonumber(arg and arg[3] or "")) or 5

local dir, _ <close> = fs.tempdir("fsread-")
local paths = {}
for i = 1, N do paths[i] = ("%s/f%05d.txt"):format(dir, i) end

local writes = {}
for i = 1, N do
  local data = ("x"):rep(SIZE - 6) .. ("%05d\n"):format(i)
  writes[i] = function() fs.write_file(paths[i], data) end
end
async.gather(writes)

local function sequential()
  local total = 0
  for i = 1, N do total = total + #fs.read_file(paths[i]) end
  return total
end

local function concurrent()
  local reads = {}
  for i = 1, N do reads[i] = function() return fs.read_file(paths[i]) end end
  local res, total = async.gather(reads), 0
  for i = 1, N do total = total + #res[i] end
  return total
end

local function blocking()
  local total = 0
  for i = 1, N do
    local f = assert(io.open(paths[i], "rb"))
    total = total + #f:read("a")
    f:close()
  end
  return total
end

-- best of RUNS, in seconds
local function best(fn)
  local t = math.huge
  for _ = 1, RUNS do
    local t0 = async.loop_time()
    assert(fn() == N * SIZE)
    t = math.min(t, async.loop_time() - t0)
  end
  return t
end

sequential()  -- warm the page cache
local seq, conc, blk = best(sequential), best(concurrent), best(blocking)
print(("reading %d files of %d bytes, best of %d runs"):format(N, SIZE, RUNS))
print(("  sequential (await each) %8.1f ms"):format(seq * 1000))
print(("  concurrent (gather)     %8.1f ms"):format(conc * 1000))
print(("  io.open, blocking       %8.1f ms  (for reference)"):format(blk * 1000))
print(("  concurrent is %.1fx faster than sequential"):format(seq / conc))

local async = require "asynchost"
require "asynchost.busted"
local core = require "asynchost.core"
local helpers = require "spec.helpers"
local errclass, sh, q = helpers.errclass, helpers.sh, helpers.q
local fs = async.fs

-- Every test works in a directory of its own, removed when it ends.
local function tmp()
  return fs.tempdir("fsspec-")
end

local function fdcount()
  return #fs.listdir("/proc/self/fd")
end

-- Waits (up to 3 s) until the process has 'n' descriptors open.
local function settlefds(n)
  local deadline = async.loop_time() + 3
  while fdcount() ~= n and async.loop_time() < deadline do
    async.sleep(0.01)
  end
  return fdcount()
end

describe("async.fs whole files", function()
  it("read_file, write_file and append_file round-trip any bytes", function()
    local dir, _ <close> = tmp()
    local p = dir .. "/data.bin"
    local bytes = {}
    for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
    local data = table.concat(bytes):rep(4096)  -- 1 MiB, with zeros
    fs.write_file(p, data)
    assert.equal(data, fs.read_file(p))
    fs.write_file(p, "short")  -- truncates
    assert.equal("short", fs.read_file(p))
    fs.append_file(p, "+more")
    fs.append_file(dir .. "/new.txt", "made")  -- creates
    assert.equal("short+more", fs.read_file(p))
    assert.equal("made", fs.read_file(dir .. "/new.txt"))
    fs.write_file(p, "")
    assert.equal("", fs.read_file(p))
    assert.equal("", fs.read_file("/dev/null"))
    assert.matches("^Linux version", fs.read_file("/proc/version"))  -- size 0
  end)

  it("an atomic write replaces the file whole and leaves no temporary file", function()
    local dir, _ <close> = tmp()
    local p = dir .. "/config.json"
    local A, B = ("a"):rep(512 * 1024), ("b"):rep(512 * 1024)
    fs.write_file(p, A, {atomic = true})
    sh("chmod 640 " .. q(p))
    local stop, reads, torn = false, 0, 0
    local reader = async.spawn(function()
      while not stop do
        local s = fs.read_file(p)
        reads = reads + 1
        if not (s == A or s == B) then torn = torn + 1 end
      end
    end)
    for i = 1, 30 do fs.write_file(p, i % 2 == 1 and B or A, {atomic = true}) end
    stop = true
    async.await(reader)
    assert.is_true(reads > 0)
    assert.equal(0, torn)
    assert.equal(A, fs.read_file(p))
    assert.same({"config.json"}, fs.listdir(dir))
    assert.equal(416, fs.stat(p).mode)  -- 0640, kept
    -- a new file gets the default mode
    fs.write_file(dir .. "/fresh", "x", {atomic = true})
    fs.write_file(dir .. "/plain", "x")
    assert.equal(fs.stat(dir .. "/plain").mode, fs.stat(dir .. "/fresh").mode)
    fs.remove(dir .. "/plain")
    -- a failed atomic write names the target
    local err = errclass(async.FileNotFoundError, fs.write_file,
                         dir .. "/missing/x.json", "{}", {atomic = true})
    assert.equal(dir .. "/missing/x.json", err.path)
    assert.same({"config.json", "fresh"}, fs.listdir(dir))
  end)
end)

describe("async.fs files", function()
  it("open modes: r, w, a, r+, w+, a+, x", function()
    local dir, _ <close> = tmp()
    local p = dir .. "/f.txt"
    local f = fs.open(p, "w")
    assert.equal(f, f:write("one\n", 2, "\n"))
    f:close()
    f = fs.open(p, "a")
    f:write("three\n")
    assert.equal(f, f:flush())
    assert.is_nil(f:sync())  -- on the disk
    f:close()
    f = fs.open(p)  -- "r"
    assert.equal("one\n2\nthree\n", f:read("a"))
    f:close()
    f = fs.open(p, "r+")
    f:write("ONE")
    f:seek("set", 0)
    assert.equal("ONE", f:read("l"))
    f:close()
    f = fs.open(p, "w+b")
    f:write("fresh")
    f:seek("set")
    assert.equal("fresh", f:read("a"))
    f:close()
    f = fs.open(p, "a+")
    f:write("!")
    f:seek("set", 0)
    assert.equal("fresh!", f:read("a"))
    f:close()
    errclass(async.FileExistsError, fs.open, p, "wx")
    f = fs.open(dir .. "/excl", "wx")
    f:close()
    errclass(async.FileNotFoundError, fs.open, dir .. "/nope", "r")
    f = fs.open(p, "w")
    local err = errclass(async.OSError, f.read, f, "a")  -- not readable
    assert.equal("EBADF", err.code)
    f:close()
  end)

  it("read formats: n, a, l, L, several at once, read(0)", function()
    local dir, _ <close> = tmp()
    local p = dir .. "/f.txt"
    fs.write_file(p, "alpha\nbeta\n\ngamma")
    local f <close> = fs.open(p)
    assert.equal("al", f:read(2))
    assert.equal("pha", f:read())  -- default "l"
    assert.equal("beta\n", f:read("L"))
    assert.equal("", f:read("*l"))  -- the empty line
    local a, b = f:read(3, "a")
    assert.equal("gam", a)
    assert.equal("ma", b)
    assert.equal("", f:read("a"))  -- "a" at the end: ""
    assert.is_nil(f:read("l"))
    assert.is_nil(f:read(1))
    assert.is_nil(f:read(0))
    f:seek("set", 0)
    assert.equal("", f:read(0))
    local x, y, z = f:read("l", "l", 100)
    assert.same({"alpha", "beta", "\ngamma"}, {x, y, z})
    assert.has_error(function() f:read("x") end,
                     "bad argument #1 to 'read' (invalid format)")
    assert.has_error(function() f:read(-1) end,
                     "bad argument #1 to 'read' (non-negative integer expected)")
  end)

  it("lines() with and without a final newline, an empty file, a long line", function()
    local dir, _ <close> = tmp()
    local function lines(content, ...)
      fs.write_file(dir .. "/l.txt", content)
      local f <close> = fs.open(dir .. "/l.txt")
      local got = {}
      for line in f:lines(...) do got[#got + 1] = line end
      return got
    end
    assert.same({"a", "b", "c"}, lines("a\nb\nc\n"))
    assert.same({"a", "b", "c"}, lines("a\nb\nc"))
    assert.same({"a\n", "b"}, lines("a\nb", "L"))
    assert.same({}, lines(""))
    assert.same({"", ""}, lines("\n\n"))
    local long = ("x"):rep(3 * 1024 * 1024 + 7)
    local got = lines("first\n" .. long .. "\nlast")
    assert.equal(3, #got)
    assert.equal("first", got[1])
    assert.equal(#long, #got[2])
    assert.equal(long, got[2])
    assert.equal("last", got[3])
    assert.same({"ab", "c\n", "d"}, lines("abc\nd", 2))
  end)

  it("fs.lines(path) closes the file at the end and when the loop breaks", function()
    local dir, _ <close> = tmp()
    fs.write_file(dir .. "/l.txt", "1\n2\n3\n")
    local it, s, c, f = fs.lines(dir .. "/l.txt")
    local n = 0
    for line in it, s, c, f do n = n + tonumber(line) end
    assert.equal(6, n)
    assert.equal("File (closed)", tostring(f))
    it, s, c, f = fs.lines(dir .. "/l.txt")
    for _ in it, s, c, f do break end
    assert.equal("File (closed)", tostring(f))
    assert.has_error(function() fs.lines(dir .. "/l.txt", "z") end,
                     "bad argument #2 to 'lines' (invalid format)")
  end)

  it("seek as file:seek, keeping what was read ahead", function()
    local dir, _ <close> = tmp()
    local p = dir .. "/s.txt"
    fs.write_file(p, "0123456789")
    local f <close> = fs.open(p, "r+")
    assert.equal(0, f:seek())
    assert.equal("012", f:read(3))
    assert.equal(3, f:seek())  -- the file was read ahead: position is 3
    assert.equal(3, f:seek("cur"))
    assert.equal(5, f:seek("cur", 2))
    assert.equal("56", f:read(2))
    assert.equal(10, f:seek("end"))
    assert.is_nil(f:read(1))
    assert.equal(8, f:seek("end", -2))
    assert.equal("89", f:read("a"))
    assert.equal(1, f:seek("set", 1))
    assert.equal("1", f:read(1))
    f:write("XY")  -- at the reader's position, not the read-ahead's
    assert.equal(4, f:seek())
    f:seek("set", 0)
    assert.equal("01XY456789", f:read("a"))
    assert.equal(20, f:seek("set", 20))  -- past the end is allowed
    local err = errclass(async.OSError, f.seek, f, "set", -5)
    assert.equal("EINVAL", err.code)
    assert.has_error(function() f:seek("top") end,
                     "bad argument #1 to 'seek' (invalid option 'top')")
  end)

  it("<close> closes; a closed file is a clear error; close twice is fine", function()
    local dir, _ <close> = tmp()
    local p = dir .. "/c.txt"
    fs.write_file(p, "abc\n")
    local before = fdcount()
    local kept
    do
      local f <close> = fs.open(p)
      kept = f
      assert.equal(before + 1, fdcount())
      assert.matches("^File %(", tostring(f))
    end
    assert.equal(before, fdcount())
    assert.equal("File (closed)", tostring(kept))
    local closed = "attempt to use a closed file"
    assert.has_error(function() kept:read("a") end, closed)
    assert.has_error(function() kept:write("x") end, closed)
    assert.has_error(function() kept:seek() end, closed)
    assert.has_error(function() kept:lines() end, closed)
    kept:close()  -- again: nothing
    local f = fs.open(p)
    local it = f:lines()
    f:close()
    assert.has_error(function() it() end, closed)
  end)

  it("a file dropped without close is closed by the collector", function()
    local dir, _ <close> = tmp()
    fs.write_file(dir .. "/g.txt", "x")
    local before = fdcount()
    for _ = 1, 20 do fs.open(dir .. "/g.txt"):read(1) end
    collectgarbage()
    collectgarbage()
    assert.equal(before, settlefds(before))
  end)
end)

describe("async.fs directories and metadata", function()
  it("stat, lstat and exists", function()
    local dir, _ <close> = tmp()
    local p = dir .. "/f.txt"
    fs.write_file(p, "12345")
    sh("chmod 604 " .. q(p) .. " && ln -s f.txt " .. q(dir .. "/link"))
    local st = fs.stat(p)
    assert.equal("file", st.type)
    assert.equal(5, st.size)
    assert.equal(388, st.mode)  -- 0604
    assert.is_true(math.abs(st.mtime - os.time()) < 60)
    assert.equal("number", type(st.atime))
    assert.equal("number", type(st.ctime))
    assert.equal("float", math.type(st.mtime))
    assert.equal("directory", fs.stat(dir).type)
    assert.equal("file", fs.stat(dir .. "/link").type)  -- followed
    assert.equal("link", fs.lstat(dir .. "/link").type)
    assert.equal("char", fs.stat("/dev/null").type)
    assert.is_true(fs.exists(p))
    assert.is_true(fs.exists(dir))
    assert.is_false(fs.exists(dir .. "/nope"))
    assert.is_false(fs.exists(p .. "/under-a-file"))
    local err = errclass(async.FileNotFoundError, fs.stat, dir .. "/nope")
    assert.equal(dir .. "/nope", err.path)
  end)

  it("listdir is sorted; scandir yields names and types", function()
    local dir, _ <close> = tmp()
    for _, name in ipairs{"b.txt", "a.txt", "C", "z"} do
      fs.write_file(dir .. "/" .. name, name)
    end
    fs.mkdir(dir .. "/sub")
    sh("ln -s a.txt " .. q(dir .. "/ln"))
    assert.same({"C", "a.txt", "b.txt", "ln", "sub", "z"}, fs.listdir(dir))
    local seen = {}
    for name, kind in fs.scandir(dir) do seen[#seen + 1] = name .. ":" .. kind end
    assert.same({"C:file", "a.txt:file", "b.txt:file", "ln:link",
                 "sub:directory", "z:file"}, seen)
    assert.same({}, fs.listdir(dir .. "/sub"))
    errclass(async.NotADirectoryError, fs.listdir, dir .. "/z")
    errclass(async.FileNotFoundError, fs.scandir, dir .. "/nope")
  end)

  it("mkdir, with parents and mode", function()
    local dir, _ <close> = tmp()
    fs.mkdir(dir .. "/a")
    assert.equal("directory", fs.stat(dir .. "/a").type)
    errclass(async.FileExistsError, fs.mkdir, dir .. "/a")
    errclass(async.FileNotFoundError, fs.mkdir, dir .. "/x/y/z")
    fs.mkdir(dir .. "/x/y/z", {parents = true})
    assert.equal("directory", fs.stat(dir .. "/x/y/z").type)
    fs.mkdir(dir .. "/x/y/z", {parents = true})  -- exists: fine
    fs.mkdir(dir .. "/x/y/z/", {parents = true})
    fs.write_file(dir .. "/file", "")
    errclass(async.FileExistsError, fs.mkdir, dir .. "/file", {parents = true})
    errclass(async.NotADirectoryError, fs.mkdir, dir .. "/file/sub",
             {parents = true})
    fs.mkdir(dir .. "/private", {mode = 448})  -- 0700
    assert.equal(448, fs.stat(dir .. "/private").mode)
    assert.has_error(function() fs.mkdir(dir .. "/m", {mode = "755"}) end,
                     "bad argument #2 to 'mkdir' (mode must be an integer from 0 to 4095)")
  end)

  it("remove, rmtree, rename and copy", function()
    local dir, _ <close> = tmp()
    fs.write_file(dir .. "/f", "data")
    fs.mkdir(dir .. "/empty")
    fs.remove(dir .. "/f")
    fs.remove(dir .. "/empty")
    assert.same({}, fs.listdir(dir))
    errclass(async.FileNotFoundError, fs.remove, dir .. "/f")
    fs.mkdir(dir .. "/full/deep/er", {parents = true})
    fs.write_file(dir .. "/full/deep/er/x", "x")
    fs.write_file(dir .. "/full/y", "y")
    fs.mkdir(dir .. "/outside")
    fs.write_file(dir .. "/outside/keep", "k")
    sh("ln -s ../outside " .. q(dir .. "/full/link"))
    local err = errclass(async.OSError, fs.remove, dir .. "/full")
    assert.equal("ENOTEMPTY", err.code)
    fs.rmtree(dir .. "/full")
    assert.same({"outside"}, fs.listdir(dir))
    assert.equal("k", fs.read_file(dir .. "/outside/keep"))  -- not followed
    errclass(async.FileNotFoundError, fs.rmtree, dir .. "/full")
    fs.write_file(dir .. "/one", "1")
    fs.rmtree(dir .. "/one")  -- a file is fine too
    -- rename, over an existing file too
    fs.write_file(dir .. "/a", "A")
    fs.write_file(dir .. "/b", "B")
    fs.rename(dir .. "/a", dir .. "/b")
    assert.equal("A", fs.read_file(dir .. "/b"))
    assert.is_false(fs.exists(dir .. "/a"))
    err = errclass(async.FileNotFoundError, fs.rename, dir .. "/a", dir .. "/c")
    assert.equal(dir .. "/a", err.path)
    assert.equal(dir .. "/c", err.dest)
    assert.equal("ENOENT: no such file or directory: " .. dir .. "/a -> " ..
                 dir .. "/c", err.message)
    -- copy
    sh("chmod 751 " .. q(dir .. "/b"))
    fs.copy(dir .. "/b", dir .. "/c")
    assert.equal("A", fs.read_file(dir .. "/c"))
    assert.equal(489, fs.stat(dir .. "/c").mode)  -- 0751 copied
    fs.write_file(dir .. "/b", "BB")
    fs.copy(dir .. "/b", dir .. "/c")  -- replaces
    assert.equal("BB", fs.read_file(dir .. "/c"))
    err = errclass(async.FileExistsError, fs.copy, dir .. "/b", dir .. "/c",
                   {exclusive = true})
    assert.equal(dir .. "/c", err.dest)
    err = errclass(async.FileNotFoundError, fs.copy, dir .. "/zz", dir .. "/d")
    assert.equal(dir .. "/zz", err.path)
  end)

  it("tempdir makes a private directory; its guard removes it", function()
    local path
    do
      local dir, guard <close> = fs.tempdir("mine-")
      path = dir
      assert.matches("/mine%-[%w]+$", dir)
      local st = fs.stat(dir)
      assert.equal("directory", st.type)
      assert.equal(448, st.mode)  -- 0700
      fs.mkdir(dir .. "/sub")
      fs.write_file(dir .. "/sub/f", "x")
      assert.matches("^TempDir %(", tostring(guard))
    end
    assert.is_false(fs.exists(path))
    local dir, guard = fs.tempdir()
    assert.matches("/asynchost%-", dir)
    fs.rmtree(dir)
    guard:remove()  -- already gone: fine
    assert.has_error(function() fs.tempdir("a/b") end,
                     "bad argument #1 to 'tempdir' (prefix must not contain '/')")
  end)
end)

describe("async.fs errors", function()
  it("have a class by errno, .code, .errno, .path and the message", function()
    local dir, _ <close> = tmp()
    local p = dir .. "/x.txt"
    local err = errclass(async.FileNotFoundError, fs.read_file, p)
    assert.is_true(async.OSError:is(err))
    assert.equal("ENOENT", err.code)
    assert.equal("integer", math.type(err.errno))
    assert.is_true(err.errno < 0)  -- libuv's number
    assert.equal(p, err.path)
    assert.equal("ENOENT: no such file or directory: " .. p, err.message)
    assert.equal("FileNotFoundError: ENOENT: no such file or directory: " .. p,
                 tostring(err))
    fs.write_file(p, "x")
    err = errclass(async.FileExistsError, fs.mkdir, p)
    assert.equal("EEXIST: file already exists: " .. p, err.message)
    err = errclass(async.NotADirectoryError, fs.stat, p .. "/y")
    assert.equal("ENOTDIR: not a directory: " .. p .. "/y", err.message)
    err = errclass(async.IsADirectoryError, fs.read_file, dir)
    assert.equal("EISDIR: illegal operation on a directory: " .. dir, err.message)
    -- unlinking in /proc is refused even to root
    err = errclass(async.PermissionError, fs.remove, "/proc/version")
    assert.is_true(err.code == "EPERM" or err.code == "EACCES")
    assert.equal(err.code .. ": " .. (err.code == "EPERM" and
                 "operation not permitted" or "permission denied") ..
                 ": /proc/version", err.message)
    fs.mkdir(dir .. "/d")
    fs.write_file(dir .. "/d/f", "")
    err = errclass(async.OSError, fs.remove, dir .. "/d")
    assert.is_false(async.FileNotFoundError:is(err))
    assert.equal("ENOTEMPTY: directory not empty: " .. dir .. "/d", err.message)
  end)

  it("argument checks on every function", function()
    local function bad(fn, msg, ...)
      local args = table.pack(...)
      assert.has_error(function() fn(table.unpack(args, 1, args.n)) end, msg)
    end
    local s = "string expected, got "
    bad(fs.read_file, "bad argument #1 to 'read_file' (" .. s .. "nil)")
    bad(fs.read_file, "bad argument #1 to 'read_file' (" .. s .. "number)", 1)
    bad(fs.write_file, "bad argument #2 to 'write_file' (" .. s .. "number)", "p", 2)
    bad(fs.write_file, "bad argument #3 to 'write_file' (table expected, got boolean)",
        "p", "d", true)
    bad(fs.append_file, "bad argument #2 to 'append_file' (" .. s .. "nil)", "p")
    bad(fs.open, "bad argument #1 to 'open' (" .. s .. "table)", {})
    bad(fs.open, "bad argument #2 to 'open' (invalid mode)", "p", "rw")
    bad(fs.open, "bad argument #2 to 'open' (invalid mode)", "p", "rx")
    bad(fs.stat, "bad argument #1 to 'stat' (" .. s .. "nil)")
    bad(fs.lstat, "bad argument #1 to 'lstat' (" .. s .. "nil)")
    bad(fs.exists, "bad argument #1 to 'exists' (" .. s .. "boolean)", false)
    bad(fs.listdir, "bad argument #1 to 'listdir' (" .. s .. "nil)")
    bad(fs.scandir, "bad argument #1 to 'scandir' (" .. s .. "nil)")
    bad(fs.mkdir, "bad argument #1 to 'mkdir' (" .. s .. "nil)")
    bad(fs.mkdir, "bad argument #2 to 'mkdir' (table expected, got string)", "d", "p")
    bad(fs.remove, "bad argument #1 to 'remove' (" .. s .. "nil)")
    bad(fs.rmtree, "bad argument #1 to 'rmtree' (" .. s .. "nil)")
    bad(fs.rename, "bad argument #2 to 'rename' (" .. s .. "nil)", "a")
    bad(fs.copy, "bad argument #1 to 'copy' (" .. s .. "nil)")
    bad(fs.copy, "bad argument #3 to 'copy' (table expected, got number)", "a", "b", 1)
    bad(fs.tempdir, "bad argument #1 to 'tempdir' (" .. s .. "number)", 5)
    bad(fs.lines, "bad argument #1 to 'lines' (" .. s .. "nil)")
    bad(fs.watch, "bad argument #1 to 'watch' (" .. s .. "nil)")
    bad(fs.watch, "bad argument #2 to 'watch' (table expected, got number)", ".", 1)
    bad(fs.watch, "bad argument #2 to 'watch' (debounce must be a non-negative number)",
        ".", {debounce = -1})
    local dir, _ <close> = tmp()
    local f <close> = fs.open(dir .. "/f", "w")
    assert.has_error(function() f:write({}) end,
                     "bad argument #1 to 'write' (string expected, got table)")
  end)
end)

describe("async.fs and cancellation", function()
  it("cancelled reads release their descriptors and memory", function()
    local dir, _ <close> = tmp()
    local big = dir .. "/big"
    fs.write_file(big, ("x"):rep(4 * 1024 * 1024))
    local before = fdcount()
    for round = 0, 4 do  -- cancelled at various points of the requests
      local tasks = {}
      for i = 1, 12 do
        tasks[i] = async.spawn(i % 2 == 0 and fs.read_file or fs.open, big)
      end
      async.sleep(round * 0.002)
      for _, t in ipairs(tasks) do t:cancel() end
      for _, t in ipairs(tasks) do
        local ok, res = pcall(async.await, t)
        if ok then  -- it finished first
          if type(res) ~= "string" then res:close() end
        else
          assert.is_true(async.CancelledError:is(res), tostring(res))
        end
      end
    end
    assert.equal(before, settlefds(before))
  end)

  it("a file read cancelled midway loses no data", function()
    local dir, _ <close> = tmp()
    local p = dir .. "/data"
    local data = {}
    for i = 1, 200000 do data[i] = ("%07d\n"):format(i) end
    data = table.concat(data)
    fs.write_file(p, data)
    local f <close> = fs.open(p)
    assert.equal("0000001", f:read("l"))
    local t = async.spawn(function() return f:read(#data) end)
    async.sleep(0)  -- t is reading now: a second reader is refused
    assert.has_error(function() f:read(1) end, "another task is using this file")
    t:cancel()
    assert.is_false(pcall(async.await, t))
    assert.is_true(t:cancelled())
    -- the next read waits for the one still running, and finds everything
    assert.equal(data:sub(9), f:read("a"))
    local t2 = async.spawn(function() return f:read(10) end)
    t2:cancel()  -- before it even started
    assert.is_false(pcall(async.await, t2))
    assert.equal(#data, f:seek())
  end)

  it("a task cancelled while writing the whole file leaves no temp file", function()
    local dir, _ <close> = tmp()
    local payload = ("z"):rep(8 * 1024 * 1024)
    for round = 0, 3 do
      local t = async.spawn(fs.write_file, dir .. "/out", payload,
                            {atomic = true})
      async.sleep(round * 0.003)
      t:cancel()
      pcall(async.await, t)
    end
    async.sleep(0.3)  -- the cancelled chains clean up in the background
    local names = fs.listdir(dir)
    assert.is_true(#names <= 1, table.concat(names, " "))
    if names[1] then
      assert.equal("out", names[1])
      assert.equal(#payload, #fs.read_file(dir .. "/out"))
    end
  end)

  it("reading 200 files at once does not block a ticker task", function()
    local dir, _ <close> = tmp()
    local chunk = ("0123456789abcdef"):rep(8192)  -- 128 KiB
    local writes = {}
    for i = 1, 200 do
      writes[i] = function() fs.write_file(("%s/f%03d"):format(dir, i), chunk .. i) end
    end
    async.gather(writes)
    local stop, ticks, maxgap = false, 0, 0
    local ticker = async.spawn(function()  -- ticks at every loop turn
      local last = async.loop_time()
      while not stop do
        async.sleep(0)
        local now = async.loop_time()
        if now - last > maxgap then maxgap = now - last end
        last = now
        ticks = ticks + 1
      end
    end)
    async.sleep(0)
    local reads = {}
    for i = 1, 200 do
      reads[i] = function() return fs.read_file(("%s/f%03d"):format(dir, i)) end
    end
    -- each read is 4 requests (open, fstat, read, close) that end in later
    -- loop turns: the ticker ticks meanwhile; reads that blocked the loop
    -- would all be done within one turn (2 ticks counted)
    local before = ticks
    local res = async.gather(reads)
    local during = ticks - before
    stop = true
    async.await(ticker)
    for i = 1, 200 do assert.equal(chunk .. i, res[i]) end
    assert.is_true(during >= 4, "the ticker ticked " .. during .. " times")
    assert.is_true(maxgap < 0.5, "the loop stalled for " .. maxgap .. " s")
  end, 30)
end)

describe("async.fs.watch", function()
  -- The next event, or nil after 'within' seconds.
  local function nextev(w, within)
    local ok, ev = pcall(async.wait_for, function() return w:next() end,
                         within or 3)
    if ok then return ev end
    assert(async.TimeoutError:is(ev), tostring(ev))
    return nil
  end

  it("sees a create, a modify and a rename, repeated events merged", function()
    local dir, _ <close> = tmp()
    local p = dir .. "/file.txt"
    local w <close> = fs.watch(dir, {debounce = 0.1})
    local t0 = async.loop_time()
    fs.write_file(p, "1")
    fs.append_file(p, "2")
    fs.append_file(p, "3")
    assert.same({path = p, event = "rename"}, nextev(w))  -- created: once
    assert.is_true(async.loop_time() - t0 >= 0.095)  -- after the window
    assert.is_nil(nextev(w, 0.3))  -- nothing else
    fs.append_file(p, "4")
    fs.append_file(p, "5")
    assert.same({path = p, event = "change"}, nextev(w))
    fs.rename(p, dir .. "/moved.txt")
    local a, b = nextev(w), nextev(w)
    local got = {a.path .. " " .. a.event, b.path .. " " .. b.event}
    table.sort(got)
    assert.same({dir .. "/file.txt rename", dir .. "/moved.txt rename"}, got)
    assert.matches("^Watcher %(", tostring(w))
  end)

  it("debounce = 0 delivers each event", function()
    local dir, _ <close> = tmp()
    fs.write_file(dir .. "/f", "")
    local w <close> = fs.watch(dir, {debounce = 0})
    fs.append_file(dir .. "/f", "a")
    assert.same({path = dir .. "/f", event = "change"}, nextev(w))
    fs.append_file(dir .. "/f", "b")
    assert.same({path = dir .. "/f", event = "change"}, nextev(w))
  end)

  it("watches a single file", function()
    local dir, _ <close> = tmp()
    local p = dir .. "/one"
    fs.write_file(p, "x")
    fs.write_file(dir .. "/other", "x")
    local w <close> = fs.watch(p, {debounce = 0.02})
    fs.append_file(dir .. "/other", "y")
    fs.append_file(p, "y")
    assert.same({path = p, event = "change"}, nextev(w))
    assert.is_nil(nextev(w, 0.2))
  end)

  it("is a for-loop iterator that ends when closed", function()
    local dir, _ <close> = tmp()
    local w = fs.watch(dir, {debounce = 0.01})
    local seen = {}
    local reader = async.spawn(function()
      for ev in w do seen[#seen + 1] = ev.path end
      return "ended"
    end)
    fs.write_file(dir .. "/a", "")
    while #seen == 0 do async.sleep(0.01) end
    w:close()
    assert.equal("ended", async.await(reader))
    assert.same({dir .. "/a"}, seen)
    assert.is_nil(w:next())
    w:close()  -- again: nothing
  end)

  it("recursive: sees new subdirectories and what is made in them", function()
    local dir, _ <close> = tmp()
    fs.mkdir(dir .. "/old")
    local w <close> = fs.watch(dir, {recursive = true, debounce = 0.02})
    fs.write_file(dir .. "/old/f", "")
    assert.same({path = dir .. "/old/f", event = "rename"}, nextev(w))
    -- a tree made at once: its entries are reported as the watch finds them
    fs.mkdir(dir .. "/new/deeper", {parents = true})
    fs.write_file(dir .. "/new/deeper/file", "x")
    local seen = {}
    while not seen[dir .. "/new/deeper/file"] do
      local ev = nextev(w)
      assert.is_not_nil(ev, "missing events")
      seen[ev.path] = ev.event
    end
    assert.equal("rename", seen[dir .. "/new"])
    assert.equal("rename", seen[dir .. "/new/deeper"])
    -- the new directories are watched now
    fs.append_file(dir .. "/new/deeper/file", "y")
    assert.same({path = dir .. "/new/deeper/file", event = "change"}, nextev(w))
    -- without recursive, a subdirectory's content is not seen
    local w2 <close> = fs.watch(dir, {debounce = 0.02})
    fs.write_file(dir .. "/old/g", "")
    assert.equal(dir .. "/old/g", nextev(w).path)
    assert.is_nil(nextev(w2, 0.2))
  end)

  it("a watched path that does not exist is a FileNotFoundError", function()
    local dir, _ <close> = tmp()
    local err = errclass(async.FileNotFoundError, fs.watch, dir .. "/nope")
    assert.equal(dir .. "/nope", err.path)
  end)

  it("a cancelled iteration releases the watcher's handle", function()
    local dir, _ <close> = tmp()
    local before = #core.handles()
    local t = async.spawn(function()
      local w <close> = fs.watch(dir, {recursive = true})
      for _ in w do end
    end)
    fs.mkdir(dir .. "/a")
    async.sleep(0.05)
    assert.is_true(#core.handles() > before)
    t:cancel()
    assert.is_false(pcall(async.await, t))
    assert.equal(before, #core.handles())
    -- and one dropped without close is released by the collector
    fs.watch(dir)
    collectgarbage()
    collectgarbage()
    assert.equal(before, #core.handles())
  end)
end)

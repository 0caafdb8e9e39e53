--- async.fs: files and directories without blocking the loop.
--
--   local fs = async.fs
--   local text = fs.read_file("data/in.txt")
--   fs.write_file("data/out.txt", text:upper(), {atomic = true})
--   local f <close> = fs.open("data/log.txt")
--   for line in f:lines() do print(line) end
--   local w <close> = fs.watch("data", {recursive = true})
--   for ev in w do print(ev.event, ev.path) end
--
-- Every call that touches the disk is a libuv request run on libuv's
-- thread pool (bindings/fs.c), awaited by the calling task.  What is here
-- composes them: mkdir with parents, rmtree, tempdir, the scandir and
-- lines iterators, and watch() (debounce, recursive watching).
-- See docs/fs.md.
local core = require "asynchost.core.fs"
local errors = require "asynchost.errors"
local check = require "asynchost.check"
local loop_time = require("asynchost.core").loop_time
local rawpcall = require("asynchost.core.coroutine").rawpcall
local argerror, typename = check.argerror, check.typename

local M = {}

local function checkstring(x, i, fname)
  if type(x) ~= "string" then
    argerror(i, fname, "string expected, got " .. typename(x), 3)
  end
end

local function checkopts(opts, i, fname)
  if opts ~= nil and type(opts) ~= "table" then
    argerror(i, fname, "table expected, got " .. typename(opts), 3)
  end
  return opts or {}
end

--- read_file(path) -> the whole content of the file.
function M.read_file(path)
  checkstring(path, 1, "read_file")
  return core.read_file(path)
end

--- write_file(path, data [, {atomic = bool}]): creates or truncates the
-- file and writes data.  atomic: writes a temporary file beside it, fsyncs
-- it and renames it over path, so that readers see the old content or the
-- new, never a part.
function M.write_file(path, data, opts)
  checkstring(path, 1, "write_file")
  checkstring(data, 2, "write_file")
  checkopts(opts, 3, "write_file")
  return core.write_file(path, data, opts)
end

--- append_file(path, data): creates the file if needed, writes at its end.
function M.append_file(path, data)
  checkstring(path, 1, "append_file")
  checkstring(data, 2, "append_file")
  return core.append_file(path, data)
end

--- open(path [, mode = "r"]) -> file.  Modes as io.open's ("r", "w", "a",
-- "r+", "w+", "a+", with "b", ignored) and "x" after "w" (fails if the
-- file exists).
function M.open(path, mode)
  checkstring(path, 1, "open")
  if mode == nil then mode = "r" end
  checkstring(mode, 2, "open")
  if not (mode:match("^[rwa]%+?b?$") or mode:match("^w%+?[bx]*$")) then
    argerror(2, "open", "invalid mode", 2)
  end
  return core.open(path, mode)
end

--- stat(path) -> {type, size, mode, mtime, atime, ctime, ...}; follows
-- symbolic links.
function M.stat(path)
  checkstring(path, 1, "stat")
  return core.stat(path)
end

--- lstat(path): as stat, but a symbolic link is described itself.
function M.lstat(path)
  checkstring(path, 1, "lstat")
  return core.lstat(path)
end

--- exists(path) -> boolean (false on any error, as os.path.exists).
function M.exists(path)
  checkstring(path, 1, "exists")
  return core.exists(path)
end

--- remove(path): a file, a link, or an empty directory.
function M.remove(path)
  checkstring(path, 1, "remove")
  return core.remove(path)
end

--- rename(old, new): replaces new if it exists (rename(2)).
function M.rename(old, new)
  checkstring(old, 1, "rename")
  checkstring(new, 2, "rename")
  return core.rename(old, new)
end

--- copy(src, dst [, {exclusive = bool}]): copies a file's content and
-- mode; exclusive fails with FileExistsError if dst exists.
function M.copy(src, dst, opts)
  checkstring(src, 1, "copy")
  checkstring(dst, 2, "copy")
  checkopts(opts, 3, "copy")
  return core.copy(src, dst, opts)
end

--- dir .. "/" .. name, without doubling a slash.
local function join(dir, name)
  if dir:sub(-1) == "/" then return dir .. name end
  return dir .. "/" .. name
end

--- The parent of path ("." for a bare name, "/" for the root).
local function dirname(path)
  path = path:gsub("/+$", "")
  if path == "" then return "/" end
  local parent = path:match("^(.*)/[^/]*$")
  if parent == nil then return "." end
  if parent == "" then return "/" end
  return parent
end

--- listdir(path) -> sorted array of the names in the directory (without
-- "." and "..").
function M.listdir(path)
  checkstring(path, 1, "listdir")
  local names = core.scandir(path)
  table.sort(names)
  return names
end

--- scandir(path) -> iterator of name, type ("file", "directory", "link",
-- "fifo", "socket", "char", "block"), in name order.  The directory is
-- read when scandir is called; a type the file system does not tell is
-- found with lstat as the iteration reaches it.
function M.scandir(path)
  checkstring(path, 1, "scandir")
  local names, types = core.scandir(path)
  local order = {}
  for k = 1, #names do order[k] = k end
  table.sort(order, function(a, b) return names[a] < names[b] end)
  local i = 0
  return function()
    i = i + 1
    local k = order[i]
    if k == nil then return nil end
    local name, kind = names[k], types[k]
    if kind == "unknown" then
      local ok, st = rawpcall(core.lstat, join(path, name))
      if ok then kind = st.type end
    end
    return name, kind
  end
end

local function makedirs(path, mode)
  local ok, err = rawpcall(core.mkdir, path, mode)
  if ok then return end
  if errors.FileNotFoundError:is(err) then
    local parent = dirname(path)
    if parent == path or parent == "." or parent == "/" then error(err, 0) end
    makedirs(parent, mode)
    ok, err = rawpcall(core.mkdir, path, mode)
    if ok then return end
  end
  if errors.FileExistsError:is(err) then  -- fine if it is a directory
    local isdir, st = rawpcall(core.stat, path)
    if isdir and st.type == "directory" then return end
  end
  error(err, 0)
end

--- mkdir(path [, {parents = bool, mode = 0755}]): parents makes the
-- missing parents too and accepts a directory that exists (mkdir -p).
-- mode defaults to 0777, less the umask.
function M.mkdir(path, opts)
  checkstring(path, 1, "mkdir")
  opts = checkopts(opts, 2, "mkdir")
  local mode = opts.mode or 511  -- 0777
  if math.type(mode) ~= "integer" or mode < 0 or mode > 4095 then
    argerror(2, "mkdir", "mode must be an integer from 0 to 4095", 2)
  end
  if opts.parents then return makedirs(path, mode) end
  return core.mkdir(path, mode)
end

local function rmtree(path)
  local st = core.lstat(path)
  if st.type ~= "directory" then return core.unlink(path) end
  local names, types = core.scandir(path)
  for i, name in ipairs(names) do
    local p = join(path, name)
    local ok, err
    if types[i] == "directory" or types[i] == "unknown" then
      ok, err = rawpcall(rmtree, p)
    else
      ok, err = rawpcall(core.unlink, p)
    end
    -- gone meanwhile: what we wanted
    if not ok and not errors.FileNotFoundError:is(err) then error(err, 0) end
  end
  return core.rmdir(path)
end

--- rmtree(path): removes the file or the directory and everything in it
-- (symbolic links are removed, not followed).
function M.rmtree(path)
  checkstring(path, 1, "rmtree")
  return rmtree(path)
end

--- The second value tempdir() returns: `<close>` removes the directory.
local TempDir = {}
TempDir.__index = TempDir
TempDir.__name = "TempDir"

--- remove(): removes the directory and what it holds (once; a directory
-- already gone is fine).
function TempDir:remove()
  if self.removed then return end
  self.removed = true
  local ok, err = rawpcall(rmtree, self.path)
  if not ok and not errors.FileNotFoundError:is(err) then error(err, 0) end
end

TempDir.__close = TempDir.remove

function TempDir:__tostring()
  return "TempDir (" .. self.path .. ")"
end

--- tempdir([prefix = "asynchost-"]) -> path, guard.  Makes a new directory
-- (mode 0700) in $TMPDIR or /tmp.  Nothing removes it by itself: call
-- fs.rmtree(path), or keep the guard in a to-be-closed variable:
--   local dir, _ <close> = fs.tempdir()
function M.tempdir(prefix)
  if prefix == nil then prefix = "asynchost-" end
  checkstring(prefix, 1, "tempdir")
  if prefix:find("/", 1, true) then
    argerror(1, "tempdir", "prefix must not contain '/'", 2)
  end
  local base = os.getenv("TMPDIR")
  if base == nil or base == "" then base = "/tmp" end
  local path = core.mkdtemp(join(base, prefix .. "XXXXXX"))
  return path, setmetatable({path = path}, TempDir)
end

--- lines(path, ...) -> iterator over the lines of the file (formats as
-- file:lines).  The file is closed at the end, or when a `for` loop is left
-- early (the iterator's fourth value closes it).
function M.lines(path, ...)
  checkstring(path, 1, "lines")
  for i = 1, select("#", ...) do
    local fmt = select(i, ...)
    if not (math.type(fmt) == "integer" and fmt >= 0 or
            type(fmt) == "string" and fmt:match("^%*?[alL]")) then
      argerror(i + 1, "lines", "invalid format", 2)
    end
  end
  local f = core.open(path, "r")
  local it = f:lines(...)
  return function()
    local line = it()
    if line == nil then f:close() end
    return line
  end, nil, nil, f
end


-- {======================================================
-- Watching
-- ======================================================

local Watcher = {}
Watcher.__index = Watcher
Watcher.__name = "Watcher"

-- Watches directory 'dir' and (recursive) every directory under it.  With
-- 'report', entries found are reported as "rename" events: they were made
-- before the watch could see them.
local function watchtree(w, dir, report)
  if w.dirs[dir] or w.closed then return end
  w.raw:add(dir, true)
  w.dirs[dir] = true
  if not w.recursive then return end
  local ok, names, types = rawpcall(core.scandir, dir)
  if not ok then
    if errors.OSError:is(names) then return end  -- gone already
    error(names, 0)
  end
  for i, name in ipairs(names) do
    if w.closed then return end  -- closed while we looked
    local p = join(dir, name)
    if report then w:_event(p, "rename") end
    local kind = types[i]
    if kind == "unknown" then
      local got, st = rawpcall(core.lstat, p)
      kind = got and st.type or kind
    end
    if kind == "directory" then watchtree(w, p, report) end
  end
end

-- Notes a raw event (merged with one pending for the same path).
function Watcher:_event(path, kind)
  local e = self.pending[path]
  if e then
    if kind == "rename" then e.event = "rename" end
    return
  end
  e = {path = path, event = kind, due = loop_time() + self.debounce}
  self.pending[path] = e
  self.order[#self.order + 1] = e
  if self.recursive and kind == "rename" then
    self.tocheck[#self.tocheck + 1] = path
  end
end

-- A path under a recursive watch was created or removed: watch a new
-- directory (and what is already in it), forget a removed one.
function Watcher:_check(path)
  local ok, st = rawpcall(core.lstat, path)
  if self.closed then return end
  if ok then
    if st.type == "directory" and not self.dirs[path] then
      watchtree(self, path, true)
    end
  elseif errors.OSError:is(st) then
    if self.dirs[path] then
      self.raw:remove(path)
      local prefix = path .. "/"
      for d in pairs(self.dirs) do
        if d == path or d:sub(1, #prefix) == prefix then self.dirs[d] = nil end
      end
    end
  else
    error(st, 0)
  end
end

--- w:next() -> the next event {path = ..., event = "change" | "rename"},
-- or nil once the watcher is closed.  Waits for one.
function Watcher:next()
  while true do
    if self.closed then return nil end
    while self.tocheck[1] ~= nil do  -- removed once done (cancel-safe)
      self:_check(self.tocheck[1])
      table.remove(self.tocheck, 1)
    end
    local now, wait = loop_time(), nil
    for i, e in ipairs(self.order) do
      if e.due <= now then
        table.remove(self.order, i)
        self.pending[e.path] = nil
        return {path = e.path, event = e.event}
      end
      if wait == nil or e.due - now < wait then wait = e.due - now end
    end
    local path, kind = self.raw:poll(wait)
    if path ~= nil then self:_event(path, kind) end
  end
end

Watcher.__call = Watcher.next  -- for ev in w do ... end

--- w:close(): stops watching (a task waiting in next() gets nil).
function Watcher:close()
  if self.closed then return end
  self.closed = true
  self.raw:close()
  self.pending, self.order, self.tocheck = {}, {}, {}
end

Watcher.__close = Watcher.close

function Watcher:__tostring()
  return ("Watcher (%s%s)"):format(self.path,
                                   self.closed and ", closed" or "")
end

--- watch(path [, {recursive = false, debounce = 0.05}]) -> watcher.
-- Events for one path that arrive within `debounce` seconds of its first
-- are merged into one ("rename" wins over "change"), delivered when that
-- window ends.  recursive watches every directory under path, and new
-- ones as they appear.
function M.watch(path, opts)
  checkstring(path, 1, "watch")
  opts = checkopts(opts, 2, "watch")
  local debounce = opts.debounce
  if debounce == nil then debounce = 0.05 end
  if type(debounce) ~= "number" or debounce < 0 or debounce ~= debounce then
    argerror(2, "watch", "debounce must be a non-negative number", 2)
  end
  local st = core.stat(path)
  local w = setmetatable({
    path = path, raw = core.watcher(), recursive = not not opts.recursive,
    debounce = debounce, dirs = {}, pending = {}, order = {}, tocheck = {},
  }, Watcher)
  if st.type ~= "directory" then
    w.recursive = false
    w.raw:add(path, false)
    return w
  end
  local ok, err = rawpcall(watchtree, w, path, false)
  if not ok then
    w:close()
    error(err, 0)
  end
  return w
end

-- }======================================================

return M

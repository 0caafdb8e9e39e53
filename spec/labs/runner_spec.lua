-- The learner's runner, `asynchost lab ...` (lua/asynchost/lab.lua),
-- driven as a learner would in a terminal, in a temporary copy of the
-- labs (lab3 and lab4 with their specs and solutions).
local async = require "asynchost"
require "asynchost.busted"
local lab = require "spec.labs.labhelp"

local q = lab.q

-- The executable, as an absolute path (the commands run elsewhere).
local BIN = lab.bin
if BIN:sub(1, 1) ~= "/" then
  BIN = (os.getenv("PWD") or ".") .. "/" .. BIN:gsub("^%./", "")
end

-- A fresh copy of the labs; returns its path.
local function copy()
  local root = lab.tempdir()
  assert(os.execute(table.concat({
    "mkdir -p " .. q(root .. "/exercises") .. " " .. q(root .. "/solutions")
      .. " " .. q(root .. "/spec/labs"),
    "cp -r exercises/lab3 exercises/lab4 " .. q(root .. "/exercises/"),
    "cp -r solutions/lab4 " .. q(root .. "/solutions/"),
    "cp spec/helpers.lua " .. q(root .. "/spec/"),
    "cp spec/labs/lab4_spec.lua spec/labs/labhelp.lua spec/labs/helpers.lua "
      .. q(root .. "/spec/labs/"),
  }, " && ")))
  return root
end

-- Runs `asynchost lab ARGS` in root: output (stdout and stderr), status.
local function labcmd(root, args, input)
  local cmd = ("cd %s && %sASYNCHOST_BIN=%s %s lab %s%s"):format(
    q(root), input and ("printf %s | "):format(q(input)) or "", q(BIN),
    q(BIN), args, input and "" or " < /dev/null")
  return lab.sh(cmd, 40)
end

local function solve(root, name)
  assert(os.execute(("cp %s/solutions/lab4/%s.lua %s/exercises/lab4/")
                    :format(q(root), name, q(root))))
end

-- Waits until the file at path contains `text` (at most `timeout` s).
local function waitfor(path, text, timeout)
  local deadline = async.loop_time() + (timeout or 20)
  while async.loop_time() < deadline do
    local f = io.open(path)
    if f then
      local s = f:read("a")
      f:close()
      if s:find(text, 1, true) then return s end
    end
    async.sleep(0.05)
  end
  local f = io.open(path)
  local s = f and f:read("a") or ""
  if f then f:close() end
  error(("'%s' never appeared; the output was:\n%s"):format(text, s), 2)
end

describe("asynchost lab", function()
  local root
  before_each(function() root = copy() end)
  after_each(function() lab.rmtree(root) end)

  it("lists the labs and the state of each exercise", function()
    local out, rc = labcmd(root, "")
    assert.equal(0, rc, out)
    assert.matches("Lab 3: asynchronous programming for DevOps", out, 1, true)
    assert.matches("Lab 4: introduction to asynchronous programming", out, 1,
                   true)
    assert.matches("lab3/async_utils%s+not started", out)
    assert.matches("lab4/web_scraper%s+not started", out)
    assert.matches("Progress: 0 of 7 exercises done.", out, 1, true)
    assert.matches("Next: lab3/async_utils", out, 1, true)
    -- ASYNCHOST_LABS finds them from elsewhere
    out, rc = lab.sh(("cd / && ASYNCHOST_LABS=%s %s lab --no-check")
                     :format(q(root), q(BIN)))
    assert.equal(0, rc, out)
    assert.matches("lab4/download_files", out, 1, true)
    out, rc = lab.sh(("cd / && %s lab"):format(q(BIN)))
    assert.equal(2, rc)
    assert.matches("no labs here", out, 1, true)
  end)

  it("checks a failing exercise, then a passing one", function()
    local out, rc = labcmd(root, "check lab4/download_files")
    assert.equal(1, rc, out)
    assert.matches("Checking lab4/download_files", out, 1, true)
    assert.matches("TODO(ex1): implement download_file", out, 1, true)
    assert.matches("0 of 3 checks pass", out, 1, true)
    assert.matches("asynchost lab hint lab4/download_files", out, 1, true)
    solve(root, "download_files")
    out, rc = labcmd(root, "check download_files")
    assert.equal(0, rc, out)
    assert.matches("All 3 checks pass: lab4/download_files is done.", out, 1,
                   true)
    out = labcmd(root, "")
    assert.matches("lab4/download_files%s+done", out)
    assert.matches("Progress: 1 of 7 exercises done.", out, 1, true)
    -- an edit is noticed and checked again by the list
    local f = assert(io.open(root .. "/exercises/lab4/web_crawler.lua", "a"))
    f:write("-- started\n")
    f:close()
    out = labcmd(root, "")
    assert.matches("Checking 1 edited exercise", out, 1, true)
    assert.matches("lab4/web_crawler%s+failing", out)
    assert.matches("0 of 3 checks pass", out, 1, true)
    out, rc = labcmd(root, "check nosuch")
    assert.equal(2, rc)
    assert.matches("no exercise 'nosuch'", out, 1, true)
  end, 60)

  it("gives the hints one at a time and remembers", function()
    local out, rc = labcmd(root, "hint lab4/web_scraper")
    assert.equal(0, rc, out)
    assert.matches("Hint 1 of 5 for lab4/web_scraper", out, 1, true)
    assert.is_nil(out:find("Hint 2 of", 1, true))
    out = labcmd(root, "hint web_scraper")
    assert.matches("Hint 1 of 5", out, 1, true)
    assert.matches("Hint 2 of 5", out, 1, true)
    for _ = 1, 4 do out = labcmd(root, "hint web_scraper") end
    assert.matches("Hint 5 of 5", out, 1, true)
    assert.matches("That was the last hint", out, 1, true)
    local state = lab.readfile(root .. "/.lab-state")
    assert.matches('"hints":5', state, 1, true)
  end)

  it("shows a solution only when asked to", function()
    local solution = lab.readfile(root .. "/solutions/lab4/web_crawler.lua")
    local out, rc = labcmd(root, "solution lab4/web_crawler")
    assert.equal(1, rc)
    assert.matches("[y/N]", out, 1, true)
    assert.matches("Not shown", out, 1, true)
    assert.is_nil(out:find(solution, 1, true))
    out, rc = labcmd(root, "solution lab4/web_crawler", "n\n")
    assert.equal(1, rc)
    assert.is_nil(out:find(solution, 1, true))
    out, rc = labcmd(root, "solution lab4/web_crawler", "y\n")
    assert.equal(0, rc, out)
    assert.matches(solution, out, 1, true)
    out, rc = labcmd(root, "solution lab4/web_crawler --yes")
    assert.equal(0, rc, out)
    assert.matches("==> solutions/lab4/web_crawler.lua <==", out, 1, true)
    assert.matches(solution, out, 1, true)
  end)

  it("watches: a save that makes an exercise pass moves on", function()
    local outfile, pidfile = root .. "/watch.out", root .. "/watch.pid"
    assert(os.execute(("cd %s && (ASYNCHOST_BIN=%s %s lab watch "
                       .. "lab4/download_files > %s 2>&1 < /dev/null & "
                       .. "echo $! > %s)"):format(q(root), q(BIN), q(BIN),
                                                  q(outfile), q(pidfile))))
    local pid = lab.readfile(pidfile):match("%d+")
    local _ <close> = setmetatable({}, {__close = function()
      os.execute("kill -9 " .. pid .. " 2>/dev/null")
    end})
    waitfor(outfile, "Ctrl-C to stop")
    local s = lab.readfile(outfile)
    assert.matches("0 of 3 checks pass", s, 1, true)
    solve(root, "download_files")
    s = waitfor(outfile, "Next: lab4/web_crawler")
    assert.matches("All 3 checks pass: lab4/download_files is done.", s, 1,
                   true)
    s = waitfor(outfile, "save exercises/lab4/web_crawler.lua")
    assert.matches("TODO(ex2): implement fetch_title", s, 1, true)
    os.execute("kill -INT " .. pid)
    s = waitfor(outfile, "Stopped watching.", 10)
    local deadline = async.loop_time() + 5
    while os.execute("kill -0 " .. pid .. " 2>/dev/null")
          and async.loop_time() < deadline do
      async.sleep(0.05)
    end
    assert.is_falsy(os.execute("kill -0 " .. pid .. " 2>/dev/null"),
                    "the watcher did not exit")
  end, 60)

  it("explains its usage", function()
    local out, rc = labcmd(root, "frobnicate")
    assert.equal(2, rc)
    assert.matches("unknown command 'frobnicate'", out, 1, true)
    assert.matches("usage: asynchost lab", out, 1, true)
    out, rc = labcmd(root, "--help")
    assert.equal(0, rc)
    assert.matches("asynchost lab watch", out, 1, true)
  end)
end)

--- asynchost.top: the lines of the `asynchost --top` dashboard.
--
-- bindings/trace.c calls render(stats) twice a second with the figures of
-- core.trace.stats() (plus rows, cols and final) and draws the lines it
-- returns at the top of the terminal; this module only formats.  Rates
-- (per second) are taken between two calls.
local M = {}

local prev = nil  -- the figures of the previous frame

local function fit(s, cols)
  if #s > cols then return s:sub(1, cols) end
  return s
end

local function rate(now, before, dt)
  if dt <= 0 then return 0 end
  return ((now or 0) - (before or 0)) / dt
end

local function seconds(s)
  if s >= 3600 then return ("%dh%02dm"):format(s // 3600, s % 3600 // 60) end
  if s >= 60 then return ("%dm%02ds"):format(s // 60, s % 60) end
  return ("%.1fs"):format(s)
end

-- The queues made while the dashboard runs, deepest first.
local function queues(tracked)
  local list = {}
  for q, info in pairs(tracked or {}) do
    if type(info.kind) == "string" and info.kind:find("Queue$") then
      local ok, n = pcall(q.qsize, q)
      local ok2, max = pcall(q.maxsize, q)
      if ok then
        list[#list + 1] = {site = info.kind .. " " .. (info.site or "?"),
                           n = n,
                           max = ok2 and max or 0}
      end
    end
  end
  table.sort(list, function(a, b)
    if a.n ~= b.n then return a.n > b.n end
    return a.site < b.site
  end)
  return list
end

--- The dashboard as an array of at most stats.rows lines of at most
-- stats.cols bytes.
function M.render(s)
  local rows, cols = s.rows or 24, s.cols or 80
  local w = math.max(28, math.min(48, cols - 32))  -- the first column
  local kfmt = "%-" .. w .. "s %8s %10s %10s"
  local dt = prev and (s.elapsed - prev.elapsed) or 0
  local pc = prev and prev.completed or {}
  local lines = {}
  local function add(line)
    if #lines < rows then
      lines[#lines + 1] = (fit(line, cols):gsub("%s+$", ""))
    end
  end

  add(("asynchost --top%s   up %s   loop lag %.1f ms (max %.1f ms)")
      :format(s.final and " (at exit)" or "", seconds(s.elapsed), s.lag,
              s.maxlag))
  add(("tasks: %d live (%d running, %d ready, %d waiting)   %d spawned, "
       .. "%d done, %d failed, %d cancelled")
      :format(s.live, s.running, s.ready, s.waiting, s.spawned, s.done,
              s.failed, s.cancelled))
  add(("       %.0f steps/s, %.0f spawned/s")
      :format(rate(s.steps, prev and prev.steps, dt),
              rate(s.spawned, prev and prev.spawned, dt)))
  local inflight = (s.waits["an HTTP request"] or 0)
  local httpdone = s.completed["an HTTP request"] or 0
  add(("http:  %d in flight, %.1f requests/s, %d done")
      :format(inflight, rate(httpdone, pc["an HTTP request"], dt), httpdone))

  -- waits by kind: tasks waiting now, waits ended per second, in total
  local kinds, seen = {}, {}
  for k in pairs(s.waits) do
    if not seen[k] then seen[k] = true; kinds[#kinds + 1] = k end
  end
  for k in pairs(s.completed) do
    if not seen[k] then seen[k] = true; kinds[#kinds + 1] = k end
  end
  table.sort(kinds, function(a, b)
    local na, nb = s.waits[a] or 0, s.waits[b] or 0
    if na ~= nb then return na > nb end
    return a < b
  end)
  add("")
  add(kfmt:format("WAITING ON", "NOW", "ENDED/S", "ENDED"))
  for i = 1, math.min(#kinds, 8) do
    local k = kinds[i]
    add(kfmt:format(k, s.waits[k] or 0,
        ("%.1f"):format(rate(s.completed[k], pc[k], dt)),
        s.completed[k] or 0))
  end

  local qs = queues(s.tracked)
  if #qs > 0 then
    add("")
    add(kfmt:format("QUEUE (made at)", "ITEMS", "MAXSIZE", ""))
    for i = 1, math.min(#qs, 4) do
      local q = qs[i]
      local site = q.site
      if #site > w then site = "~" .. site:sub(-(w - 1)) end
      add(kfmt:format(site, q.n, q.max > 0 and tostring(q.max) or "-", ""))
    end
  end

  add("")
  add(("%-24s %8s  %s"):format("TASK", "AGE", "STATE"))
  for _, t in ipairs(s.tasks or {}) do
    if #lines >= rows then break end
    if t.state == "done" or t.state == "failed" or t.state == "cancelled"
    then goto continue end
    local name = t.name
    if #name > 24 then name = name:sub(1, 23) .. "~" end
    add(("%-24s %8s  %s"):format(name, seconds(t.age), t.state))
    ::continue::
  end
  if s.live > #(s.tasks or {}) and #lines < rows then
    add(("... and %d more"):format(s.live - #(s.tasks or {})))
  end

  prev = {elapsed = s.elapsed, steps = s.steps, spawned = s.spawned,
          completed = s.completed}
  return lines
end

return M

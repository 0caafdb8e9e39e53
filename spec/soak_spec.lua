-- The soak (bench/soak.lua), short: 25 s of churn and traffic in a child
-- process, whose memory and fds must stay flat after the warm-up; and the
-- soak does see a leak.
require "asynchost.busted"
local helpers = require "spec.helpers"
local q = helpers.q

local BIN = helpers.BIN  -- the asynchost executable under test

describe("soak", function()
  it("25 s of churn and HTTP traffic: memory and fds stay flat", function()
    local out, code = helpers.sh(("%s bench/soak.lua --seconds 25 "
                                  .. "--interval 1"):format(q(BIN)), 120)
    assert.equal(0, code, out)
    assert.matches("soak: PASS", out)
    -- every worker did work, and the curve was printed
    for _, what in ipairs{"requests", "faults", "tasks", "items",
                          "connections", "timeouts"} do
      local n = tonumber(out:match(what .. " (%d+)"))
      assert(n and n > 0, "no " .. what .. " in:\n" .. out)
    end
    local samples = 0
    for line in out:gmatch("[^\n]+") do  -- after the warm-up
      if line:match("^%s*[%d.]+%s+[%d.]+%s+[%d.]+%s+%d+%s+%d+%s*$") then
        samples = samples + 1
      end
    end
    assert.is_true(samples >= 10, out)
    assert.matches("fds (%d+)%.0 %-> %1%.0", out)
  end, 150)

  it("fails on a leak of memory and fds", function()
    local out, code = helpers.sh(("%s bench/soak.lua --seconds 10 "
                                  .. "--warmup 2 --workers churn,leak")
                                 :format(q(BIN)), 60)
    assert.equal(1, code, out)
    assert.matches("soak: FAIL: Lua heap grew by", out)
    assert.matches("soak: FAIL: fds grew by", out)
    assert.not_matches("soak: PASS", out)
  end, 90)

  it("refuses bad options", function()
    local out, code = helpers.sh(("%s bench/soak.lua --seconds -1")
                                 :format(q(BIN)))
    assert.equal(2, code, out)
    assert.matches("usage: asynchost bench/soak.lua", out)
    out, code = helpers.sh(("%s bench/soak.lua --workers nosuch")
                           :format(q(BIN)))
    assert.equal(2, code, out)
    assert.matches("no worker nosuch", out)
  end)
end)

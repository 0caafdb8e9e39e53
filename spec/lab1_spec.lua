local async = require "asynchost"
require "asynchost.busted"
package.path = "solutions/?.lua;" .. package.path
local lab = require "lab1.basic_async_await"

describe("lab1 basic_async_await (solution)", function()
  it("simulate_download takes the delay and returns the body", function()
    local t0 = async.loop_time()
    local body = lab.simulate_download("http://x", 0.05)
    assert.is_true(async.loop_time() - t0 >= 0.05)
    assert.matches("content of http://x", body)
  end)

  it("sequential work adds up, concurrent work overlaps", function()
    local urls = {"a", "b", "c"}
    local t0 = async.loop_time()
    local seq = lab.download_and_process(urls, 0.1)
    local t_seq = async.loop_time() - t0
    t0 = async.loop_time()
    local con = lab.download_and_process_concurrently(urls, 0.1)
    local t_con = async.loop_time() - t0
    assert.equal(3, #seq)
    assert.equal(3, con.n)
    assert.is_true(t_seq >= 0.6, "sequential took " .. t_seq)
    assert.is_true(t_con < 0.4, "concurrent took " .. t_con)
    assert.equal(seq[2].words, con[2].words)
  end)

  it("rejects a url that is not a string", function()
    assert.has_error(function() lab.simulate_download(42) end,
      "bad argument #1 to 'simulate_download' (string expected, got number)")
  end)
end)

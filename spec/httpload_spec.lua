-- A load run against the built-in test server's /json (async.http.server):
-- wrk with 100 connections for 5 s must end with zero errors (socket
-- errors, non-2xx answers, timeouts).
local async = require "asynchost"
require "asynchost.busted"
local testserver = require "asynchost.testserver"
local sh = require("spec.helpers").sh

describe("http.server under load", function()
  it("serves wrk -t1 -c100 -d5s on /json with zero errors", function()
    local srv = testserver.start{}
    local out, code = sh(("wrk -t1 -c100 -d5s --timeout 2s %s/json")
                         :format(srv.url), 30)
    srv:close()
    assert.equal(0, code, out)
    local requests = tonumber(out:match("(%d+) requests in"))
    assert.is_not_nil(requests, out)
    assert.is_true(requests > 1000, out)
    assert.is_nil(out:match("Socket errors"), out)
    assert.is_nil(out:match("Non%-2xx"), out)
    print(("\n    wrk: %s"):format(out:match("Requests/sec:%s*[%d.]+") or "?"))
  end, 60)
end)

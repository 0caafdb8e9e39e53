--- async.http: HTTP on asynchost.  async.http.server is the HTTP/1.1
-- server (asynchost.http.server).  The client on libcurl joins this
-- module later (issue 6).
return {
  server = require "asynchost.http.server",
}

--- async.fs (scaffold: being written)
return require "asynchost.core.fs"

--- async.process (scaffold: being written)
return require "asynchost.core.process"

-- luaio.patterns: the patterns production code needs beyond the
-- primitives, written in Lua on them (docs/patterns.md).
--   local P = require "luaio.patterns"      -- or aio.patterns
local M = {}

for _, name in ipairs({"retry", "rate_limiter", "pool", "batcher",
                       "event_bus", "ttl_cache", "shutdown", "scope"}) do
  for k, v in pairs(require("luaio.patterns." .. name)) do M[k] = v end
end

return M

-- What the Redis specs share: the fixture's server (spec/redis.cmake) and
-- key names of their own.
local M = {}

M.dir = os.getenv("LUAIO_REDIS_DIR")

function M.port()
  local f = assert(io.open(M.dir .. "/port"), "no redis fixture")
  local p = tonumber(f:read("l"))
  f:close()
  return p
end

function M.opts(extra)
  local o = {host = "127.0.0.1", port = M.port()}
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

function M.socket() return M.dir .. "/r.sock" end

-- A key prefix no other run uses.
math.randomseed(os.time(), math.floor(os.clock() * 1e6))
M.prefix = ("luaio:%d:%d:"):format(os.time(), math.random(1, 1e9))
function M.key(name) return M.prefix .. name end

return M

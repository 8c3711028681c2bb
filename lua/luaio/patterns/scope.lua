-- luaio.patterns.scope: turns an acquire/release pair into a function that
-- opens a <close> guard, and the guard tells release whether the block
-- failed (commit or roll back): the guide's transaction context manager.
--
--   local transaction = scope(
--     function(conn) conn:execute("BEGIN") return conn end,
--     function(conn, err) conn:execute(err and "ROLLBACK" or "COMMIT") end)
--   local c, tx <close> = transaction(conn)
local aio = require "luaio"
local check = require "luaio.patterns.check"

local M = {}
local Guard = {}
local mt = {__index = Guard, __name = "luaio.Guard"}

-- Release runs shielded: a block left by a cancellation still rolls back,
-- waits and all.  Its error, if any, is raised from the close.
local function close(guard, err)
  local release = guard.release
  if release == nil then return end
  guard.release = nil
  guard.failed = err ~= nil
  aio.shield(release, guard.value, err)
end

mt.__close = close

-- guard:close([err]): releases now, as the end of the block would (with
-- err: as a failed block); closing again is harmless
function Guard:close(err)
  check.self("guard:close", self, mt)
  close(self, err)
end

function mt.__tostring(self)
  return ("<guard %s>"):format(self.release and "open" or
                               self.failed and "released after an error" or
                               "released")
end

-- scope(acquire, release) -> open: open(...) calls acquire(...) and returns
-- its first result and a guard whose close calls release(value, err)
function M.scope(acquire, release)
  local FN = "luaio.patterns.scope"
  check.func(FN, 1, acquire)
  check.func(FN, 2, release)
  return function(...)
    local value = acquire(...)
    return value, setmetatable({value = value, release = release}, mt)
  end
end

return M

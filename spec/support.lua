-- Helpers the specs share: require "support" (spec/ is on LUA_PATH).
local aio = require "luaio"
local assert = require "luassert"

local M = {}

-- The size of the large cases; the gc: variant runs them smaller.
M.SCALE = tonumber(os.getenv("LUAIO_SPEC_SCALE")) or 1
M.BIG = math.floor(100000 * M.SCALE)
M.MANY = math.floor(10000 * M.SCALE)

-- Run a spec body as a task (nested under the luaio command).
function M.run(fn) return aio.run(fn) end

-- The number of tasks waiting on a primitive, read from its tostring.
function M.waiting(obj)
  return tonumber(tostring(obj):match("(%d+) waiting"))
end

-- Await a task that should end cancelled.
function M.assert_cancelled(t)
  local ok, e = pcall(t.await, t)
  assert.is_false(ok)
  assert.is_true(aio.is_error(e, "CancelledError"))
  assert.is_true(t:cancelled())
end

-- Whether a stock lua5.4 loads this build's module (not in a sanitizer
-- build: its module needs the sanitizer's runtime loaded first).
function M.stock_lua_loads()
  local p = io.popen(("LUA_CPATH='%s' lua5.4 -e 'require \"luaio\"' 2>&1")
                     :format(package.cpath))
  local out = p:read("a")
  return p:close() and out == ""
end

-- Let the other tasks run until pred() holds.
function M.wait_until(pred)
  while not pred() do aio.sleep(0) end
end

-- The number of tasks named name that are not done.
function M.named_tasks(name)
  local n = 0
  for _, t in ipairs(aio.all_tasks()) do
    if t:name() == name then n = n + 1 end
  end
  return n
end

-- Send raw bytes to 127.0.0.1:port, then read until the peer closes.
function M.raw(port, bytes)
  local s = assert(aio.open_connection("127.0.0.1", port))
  assert(s:write(bytes))
  local all = s:read_all()
  s:close()
  return all
end

-- The close code of the first WebSocket close frame (unmasked, as a
-- server sends it) in bytes, or nil.
function M.ws_close_code(bytes)
  local i = bytes:find("\136", 1, true)
  while i do
    local n = bytes:byte(i + 1)
    if n and n >= 2 and n < 126 then
      return bytes:byte(i + 2) * 256 + bytes:byte(i + 3)
    end
    i = bytes:find("\136", i + 1, true)
  end
end

-- Call fn(...), which must raise a luaio error of that type; return it.
function M.assert_raises(type, fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok)
  assert.is_true(aio.is_error(e, type), tostring(e))
  return e
end

return M

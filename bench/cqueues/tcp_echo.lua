-- tcp_echo server on cqueues: a coroutine per connection.
-- usage: lua5.4 tcp_echo.lua PORT
local cqueues = require "cqueues"
local socket = require "cqueues.socket"

local cq = cqueues.new()
local server = socket.listen { host = "127.0.0.1", port = tonumber(arg[1]) or 7000,
                               backlog = 1024, nodelay = true }
assert(server:listen())
print("READY")
io.stdout:flush()
cq:wrap(function()
  for c in server:clients() do
    cq:wrap(function()
      c:setmode("bn", "bn")
      while true do
        local data = c:read(-65536)
        if not data then break end
        c:write(data)
      end
      c:close()
    end)
  end
end)
assert(cq:loop())

-- tcp_echo server on luv, written with luv's callbacks (no coroutines: the
-- natural way to write it on luv).  usage: lua5.4 tcp_echo.lua PORT
local uv = require "luv"
local server = uv.new_tcp()
assert(server:bind("127.0.0.1", tonumber(arg[1]) or 7000))
assert(server:listen(1024, function()
  local c = uv.new_tcp()
  server:accept(c)
  c:nodelay(true)
  c:read_start(function(err, data)
    if data then
      c:write(data)
    else
      c:close()
    end
  end)
end))
print("READY")
io.stdout:flush()
uv.run()

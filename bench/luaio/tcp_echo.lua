-- tcp_echo server on luaio's stream API: a task per connection that writes
-- back whatever it reads.  usage: luaio tcp_echo.lua PORT; prints READY.
-- Exits with status 2 and "UNSUPPORTED" while luaio has no TCP streams.
local aio = require "luaio"
local port = tonumber(arg and arg[1]) or 7000

if not aio.start_server then
  print("UNSUPPORTED: aio.start_server is not there yet")
  os.exit(2)
end

local function echo(s)
  while true do
    local data = s:read()
    if not data then break end
    s:write(data)
  end
  s:close()
end

local server = aio.start_server(echo, "127.0.0.1", port, { nodelay = true })
print("READY")
io.stdout:flush()
server:serve_forever()

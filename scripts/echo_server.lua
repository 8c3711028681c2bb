-- A TCP echo server and its client in one script (the asyncio guide's
-- "TCP echo server" pattern).  The server listens on port 0, so the system
-- picks a free port; each connection runs as its own task, and the stream
-- is closed when the handler returns.
--
--   luaio scripts/echo_server.lua      or      lua5.4 scripts/echo_server.lua
local aio = require "luaio"

local function handle(stream)
  local host, port = stream:peername()
  for line in stream:lines() do
    assert(stream:write(line .. "\n"))
  end
  return host, port
end

aio.run(function()
  local server <close> = assert(aio.start_server(handle, "127.0.0.1", 0))
  print("serving on a free port: " .. tostring(server.port > 0))

  local client <close> = assert(aio.open_connection("127.0.0.1", server.port))
  for _, msg in ipairs({"hello", "luaio", "goodbye"}) do
    client:write(msg .. "\n")
    print("echoed: " .. client:read_line())
  end
  client:shutdown() -- the server's lines() ends
  print("server closed its side: " .. tostring(client:read() == nil))

  server:close()
  server:wait_closed()
  print("server closed")
end)

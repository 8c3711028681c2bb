-- A WebSocket echo server and its client in one script: app:websocket on
-- the server side, aio.http.websocket on the client side.
--
--   luaio scripts/ws_echo.lua          a demo: serves, talks, prints
--   luaio scripts/ws_echo.lua 8080     serves ws://127.0.0.1:8080/echo
local aio = require "luaio"

local app = aio.http.app()
app:websocket("/echo", function(ws)
  for data, kind in ws:iter() do
    ws:send(data, kind)
  end
end)

aio.run(function()
  local port = tonumber(arg and arg[1])
  local server <close> = assert(aio.http.serve(app, {port = port or 0}))
  if port then
    print("serving on ws://127.0.0.1:" .. server.port .. "/echo")
    server:serve_forever()
    return
  end
  local ws = assert(aio.http.websocket(
    "ws://127.0.0.1:" .. server.port .. "/echo"))
  for _, msg in ipairs({"hello", "luaio", "goodbye"}) do
    ws:send(msg)
    print("echoed: " .. ws:receive())
  end
  ws:send("\0\1\2", "binary")
  local data, kind = ws:receive()
  print(("echoed %d bytes as %s"):format(#data, kind))
  ws:close(1000, "done")
  print("closed with " .. ws.code)
  server:shutdown(1)
end)

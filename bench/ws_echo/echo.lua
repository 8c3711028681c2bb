-- bench/ws_echo: a WebSocket echo server through aio.http.app(); prints
-- its port, serves until killed.
local aio = require "luaio"
local app = aio.http.app()
app:websocket("/", function(ws)
  for data, kind in ws:iter() do ws:send(data, kind) end
end)
aio.run(function()
  local srv = assert(aio.http.serve(app, {port = 0}))
  io.stdout:write(srv.port, "\n")
  io.stdout:flush()
  srv:serve_forever()
end)

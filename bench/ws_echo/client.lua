-- bench/ws_echo/client.lua PORT CONNS MESSAGES SIZE: CONNS WebSocket
-- connections, each sending MESSAGES text messages of SIZE bytes with 16 in
-- flight and reading their echoes.  Prints "RESULT <messages/s>".
local aio = require "luaio"
local port, conns, n, size = tonumber(arg[1]), tonumber(arg[2]),
                             tonumber(arg[3]), tonumber(arg[4])
local WINDOW = 16
aio.run(function()
  local msg = ("m"):rep(size)
  local t0 = aio.time()
  local ts = {}
  for i = 1, conns do
    ts[i] = aio.spawn(function()
      local ws = assert(aio.http.websocket("ws://127.0.0.1:" .. port .. "/"))
      local sent, got = 0, 0
      while got < n do
        while sent < n and sent - got < WINDOW do
          assert(ws:send(msg))
          sent = sent + 1
        end
        local r = assert(ws:receive())
        assert(#r == size)
        got = got + 1
      end
      ws:close(1000)
    end)
  end
  aio.gather(ts)
  print(("RESULT %.0f"):format(conns * n / (aio.time() - t0)))
end)

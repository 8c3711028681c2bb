-- Graceful shutdown (the asyncio guide's "graceful shutdown handlers"): on
-- SIGTERM or SIGINT the server stops accepting, lets the requests in
-- flight finish, and the script exits with status 0.  The script watches
-- both signals itself, so it owns them: under the luaio command too, no
-- signal cancels the main task.
--   luaio scripts/graceful_server.lua [port]   (then: kill -TERM <pid>)
local aio = require "luaio"

local function handle(stream)
  local line = stream:read_line()
  if not line then return end
  print("handling " .. line)
  io.stdout:flush()
  -- A request in flight is finished whatever happens to the server.
  aio.shield(function()
    aio.sleep(0.2) -- the work
    stream:write("done: " .. line .. "\n")
    stream:drain()
  end)
  stream:close()
end

aio.run(function()
  local term <close> = aio.signal("SIGTERM")
  local int <close> = aio.signal("SIGINT")
  local server = aio.start_server(handle, "127.0.0.1", tonumber(arg[1]) or 0)
  print("listening " .. server.port)
  io.stdout:flush()
  local signal = aio.first(function() return term:wait() end,
                           function() return int:wait() end)
  print("shutting down on " .. signal)
  server:close()       -- no new connections
  server:wait_closed() -- every handler has finished
  print("drained")
end)

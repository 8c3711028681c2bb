-- bench/http_hello: keep-alive hello world through aio.http.app() with one
-- route; prints the port, serves until killed.
local aio = require "luaio"
local app = aio.http.app()
app:get("/", function() return "Hello, World!" end)
aio.run(function()
  local srv = assert(aio.http.serve(app, {port = tonumber(arg[1]) or 0}))
  io.stdout:write(srv.port, "\n")
  io.stdout:flush()
  srv:serve_forever()
end)

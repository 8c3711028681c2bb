-- bench/http_client's server: minimal keep-alive HTTP/1.1 on luaio,
-- "hello" for every request.  luaio server.lua PORTFILE
local aio = require "luaio"
local body = "hello"
local answer = ("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n" ..
                "Content-Type: text/plain\r\n\r\n%s"):format(#body, body)
local server = aio.start_server(function(s)
  while true do
    local line = s:read_line()
    if line == nil then break end
    repeat local h = s:read_line() until h == nil or h:gsub("\r$", "") == ""
    s:write(answer)
  end
  s:close()
end, "127.0.0.1", 0)
local f = io.open(arg[1] .. ".tmp", "w")
f:write(server.port)
f:close()
os.rename(arg[1] .. ".tmp", arg[1])
server:serve_forever()

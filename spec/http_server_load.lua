-- luaio spec/http_server_load.lua [n]: n requests (keep-alive, pipelined,
-- chunked uploads, bad input, clients that leave) against aio.http.serve;
-- run under the ASan tree and valgrind by spec/http_server.cmake.
local aio = require "luaio"
local n = tonumber(arg and arg[1]) or 10000

aio.run(function()
  local app = aio.http.app()
  app:get("/hello/{n:int}", function(req) return "hello " .. req.params.n end)
  app:post("/echo", function(req) return {json = {len = #req:body()}} end)
  app:get("/stream", function()
    local i = 0
    return {body = function() i = i + 1 if i < 4 then return "x" end end}
  end)
  local srv = assert(aio.http.serve(app, {log = function() end}))
  local ok, bad, done = 0, 0, 0
  local function client(k)
    local s <close> = assert(aio.open_connection("127.0.0.1", srv.port))
    local batch = {}
    for i = 1, 10 do
      local r = (k + i) % 4
      if r == 0 then
        batch[#batch + 1] = ("GET /hello/%d HTTP/1.1\r\nHost: x\r\n\r\n"):format(i)
      elseif r == 1 then
        batch[#batch + 1] = "POST /echo HTTP/1.1\r\nHost: x\r\n" ..
          "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
      elseif r == 2 then
        batch[#batch + 1] = "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n"
      else
        batch[#batch + 1] = "POST /echo HTTP/1.1\r\nHost: x\r\n" ..
          "Content-Length: 2\r\n\r\nab"
      end
    end
    if k % 10 == 0 then batch[#batch + 1] = "BAD\r\n\r\n" end
    if k % 10 == 1 then -- leaves halfway through a head
      s:write("GET /hello/1 HTTP/1.1\r\nHo")
      return
    end
    batch[#batch + 1] = "GET /hello/0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    assert(s:write(table.concat(batch)))
    local all = s:read_all() or ""
    for st in all:gmatch("HTTP/1%.1 (%d+)") do
      if st == "200" then ok = ok + 1 else bad = bad + 1 end
    end
    done = done + 1
  end
  local tasks = {}
  for k = 1, n // 10 do
    tasks[#tasks + 1] = aio.spawn(client, k)
    if #tasks == 20 then aio.gather(tasks) tasks = {} end
  end
  aio.gather(tasks)
  srv:shutdown(1)
  print(("%d answers 200, %d bad input answers, %d clients"):format(ok, bad, done))
end)

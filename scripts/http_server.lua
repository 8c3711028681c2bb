-- An HTTP server with routes, JSON and middleware (the asyncio guide's
-- FastAPI/Starlette example: GET /items/{item_id} returns {item_id = …}).
--
--   luaio scripts/http_server.lua          a demo: serves, asks, prints
--   luaio scripts/http_server.lua 8080     serves on port 8080 until ^C
local aio = require "luaio"

local app = aio.http.app()

-- Middleware: time every request and say so in a header.
app:use(function(req, nxt)
  local t0 = aio.time()
  local res = nxt(req)
  if type(res) == "string" then res = {body = res} end
  res.headers = res.headers or {}
  res.headers["x-elapsed-ms"] = ("%.3f"):format((aio.time() - t0) * 1000)
  return res
end)

app:get("/", function() return "hello from luaio\n" end)

app:get("/items/{item_id:int}", function(req)
  return {json = {item_id = req.params.item_id, q = req.query.q}}
end)

local items = {}
app:post("/items", function(req)
  local item = req:json()
  items[#items + 1] = item
  return {status = 201, json = {id = #items, name = item.name}}
end)

-- A raw HTTP/1.1 exchange, so the demo needs nothing but a socket.
local function ask(port, method, path, body)
  local s <close> = assert(aio.open_connection("127.0.0.1", port))
  s:write(("%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" ..
           "Content-Length: %d\r\n\r\n%s"):format(method, path, #(body or ""),
                                                 body or ""))
  local resp = s:read_all()
  return resp:match("^HTTP/1%.1 (%d+)"), resp:match("\r\n\r\n(.*)$"),
         resp:match("x%-elapsed%-ms: ([%d.]+)")
end

aio.run(function()
  local port = tonumber(arg and arg[1])
  local server <close> = assert(aio.http.serve(app, {port = port or 0}))
  if port then
    print("serving on http://127.0.0.1:" .. server.port)
    server:serve_forever()
    return
  end
  local status, body, ms = ask(server.port, "GET", "/items/42?q=lua")
  print("GET /items/42?q=lua -> " .. status .. " " .. body)
  print("middleware header present: " .. tostring(ms ~= nil))
  status, body = ask(server.port, "POST", "/items", '{"name":"widget"}')
  print("POST /items -> " .. status .. " " .. body)
  status = ask(server.port, "GET", "/items/abc")
  print("GET /items/abc -> " .. status)
  status = ask(server.port, "DELETE", "/items/1")
  print("DELETE /items/1 -> " .. status)
  server:shutdown(1)
  print("shut down")
end)

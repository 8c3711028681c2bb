-- Response heads (bindings/http_server.c's build_head) and the connection
-- timers over keep-alive (raw sockets).
local aio = require "luaio"
local support = require "support"

local raw = support.raw

local GET = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

describe("response heads", function()
  it("header lines over the Lua buffer's first KiB come out whole", function()
    support.run(function()
      local a, b = ("a"):rep(3000), ("b"):rep(5000)
      local srv = assert(aio.http.serve(function()
        return {headers = {["x-a"] = a, ["x-b"] = b, ["x-n"] = 7,
                           ["x-list"] = {"one", 2, ("c"):rep(2000)}},
                body = "ok"}
      end))
      local r = raw(srv.port, GET)
      assert.truthy(r:find("^HTTP/1.1 200 OK\r\nDate: "))
      local head, body = r:match("^(.-\r\n)\r\n(.*)$")
      assert.equal("ok", body)
      assert.truthy(head:find("\r\nx-a: " .. a .. "\r\n", 1, true))
      assert.truthy(head:find("\r\nx-b: " .. b .. "\r\n", 1, true))
      assert.truthy(head:find("\r\nx-n: 7\r\n", 1, true))
      assert.truthy(head:find("\r\nx-list: one\r\n", 1, true))
      assert.truthy(head:find("\r\nx-list: 2\r\n", 1, true))
      assert.truthy(head:find("\r\nx-list: " .. ("c"):rep(2000) .. "\r\n", 1, true))
      assert.truthy(head:find("\r\nContent%-Length: 2\r\nConnection: close\r\n$"))
      srv:close()
    end)
  end)

  it("a big streamed head (chunked) is whole too", function()
    support.run(function()
      local srv = assert(aio.http.serve(function()
        local sent = false
        return {headers = {["x-big"] = ("z"):rep(4000)}, body = function()
          if not sent then sent = true return "piece" end
        end}
      end))
      local r = raw(srv.port, GET)
      assert.truthy(r:find("^HTTP/1.1 200 OK\r\n"))
      assert.truthy(r:find("\r\nx-big: " .. ("z"):rep(4000) .. "\r\n", 1, true))
      assert.truthy(r:find("Transfer%-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\npiece\r\n0\r\n\r\n$"))
      srv:close()
    end)
  end)

  it("a header value that is neither a string nor a number is a 500", function()
    support.run(function()
      local logged
      local srv = assert(aio.http.serve(function()
        return {headers = {["x-t"] = true}, body = "no"}
      end, {log = function(l) logged = l end}))
      local r = raw(srv.port, GET)
      assert.truthy(r:find("^HTTP/1.1 500"))
      assert.truthy(logged:find("must be a string or a number", 1, true))
      srv:close()
    end)
  end)
end)

describe("connection timers over keep-alive", function()
  it("keepalive_timeout closes a connection idle after its requests", function()
    support.run(function()
      local srv = assert(aio.http.serve(function() return "hi" end,
                                        {keepalive_timeout = 1}))
      local s = assert(aio.open_connection("127.0.0.1", srv.port))
      for _ = 1, 3 do
        assert(s:write("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        assert(s:read_until("hi"))
      end
      assert.is_nil(s:read()) -- closed by the server once idle
      s:close()
      srv:close()
    end)
  end)

  it("header_timeout answers 408 to a slow head after kept-alive requests", function()
    support.run(function()
      local srv = assert(aio.http.serve(function() return "hi" end,
                                        {header_timeout = 0.2}))
      local s = assert(aio.open_connection("127.0.0.1", srv.port))
      for _ = 1, 3 do
        assert(s:write("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        assert(s:read_until("hi"))
      end
      assert(s:write("GET / HTTP/1.1\r\nHo"))
      local rest = s:read_all()
      assert.truthy(rest:find("^HTTP/1.1 408"))
      s:close()
      srv:close()
    end)
  end)
end)

describe("request bodies after the handler", function()
  it("a body iterator returned as the answer reads nothing more", function()
    support.run(function()
      local srv = assert(aio.http.serve(function(req)
        return {body = req:chunks()}
      end))
      local r = raw(srv.port, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n" ..
                              "Connection: close\r\n\r\nabc")
      assert.truthy(r:find("^HTTP/1.1 200"))
      assert.truthy(r:find("\r\n\r\n0\r\n\r\n$")) -- an empty chunked body
      srv:close()
    end)
  end)

  it("the next request on the connection has its own body", function()
    support.run(function()
      local srv = assert(aio.http.serve(function(req) return req:body() end))
      local s = assert(aio.open_connection("127.0.0.1", srv.port))
      assert(s:write("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" ..
                     "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n" ..
                     "Connection: close\r\n\r\nde"))
      local all = s:read_all()
      assert.truthy(all:find("\r\n\r\nabcHTTP/1.1 200", 1, true))
      assert.truthy(all:find("\r\n\r\nde$"))
      s:close()
      srv:close()
    end)
  end)
end)

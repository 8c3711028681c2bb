-- The request object (server.lua's lazy fields, made from the packed head
-- bindings/http_server.c keeps in each request) over raw sockets.
local aio = require "luaio"
local support = require "support"

local raw = support.raw

local function fields(req)
  local h = {}
  for k, v in pairs(req.headers) do h[#h + 1] = k .. "=" .. v end
  table.sort(h)
  return table.concat({req.method, req.target, req.path, req.raw_path,
                       req.query_string, req.version,
                       tostring(req.keep_alive), tostring(req.upgrade),
                       tostring(req.expect_continue), table.concat(h, ";"),
                       tostring(req.query.a)}, "|")
end

describe("request fields", function()
  it("are each request's own, read after the next request ran", function()
    support.run(function()
      local kept = {}
      local srv = assert(aio.http.serve(function(req)
        kept[#kept + 1] = req -- read only after all the requests
        return "ok"
      end))
      local r = raw(srv.port,
        "GET /a%20b?a=1&b=x+y HTTP/1.1\r\nHost: one\r\nX-Rep: 1\r\n" ..
        "x-rep: 2  \r\n\r\n" ..
        "POST http://h.example/p/q?a=2 HTTP/1.1\r\nHost: two\r\n" ..
        "Content-Length: 3\r\n\r\nabc" ..
        "GET /c HTTP/1.0\r\nHost: three\r\nConnection: close\r\n\r\n")
      local _, n = r:gsub("HTTP/1.1 200 OK", "")
      assert.equal(3, n)
      assert.equal(3, #kept)
      assert.equal("GET|/a%20b?a=1&b=x+y|/a b|/a%20b|a=1&b=x+y|1.1|true|" ..
                   "nil|nil|host=one;x-rep=1, 2|1", fields(kept[1]))
      assert.equal("POST|http://h.example/p/q?a=2|/p/q|/p/q|a=2|1.1|true|" ..
                   "nil|nil|content-length=3;host=two|2", fields(kept[2]))
      assert.equal("GET|/c|/c|/c||1.0|false|nil|nil|connection=close;" ..
                   "host=three|nil", fields(kept[3]))
      srv:close()
    end)
  end)

  it("read once stay what the handler made of them", function()
    support.run(function()
      local seen
      local app = aio.http.app()
      app:get("/x", function(req)
        req.headers.extra = "mine"
        req.params.p = 1
        req.version = "changed"
        seen = req
        return "ok"
      end)
      local srv = assert(aio.http.serve(app))
      raw(srv.port, "GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
      assert.equal("mine", seen.headers.extra)
      assert.equal("a", seen.headers.host)
      assert.equal(1, seen.params.p)
      assert.equal("changed", seen.version)
      assert.equal("/x", seen.target)
      srv:close()
    end)
  end)

  it("params is an empty table on an exact route and a plain handler", function()
    support.run(function()
      local got = {}
      local app = aio.http.app()
      app:get("/e", function(req)
        got[#got + 1] = next(req.params) == nil and type(req.params)
        return "ok"
      end)
      app:get("/p/{id:int}", function(req)
        got[#got + 1] = req.params.id
        return "ok"
      end)
      local srv = assert(aio.http.serve(app))
      raw(srv.port, "GET /e HTTP/1.1\r\nHost: a\r\n\r\n" ..
                    "GET /p/42 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
      srv:close()
      local plain
      local srv2 = assert(aio.http.serve(function(req)
        plain = req.params
        return "ok"
      end))
      raw(srv2.port, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
      srv2:close()
      assert.same({"table", 42}, got)
      assert.same({}, plain)
    end)
  end)

  it("HEAD and Connection: close are taken from the request's head", function()
    support.run(function()
      local srv = assert(aio.http.serve(function() return "hello" end))
      local r = raw(srv.port, "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n" ..
                              "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" ..
                              "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
      -- the HEAD answer has no body; the close ends the connection, so the
      -- third request is never answered
      local second = r:find("HTTP/1.1", 2, true)
      assert.truthy(r:find("^HTTP/1.1 200 OK\r\n.-Content%-Length: 5\r\n\r\n" ..
                           "HTTP/1.1 200 OK\r\n.-\r\n\r\nhello$"))
      assert.truthy(r:find("Connection: close", second, true))
      assert.is_nil(r:sub(1, second):find("Connection: close", 1, true))
      srv:close()
    end)
  end)

  it("a forged _h gives nil fields, not a crash", function()
    support.run(function()
      local out
      local srv = assert(aio.http.serve(function(req)
        rawset(req, "_h", "\0\99\255\255")
        local t1 = req.target
        rawset(req, "_h", 7)
        out = {t1, req.headers, req.raw_path}
        return "ok"
      end))
      raw(srv.port, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
      srv:close()
      assert.same({}, out)
    end)
  end)
end)

describe("string answers", function()
  it("large ones and pipelined ones to a slow reader come out whole, in order", function()
    support.run(function()
      local big = ("x"):rep(100000)
      local srv = assert(aio.http.serve(function(req)
        if req.path == "/big" then return big end
        return req.path
      end))
      local s = assert(aio.open_connection("127.0.0.1", srv.port))
      -- big answers (written by stream:write) between small ones (by
      -- conn:reply)
      local n, nbig = 1000, 10
      local parts = {}
      for _ = 1, nbig do parts[#parts + 1] = "GET /big HTTP/1.1\r\nHost: a\r\n\r\n" end
      for i = 1, n do parts[#parts + 1] = "GET /" .. i .. " HTTP/1.1\r\nHost: a\r\n\r\n" end
      parts[#parts + 1] = "GET /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
      local writer = aio.spawn(function() assert(s:write(table.concat(parts))) end)
      aio.sleep(0.2) -- the server's answers fill the socket meanwhile
      local all = s:read_all()
      writer:await()
      s:close()
      srv:close()
      local bodies = {}
      local pos = 1
      while pos <= #all do
        local e = assert(all:find("\r\n\r\n", pos, true))
        local len = tonumber(all:sub(pos, e):match("Content%-Length: (%d+)"))
        bodies[#bodies + 1] = all:sub(e + 4, e + 3 + len)
        pos = e + 4 + len
      end
      assert.equal(nbig + n + 1, #bodies)
      for i = 1, nbig do assert(bodies[i] == big, "a big answer") end
      assert(bodies[nbig + n + 1] == big, "the last big answer")
      for i = 1, n do
        if bodies[nbig + i] ~= "/" .. i then
          error(("answer %d is %q"):format(i, bodies[nbig + i]))
        end
      end
    end)
  end)
end)

-- A client with a small receive buffer that reads late: the server's
-- small answers find the socket full and are queued (in part).
local SLOW = [[
import socket, sys, time
n = int(sys.argv[2])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
s.connect(("127.0.0.1", int(sys.argv[1])))
reqs = b"".join(b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % i for i in range(1, n + 1))
s.sendall(reqs + b"GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
time.sleep(0.5)
data = b""
while True:
    b = s.recv(65536)
    if not b: break
    data += b
pos, i = 0, 1
while pos < len(data):
    e = data.index(b"\r\n\r\n", pos)
    head = data[pos:e].decode()
    ln = int(head.split("Content-Length: ")[1].split("\r\n")[0])
    body = data[e + 4:e + 4 + ln].decode()
    want = "/%d" % i if i <= n else "/last"
    if body != want: print("answer %d is %r" % (i, body)); sys.exit(1)
    pos, i = e + 4 + ln, i + 1
print("ok", i - 1)
]]

describe("string answers to a slow reader", function()
  it("are queued when the socket is full and come out whole, in order", function()
    if os.execute("/usr/bin/python3 -c pass 2>/dev/null") ~= true then return end
    support.run(function()
      local srv = assert(aio.http.serve(function(req) return req.path end))
      local n = math.max(3000, math.floor(30000 * support.SCALE)) -- fills it
      local p = aio.subprocess("/usr/bin/python3",
                               {"-c", SLOW, tostring(srv.port), tostring(n)},
                               {stdout = "pipe"})
      local out = p.stdout:read_all()
      assert.equal(0, p:wait().status)
      assert.equal("ok " .. (n + 1) .. "\n", out)
      srv:close()
    end)
  end)
end)

describe("an app served", function()
  it("runs middleware and routes added after serve, and an overridden handle", function()
    support.run(function()
      local app = aio.http.app()
      app:get("/a", function() return "a" end)
      local srv = assert(aio.http.serve(app))
      local function get(path)
        return raw(srv.port, "GET " .. path ..
                   " HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"):match("\r\n\r\n(.*)$")
      end
      assert.equal("a", get("/a"))
      app:use(function(req, nxt) return "mw " .. nxt(req) end)
      app:get("/b", function() return "b" end)
      assert.equal("mw a", get("/a"))
      assert.equal("mw b", get("/b"))
      srv:close()
      local own = aio.http.app()
      own.handle = function(_, req) return "own " .. req.path end
      local srv2 = assert(aio.http.serve(own))
      assert.equal("own /x", raw(srv2.port, "GET /x HTTP/1.1\r\nHost: a\r\n" ..
                                 "Connection: close\r\n\r\n"):match("\r\n\r\n(.*)$"))
      srv2:close()
    end)
  end)
end)

-- The HTTP server's answers to bad input, over raw sockets: each gets its
-- status with Connection: close, the requests before it are answered in
-- full, none after it runs, and the server goes on serving.
local aio = require "luaio"
local support = require "support"

local raw = support.raw

local function statuses(resp)
  local list = {}
  for st in resp:gmatch("HTTP/1%.1 (%d+)") do list[#list + 1] = tonumber(st) end
  return list
end

local H = "Host: x\r\n"
local cases = {
  {"a malformed request line", "GARBAGE\r\n\r\n", 400},
  {"whitespace before a colon", "POST / HTTP/1.1\r\n" .. H ..
    "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400},
  {"no Host on 1.1", "GET / HTTP/1.1\r\n\r\n", 400},
  {"two Hosts", "GET / HTTP/1.1\r\n" .. H .. H .. "\r\n", 400},
  {"Content-Length with Transfer-Encoding", "POST / HTTP/1.1\r\n" .. H ..
    "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
  {"two Content-Lengths", "POST / HTTP/1.1\r\n" .. H ..
    "Content-Length: 3\r\nContent-Length: 4\r\n\r\nabc", 400},
  {"a malformed Content-Length", "POST / HTTP/1.1\r\n" .. H ..
    "Content-Length: 3x\r\n\r\nabc", 400},
  {"a control byte in a field", "GET / HTTP/1.1\r\n" .. H ..
    "X-A: a\1b\r\n\r\n", 400},
  {"a control byte in the target", "GET /a\1b HTTP/1.1\r\n" .. H .. "\r\n", 400},
  {"junk after chunk data", "POST / HTTP/1.1\r\n" .. H ..
    "Transfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n", 400, true},
  {"a target over 8 KiB", "GET /" .. ("a"):rep(9000) .. " HTTP/1.1\r\n" ..
    H .. "\r\n", 414},
  {"a head over 16 KiB", "GET / HTTP/1.1\r\n" .. H ..
    ("X-Big: " .. ("b"):rep(1000) .. "\r\n"):rep(17) .. "\r\n", 431},
  {"over 100 fields", "GET / HTTP/1.1\r\n" .. H ..
    ("X-F: 1\r\n"):rep(101) .. "\r\n", 431},
  {"a body over max_body_size", "POST / HTTP/1.1\r\n" .. H ..
    "Content-Length: 2000000\r\n\r\n", 413},
  {"another transfer coding", "POST / HTTP/1.1\r\n" .. H ..
    "Transfer-Encoding: gzip\r\n\r\n", 501},
  {"gzip then chunked", "POST / HTTP/1.1\r\n" .. H ..
    "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501},
  {"HTTP/1.2", "GET / HTTP/1.2\r\n" .. H .. "\r\n", 505},
  {"HTTP/2.0", "GET / HTTP/2.0\r\n" .. H .. "\r\n", 505},
}

describe("HTTP server bad input", function()
  local ran
  local function handler(req)
    ran[#ran + 1] = req.path
    if req.method == "POST" then req:body() end
    return "ok"
  end

  for _, case in ipairs(cases) do
    -- in_body: the head is good, so the handler runs and its read fails
    local name, bytes, status, in_body = case[1], case[2], case[3], case[4]
    it(name .. " gets " .. status, function()
      support.run(function()
        ran = {}
        local srv = assert(aio.http.serve(handler))
        local before = "GET /before HTTP/1.1\r\n" .. H .. "\r\n"
        local after = "GET /after HTTP/1.1\r\n" .. H .. "\r\n"
        local resp = raw(srv.port, before .. bytes .. after)
        local st = statuses(resp)
        assert.same({200, status}, st)
        local second = resp:match(".*(HTTP/1%.1 %d+.*)$")
        assert.truthy(second:find("Connection: close", 1, true))
        assert.same(in_body and {"/before", "/"} or {"/before"}, ran)
        assert.same({200}, statuses(raw(srv.port, "GET / HTTP/1.1\r\n" .. H ..
                                        "Connection: close\r\n\r\n")))
        srv:close()
      end)
    end)
  end

  it("a chunked body over max_body_size gets 413 while it is read", function()
    support.run(function()
      ran = {}
      local srv = assert(aio.http.serve(handler, {max_body_size = 10}))
      local resp = raw(srv.port, "POST /up HTTP/1.1\r\n" .. H ..
        "Transfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n")
      assert.same({413}, statuses(resp))
      srv:close()
    end)
  end)

  it("a head not finished in header_timeout gets 408 (slowloris)", function()
    support.run(function()
      ran = {}
      local srv = assert(aio.http.serve(handler, {header_timeout = 0.1}))
      local s = assert(aio.open_connection("127.0.0.1", srv.port))
      assert(s:write("GET / HTTP/1.1\r\nHo"))
      local resp = s:read_all()
      assert.same({408}, statuses(resp))
      assert.truthy(resp:find("Connection: close", 1, true))
      assert.same({}, ran)
      s:close()
      srv:close()
    end)
  end)

  it("a stalled body gets 408", function()
    support.run(function()
      local srv = assert(aio.http.serve(function(req) return req:body() end,
                                        {body_timeout = 0.1}))
      local s = assert(aio.open_connection("127.0.0.1", srv.port))
      assert(s:write("POST / HTTP/1.1\r\n" .. H .. "Content-Length: 10\r\n\r\nabc"))
      assert.same({408}, statuses(s:read_all()))
      s:close()
      srv:close()
    end)
  end)

  it("an idle keep-alive connection is closed after keepalive_timeout", function()
    support.run(function()
      local srv = assert(aio.http.serve(function() return "x" end,
                                        {keepalive_timeout = 0.1}))
      local s = assert(aio.open_connection("127.0.0.1", srv.port))
      assert(s:write("GET / HTTP/1.1\r\n" .. H .. "\r\n"))
      assert.same({200}, statuses(s:read_all()))
      s:close()
      srv:close()
    end)
  end)

  it("bytes split at every point parse the same", function()
    support.run(function()
      local srv = assert(aio.http.serve(function(req)
        return req.method .. req.path .. req:body()
      end))
      local msg = "POST /p HTTP/1.1\r\n" .. H ..
        "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
      for cut = 1, #msg - 1, 7 do
        local s = assert(aio.open_connection("127.0.0.1", srv.port))
        assert(s:write(msg:sub(1, cut)))
        aio.sleep(0.001)
        assert(s:write(msg:sub(cut + 1) .. "GET /z HTTP/1.1\r\n" .. H ..
                       "Connection: close\r\n\r\n"))
        local all = s:read_all()
        assert.truthy(all:find("POST/pabcde", 1, true), cut)
        assert.truthy(all:find("GET/z", 1, true), cut)
        s:close()
      end
      srv:close()
    end)
  end)
end)

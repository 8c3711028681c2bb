-- cancel_on_disconnect: a client that leaves cancels its handler only
-- when the option is on (raw sockets; python3 for a reset).
local aio = require "luaio"
local support = require "support"

local PY = "/usr/bin/python3"
local REQ = "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"

-- A server whose /slow handler records how it ended: "done" after
-- release is set, "cancelled" when it was cancelled while waiting.
local function slow_server(opts)
  local st = {started = aio.event(), release = aio.event(), ended = {}}
  st.srv = assert(aio.http.serve(function(req)
    if req.path ~= "/slow" then return "fast" end
    st.started:set()
    local ok, e = pcall(st.release.wait, st.release)
    if not ok then
      st.ended[#st.ended + 1] = aio.is_error(e, "CancelledError") and
                                "cancelled" or tostring(e)
      error(e, 0)
    end
    st.ended[#st.ended + 1] = "done"
    return "slow"
  end, opts))
  return st
end

-- One full request on another connection: the server's loop has polled
-- after whatever the client did before it.
local function barrier(port)
  local s = assert(aio.open_connection("127.0.0.1", port))
  assert(s:write("GET /fast HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
  local all = s:read_all()
  s:close()
  assert.truthy(all:find("^HTTP/1.1 200"))
end

-- Connect with python3, send REQ, wait for "go" on stdin, then reset.
local RESET = [[
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
sys.stdin.readline()
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
]]

describe("cancel_on_disconnect", function()
  it("is off by default: a client that leaves does not cancel", function()
    support.run(function()
      local st = slow_server()
      local s = assert(aio.open_connection("127.0.0.1", st.srv.port))
      assert(s:write(REQ))
      st.started:wait()
      s:close()
      barrier(st.srv.port)
      aio.sleep(0.05)
      assert.same({}, st.ended)
      st.release:set()
      support.wait_until(function() return #st.ended > 0 end)
      assert.same({"done"}, st.ended)
      st.srv:close()
    end)
  end)

  it("on: the peer's close cancels the handler", function()
    support.run(function()
      local st = slow_server({cancel_on_disconnect = true})
      local s = assert(aio.open_connection("127.0.0.1", st.srv.port))
      assert(s:write(REQ))
      st.started:wait()
      s:close()
      support.wait_until(function() return #st.ended > 0 end)
      assert.same({"cancelled"}, st.ended)
      barrier(st.srv.port) -- still serving
      st.srv:close()
    end)
  end)

  it("on: a half-close (EOF) right after the request cancels too", function()
    support.run(function()
      local st = slow_server({cancel_on_disconnect = true})
      local s = assert(aio.open_connection("127.0.0.1", st.srv.port))
      assert(s:write(REQ))
      assert(s:shutdown())
      st.started:wait()
      support.wait_until(function() return #st.ended > 0 end)
      assert.same({"cancelled"}, st.ended)
      assert.is_nil(s:read()) -- no answer, the connection ended
      s:close()
      st.srv:close()
    end)
  end)

  it("on: a reset cancels the handler", function()
    if os.execute(PY .. " -c pass 2>/dev/null") ~= true then return end
    support.run(function()
      local st = slow_server({cancel_on_disconnect = true})
      local p = aio.subprocess(PY, {"-c", RESET, tostring(st.srv.port)},
                               {stdin = "pipe"})
      st.started:wait()
      assert(p.stdin:write("go\n"))
      assert.equal(0, p:wait().status)
      support.wait_until(function() return #st.ended > 0 end)
      assert.same({"cancelled"}, st.ended)
      st.srv:close()
    end)
  end)

  it("on: a client that leaves mid-body cancels the body's reader", function()
    support.run(function()
      local got
      local srv = assert(aio.http.serve(function(req)
        local ok, e = pcall(req.body, req)
        got = ok and "body" or aio.is_error(e, "CancelledError") and
              "cancelled" or tostring(e)
        error(e, 0)
      end, {cancel_on_disconnect = true}))
      local s = assert(aio.open_connection("127.0.0.1", srv.port))
      assert(s:write("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab"))
      support.wait_until(function() return next(srv.conns) ~= nil end)
      s:close()
      support.wait_until(function() return got ~= nil end)
      assert.equal("cancelled", got)
      srv:close()
    end)
  end)

  it("on: pipelined requests and slow bodies are answered in full", function()
    support.run(function()
      local n = 0
      local srv = assert(aio.http.serve(function(req)
        n = n + 1
        local size = 0
        for piece in req:chunks() do
          size = size + #piece
          aio.sleep(0)
        end
        aio.sleep(0.001)
        return req.path .. ":" .. size
      end, {cancel_on_disconnect = true, max_body_size = 4 * 1024 * 1024}))
      local s = assert(aio.open_connection("127.0.0.1", srv.port))
      local big = ("b"):rep(1024 * 1024)
      local reqs = {}
      for i = 1, 5 do
        reqs[#reqs + 1] = ("GET /g%d HTTP/1.1\r\nHost: x\r\n\r\n"):format(i)
      end
      reqs[#reqs + 1] = ("POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n")
                        :format(#big) .. big
      reqs[#reqs + 1] = "GET /last HTTP/1.1\r\nHost: x\r\n\r\n"
      local w = aio.spawn(function() assert(s:write(table.concat(reqs))) end)
      local bodies = {}
      while #bodies < 7 do
        local head = assert(s:read_until("\r\n\r\n"))
        local len = tonumber(head:match("Content%-Length: (%d+)"))
        bodies[#bodies + 1] = s:read_exactly(len)
      end
      w:await()
      assert.same({"/g1:0", "/g2:0", "/g3:0", "/g4:0", "/g5:0",
                   "/big:" .. #big, "/last:0"}, bodies)
      -- the keep-alive connection, idle now, ends quietly when it closes
      s:close()
      barrier(srv.port)
      assert.equal(8, n)
      srv:close()
    end)
  end)
end)

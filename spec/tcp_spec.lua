-- TCP: aio.open_connection, aio.start_server and the server object.
local aio = require "luaio"
local S = require "support"
local run = S.run

local function echo(s)
  for line in s:lines() do assert(s:write(line .. "\n")) end
end

-- A port that nobody listens on: bound by a server that is then closed.
local function free_port()
  local srv = assert(aio.start_server(function() end, "127.0.0.1", 0))
  local port = srv.port
  srv:close()
  srv:wait_closed()
  return port
end

describe("aio.start_server", function()
  it("binds port 0 to a real port and echoes", function()
    run(function()
      local srv = assert(aio.start_server(echo, "127.0.0.1", 0))
      assert.is_true(srv.port > 0)
      assert.is_true(srv:is_serving())
      local c = assert(aio.open_connection("127.0.0.1", srv.port))
      c:write("ping\n")
      assert.equal("ping", c:read_line())
      local host, port = c:peername()
      assert.equal("127.0.0.1", host)
      assert.equal(srv.port, port)
      local lhost, lport = c:sockname()
      assert.equal("127.0.0.1", lhost)
      assert.is_true(lport > 0 and lport ~= srv.port)
      c:close()
      srv:close()
      assert.is_false(srv:is_serving())
    end)
  end)

  it("serves hundreds of concurrent connections", function()
    run(function()
      local srv = assert(aio.start_server(echo, "127.0.0.1", 0))
      local n = 300
      local fns = {}
      for i = 1, n do
        fns[i] = function()
          local c <close> = assert(aio.open_connection("127.0.0.1", srv.port))
          for j = 1, 3 do
            c:write(("client %d line %d\n"):format(i, j))
            assert.equal(("client %d line %d"):format(i, j), c:read_line())
          end
          return i
        end
      end
      local results = aio.gather(fns)
      assert.equal(n, results.n)
      for i = 1, n do assert.equal(i, results[i]) end
      srv:close()
      srv:wait_closed()
      assert.equal(0, srv:stats().handlers)
    end)
  end)

  it("closes the stream when the handler returns or fails", function()
    run(function()
      local srv = assert(aio.start_server(function(s)
        s:write("bye\n")
        if s:read_line() == "fail" then error("handler failed") end
      end, "127.0.0.1", 0))
      for _, what in ipairs({"return", "fail"}) do
        local c = assert(aio.open_connection("127.0.0.1", srv.port))
        assert.equal("bye", c:read_line())
        c:write(what .. "\n")
        assert.is_nil(c:read())
        c:close()
      end
      srv:close()
    end)
  end)

  it("close() stops accepting; serve_forever and wait_closed return",
     function()
    run(function()
      local release = aio.event()
      local srv = assert(aio.start_server(function(s)
        release:wait()
        s:write("done\n")
      end, "127.0.0.1", 0))
      local port = srv.port
      local forever = aio.spawn(function() srv:serve_forever() end)
      local c = assert(aio.open_connection("127.0.0.1", port))
      while srv:stats().handlers == 0 do aio.sleep(0.001) end
      srv:close()
      forever:await()
      local r, msg, code = aio.open_connection("127.0.0.1", port)
      assert.is_nil(r)
      assert.equal("ECONNREFUSED", code)
      local closed = aio.spawn(function() srv:wait_closed() end)
      aio.sleep(0.01)
      assert.is_false(closed:done()) -- the handler still runs
      release:set()
      closed:await()
      assert.equal("done", c:read_line())
      c:close()
    end)
  end)

  it("is closed by <close>, and when its acceptor task is cancelled",
     function()
    run(function()
      local port
      do
        local srv <close> = assert(aio.start_server(echo, "127.0.0.1", 0))
        port = srv.port
      end
      local r, _, code = aio.open_connection("127.0.0.1", port)
      assert.is_nil(r)
      assert.equal("ECONNREFUSED", code)
      -- the acceptor is a task: cancelling it (as the end of a run does)
      -- closes the server, even before it first ran
      local before = {}
      for _, t in ipairs(aio.all_tasks()) do before[t] = true end
      local srv = assert(aio.start_server(echo, "127.0.0.1", 0))
      local acceptor
      for _, t in ipairs(aio.all_tasks()) do
        if not before[t] then acceptor = t end
      end
      assert.is_true(acceptor:cancel())
      aio.sleep(0)
      aio.sleep(0)
      assert.is_false(srv:is_serving())
      r, _, code = aio.open_connection("127.0.0.1", srv.port)
      assert.is_nil(r)
      assert.equal("ECONNREFUSED", code)
    end)
  end)

  it("reports a port in use as nil, msg, code", function()
    run(function()
      local srv = assert(aio.start_server(echo, "127.0.0.1", 0))
      local r, msg, code = aio.start_server(echo, "127.0.0.1", srv.port)
      assert.is_nil(r)
      assert.equal("EADDRINUSE", code)
      assert.matches("^EADDRINUSE: ", msg)
      srv:close()
    end)
  end)

  it("listens on ::1 and resolves names", function()
    run(function()
      local srv6 = aio.start_server(echo, "::1", 0)
      if srv6 then
        local c = assert(aio.open_connection("::1", srv6.port))
        c:write("six\n")
        assert.equal("six", c:read_line())
        assert.equal("::1", (c:peername()))
        c:close()
        srv6:close()
      end
      local srv = assert(aio.start_server(echo, "localhost", 0))
      local c = assert(aio.open_connection("localhost", srv.port))
      c:write("name\n")
      assert.equal("name", c:read_line())
      c:close()
      srv:close()
    end)
  end)

  it("survives resets, half-closed clients and clients that never read",
     function()
    run(function()
      local srv = assert(aio.start_server(function(s)
        local line = s:read_line()
        if line == "flood" then
          local piece = string.rep("f", 64 * 1024)
          while s:write(piece) do end
        elseif line then
          s:write(line .. "\n")
        end
      end, "127.0.0.1", 0))
      -- a client that never reads what the server floods it with
      local flooded = assert(aio.open_connection("127.0.0.1", srv.port))
      flooded:write("flood\n")
      -- a client that half-closes at once
      local half = assert(aio.open_connection("127.0.0.1", srv.port))
      assert(half:shutdown())
      assert.is_nil(half:read())
      half:close()
      -- a client that sends a lot and goes away without reading: reset
      local rude = assert(aio.open_connection("127.0.0.1", srv.port))
      rude:write(string.rep("x", 1024 * 1024))
      rude:close()
      -- the server still answers
      local c = assert(aio.open_connection("127.0.0.1", srv.port))
      c:write("still here\n")
      assert.equal("still here", c:read_line())
      c:close()
      flooded:close()
      srv:close()
      srv:wait_closed() -- the flooding handler ends with a write error
    end)
  end)
end)

describe("aio.open_connection", function()
  it("returns nil, msg, code when refused", function()
    run(function()
      local r, msg, code = aio.open_connection("127.0.0.1", free_port())
      assert.is_nil(r)
      assert.equal("ECONNREFUSED: connection refused", msg)
      assert.equal("ECONNREFUSED", code)
    end)
  end)

  it("raises on bad arguments", function()
    run(function()
      assert.is_false(pcall(aio.open_connection))
      assert.is_false(pcall(aio.open_connection, "127.0.0.1", 70000))
      assert.is_false(pcall(aio.open_connection, "127.0.0.1", 1, 5))
      assert.is_false(pcall(aio.start_server, "nope", "127.0.0.1", 0))
    end)
  end)

  it("rejects unknown option keys, naming them and the function", function()
    run(function()
      local function rejects(key, fn, ...)
        local ok, err = pcall(fn, ...)
        assert.is_false(ok)
        assert.matches("unknown option '" .. key .. "'", err, 1, true)
      end
      local handler = function() end
      rejects("nodelai", aio.open_connection, "127.0.0.1", 1,
              {nodelai = false})
      rejects("backlg", aio.start_server, handler, "127.0.0.1", 0,
              {backlg = 8})
      rejects("reuse_port", aio.start_unix_server, handler,
              os.tmpname() .. ".sock", {reuse_port = true})
      rejects("nodelay", aio.open_unix_connection, "/nonexistent",
              {nodelay = true})
      local ok, err = pcall(aio.open_connection, "127.0.0.1", 1, {[1] = 2})
      assert.is_false(ok)
      assert.matches("unknown option 'number'", err, 1, true)
      assert.matches("open_connection", err, 1, true)
      -- the known ones pass the check and still mean what they say
      local srv = assert(aio.start_server(function(s) s:close() end,
                                          "127.0.0.1", 0,
                                          {backlog = 4, nodelay = false}))
      local s = assert(aio.open_connection("127.0.0.1", srv.port,
                                           {nodelay = true, limit = 1024}))
      s:close()
      srv:close()
    end)
  end)

  it("can be cancelled while it connects; the server is unharmed",
     function()
    run(function()
      local srv = assert(aio.start_server(echo, "127.0.0.1", 0))
      for _ = 1, 20 do
        local t = aio.spawn(aio.open_connection, "127.0.0.1", srv.port)
        aio.sleep(0) -- it starts and waits for the connect
        assert.matches("in connect", tostring(t))
        t:cancel()
        assert.is_false(pcall(t.await, t))
        assert.is_true(t:cancelled())
      end
      local c = assert(aio.open_connection("127.0.0.1", srv.port))
      c:write("ok\n")
      assert.equal("ok", c:read_line())
      c:close()
      srv:close()
    end)
  end)

  it("can be cancelled while it resolves a name", function()
    run(function()
      local srv = assert(aio.start_server(echo, "127.0.0.1", 0))
      local t = aio.spawn(aio.open_connection, "localhost", srv.port)
      aio.sleep(0)
      assert.matches("in getaddrinfo", tostring(t))
      t:cancel()
      assert.is_false(pcall(t.await, t))
      assert.is_true(t:cancelled())
      srv:close()
    end)
  end)

  it("times out through aio.wait_for", function()
    run(function()
      -- a listening socket with a full backlog never completes a connect
      local srv = assert(aio.start_server(function() end, "127.0.0.1", 0,
                                          {backlog = 0}))
      local ok, err = pcall(aio.wait_for, function()
        local held = {}
        while true do
          held[#held + 1] = assert(aio.open_connection("127.0.0.1", srv.port))
        end
      end, 0.2)
      assert.is_false(ok)
      assert.is_true(aio.is_error(err, "TimeoutError"), tostring(err))
      srv:close()
    end)
  end)
end)

describe("a server out of file descriptors", function()
  it("keeps running and accepts again once descriptors free up", function()
    local luaio = os.getenv("LUAIO") or "luaio"
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write([[
      local aio = require "luaio"
      local srv = assert(aio.start_server(function(s)
        s:write("hello\n")
      end, "127.0.0.1", 0))
      -- fill the descriptor table, leaving room for one client socket
      local held = {}
      while true do
        local fh = io.open("/dev/null")
        if not fh then break end
        held[#held + 1] = fh
      end
      held[#held]:close()
      held[#held] = nil
      local c = assert(aio.open_connection("127.0.0.1", srv.port))
      local r, _, code = c:read_line() -- the server cannot accept it
      print("full", r, code)
      c:close()
      for _, fh in ipairs(held) do fh:close() end
      c = assert(aio.open_connection("127.0.0.1", srv.port))
      print("freed", c:read_line())
      c:close()
      srv:close()
    ]])
    f:close()
    local p = assert(io.popen(("ulimit -n 64 && %q %q 2>&1"):format(luaio,
                                                                    script)))
    local out = p:read("a")
    p:close()
    os.remove(script)
    -- libuv accepts and drops the connection it has no descriptor for
    local r = out:match("full\t(%S+\t%S+)")
    assert.is_not_nil(r, out)
    assert.is_true(r == "nil\tnil" or r == "nil\tECONNRESET", out)
    assert.matches("freed\thello", out)
  end)
end)

describe("example scripts", function()
  local function run_script(name)
    local p = assert(io.popen(("%q scripts/%s 2>&1"):format(
      os.getenv("LUAIO") or "luaio", name)))
    local out = p:read("a")
    local ok = p:close()
    assert.is_true(ok, out)
    return out
  end

  it("echo_server.lua echoes and closes", function()
    assert.equal("serving on a free port: true\n" ..
                 "echoed: hello\necho" .. "ed: luaio\necho" ..
                 "ed: goodbye\nserver closed its side: true\n" ..
                 "server closed\n", run_script("echo_server.lua"))
  end)

  it("fetch_with_semaphore.lua fetches ten pages, three at a time",
     function()
    local out = run_script("fetch_with_semaphore.lua")
    for i = 1, 10 do assert.matches("page p" .. i .. "\n", out, 1, true) end
    assert.matches("10 pages, at most 3 connections at once\n$", out)
  end)
end)

describe("a handler iterating lines", function()
  it("ends the iteration when the client resets the connection", function()
    run(function()
    local ended, got = aio.event(), {}
    local how
    local srv = assert(aio.start_server(function(s)
      how = select(2, pcall(function()
        for line in s:lines() do
          got[#got + 1] = line
          s:write("ok\n")
        end
        return "ended"
      end))
      ended:set()
    end, "127.0.0.1", 0))
    -- The client reads the answer to its line, then closes with SO_LINGER
    -- 0: the kernel sends a reset in place of an end.
    local client = ([[
import socket, struct
c = socket.create_connection(("127.0.0.1", %d))
c.sendall(b"first\n")
assert c.recv(3) == b"ok\n"
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
c.close()
]]):format(srv.port)
    local r = aio.exec("/usr/bin/python3", {"-c", client})
    assert.equal(0, r.status, r.stderr)
    ended:wait()
    srv:close()
    assert.same({"first"}, got)
    assert.equal("ended", how)
    end)
  end)
end)

describe("a failing connection handler", function()
  it("is reported at once with the peer and the start_server call, and counted",
     function()
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write([[
local aio = require "luaio"
local srv = assert(aio.start_server(function(s)
  s:read_line()
  error("handler " .. "broke")
end, "127.0.0.1", 0))
local c = assert(aio.open_connection("127.0.0.1", srv.port))
local _, port = c:sockname()
c:write("x\n")
c:read_line()
aio.sleep(0.01)
io.stderr:write("client port ", port, "; failures ", srv:stats().handler_errors, "\n")
srv:close()
]])
    f:close()
    local p = assert(io.popen(("%q %q 2>&1"):format(
      os.getenv("LUAIO") or "luaio", script)))
    local out = p:read("a")
    local ok = p:close()
    os.remove(script)
    assert.is_true(ok, out)
    local port = out:match("client port (%d+); failures 1\n")
    assert.is_not_nil(port, out)
    local report = out:find("connection handler failed (peer 127.0.0.1:" .. port
                            .. "; server started at " .. script .. ":2)", 1, true)
    assert.is_not_nil(report, out)
    assert.is_true(report < out:find("client port", 1, true), out)
    assert.matches("handler broke\nstack traceback:", out)
    assert.is_nil(out:find("never retrieved", 1, true), out)
  end)
end)

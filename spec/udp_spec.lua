-- aio.udp: UDP sockets on loopback.
local aio = require "luaio"
local S = require "support"
local run = S.run

local function pair()
  local a = assert(aio.udp.bind("127.0.0.1", 0))
  local b = assert(aio.udp.bind("127.0.0.1", 0))
  return a, b
end

local function all_bytes()
  local t = {}
  for i = 0, 255 do t[#t + 1] = string.char(i) end
  return table.concat(t)
end

describe("aio.udp", function()
  it("binds an ephemeral port and reports it with sockname", function()
    run(function()
      local s <close> = assert(aio.udp.bind("127.0.0.1", 0))
      local host, port = s:sockname()
      assert.equal("127.0.0.1", host)
      assert.is_true(port > 0 and port < 65536)
    end)
  end)

  it("round-trips datagrams, binary-safe, with the sender's address",
     function()
    run(function()
      local a, b = pair()
      local _, ap = a:sockname()
      local bh, bp = b:sockname()
      local data = all_bytes() .. "\0"
      assert.is_true(a:send_to(data, bh, bp))
      local got, host, port = b:recv_from()
      assert.equal(data, got)
      assert.equal("127.0.0.1", host)
      assert.equal(ap, port)
      -- an empty datagram is a datagram
      assert.is_true(b:send_to("", "127.0.0.1", ap))
      assert.equal("", (a:recv_from()))
      -- a reply to a waiting task
      local t = aio.spawn(function() return a:recv_from() end)
      aio.sleep(0)
      b:send_to("pong", "localhost", ap)
      local d, h, p = t:await()
      assert.equal("pong", d)
      assert.equal("127.0.0.1", h)
      assert.equal(bp, p)
      a:close()
      b:close()
    end)
  end)

  it("carries many datagrams in order", function()
    run(function()
      local a, b = pair()
      local _, bp = b:sockname()
      local n = 500
      local reader = aio.spawn(function()
        local got = {}
        for i = 1, n do got[i] = b:recv_from() end
        return got
      end)
      for i = 1, n do assert(a:send_to(tostring(i), "127.0.0.1", bp)) end
      local got = reader:await()
      for i = 1, n do assert.equal(tostring(i), got[i]) end
      a:close()
      b:close()
    end)
  end)

  it("queues datagrams nobody waits for, dropping the oldest past 1024",
     function()
    run(function()
      local a, b = pair()
      local _, bp = b:sockname()
      for i = 1, 1100 do assert(a:send_to(tostring(i), "127.0.0.1", bp)) end
      aio.sleep(0.05) -- let the last ones arrive
      assert.matches("1024 queued, 76 dropped", tostring(b))
      for i = 77, 1100 do assert.equal(tostring(i), (b:recv_from())) end
      local ok, e = pcall(aio.wait_for, function() return b:recv_from() end,
                          0.05)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "TimeoutError"))
      a:close()
      b:close()
    end)
  end)

  it("a cancelled receiver loses no datagram", function()
    run(function()
      local a, b = pair()
      local _, bp = b:sockname()
      for round = 1, 50 do
        local t = aio.spawn(function() return b:recv_from() end)
        aio.sleep(0)
        assert(a:send_to("d" .. round, "127.0.0.1", bp))
        -- t may still wait, or hold the datagram without having run yet
        t:cancel()
        local ok, e = pcall(t.await, t)
        if ok then
          assert.equal("d" .. round, e)
        else
          assert.is_true(aio.is_error(e, "CancelledError"))
          assert.equal("d" .. round, (b:recv_from()))
        end
      end
      a:close()
      b:close()
    end)
  end)

  it("close wakes waiting receivers; a closed socket raises", function()
    run(function()
      local s = assert(aio.udp.bind("127.0.0.1", 0))
      local t = aio.spawn(function() return s:recv_from() end)
      aio.sleep(0)
      s:close()
      local v, msg, code = t:await()
      assert.is_nil(v)
      assert.equal("ECANCELED", code)
      assert.is_string(msg)
      assert.has_error(function() s:recv_from() end,
                       "attempt to use a closed socket")
      assert.has_error(function() s:send_to("x", "127.0.0.1", 9) end)
      assert.has_error(function() s:sockname() end)
      s:close() -- closing twice is harmless
      assert.matches("closed", tostring(s))
      do
        local c <close> = assert(aio.udp.bind("127.0.0.1", 0))
        assert.is_number(select(2, c:sockname()))
      end
      for _ = 1, 20 do aio.udp.bind("127.0.0.1", 0) end -- left to __gc
      collectgarbage()
      collectgarbage()
    end)
  end)

  it("returns nil, msg, code when the address is in use", function()
    run(function()
      local a <close> = assert(aio.udp.bind("127.0.0.1", 0))
      local _, port = a:sockname()
      local v, msg, code = aio.udp.bind("127.0.0.1", port)
      assert.is_nil(v)
      assert.equal("EADDRINUSE", code)
      assert.matches("^EADDRINUSE", msg)
    end)
  end)

  it("raises on wrong arguments", function()
    run(function()
      assert.has_error(function() aio.udp.bind("not an ip", 0) end)
      assert.has_error(function() aio.udp.bind("127.0.0.1", 70000) end)
      local s <close> = assert(aio.udp.bind("127.0.0.1", 0))
      assert.has_error(function() s:send_to("x", "example.org", 9) end)
      assert.has_error(function() s:send_to("x", "127.0.0.1") end)
      assert.has_error(function() s:send_to(nil, "127.0.0.1", 9) end)
    end)
  end)

  it("works over IPv6 loopback where there is one", function()
    run(function()
      local a = aio.udp.bind("::1", 0)
      if not a then return end
      local b <close> = assert(aio.udp.bind("::1", 0))
      local _, bp = b:sockname()
      assert(a:send_to("six", "::1", bp))
      local d, h = b:recv_from()
      assert.equal("six", d)
      assert.equal("::1", h)
      a:close()
    end)
  end)

  it("an idle socket does not keep the loop alive", function()
    local luaio = os.getenv("LUAIO")
    if not luaio then return end
    local p = assert(io.popen(luaio .. [[ -e '
      local aio = require "luaio"
      local s = aio.udp.bind("127.0.0.1", 0)
      aio.event():wait()' 2>&1; echo "status $?"]]))
    local out = p:read("a")
    p:close()
    assert.matches("deadlock", out)
    assert.matches("status 1", out)
  end)
end)

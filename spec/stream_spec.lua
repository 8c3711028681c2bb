-- Streams: buffered reads, back-pressured writes, shutdown and close,
-- cancellation of reads and writes; exercised over loopback TCP.
local aio = require "luaio"
local S = require "support"
local run = S.run

-- A server whose handler is fn(stream); returns the server and a
-- connected client stream.
local function pair(fn, opts)
  local srv = assert(aio.start_server(fn, "127.0.0.1", 0, opts))
  local c = assert(aio.open_connection("127.0.0.1", srv.port, opts))
  return srv, c
end

-- A server that writes `data` (a string or an array of pieces, each
-- written separately with a turn of the loop between) and closes.
local function sender(data)
  return pair(function(s)
    if type(data) == "string" then data = {data} end
    for _, piece in ipairs(data) do
      assert(s:write(piece))
      aio.sleep(0)
    end
    s:close()
  end)
end

describe("stream reads", function()
  it("read() returns what is there, read(n) at most n, nil at EOF", function()
    run(function()
      local srv, c = sender("hello world")
      assert.equal("hello", c:read_exactly(5))
      assert.equal(" ", c:read(1))
      assert.equal("world", c:read())
      assert.is_nil(c:read())
      assert.is_nil(c:read()) -- and again
      c:close()
      srv:close()
    end)
  end)

  it("read_exactly at an early EOF gives the partial data", function()
    run(function()
      local srv, c = sender("abc")
      local data, msg, code, partial = c:read_exactly(10)
      assert.is_nil(data)
      assert.equal("EOF", code)
      assert.matches("^EOF: ", msg)
      assert.equal("abc", partial)
      assert.is_nil(c:read())
      c:close()
      srv:close()
    end)
  end)

  it("read_line strips \\n and \\r\\n, then gives the last partial line",
     function()
    run(function()
      local srv, c = sender({"one\r\ntw", "o\n\nthr", "ee"})
      assert.equal("one", c:read_line())
      assert.equal("two", c:read_line())
      assert.equal("", c:read_line())
      assert.equal("three", c:read_line())
      assert.is_nil(c:read_line())
      c:close()
      srv:close()
    end)
  end)

  it("read_until includes the separator; EOF inside a record", function()
    run(function()
      local srv, c = sender({"a--b-", "-c-", "-tail"})
      assert.equal("a--", c:read_until("--"))
      assert.equal("b--", c:read_until("--"))
      assert.equal("c--", c:read_until("--"))
      local r, msg, code, partial = c:read_until("--")
      assert.is_nil(r)
      assert.equal("EOF", code)
      assert.equal("tail", partial)
      assert.is_nil(c:read_until("--")) -- a clean end
      c:close()
      srv:close()
    end)
  end)

  it("a record over the limit fails with ENOBUFS and loses no data",
     function()
    run(function()
      local long = string.rep("x", 100)
      local srv = assert(aio.start_server(function(s)
        s:write(long .. "\nshort\n")
        s:close()
      end, "127.0.0.1", 0))
      local c = assert(aio.open_connection("127.0.0.1", srv.port,
                                           {limit = 50}))
      local r, msg, code = c:read_line()
      assert.is_nil(r)
      assert.equal("ENOBUFS", code)
      assert.matches("limit", msg)
      assert.equal(long, c:read_exactly(100)) -- still there
      assert.equal("", c:read_line())
      assert.equal("short", c:read_line())
      c:close()
      srv:close()
    end)
  end)

  it("lines() iterates until EOF", function()
    run(function()
      local srv, c = sender({"a\nb", "\nc\n"})
      local got = {}
      for line in c:lines() do got[#got + 1] = line end
      assert.same({"a", "b", "c"}, got)
      c:close()
      srv:close()
    end)
  end)

  it("reassembles lines written one byte at a time", function()
    run(function()
      local text = "first line\r\nsecond\nthird line here\n"
      local pieces = {}
      for i = 1, #text do pieces[i] = text:sub(i, i) end
      local srv, c = sender(pieces)
      assert.equal("first line", c:read_line())
      assert.equal("second", c:read_line())
      assert.equal("third line here", c:read_line())
      assert.is_nil(c:read_line())
      c:close()
      srv:close()
    end)
  end)

  it("a cancelled read loses none of the data received", function()
    run(function()
      local go = aio.event()
      local srv, c = pair(function(s)
        go:wait()
        s:write("abc")
        go:clear()
        go:wait()
        s:write("def\n")
        s:close()
      end)
      local t = aio.spawn(function() return c:read_exactly(6) end)
      aio.sleep(0)
      go:set()
      aio.sleep(0.01) -- "abc" arrives while the task waits for 6 bytes
      assert.is_true(t:cancel())
      assert.is_false(pcall(t.await, t))
      assert.is_true(t:cancelled())
      go:set()
      assert.equal("abcdef", c:read_line())
      c:close()
      srv:close()
    end)
  end)

  it("only one task reads a stream at a time", function()
    run(function()
      local srv, c = pair(function(s) s:read() end)
      local t = aio.spawn(function() return c:read() end)
      aio.sleep(0)
      local ok, err = pcall(c.read, c)
      assert.is_false(ok)
      assert.matches("already reading", err)
      t:cancel()
      c:close()
      srv:close()
    end)
  end)

  it("a read waiting when another task closes the stream ends", function()
    run(function()
      local srv, c = pair(function(s) s:read() end)
      local t = aio.spawn(function() return c:read() end)
      aio.sleep(0)
      c:close()
      local r, msg, code = t:await()
      assert.is_nil(r)
      assert.equal("ECANCELED", code)
      srv:close()
    end)
  end)
end)

describe("stream writes", function()
  it("an 8 MB transfer to a slow reader keeps memory bounded", function()
    run(function()
      local total, chunk = 8 * 1024 * 1024, 64 * 1024
      local received = 0
      local srv = assert(aio.start_server(function(s)
        while true do
          local d = s:read(chunk)
          if not d then break end
          received = received + #d
          aio.sleep(0.0005)
        end
      end, "127.0.0.1", 0))
      local c = assert(aio.open_connection("127.0.0.1", srv.port))
      collectgarbage("collect")
      local base = collectgarbage("count")
      local max_queued, max_mem = 0, 0
      for i = 1, total // chunk do
        -- a fresh string each time, so that pinned data would add up
        assert(c:write(string.rep(string.char(i % 256), chunk)))
        local q = c:queued()
        if q > max_queued then max_queued = q end
        if i % 16 == 0 then
          collectgarbage("collect")
          local m = collectgarbage("count") - base
          if m > max_mem then max_mem = m end
        end
      end
      assert(c:shutdown())
      srv:close()
      srv:wait_closed()
      assert.equal(total, received)
      -- at most the high-water mark plus the chunk being written
      assert.is_true(max_queued <= 128 * 1024, tostring(max_queued))
      assert.is_true(max_mem < 2048, tostring(max_mem) .. " KiB")
      c:close()
    end)
  end)

  it("write waits while more than high_water bytes are queued", function()
    run(function()
      local release = aio.event()
      local srv = assert(aio.start_server(function(s)
        release:wait()
        while s:read() do end
      end, "127.0.0.1", 0))
      local c = assert(aio.open_connection("127.0.0.1", srv.port,
                                           {high_water = 1024}))
      local written = 0
      local w = aio.spawn(function()
        local piece = string.rep("y", 64 * 1024)
        for _ = 1, 200 do
          assert(c:write(piece))
          written = written + #piece
        end
      end)
      while c:queued() == 0 do aio.sleep(0.001) end
      local seen = written
      aio.sleep(0.05)
      assert.equal(seen, written) -- the writer is held back
      assert.is_false(w:done())
      release:set()
      w:await()
      assert(c:drain())
      assert(c:flush())
      assert.equal(0, (c:queued()))
      c:close()
      srv:close()
    end)
  end)

  it("a cancelled write raises; the bytes it queued are written", function()
    run(function()
      local release, got = aio.event(), nil
      local srv = assert(aio.start_server(function(s)
        release:wait()
        got = s:read_all()
      end, "127.0.0.1", 0))
      local c = assert(aio.open_connection("127.0.0.1", srv.port,
                                           {high_water = 0}))
      local big = string.rep("z", 4 * 1024 * 1024)
      local t = aio.spawn(function() return c:write(big) end)
      aio.sleep(0)
      assert.is_true(c:queued() > 0)
      t:cancel()
      assert.is_false(pcall(t.await, t))
      assert.is_true(t:cancelled())
      release:set()
      assert(c:shutdown())
      srv:close()
      srv:wait_closed()
      assert.equal(#big, #got)
      c:close()
    end)
  end)

  it("shutdown half-closes: the peer sees EOF and can still answer",
     function()
    run(function()
      local srv, c = pair(function(s)
        local all = s:read_all()
        s:write("got " .. #all)
      end)
      c:write("12345")
      assert.is_true(c:shutdown())
      assert.equal("got 5", c:read_all())
      local ok, err = pcall(c.write, c, "more")
      assert.is_false(ok)
      assert.matches("shutdown", err)
      c:close()
      srv:close()
    end)
  end)

  it("close() flushes queued writes in the background", function()
    run(function()
      local done = aio.event()
      local got
      local srv = assert(aio.start_server(function(s)
        aio.sleep(0.02)
        got = s:read_all()
        done:set()
      end, "127.0.0.1", 0))
      local c = assert(aio.open_connection("127.0.0.1", srv.port,
                                           {high_water = 8 * 1024 * 1024}))
      local data = string.rep("q", 3 * 1024 * 1024)
      c:write(data)
      c:close()
      done:wait()
      assert.equal(#data, #got)
      srv:close()
    end)
  end)

  it("a reset peer makes reads and writes fail with nil, msg, code",
     function()
    run(function()
      local srv = assert(aio.start_server(function(s)
        s:read_exactly(1)
        s:close() -- unread bytes in the kernel: the peer gets a reset
      end, "127.0.0.1", 0))
      local c = assert(aio.open_connection("127.0.0.1", srv.port))
      local piece = string.rep("r", 64 * 1024)
      local ok, msg, code
      for _ = 1, 1000 do
        ok, msg, code = c:write(piece)
        if not ok then break end
      end
      assert.is_nil(ok)
      assert.is_string(msg)
      assert.is_true(code == "ECONNRESET" or code == "EPIPE", code)
      local r, _, rcode = c:read()
      assert.is_nil(r)
      if rcode then assert.equal("ECONNRESET", rcode) end
      c:close()
      srv:close()
    end)
  end)
end)

describe("closing streams", function()
  it("use after close raises; close is idempotent; <close> closes",
     function()
    run(function()
      local srv, c = pair(function(s) s:read() end)
      c:close()
      c:close()
      assert.is_true(c:closed())
      assert.is_false(pcall(c.read, c))
      assert.is_false(pcall(c.write, c, "x"))
      assert.matches("closed", tostring(c))
      local keep
      do
        local d <close> = assert(aio.open_connection("127.0.0.1", srv.port))
        keep = d
        assert.is_false(d:closed())
      end
      assert.is_true(keep:closed())
      srv:close()
    end)
  end)

  it("a stream dropped without close is collected and closed", function()
    run(function()
      local eof = aio.event()
      local srv = assert(aio.start_server(function(s)
        assert.is_nil(s:read())
        eof:set()
      end, "127.0.0.1", 0))
      do assert(aio.open_connection("127.0.0.1", srv.port)) end
      for _ = 1, 3 do collectgarbage("collect") end
      eof:wait()
      srv:close()
    end)
  end)
end)

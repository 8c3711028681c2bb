-- Graceful stops of workers that serve: w:shutdown, group:shutdown, a
-- cancelled join, <close>, and SIGTERM to a script under the luaio
-- command.  Every worker stops accepting, the requests in flight finish,
-- and what outlives the grace is cancelled.
local aio = require "luaio"
local S = require "support"
local run = S.run
local LUAIO = assert(os.getenv("LUAIO"), "the test runner sets LUAIO")

-- A worker's main function: a server on port (0: one of its own) whose
-- handler reads a line and answers "done <line>"; "slow" waits for the
-- gate first, "forever" never ends (it says "cancelled" when it is).
-- events gets the port once it listens, "busy" from a handler that
-- waits, and "closed" once the server has stopped accepting.
local function serve(port, events, gate)
  local aio = require "luaio"
  local server = assert(aio.start_server(function(s)
    local line = s:read_line()
    if line == "slow" then
      events:send("busy")
      gate:recv()
    elseif line == "forever" then
      events:send("busy")
      local _, e = pcall(aio.sleep, 1e6)
      events:send("cancelled")
      error(e, 0)
    end
    s:write("done " .. line .. "\n")
  end, "127.0.0.1", port, {reuse_port = true}))
  aio.spawn(function()
    server:serve_forever()
    events:send("closed")
  end)
  events:send(server.port)
  server:serve_forever()
end

-- n workers serving one port; the group, the port and the channels.
local function group(n)
  local first = assert(aio.start_server(function(s) s:close() end,
                                        "127.0.0.1", 0, {reuse_port = true}))
  local events, gate = aio.channel(), aio.channel()
  local g = aio.workers(n, serve, first.port, events, gate)
  for _ = 1, n do assert.equal(first.port, events:recv()) end
  first:close() -- before any client connects
  return g, first.port, events, gate
end

-- A connection whose request waits in a handler ("busy").
local function in_flight(port, events, what)
  local c = assert(aio.open_connection("127.0.0.1", port))
  assert(c:write((what or "slow") .. "\n"))
  assert.equal("busy", events:recv())
  return c
end

local function assert_refused(port)
  local c, _, code = aio.open_connection("127.0.0.1", port)
  assert.is_nil(c)
  assert.equal("ECONNREFUSED", code)
end

describe("a graceful stop", function()
  it("lets a group's request in flight finish; new connections are refused",
     function()
    run(function()
      local g, port, events, gate = group(2)
      local c = in_flight(port, events)
      local stopper = aio.spawn(g.shutdown, g, 30)
      assert.equal("closed", events:recv())
      assert.equal("closed", events:recv())
      assert_refused(port) -- nobody accepts any more
      assert.is_false(stopper:done()) -- it waits for the request
      gate:send("go")
      assert.equal("done slow", c:read_line())
      assert.is_nil(c:read_line())
      c:close()
      stopper:await()
      for _, w in ipairs(g.workers) do assert.is_false(w:cancel()) end
    end)
  end)

  it("serves the connections the kernel had queued", function()
    run(function()
      local ready, go = aio.channel(), aio.channel()
      -- The worker's loop does not run while the clients connect: their
      -- connections wait in the kernel's queue until server:close().
      local w = aio.worker(function(ready, go)
        local aio = require "luaio"
        local served = 0
        local server = assert(aio.start_server(function(s)
          s:write("hi " .. s:read_line() .. "\n")
          served = served + 1
        end, "127.0.0.1", 0))
        ready:send(server.port)
        while go:len() == 0 do end -- no wait: the loop stays still
        server:close()
        server:wait_closed()
        return served
      end, ready, go)
      local port = ready:recv()
      local cs = {}
      for i = 1, 10 do
        cs[i] = assert(aio.open_connection("127.0.0.1", port))
        assert(cs[i]:write(i .. "\n"))
      end
      go:send("close now")
      for i = 1, 10 do
        assert.equal("hi " .. i, cs[i]:read_line())
        cs[i]:close()
      end
      assert.equal(10, w:join())
      assert_refused(port)
    end)
  end)

  it("cancels a handler that outlives the grace", function()
    run(function()
      local events, gate = aio.channel(), aio.channel()
      local w = aio.worker(serve, 0, events, gate)
      local port = events:recv()
      local c = in_flight(port, events, "forever")
      w:shutdown(0.05)
      -- in that order: it stopped accepting, then the grace ended
      assert.equal("closed", events:recv())
      assert.equal("cancelled", events:recv())
      assert.is_nil(c:read_line()) -- its connection was closed
      c:close()
      assert.is_false(w:cancel())
      assert_refused(port)
    end)
  end)

  it("stops a handler spinning in Lua a second after the grace #spin",
     function()
    run(function()
      local events = aio.channel()
      local w = aio.worker(function(events)
        local aio = require "luaio"
        local server = assert(aio.start_server(function()
          events:send("busy")
          while true do end
        end, "127.0.0.1", 0))
        events:send(server.port)
        server:serve_forever()
      end, events)
      local c = assert(aio.open_connection("127.0.0.1", events:recv()))
      assert.equal("busy", events:recv())
      w:shutdown(0)
      assert.is_false(w:cancel())
      assert.is_nil(c:read())
      c:close()
    end)
  end)

  it("is what cancelling a join does", function()
    run(function()
      local events, gate = aio.channel(), aio.channel()
      local w = aio.worker(serve, 0, events, gate)
      local port = events:recv()
      local c = in_flight(port, events)
      local joiner = aio.spawn(w.join, w)
      aio.sleep(0)
      joiner:cancel()
      assert.equal("closed", events:recv())
      assert_refused(port)
      assert.is_false(joiner:done())
      gate:send("go")
      assert.equal("done slow", c:read_line())
      c:close()
      S.assert_cancelled(joiner)
      -- the worker's main task was cancelled after its server closed
      local e = S.assert_raises("WorkerError", w.join, w)
      assert.equal("CancelledError", e.error.type)
    end)
  end)

  it("is what a group's cancelled join does, for every worker at once",
     function()
    run(function()
      local g, port, events, gate = group(2)
      local c = in_flight(port, events)
      local joiner = aio.spawn(g.join, g)
      aio.sleep(0)
      joiner:cancel()
      assert.equal("closed", events:recv())
      assert.equal("closed", events:recv())
      assert_refused(port)
      gate:send("go")
      assert.equal("done slow", c:read_line())
      c:close()
      S.assert_cancelled(joiner)
    end)
  end)

  it("is what <close> does, for a worker and a group", function()
    run(function()
      local c, answer, opener
      -- the gate opens once every server has stopped accepting
      local function open_after(n, events, gate)
        return aio.spawn(function()
          for _ = 1, n do assert.equal("closed", events:recv()) end
          gate:send("go")
          answer = c:read_line()
        end)
      end
      do
        local events, gate = aio.channel(), aio.channel()
        local w <close> = aio.worker(serve, 0, events, gate)
        c = in_flight(events:recv(), events)
        opener = open_after(1, events, gate)
      end
      assert.is_true(opener:done()) -- <close> waited for the request
      assert.equal("done slow", answer)
      c:close()
      do
        local g <close>, port, events, gate = group(2)
        c = in_flight(port, events)
        opener = open_after(2, events, gate)
      end
      assert.is_true(opener:done())
      assert.equal("done slow", answer)
      c:close()
    end)
  end)

  it("checks its grace, and does nothing to a worker that has ended",
     function()
    run(function()
      local w = aio.worker(function() return 42 end)
      assert.has_error(function() w:shutdown(-1) end)
      assert.has_error(function() w:shutdown(0 / 0) end)
      assert.has_error(function() w:shutdown("soon") end)
      assert.equal(42, w:join())
      w:shutdown()
      assert.equal(42, w:join())
      -- a group closed by an error: the error goes on
      local ok, e = pcall(function()
        local g <close> = aio.workers(1, function()
          local aio = require "luaio"
          aio.sleep(1e6)
        end)
        error("boom")
      end)
      assert.is_false(ok)
      assert.matches("boom", e)
    end)
  end)
end)

describe("SIGTERM under the luaio command", function()
  it("lets a group's requests in flight finish, then exits 0", function()
    run(function()
      local script = os.tmpname()
      local f = assert(io.open(script, "w"))
      f:write([[
local aio = require "luaio"
local function serve(port, ready)
  local aio = require "luaio"
  local server = assert(aio.start_server(function(s)
    print("handling " .. s:read_line())
    io.stdout:flush()
    s:write("done " .. s:read_line() .. "\n")
  end, "127.0.0.1", port, {reuse_port = true}))
  aio.spawn(function()
    server:serve_forever()
    print("closed")
    io.stdout:flush()
  end)
  ready:send(true)
  server:serve_forever()
end
local first = assert(aio.start_server(function(s) s:close() end,
                                      "127.0.0.1", 0, {reuse_port = true}))
local ready = aio.channel()
local g <close> = aio.workers(2, serve, first.port, ready)
ready:recv()
ready:recv()
first:close()
-- SIGTERM cancels the main task; the group's <close> stops it gracefully
local ok, e = pcall(function()
  print("listening " .. first.port)
  io.stdout:flush()
  g:join()
end)
if not ok and not aio.is_error(e, "CancelledError") then error(e, 0) end
]])
      f:close()
      local p = assert(aio.subprocess(LUAIO, {script},
                                      {stdout = "pipe", stderr = "pipe"}))
      local function expect(pattern)
        local seen = {}
        while true do
          local line = p.stdout:read_line()
          if line == nil then
            error("no line matching '" .. pattern .. "' in: " ..
                  table.concat(seen, "\n") .. "\n" .. (p.stderr:read() or ""))
          end
          seen[#seen + 1] = line
          if line:match(pattern) then return line end
        end
      end
      local port = tonumber(expect("^listening (%d+)$"):match("%d+"))
      local c = assert(aio.open_connection("127.0.0.1", port))
      assert(c:write("job\n"))
      expect("^handling job$")
      p:kill("TERM")
      expect("^closed$")
      expect("^closed$")
      assert_refused(port)
      assert(c:write("finish\n"))
      assert.equal("done finish", c:read_line())
      c:close()
      assert.same({status = 0, signal = 0}, p:wait())
      os.remove(script)
    end)
  end)
end)

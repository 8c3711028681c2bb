-- The WebSocket heartbeat: pings every `heartbeat` seconds, 1011 when no
-- pong comes back; against python3-websockets (which answers pings) and
-- against our own peers (ours, and raw ones that never answer).
local aio = require "luaio"
local support = require "support"
local W = require "luaio._ws"

local PY = "/usr/bin/python3"
local HANDSHAKE = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n" ..
  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" ..
  "Sec-WebSocket-Version: 13\r\n\r\n"

local function have_websockets()
  return os.execute(PY .. " -c 'import websockets' 2>/dev/null") == true
end

local close_code = support.ws_close_code

-- An app with /ws (echo while reading) and /quiet (reads nothing for
-- `quiet` seconds, or until the event gate is set, sends "late", then
-- echoes); each socket's end goes into ends as {code, reason, pongs}.
local function heartbeat_app(every, quiet, ends, within, gate)
  local hopts = {heartbeat = every, heartbeat_timeout = within}
  local app = aio.http.app()
  local function finish(ws, code, reason)
    ends[#ends + 1] = {code = code, reason = reason, pongs = ws.pongs, hb = ws.hb}
  end
  app:websocket("/ws", function(ws)
    while true do
      local data, kind_or_code, reason = ws:receive()
      if data == nil then return finish(ws, kind_or_code, reason) end
      ws:send(data, kind_or_code)
    end
  end, hopts)
  app:websocket("/quiet", function(ws)
    if gate then gate:wait() else aio.sleep(quiet) end
    ws:send("late")
    while true do
      local data, kind_or_code, reason = ws:receive()
      if data == nil then return finish(ws, kind_or_code, reason) end
      ws:send(data, kind_or_code)
    end
  end, hopts)
  app:websocket("/ticks", function(ws)
    local n = 0
    while ws:send("tick") do n = n + 1; aio.sleep(0.01) end
    finish(ws, ws.code, ws.reason)
  end, hopts)
  return app
end

describe("WebSocket heartbeat (server)", function()
  it("a python3-websockets peer that answers pings stays open", function()
    if not have_websockets() then return end
    support.run(function()
      local ends = {}
      local srv = assert(aio.http.serve(heartbeat_app(0.05, 0.5, ends, 5)))
      local script = ([[
import asyncio, websockets
async def main():
    for path in ("/ws", "/quiet"):
        async with websockets.connect("ws://127.0.0.1:%d" + path) as ws:
            if path == "/ws":
                await asyncio.sleep(0.5)
            else:
                print(await ws.recv())
            await ws.send("x"); print(await ws.recv())
        print(ws.close_code)
asyncio.run(main())
]]):format(srv.port)
      local r = aio.exec(PY, {"-c", script})
      assert.equal(0, r.status, r.stderr)
      assert.equal("x\n1000\nlate\nx\n1000\n", r.stdout)
      support.wait_until(function() return #ends == 2 end)
      for _, e in ipairs(ends) do
        assert.equal(1000, e.code)
        assert.is_true(e.pongs >= 1) -- pinged and answered while quiet
      end
      support.wait_until(function() return ends[1].hb:done() and ends[2].hb:done() end)
      srv:close()
    end)
  end)

  for _, route in ipairs({"/ws", "/quiet", "/ticks"}) do
    it("a raw peer that never answers is closed with 1011 (" .. route .. ")", function()
      support.run(function()
        local ends = {}
        local srv = assert(aio.http.serve(heartbeat_app(0.05, 30, ends)))
        local s = assert(aio.open_connection("127.0.0.1", srv.port))
        assert(s:write((HANDSHAKE:gsub("/ws", route))))
        assert.truthy(s:read_until("\r\n\r\n"):find("^HTTP/1.1 101"))
        local rest = s:read_all() -- pings (unanswered), then the close
        s:close()
        assert.equal(1011, close_code(rest))
        assert.truthy(rest:find("\137\5luaio", 1, true)) -- a ping was sent
        if route ~= "/quiet" then
          support.wait_until(function() return #ends == 1 end)
          assert.equal(1011, ends[1].code)
          assert.equal("heartbeat timeout", ends[1].reason)
        end
        srv:close()
      end)
    end)
  end

  it("server close cancels a heartbeat waiting for its pong", function()
    support.run(function()
      local hb
      local app = aio.http.app()
      app:websocket("/ws", function(ws)
        hb = ws.hb
        ws:receive()
      end, {heartbeat = 0.02})
      local srv = assert(aio.http.serve(app))
      local s = assert(aio.open_connection("127.0.0.1", srv.port))
      assert(s:write(HANDSHAKE))
      s:read_until("\r\n\r\n")
      s:read_until("luaio") -- the first ping: the heartbeat waits now
      srv:close()
      srv:wait_closed()
      support.wait_until(function() return hb:done() end)
      s:close()
    end)
  end)

  it("refuses a heartbeat that is not a positive number", function()
    support.run(function()
      assert.has_error(function()
        aio.http.websocket("ws://127.0.0.1:1/", {heartbeat = 0})
      end)
      assert.has_error(function()
        aio.http.websocket("ws://127.0.0.1:1/", {heartbeat = "1"})
      end)
      assert.has_error(function()
        aio.http.websocket("ws://127.0.0.1:1/", {heartbeat = 1, heartbeat_timeout = -1})
      end)
    end)
  end)
end)

-- A raw WebSocket server on our streams that answers the handshake and
-- then reads nothing and answers nothing.
local function mute_server(got)
  return assert(aio.start_server(function(s)
    local head = s:read_until("\r\n\r\n")
    local key = head:match("[Ss]ec%-[Ww]eb[Ss]ocket%-[Kk]ey: ([^\r]+)")
    s:write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" ..
            "Connection: Upgrade\r\nSec-WebSocket-Accept: " ..
            W.accept_key(key) .. "\r\n\r\n")
    aio.sleep(0.5)
    got.rest = s:read_all()
  end, "127.0.0.1", 0))
end

describe("WebSocket heartbeat (client)", function()
  it("stays open against python3-websockets and our server", function()
    support.run(function()
      local ends = {}
      local srv = assert(aio.http.serve(heartbeat_app(0.05, 0.4, ends, 5)))
      local ws = assert(aio.http.websocket(
        "ws://127.0.0.1:" .. srv.port .. "/quiet", {heartbeat = 0.05, heartbeat_timeout = 5}))
      assert.equal("late", ws:receive()) -- 0.4 s of pings, all answered
      assert.is_true(ws.pongs >= 1)
      assert(ws:send("y"))
      assert.equal("y", ws:receive())
      ws:close()
      assert.equal(1000, ws.code)
      support.wait_until(function() return ws.hb:done() end)
      srv:close()
    end)
    if not have_websockets() then return end
    support.run(function()
      local p = aio.subprocess(PY, {"-c", [[
import asyncio, websockets
async def quiet(ws):
    await asyncio.sleep(0.4)
    await ws.send("late")
    async for m in ws:
        await ws.send(m)
async def main():
    async with websockets.serve(quiet, "127.0.0.1", 0) as srv:
        print(srv.sockets[0].getsockname()[1], flush=True)
        await asyncio.sleep(30)
asyncio.run(main())
]]}, {stdout = "pipe"})
      local port = tonumber(p.stdout:read_line())
      local ws = assert(aio.http.websocket("ws://127.0.0.1:" .. port .. "/",
                                           {heartbeat = 0.05, heartbeat_timeout = 5}))
      assert.equal("late", ws:receive())
      assert.is_true(ws.pongs >= 1)
      ws:close()
      assert.equal(1000, ws.code)
      p:kill()
      p:wait()
    end)
  end)

  it("a server that never answers is closed with 1011", function()
    support.run(function()
      local got = {}
      local srv = mute_server(got)
      local ws = assert(aio.http.websocket("ws://127.0.0.1:" .. srv.port .. "/",
                                           {heartbeat = 0.05}))
      assert.same({nil, 1011, "heartbeat timeout"}, {ws:receive()})
      assert.equal(1011, ws.code)
      assert.same({nil, "closed"}, {ws:send("x")})
      support.wait_until(function() return got.rest ~= nil end)
      -- the client's frames (masked, short): pings, then the close
      local code, i, bytes = nil, 1, got.rest
      while i + 1 <= #bytes do
        local b0, n = bytes:byte(i), bytes:byte(i + 1) & 0x7f
        if b0 == 0x88 and n >= 2 then
          local m1, m2 = bytes:byte(i + 2), bytes:byte(i + 3)
          code = (bytes:byte(i + 6) ~ m1) * 256 + (bytes:byte(i + 7) ~ m2)
          break
        end
        i = i + 2 + 4 + n
      end
      assert.equal(1011, code)
      ws:close()
      srv:close()
    end)
  end)

  it("a socket nobody reads is still closed with 1011", function()
    support.run(function()
      local got = {}
      local srv = mute_server(got)
      local ws = assert(aio.http.websocket("ws://127.0.0.1:" .. srv.port .. "/",
                                           {heartbeat = 0.05}))
      support.wait_until(function() return ws.done end)
      assert.equal(1011, ws.code)
      assert.same({nil, 1011, "heartbeat timeout"}, {ws:receive()})
      ws:close()
      srv:close()
    end)
  end)

  it("cancelling a receive during the heartbeat's wait leaves it working", function()
    support.run(function()
      local ends, gate = {}, aio.event()
      local srv = assert(aio.http.serve(heartbeat_app(0.05, nil, ends, 5, gate)))
      local ws = assert(aio.http.websocket(
        "ws://127.0.0.1:" .. srv.port .. "/quiet", {heartbeat = 0.04, heartbeat_timeout = 5}))
      for _ = 1, 3 do -- cancel readers while pings are in flight
        local t = aio.spawn(ws.receive, ws)
        aio.sleep(0.05)
        t:cancel()
        support.assert_cancelled(t)
      end
      gate:set() -- only now the server sends "late"
      assert.equal("late", ws:receive())
      assert.is_false(ws.done)
      assert(ws:send("z"))
      assert.equal("z", ws:receive())
      ws:close()
      assert.equal(1000, ws.code)
      support.wait_until(function() return ws.hb:done() end)
      srv:close()
    end)
  end)
end)

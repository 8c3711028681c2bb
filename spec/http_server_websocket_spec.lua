-- app:websocket: the handshake, echo against python3-websockets, and the
-- close codes of protocol errors over raw frames.
local aio = require "luaio"
local support = require "support"

local PY = "/usr/bin/python3"
local HANDSHAKE = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n" ..
  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" ..
  "Sec-WebSocket-Version: 13\r\n\r\n"

-- A client frame (masked) with opcode byte b0 and payload.
local function frame(b0, payload)
  local mask = {1, 2, 3, 4}
  local out = {}
  for i = 1, #payload do
    out[i] = string.char(payload:byte(i) ~ mask[(i - 1) % 4 + 1])
  end
  local n = #payload
  local len = n < 126 and string.char(0x80 | n) or
              string.char(0x80 | 126, n >> 8, n & 255)
  return string.char(b0) .. len .. "\1\2\3\4" .. table.concat(out)
end

local close_code = support.ws_close_code

local function with_app(fn, opts)
  support.run(function()
    local app = aio.http.app()
    local seen = {}
    app:websocket("/ws", function(ws)
      for data, kind in ws:iter() do
        seen[#seen + 1] = data
        if data == "bye" then ws:close(4000, "done") break end
        ws:send(data, kind)
      end
    end, opts)
    local srv = assert(aio.http.serve(app))
    local ok, err = pcall(fn, srv.port, seen)
    srv:close()
    assert(ok, err)
  end)
end

local function session(port, bytes)
  local s = assert(aio.open_connection("127.0.0.1", port))
  assert(s:write(HANDSHAKE))
  local head = s:read_until("\r\n\r\n")
  assert(s:write(bytes))
  local rest = s:read_all()
  s:close()
  return head, rest
end

describe("app:websocket", function()
  it("answers the handshake with the accept key", function()
    with_app(function(port)
      local head, rest = session(port, frame(0x88, "\3\232"))
      assert.truthy(head:find("101 Switching Protocols", 1, true))
      assert.truthy(head:find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 1, true))
      assert.equal(1000, close_code(rest))
    end)
  end)

  it("refuses another version with 426 and a bad key with 400", function()
    with_app(function(port)
      local s = assert(aio.open_connection("127.0.0.1", port))
      s:write((HANDSHAKE:gsub("Version: 13", "Version: 8")))
      local r = s:read_until("\r\n\r\n")
      assert.truthy(r:find("^HTTP/1.1 426"))
      assert.truthy(r:find("sec-websocket-version: 13", 1, true))
      s:close()
      s = assert(aio.open_connection("127.0.0.1", port))
      s:write((HANDSHAKE:gsub("dGhlIHNhbXBsZSBub25jZQ==", "short")))
      assert.truthy(s:read_until("\r\n\r\n"):find("^HTTP/1.1 400"))
      s:close()
      s = assert(aio.open_connection("127.0.0.1", port))
      s:write("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      assert.truthy(s:read_all():find("^HTTP/1.1 426"))
      s:close()
    end)
  end)

  it("echoes text and binary to python3-websockets, ping included", function()
    if os.execute(PY .. " -c 'import websockets' 2>/dev/null") ~= true then
      return
    end
    with_app(function(port)
      local script = ([[
import asyncio, websockets
async def main():
    async with websockets.connect("ws://127.0.0.1:%d/ws", max_size=None) as ws:
        await ws.send("héllo"); print(await ws.recv())
        await ws.send(bytes(range(5))); print(list(await ws.recv()))
        await (await ws.ping())
        await ws.send("x" * 300000); print(len(await ws.recv()))
        await ws.send("bye")
        await ws.wait_closed()
        print(ws.close_code, ws.close_reason)
asyncio.run(main())
]]):format(port)
      local r = aio.exec(PY, {"-c", script})
      assert.equal(0, r.status, r.stderr)
      assert.equal("héllo\n[0, 1, 2, 3, 4]\n300000\n4000 done\n", r.stdout)
    end)
  end)

  local errors = {
    {"a reserved opcode", frame(0x83, "x"), 1002},
    {"reserved bits", frame(0xC1, "x"), 1002},
    {"an unmasked frame", "\129\2hi", 1002},
    {"a fragmented ping", frame(0x09, "x"), false}, -- dropped, no code
    {"a continuation without a start", frame(0x80, "x"), 1002},
    {"invalid UTF-8", frame(0x81, "\255\254"), 1007},
    {"a 1-byte close payload", frame(0x88, "\3"), 1002},
    {"a bad close code", frame(0x88, "\3\237"), 1002},
  }
  for _, case in ipairs(errors) do
    it(case[1] .. " closes with " .. tostring(case[3] or "no code"), function()
      with_app(function(port)
        local _, rest = session(port, case[2])
        if case[3] then
          assert.equal(case[3], close_code(rest))
        else
          assert.is_nil(close_code(rest))
          assert.falsy(rest:find("x", 1, true)) -- nothing echoed
        end
      end)
    end)
  end

  it("a message over max_message_size closes with 1009", function()
    with_app(function(port)
      local _, rest = session(port, frame(0x81, ("a"):rep(200)))
      assert.equal(1009, close_code(rest))
    end, {max_message_size = 100})
  end)

  it("fragmented messages are joined", function()
    with_app(function(port, seen)
      local _, rest = session(port, frame(0x01, "ab") .. frame(0x00, "cd") ..
                              frame(0x80, "ef") .. frame(0x88, "\3\232"))
      assert.same({"abcdef"}, seen)
      assert.equal(1000, close_code(rest))
    end)
  end)

  it("aio.http.websocket talks to our server and to python3-websockets", function()
    with_app(function(port)
      local ws = assert(aio.http.websocket("ws://127.0.0.1:" .. port .. "/ws"))
      assert(ws:send("one"))
      assert.same({"one", "text"}, {ws:receive()})
      assert(ws:send("\0\1", "binary"))
      assert.same({"\0\1", "binary"}, {ws:receive()})
      assert(ws:ping())
      assert(ws:send("bye"))
      local data, code = ws:receive()
      assert.is_nil(data)
      assert.equal(4000, code)
      ws:close()
    end)
    if os.execute(PY .. " -c 'import websockets' 2>/dev/null") ~= true then
      return
    end
    support.run(function()
      local p = aio.subprocess(PY, {"-c", [[
import asyncio, websockets
async def echo(ws):
    async for m in ws:
        await ws.send(m)
async def main():
    async with websockets.serve(echo, "127.0.0.1", 0) as srv:
        print(srv.sockets[0].getsockname()[1], flush=True)
        await asyncio.sleep(30)
asyncio.run(main())
]]}, {stdout = "pipe"})
      local port = tonumber(p.stdout:read_line())
      local ws = assert(aio.http.websocket("ws://127.0.0.1:" .. port .. "/"))
      assert(ws:send(("z"):rep(70000)))
      local got = ws:receive()
      assert.equal(70000, #got)
      ws:close()
      assert.equal(1000, ws.code)
      p:kill()
      p:wait()
    end)
  end)

  it("aio.http.websocket fails cleanly: refused, not an upgrade, wss", function()
    support.run(function()
      local srv = assert(aio.http.serve(function() return "plain" end))
      local ws, msg, code = aio.http.websocket("ws://127.0.0.1:" .. srv.port .. "/")
      assert.is_nil(ws)
      assert.equal("EPROTO", code, msg)
      srv:close()
      ws, msg, code = aio.http.websocket("ws://127.0.0.1:" .. srv.port .. "/")
      assert.equal("ECONNREFUSED", code, msg)
      ws, msg, code = aio.http.websocket("wss://127.0.0.1:1/")
      assert.equal("ECONNREFUSED", code, msg)
    end)
  end)
end)

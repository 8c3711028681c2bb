-- bench/tls/bulk.lua DIR [MB] [HANDSHAKES]: in one process, a client sends
-- MB MiB in 64 KiB writes to a server that reads and counts, over plain
-- TCP and over TLS; then HANDSHAKES connections opened and closed one
-- after another.  Prints wall and CPU (both ends) per MiB and per
-- handshake.
local aio = require "luaio"
local dir, mb, nhs = arg[1], tonumber(arg[2]) or 256, tonumber(arg[3]) or 1000
local TLS = {cert = dir .. "/cert.pem", key = dir .. "/key.pem"}
local CLIENT = {cafile = dir .. "/cert.pem", server_name = "localhost"}
local CHUNK = ("x"):rep(64 * 1024)

local function clock(fn)
  local w, c = aio.time(), os.clock()
  fn()
  return aio.time() - w, os.clock() - c
end

local function bulk(tls)
  local total, done = mb * 1024 * 1024, aio.event()
  local srv = assert(aio.start_server(function(s)
    local got = 0
    while true do
      local d = s:read()
      if not d then break end
      got = got + #d
    end
    assert(got == total, got)
    done:set()
  end, "127.0.0.1", 0, {tls = tls and TLS or nil}))
  local wall, cpu = clock(function()
    local s = assert(aio.open_connection("127.0.0.1", srv.port,
                                         {tls = tls and CLIENT or nil}))
    for _ = 1, total // #CHUNK do assert(s:write(CHUNK)) end
    s:close()
    done:wait()
  end)
  srv:close()
  return wall, cpu
end

local function handshakes()
  local srv = assert(aio.start_server(function(s) s:read() end, "127.0.0.1", 0,
                                      {tls = TLS}))
  local wall, cpu = clock(function()
    for _ = 1, nhs do
      local s = assert(aio.open_connection("127.0.0.1", srv.port, {tls = CLIENT}))
      s:close()
    end
  end)
  srv:close()
  return wall, cpu
end

aio.run(function()
  bulk(true) -- warm-up
  local pw, pc = bulk(false)
  local tw, tc = bulk(true)
  local hw, hc = handshakes()
  print(("luaio plain  %7.2f ms wall %7.2f ms CPU per MiB"):format(pw * 1e3 / mb, pc * 1e3 / mb))
  print(("luaio tls    %7.2f ms wall %7.2f ms CPU per MiB"):format(tw * 1e3 / mb, tc * 1e3 / mb))
  print(("luaio tls handshake %7.1f µs wall %7.1f µs CPU"):format(hw * 1e6 / nhs, hc * 1e6 / nhs))
  print(("RESULT %.4f %.4f %.4f %.4f %.2f %.2f"):format(pw * 1e3 / mb, pc * 1e3 / mb, tw * 1e3 / mb, tc * 1e3 / mb,
        hw * 1e6 / nhs, hc * 1e6 / nhs))
end)

-- TLS under load, run by ctest in the ASan tree (host:) and under
-- valgrind: echoes, HTTPS requests and wss messages, failed and
-- cancelled handshakes, cancelled reads, peers that leave without
-- close_notify.  Nothing may leak or be touched after it was freed.
local aio = require "luaio"

local N = tonumber(arg and arg[1]) or 1000
local DIR = io.popen("mktemp -d /tmp/luaio-tls-load.XXXXXX"):read("l")
assert(os.execute(("cd %s && openssl req -x509 -newkey ec -pkeyopt " ..
  "ec_paramgen_curve:prime256v1 -nodes -sha256 -keyout k.pem -out c.pem " ..
  "-days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost," ..
  "IP:127.0.0.1 >/dev/null 2>&1"):format(DIR)))
local TLS = {cert = DIR .. "/c.pem", key = DIR .. "/k.pem"}
local CLIENT = {cafile = DIR .. "/c.pem", server_name = "localhost"}

aio.run(function()
  local server <close> = assert(aio.start_server(function(s)
    local line = s:read_line()
    if line == "starttls" then
      s:write("go\n")
      if not s:starttls(TLS) then return end
      line = s:read_line()
    end
    if line then s:write(line .. "\n") end
    if line == "hang" then s:read() end
  end, "127.0.0.1", 0, {tls = TLS}))
  local plain <close> = assert(aio.start_server(function(s)
    if s:read_line() == "starttls" and s:write("go\n") and s:starttls(TLS) then
      local line = s:read_line()
      if line then s:write(line .. "\n") end
    end
  end, "127.0.0.1", 0))
  local app = aio.http.app()
  app:get("/n/{n:int}", function(req) return {json = {n = req.params.n}} end)
  app:websocket("/ws", function(ws)
    for data in ws:iter() do ws:send(data) end
  end)
  local web = assert(aio.http.serve(app, {tls = TLS}))
  local sem = aio.semaphore(50)
  local ok, https, wss = 0, 0, 0
  local tasks = {}
  for i = 1, N do
    tasks[i] = aio.spawn(function()
      local _ <close> = sem:acquire()
      local kind = i % 4
      if kind == 0 then
        local s <close> = assert(aio.open_connection("127.0.0.1", server.port,
                                                     {tls = CLIENT}))
        s:write("ping " .. i .. "\n")
        if s:read_line() == "ping " .. i then ok = ok + 1 end
      elseif kind == 1 then
        local s <close> = assert(aio.open_connection("127.0.0.1", plain.port))
        s:write("starttls\n")
        if s:read_line() == "go" and s:starttls(CLIENT) then
          s:write("ping " .. i .. "\n")
          if s:read_line() == "ping " .. i then ok = ok + 1 end
        end
      elseif kind == 2 then
        local s <close> = assert(aio.open_connection("127.0.0.1", web.port,
                                                     {tls = CLIENT}))
        s:write(("GET /n/%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                :format(i))
        local r = s:read_all()
        if r and r:find('{"n":' .. i .. '}', 1, true) then https = https + 1 end
      else
        local ws = aio.http.websocket("wss://localhost:" .. web.port .. "/ws",
                                      CLIENT)
        if ws then
          ws:send("m" .. i)
          if ws:receive() == "m" .. i then wss = wss + 1 end
          ws:close()
        end
      end
    end)
  end
  aio.gather(tasks)
  -- What goes wrong: untrusted, cancelled handshakes and reads, truncation.
  local failed = 0
  for _ = 1, 20 do
    if not aio.open_connection("127.0.0.1", server.port,
                               {tls = {server_name = "localhost"}}) then
      failed = failed + 1
    end
  end
  for _ = 1, 20 do
    local t = aio.spawn(aio.open_connection, "127.0.0.1", server.port,
                        {tls = CLIENT})
    aio.sleep(0)
    t:cancel()
    pcall(t.await, t)
    t = aio.spawn(function()
      local s <close> = assert(aio.open_connection("127.0.0.1", server.port,
                                                   {tls = CLIENT}))
      s:write("hang\n")
      s:read_line()
      s:read()
    end)
    aio.sleep(0.005)
    t:cancel()
    pcall(t.await, t)
    local raw <close> = assert(aio.open_connection("127.0.0.1", server.port))
    raw:write("\22\3\1\0\5hello") -- a broken handshake, then the peer goes
  end
  aio.sleep(0.05)
  print(string.format("%d echoes, %d https, %d wss of %d; %d untrusted",
                      ok, https, wss, N, failed))
end)
os.execute("rm -rf " .. DIR)

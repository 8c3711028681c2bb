-- TLS streams: opts.tls of open_connection and start_server, starttls,
-- HTTPS and wss://, against openssl s_server / s_client, curl and
-- python3-websockets.  The certificates are made by openssl in a temp
-- folder when the spec loads: a test CA; good (localhost, 127.0.0.1),
-- expired, wrong-name and self-signed, all EC P-256 with SHA-256.
local aio = require "luaio"
local support = require "support"

local PY = "/usr/bin/python3"
local DIR = io.popen("mktemp -d /tmp/luaio-tls.XXXXXX"):read("l")
local CA = DIR .. "/ca.pem"

local MAKE = [[
set -e
cd "$1"
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256"
openssl req -x509 $ec -keyout ca.key -out ca.pem -days 30 \
  -subj "/CN=luaio test CA"
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > good.ext
printf 'subjectAltName=DNS:wrong.example\n' > wrong.ext
sign() { # name days ext
  openssl req $ec -keyout $1.key -out $1.csr -subj "/CN=$1"
  openssl x509 -req -in $1.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
    -out $1.pem -days $2 -sha256 -extfile $3
}
sign good 30 good.ext
sign wrong 30 wrong.ext
sign expired -1 good.ext
openssl req -x509 $ec -keyout self.key -out self.pem -days 30 \
  -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1"
]]
assert(os.execute(("sh -c '%s' sh %s >/dev/null 2>&1")
  :format(MAKE:gsub("'", "'\\''"), DIR)), "openssl could not make the certificates")

local function cert(name)
  return {cert = DIR .. "/" .. name .. ".pem", key = DIR .. "/" .. name .. ".key"}
end
local CLIENT = {cafile = CA, server_name = "localhost"}

local function serve(handler, tls, opts)
  opts = opts or {}
  opts.tls = tls or cert("good")
  return assert(aio.start_server(handler, "127.0.0.1", 0, opts))
end

local function connect(port, tls, opts)
  opts = opts or {}
  opts.tls = tls or CLIENT
  return aio.open_connection("127.0.0.1", port, opts)
end

-- openssl s_server on a port it chose, once it listens (its "ACCEPT").
local function s_server(args)
  local a = {"s_server", "-accept", "127.0.0.1:0"}
  for _, x in ipairs(args) do a[#a + 1] = x end
  local p = aio.subprocess("openssl", a, {stdin = "pipe", stdout = "pipe",
                                          stderr = "null"})
  for line in p.stdout:lines() do
    local port = line:match("^ACCEPT 127%.0%.0%.1:(%d+)")
    if port then return p, tonumber(port) end
  end
  error("openssl s_server did not start")
end

local function stop(p)
  p:kill("SIGKILL")
  p:wait()
end

-- A plain server whose handlers read and never answer; got() is what
-- they received.
local function silent_server()
  local got, ended = {}, 0
  local srv = assert(aio.start_server(function(s)
    while true do
      local d = s:read()
      if not d then break end
      got[#got + 1] = d
    end
    ended = ended + 1
  end, "127.0.0.1", 0))
  return srv, got, function() return ended end
end

-- n bytes of a pattern that shows a lost or reordered piece.
local function pattern(i, n)
  local unit = ("%08d|"):format(i)
  return unit:rep(n // #unit + 1):sub(1, n)
end

describe("TLS", function()
  teardown(function() os.execute("rm -rf " .. DIR) end)

  describe("a client against openssl s_server", function()
    it("verifies the peer with cafile and exchanges data", function()
      support.run(function()
        local p, port = s_server{"-rev", "-cert", DIR .. "/good.pem",
                                 "-key", DIR .. "/good.key"}
        local s = assert(connect(port))
        assert.matches("tls", tostring(s))
        assert.equal("TLSv1.3", s:tls_info().version)
        assert(s:write("hello world\n"))
        assert.equal("dlrow olleh", s:read_line())
        s:close()
        stop(p)
      end)
    end)

    it("names the verification failure", function()
      support.run(function()
        local cases = {
          {"wrong", CLIENT, "hostname mismatch"},
          {"expired", CLIENT, "certificate has expired"},
          {"self", CLIENT, "self.signed certificate"},
          {"good", {server_name = "localhost"}, "unable to get local issuer"},
        }
        for _, c in ipairs(cases) do
          local p, port = s_server{"-cert", DIR .. "/" .. c[1] .. ".pem",
                                   "-key", DIR .. "/" .. c[1] .. ".key"}
          local s, msg, code = connect(port, c[2])
          assert.is_nil(s)
          assert.equal("ETLS", code)
          assert.matches("^ETLS: certificate verify failed: .*" .. c[3], msg)
          stop(p)
        end
      end)
    end)

    it("checks server_name, or the address against an IP name", function()
      support.run(function()
        local p, port = s_server{"-rev", "-cert", DIR .. "/wrong.pem",
                                 "-key", DIR .. "/wrong.key"}
        local s = assert(connect(port, {cafile = CA, server_name = "wrong.example"}))
        s:close()
        stop(p)
        p, port = s_server{"-rev", "-cert", DIR .. "/good.pem",
                           "-key", DIR .. "/good.key"}
        s = assert(connect(port, {cafile = CA})) -- 127.0.0.1 is in the SAN
        assert(s:write("ab\n"))
        assert.equal("ba", s:read_line())
        s:close()
        stop(p)
      end)
    end)

    it("sends server_name as SNI", function()
      support.run(function()
        -- The default certificate is self-signed; the name "localhost"
        -- picks the one the CA signed.
        local p, port = s_server{"-rev", "-cert", DIR .. "/self.pem",
          "-key", DIR .. "/self.key", "-servername", "localhost",
          "-servername_fatal", "-cert2", DIR .. "/good.pem",
          "-key2", DIR .. "/good.key"}
        local s = assert(connect(port))
        assert(s:write("sni\n"))
        assert.equal("ins", s:read_line())
        s:close()
        s = connect(port, {verify = false, server_name = "other.example"})
        assert.is_nil(s) -- refused by -servername_fatal
        stop(p)
      end)
    end)

    it("verify = false accepts a self-signed certificate", function()
      support.run(function()
        local p, port = s_server{"-rev", "-cert", DIR .. "/self.pem",
                                 "-key", DIR .. "/self.key"}
        local s = assert(connect(port, {verify = false}))
        assert(s:write("xyz\n"))
        assert.equal("zyx", s:read_line())
        s:close()
        stop(p)
      end)
    end)

    it("speaks TLS 1.2 to a peer that has no 1.3; tls_info tells", function()
      support.run(function()
        local p, port = s_server{"-rev", "-cert", DIR .. "/good.pem",
                                 "-key", DIR .. "/good.key", "-tls1_2"}
        local s = assert(connect(port))
        local info = s:tls_info()
        assert.equal("TLSv1.2", info.version)
        assert.equal("localhost", info.server_name)
        assert.is_string(info.cipher)
        assert(s:write("12\n"))
        assert.equal("21", s:read_line())
        s:close()
        stop(p)
        local plain = assert(aio.start_server(function() end, "127.0.0.1", 0))
        s = assert(aio.open_connection("127.0.0.1", plain.port))
        assert.is_nil(s:tls_info())
        s:close()
        plain:close()
      end)
    end)

    it("refuses a peer that speaks only TLS 1.1", function()
      support.run(function()
        local p, port = s_server{"-cert", DIR .. "/good.pem", "-key",
                                 DIR .. "/good.key", "-tls1_1",
                                 "-cipher", "DEFAULT@SECLEVEL=0"}
        local s, msg, code = connect(port)
        assert.is_nil(s)
        assert.equal("ETLS", code)
        assert.matches("protocol", msg)
        stop(p)
      end)
    end)

    it("a peer that leaves without close_notify breaks the stream", function()
      support.run(function()
        local p, port = s_server{"-rev", "-cert", DIR .. "/good.pem",
                                 "-key", DIR .. "/good.key"}
        local s = assert(connect(port))
        assert(s:write("abc\n"))
        assert.equal("cba", s:read_line())
        p:kill("SIGKILL") -- the kernel closes the socket: no close_notify
        p:wait()
        local data, msg, code = s:read()
        assert.is_nil(data)
        assert.equal("ETLS", code)
        assert.equal("ETLS: unexpected eof while reading", msg)
        s:close()
        -- lines() ends there, as it does at a reset
        p, port = s_server{"-rev", "-cert", DIR .. "/good.pem",
                           "-key", DIR .. "/good.key"}
        s = assert(connect(port))
        assert(s:write("abc\n"))
        assert.equal("cba", s:read_line())
        stop(p)
        local n = 0
        for _ in s:lines() do n = n + 1 end
        assert.equal(0, n)
        s:close()
      end)
    end)
  end)

  describe("a server", function()
    it("serves openssl s_client", function()
      support.run(function()
        local srv = serve(function(s)
          for line in s:lines() do assert(s:write(line:upper() .. "\n")) end
        end)
        local p = aio.subprocess("openssl", {"s_client", "-connect",
          "127.0.0.1:" .. srv.port, "-CAfile", CA, "-servername", "localhost",
          "-verify_return_error", "-quiet", "-no_ign_eof"},
          {stdin = "pipe", stdout = "pipe", stderr = "null"})
        assert(p.stdin:write("hello tls\n"))
        assert.equal("HELLO TLS", p.stdout:read_line())
        p.stdin:close()
        assert.equal(0, p:wait().status)
        assert.equal(0, srv:stats().tls_errors)
        srv:close()
      end)
    end)

    it("counts a failed handshake and does not run the handler", function()
      support.run(function()
        local ran = 0
        local srv = serve(function() ran = ran + 1 end)
        -- an old protocol
        local r = aio.exec("openssl", {"s_client", "-connect",
          "127.0.0.1:" .. srv.port, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"})
        assert.are_not.equal(0, r.status)
        -- plain HTTP on the TLS port
        local s = assert(aio.open_connection("127.0.0.1", srv.port))
        assert(s:write("GET / HTTP/1.0\r\n\r\n"))
        s:read_all()
        s:close()
        -- a client that does not trust the certificate
        local c, _, code = connect(srv.port, {server_name = "localhost"})
        assert.is_nil(c)
        assert.equal("ETLS", code)
        support.wait_until(function() return srv:stats().tls_errors == 3 end)
        assert.equal(0, ran)
        assert.equal(0, srv:stats().handler_errors)
        srv:close()
      end)
    end)

    it("closes a connection whose handshake does not finish in time", function()
      support.run(function()
        local ran = false
        local srv = serve(function() ran = true end,
          {cert = DIR .. "/good.pem", key = DIR .. "/good.key",
           handshake_timeout = 0.2})
        local s = assert(aio.open_connection("127.0.0.1", srv.port))
        assert.is_nil(s:read()) -- the server gave up and closed
        s:close()
        assert.equal(1, srv:stats().tls_errors)
        assert.is_false(ran)
        srv:close()
      end)
    end)

    it("closing it closes the connections still in their handshake", function()
      support.run(function()
        local ran = false
        local srv = serve(function() ran = true end,
          {cert = DIR .. "/good.pem", key = DIR .. "/good.key",
           handshake_timeout = 3600})
        local s = assert(aio.open_connection("127.0.0.1", srv.port))
        assert(s:write("\22\3\1")) -- the start of a record, never finished
        support.wait_until(function() return srv:stats().handlers == 1 end)
        aio.sleep(0.05) -- its task is in the handshake, or closed below
        srv:close()
        assert.is_nil(s:read()) -- closed by the server
        aio.wait_for(function() srv:wait_closed() end, 60)
        assert.is_false(ran)
        assert.equal(0, srv:stats().tls_errors)
        s:close()
      end)
    end)

    it("a missing certificate or a key that does not match: ETLS", function()
      support.run(function()
        local srv, msg, code = aio.start_server(function() end, "127.0.0.1", 0,
          {tls = {cert = DIR .. "/none.pem", key = DIR .. "/good.key"}})
        assert.is_nil(srv)
        assert.equal("ETLS", code)
        assert.matches("cannot load the certificate .*No such file", msg)
        srv, msg, code = aio.start_server(function() end, "127.0.0.1", 0,
          {tls = {cert = DIR .. "/good.pem", key = DIR .. "/wrong.key"}})
        assert.is_nil(srv)
        assert.equal("ETLS", code)
        assert.matches("cannot load the key .*mismatch", msg)
        local s
        s, msg, code = connect(1, {cafile = DIR .. "/none.pem"})
        assert.is_nil(s)
        assert.equal("ECONNREFUSED", code, msg) -- the CA is read after connecting
      end)
    end)

    it("raises on bad TLS options, naming them", function()
      support.run(function()
        local function raises(pattern, fn)
          local ok, err = pcall(fn)
          assert.is_false(ok)
          assert.matches(pattern, tostring(err))
        end
        local h = function() end
        raises("unknown TLS option 'cafil'", function()
          aio.open_connection("127.0.0.1", 1, {tls = {cafil = CA}})
        end)
        raises("tls must be true or a table", function()
          aio.open_connection("127.0.0.1", 1, {tls = "yes"})
        end)
        raises("tls.handshake_timeout must be positive", function()
          aio.open_connection("127.0.0.1", 1, {tls = {handshake_timeout = -1}})
        end)
        raises("tls.verify must be a boolean", function()
          aio.open_connection("127.0.0.1", 1, {tls = {verify = "no"}})
        end)
        raises("tls must be a table {cert = path, key = path}", function()
          aio.start_server(h, "127.0.0.1", 0, {tls = true})
        end)
        local plain = assert(aio.start_server(h, "127.0.0.1", 0, {tls = false}))
        plain:close()
        raises("tls must be a table {cert = path, key = path}", function()
          aio.start_server(h, "127.0.0.1", 0, {tls = 1})
        end)
        raises("tls.key must be a string", function()
          aio.start_server(h, "127.0.0.1", 0, {tls = {cert = "x"}})
        end)
        raises("unknown TLS option 'server_name'", function()
          aio.start_server(h, "127.0.0.1", 0,
                           {tls = {cert = "x", key = "y", server_name = "z"}})
        end)
        raises("unknown option 'tsl'", function()
          aio.open_connection("127.0.0.1", 1, {tsl = true})
        end)
      end)
    end)
  end)

  describe("waits", function()
    it("a cancelled handshake closes the socket", function()
      support.run(function()
        local srv, got, ended = silent_server()
        local t = aio.spawn(connect, srv.port)
        support.wait_until(function() return #got > 0 end) -- the ClientHello
        t:cancel()
        support.assert_cancelled(t)
        support.wait_until(function() return ended() == 1 end)
        srv:close()
      end)
    end)

    it("a handshake that does not finish in time: ETIMEDOUT", function()
      support.run(function()
        local srv, _, ended = silent_server()
        local s, msg, code = connect(srv.port, {cafile = CA,
          server_name = "localhost", handshake_timeout = 0.2})
        assert.is_nil(s)
        assert.equal("ETIMEDOUT", code)
        assert.equal("ETIMEDOUT: TLS handshake timed out", msg)
        support.wait_until(function() return ended() == 1 end)
        srv:close()
      end)
    end)

    it("a cancelled read loses nothing and leaves the stream usable", function()
      support.run(function()
        local go = aio.event()
        local srv = serve(function(s)
          go:wait()
          assert(s:write("late\n"))
          s:read()
        end)
        local s = assert(connect(srv.port))
        local t = aio.spawn(s.read_line, s)
        aio.sleep(0.01)
        t:cancel()
        support.assert_cancelled(t)
        go:set()
        assert.equal("late", s:read_line())
        s:close()
        srv:close()
      end)
    end)

    it("shutdown sends close_notify: the peer reads the end", function()
      support.run(function()
        local got = aio.queue()
        local srv = serve(function(s)
          got:put(s:read())
          got:put(s:read() == nil)
        end)
        local s = assert(connect(srv.port))
        assert(s:write("x"))
        assert.is_true(s:shutdown())
        assert.equal("x", got:get())
        assert.is_true(got:get())
        assert.is_nil(s:read()) -- the server's close_notify
        s:close()
        srv:close()
      end)
    end)

    it("a server that goes during the handshake: its reset", function()
      support.run(function()
        local srv = assert(aio.start_server(function() end, "127.0.0.1", 0))
        local s, msg, code = connect(srv.port)
        assert.is_nil(s)
        assert.is_true(code == "ECONNRESET" or code == "ETLS", msg)
        srv:close()
      end)
    end)

    it("a peer's close_notify is the end of the stream", function()
      support.run(function()
        local srv = serve(function(s) s:write("bye\n") end)
        local s = assert(connect(srv.port))
        assert.equal("bye", s:read_line())
        assert.is_nil(s:read())
        s:close()
        srv:close()
      end)
    end)
  end)

  describe("stream:starttls", function()
    it("upgrades a plain connection on both sides", function()
      support.run(function()
        local srv = assert(aio.start_server(function(s)
          assert.equal("STARTTLS", s:read_line())
          assert(s:write("GO\n"))
          assert(s:starttls(cert("good")))
          for line in s:lines() do s:write("tls:" .. line .. "\n") end
        end, "127.0.0.1", 0))
        local s = assert(aio.open_connection("127.0.0.1", srv.port))
        assert(s:write("STARTTLS\n"))
        assert.equal("GO", s:read_line())
        assert.matches("tls", tostring(assert(s:starttls(CLIENT))))
        assert(s:write("one\n"))
        assert.equal("tls:one", s:read_line())
        local ok, err = pcall(s.starttls, s, CLIENT)
        assert.is_false(ok)
        assert.matches("already TLS", err)
        s:close()
        srv:close()
      end)
    end)

    it("takes the ciphertext buffered before it as TLS", function()
      support.run(function()
        local srv = assert(aio.start_server(function(s)
          assert.equal("STARTTLS", s:read_line()) -- the hello may be buffered
          assert(s:starttls(cert("good")))
          assert(s:write(s:read_line() .. "!\n"))
          s:read()
        end, "127.0.0.1", 0))
        local s = assert(aio.open_connection("127.0.0.1", srv.port))
        assert(s:write("STARTTLS\n"))
        assert(s:starttls(CLIENT))
        assert(s:write("hi\n"))
        assert.equal("hi!", s:read_line())
        s:close()
        srv:close()
      end)
    end)

    it("works over a Unix socket", function()
      support.run(function()
        local path = DIR .. "/sock"
        local srv = assert(aio.start_unix_server(function(s)
          assert(s:starttls(cert("good")))
          s:write(s:read_line() .. "!\n")
          s:read()
        end, path))
        local s = assert(aio.open_unix_connection(path))
        assert(s:starttls(CLIENT))
        assert(s:write("unix\n"))
        assert.equal("unix!", s:read_line())
        s:close()
        srv:close()
      end)
    end)

    it("a failed upgrade closes the stream; server_name is required", function()
      support.run(function()
        local srv = assert(aio.start_server(function(s)
          s:write("not tls at all\n")
        end, "127.0.0.1", 0))
        local s = assert(aio.open_connection("127.0.0.1", srv.port))
        local ok, err = pcall(s.starttls, s, {cafile = CA})
        assert.is_false(ok)
        assert.matches("server_name needed", err)
        local r, msg, code = s:starttls(CLIENT)
        assert.is_nil(r)
        assert.equal("ETLS", code, msg)
        assert.is_true(s:closed())
        srv:close()
      end)
    end)
  end)

  describe("large transfers", function()
    local TOTAL = math.floor(32 * 1024 * 1024 * support.SCALE)
    local CHUNK = 64 * 1024

    -- Write TOTAL bytes to s in chunks, counting what was handed over.
    local function send_all(s, progress)
      local i = 0
      while progress.sent < TOTAL do
        local n = math.min(CHUNK, TOTAL - progress.sent)
        i = i + 1
        assert(s:write(pattern(i, n)))
        progress.sent = progress.sent + n
        progress.max_queued = math.max(progress.max_queued, (s:queued()))
      end
    end

    local function receive_all(s)
      local i, got = 0, 0
      while got < TOTAL do
        local n = math.min(CHUNK, TOTAL - got)
        i = i + 1
        local data = s:read_exactly(n)
        assert(data == pattern(i, n), "chunk " .. i .. " differs")
        got = got + n
      end
      return got
    end

    -- Until the sender stops making progress (its writes wait).
    local function until_stalled(progress)
      local before
      repeat
        before = progress.sent
        aio.sleep(0.05)
      until progress.sent == before or progress.sent == TOTAL
    end

    it("server to a slow client: the server waits, every byte arrives", function()
      support.run(function()
        local progress = {sent = 0, max_queued = 0}
        local srv = serve(function(s) send_all(s, progress) s:read() end)
        local s = assert(connect(srv.port))
        until_stalled(progress)
        if support.SCALE >= 1 then
          assert.is_true(progress.sent < TOTAL) -- back-pressure held
        end
        local _, buffered = s:queued()
        assert.is_true(buffered <= 64 * 1024) -- nothing decrypted unasked
        assert.equal(TOTAL, receive_all(s))
        assert.is_true(progress.max_queued <= 64 * 1024 + CHUNK + 4096)
        s:close()
        srv:close()
      end)
    end)

    it("client to a slow server: the client waits, every byte arrives", function()
      support.run(function()
        local go, got = aio.event(), nil
        local srv = serve(function(s)
          go:wait()
          got = receive_all(s)
          s:write("done\n")
          s:read()
        end)
        local s = assert(connect(srv.port))
        local progress = {sent = 0, max_queued = 0}
        local t = aio.spawn(send_all, s, progress)
        until_stalled(progress)
        if support.SCALE >= 1 then
          assert.is_true(progress.sent < TOTAL)
        end
        go:set()
        t:await()
        assert.equal("done", s:read_line())
        assert.equal(TOTAL, got)
        assert.is_true(progress.max_queued <= 64 * 1024 + CHUNK + 4096)
        s:close()
        srv:close()
      end)
    end)

    it("read_all and read_until over records", function()
      support.run(function()
        local body = pattern(7, 300000)
        local srv = serve(function(s)
          s:write("head\r\n\r\n" .. body)
        end)
        local s = assert(connect(srv.port))
        assert.equal("head\r\n\r\n", s:read_until("\r\n\r\n"))
        assert.equal(body, s:read_all())
        s:close()
        srv:close()
      end)
    end)
  end)

  it("many connections at once", function()
    support.run(function()
      local n = math.max(20, math.floor(200 * support.SCALE))
      local srv = serve(function(s)
        local line = s:read_line()
        s:write(line .. "\n")
      end)
      local tasks = {}
      for i = 1, n do
        tasks[i] = function()
          local s = assert(connect(srv.port))
          assert(s:write("c" .. i .. "\n"))
          local r = s:read_line()
          s:close()
          return r
        end
      end
      local results = aio.gather(tasks)
      for i = 1, n do assert.equal("c" .. i, results[i]) end
      assert.equal(0, srv:stats().tls_errors)
      srv:close()
    end)
  end)

  describe("HTTPS and wss://", function()
    it("aio.http.serve with tls serves curl, keep-alive and uploads", function()
      support.run(function()
        local srv = assert(aio.http.serve(function(req)
          return req.method .. " " .. req.path .. " " .. #req:body()
        end, {tls = cert("good")}))
        local base = "https://localhost:" .. srv.port
        local r = aio.exec("curl", {"-sS", "--cacert", CA, "--resolve",
          "localhost:" .. srv.port .. ":127.0.0.1", base .. "/a", base .. "/b",
          "-w", " %{num_connects}\n"})
        assert.equal(0, r.status, r.stderr)
        assert.equal("GET /a 0 1\nGET /b 0 0\n", r.stdout) -- one connection
        r = aio.exec("curl", {"-sS", "--cacert", CA, "--resolve",
          "localhost:" .. srv.port .. ":127.0.0.1", "--data-binary", "@-",
          base .. "/up"}, {input = ("u"):rep(200000)})
        assert.equal("POST /up 200000", r.stdout)
        r = aio.exec("curl", {"-sS", "--resolve",
          "localhost:" .. srv.port .. ":127.0.0.1", base .. "/"})
        assert.are_not.equal(0, r.status) -- curl does not trust the test CA
        local resp = assert(aio.http.get("https://127.0.0.1:" .. srv.port .. "/c",
                                         {cafile = CA}))
        assert.equal("GET /c 0", resp.body)
        srv:close()
      end)
    end)

    it("HTTPS: pipelined requests in one record, chunks, bad input", function()
      support.run(function()
        local srv = assert(aio.http.serve(function(req)
          local n = 0
          for piece in req:chunks() do n = n + #piece end
          return req.path .. " " .. n
        end, {tls = cert("good")}))
        local s = assert(connect(srv.port))
        local big = ("b"):rep(100000)
        assert(s:write("GET /one HTTP/1.1\r\nHost: x\r\n\r\n" ..
          "POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: " .. #big ..
          "\r\n\r\n" .. big ..
          "GET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
        local all = s:read_all()
        local bodies = {}
        for body in all:gmatch("\r\n\r\n(/%w+ %d+)") do bodies[#bodies + 1] = body end
        assert.same({"/one 0", "/two 100000", "/three 0"}, bodies)
        s:close()
        s = assert(connect(srv.port))
        assert(s:write("GET / HTTP/1.2\r\nHost: x\r\n\r\n"))
        assert.matches("^HTTP/1.1 505", s:read_all())
        s:close()
        srv:close()
      end)
    end)

    it("HTTPS: cancel_on_disconnect sees a client leave while its handler waits",
       function()
      support.run(function()
        local started, ended = aio.event(), nil
        local srv = assert(aio.http.serve(function()
          started:set()
          local ok, e = pcall(aio.sleep, 30)
          ended = ok and "done" or (aio.is_error(e, "CancelledError") and
                                    "cancelled" or tostring(e))
          if not ok then error(e, 0) end
          return "late"
        end, {tls = cert("good"), cancel_on_disconnect = true}))
        local s = assert(connect(srv.port))
        assert(s:write("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"))
        started:wait()
        s:close()
        support.wait_until(function() return ended ~= nil end)
        assert.equal("cancelled", ended)
        srv:close()
      end)
    end)

    it("aio.http.serve with a certificate it cannot load: ETLS", function()
      support.run(function()
        local srv, msg, code = aio.http.serve(function() end,
          {tls = {cert = DIR .. "/none.pem", key = DIR .. "/good.key"}})
        assert.is_nil(srv)
        assert.equal("ETLS", code)
        assert.matches("none.pem", msg)
      end)
    end)

    it("wss:// to app:websocket over HTTPS, and its failures", function()
      support.run(function()
        local app = aio.http.app()
        app:websocket("/ws", function(ws)
          for data, kind in ws:iter() do ws:send(data, kind) end
        end)
        local srv = assert(aio.http.serve(app, {tls = cert("good")}))
        local url = "wss://localhost:" .. srv.port .. "/ws"
        local ws = assert(aio.http.websocket(url, {cafile = CA}))
        assert(ws:send(("w"):rep(100000)))
        assert.equal(100000, #ws:receive())
        assert(ws:send("\0\1", "binary"))
        local data, kind = ws:receive()
        assert.equal("\0\1", data)
        assert.equal("binary", kind)
        ws:close()
        local _, msg, code = aio.http.websocket(url, {cafile = CA,
                                                      server_name = "other"})
        assert.equal("ETLS", code)
        assert.matches("hostname mismatch", msg)
        _, msg, code = aio.http.websocket(url) -- the system's store
        assert.equal("ETLS", code, msg)
        local ok, err = pcall(aio.http.websocket, url, {cafil = CA})
        assert.is_false(ok)
        assert.matches("unknown option 'cafil'", err)
        srv:close()
      end)
    end)

    it("wss:// against python3-websockets", function()
      if os.execute(PY .. " -c 'import websockets' 2>/dev/null") ~= true then
        return
      end
      support.run(function()
        local p = aio.subprocess(PY, {"-c", [[
import asyncio, ssl, sys, websockets
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
async def echo(ws):
    async for m in ws:
        await ws.send(m)
async def main():
    async with websockets.serve(echo, "127.0.0.1", 0, ssl=ctx) as srv:
        print(srv.sockets[0].getsockname()[1], flush=True)
        await asyncio.sleep(60)
asyncio.run(main())
]], DIR .. "/good.pem", DIR .. "/good.key"}, {stdout = "pipe"})
        local port = tonumber(p.stdout:read_line())
        local ws = assert(aio.http.websocket("wss://localhost:" .. port .. "/",
                                             {cafile = CA}))
        assert(ws:send(("z"):rep(70000)))
        assert.equal(70000, #ws:receive())
        ws:close()
        assert.equal(1000, ws.code)
        stop(p)
      end)
    end)
  end)
end)

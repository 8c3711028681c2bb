-- aio.http's client against spec/http_test_server.py (started by the
-- fixture in spec/http_client.cmake; LUAIO_HTTP_PEER names its folder).
local aio = require "luaio"
local support = require "support"
local run = support.run

local dir = assert(os.getenv("LUAIO_HTTP_PEER"),
                   "spec/http_client.cmake sets LUAIO_HTTP_PEER")
local ports = aio.json.decode(assert(io.open(dir .. "/ports")):read("a"))
local BASE = "http://127.0.0.1:" .. ports.http
local CA = dir .. "/ca.pem"
local function url(path) return BASE .. path end
local function https(which, host)
  return "https://" .. (host or "localhost") .. ":" .. ports[which]
end

local http = aio.http

-- spec/http_client_proxy.py (started by the fixture): a forward proxy that
-- takes any host under proxied.invalid for 127.0.0.1, so a request to such
-- a name succeeds only through it.
local PROXY = "http://127.0.0.1:" ..
              assert(io.open(dir .. "/proxy_port")):read("a")

describe("aio.http requests", function()
  it("GET returns status, headers, body, url and ok", function()
    run(function()
      local r = assert(http.get(url("/echo")))
      assert.equal(200, r.status)
      assert.is_true(r.ok)
      assert.equal("application/json", r.headers["content-type"])
      assert.equal(url("/echo"), r.url)
      local e = r:json()
      assert.equal("GET", e.method)
      assert.matches("^luaio/%d", e.headers["user-agent"])
      assert.truthy(e.headers["accept-encoding"])
    end)
  end)

  it("encodes query into the URL, after a query already there", function()
    run(function()
      local r = assert(http.get(url("/echo?x=1"),
        {query = {a = "b c", list = {1, 2}, ["ü"] = "&="}}))
      local e = r:json()
      assert.equal("x=1&a=b%20c&list=1&list=2&%C3%BC=%26%3D", e.query)
      assert.equal("b c", e.args.a)
    end)
  end)

  it("sends a string body, json with its content type, and headers", function()
    run(function()
      local e = assert(http.post(url("/echo"), {body = "hello",
        headers = {["X-One"] = "1", ["Content-Type"] = "text/x"}})):json()
      assert.equal("POST", e.method)
      assert.equal("hello", e.body)
      assert.equal("1", e.headers["x-one"])
      assert.equal("text/x", e.headers["content-type"])
      e = assert(http.put(url("/echo"), {json = {a = 1}})):json()
      assert.equal("PUT", e.method)
      assert.same({a = 1}, aio.json.decode(e.body))
      assert.equal("application/json", e.headers["content-type"])
      e = assert(http.patch(url("/echo"), {body = "p"})):json()
      assert.equal("PATCH", e.method)
      e = assert(http.delete(url("/echo"))):json()
      assert.equal("DELETE", e.method)
      e = assert(http.request{method = "post", url = url("/echo")}):json()
      assert.equal("POST", e.method)
      assert.equal("", e.body)
    end)
  end)

  it("a header set to false is not sent; a request's header wins", function()
    run(function()
      local s <close> = http.client{base_url = BASE .. "/echo/",
                                    headers = {["X-A"] = "s", ["X-B"] = "s"}}
      local e = assert(s:get("sub", {headers = {["user-agent"] = false,
        ["x-a"] = "r", Accept = false}})):json()
      assert.equal("/echo/sub", e.path)
      assert.is_nil(e.headers["user-agent"])
      assert.is_nil(e.headers.accept)
      assert.equal("r", e.headers["x-a"])
      assert.equal("s", e.headers["x-b"])
      e = assert(s:get("/echo")):json()
      assert.equal("/echo", e.path)
    end)
  end)

  it("HEAD has no body", function()
    run(function()
      local r = assert(http.head(url("/bytes?n=10")))
      assert.equal(200, r.status)
      assert.equal("10", r.headers["content-length"])
      assert.equal("", r.body)
    end)
  end)

  it("uploads what an iterator returns, chunked", function()
    run(function()
      local parts = {"one,", "", "two,", "three"}
      local i = 0
      local e = assert(http.post(url("/echo"), {body = function()
        i = i + 1
        aio.sleep(0) -- the iterator may wait
        return parts[i]
      end})):json()
      assert.equal("one,two,three", e.body)
      assert.is_true(e.chunked)
    end)
  end)

  it("joins repeated header fields and lower-cases names", function()
    run(function()
      local r = assert(http.get(url("/repeat")))
      assert.equal("a, b", r.headers["x-multi"])
    end)
  end)

  it("decodes gzip", function()
    run(function()
      local r = assert(http.get(url("/gzip")))
      assert.equal(("hello gzip "):rep(1000), r.body)
    end)
  end)

  it("a 4xx or 5xx is a response; raise_for_status raises HTTPError", function()
    run(function()
      local r = assert(http.get(url("/status/404")))
      assert.equal(404, r.status)
      assert.is_false(r.ok)
      local e = support.assert_raises("HTTPError", r.raise_for_status, r)
      assert.equal(404, e.status)
      assert.matches("404", tostring(e))
      r = assert(http.get(url("/status/503")))
      assert.equal(503, r.status)
      support.assert_raises("HTTPError", r.raise_for_status, r)
      r = assert(http.get(url("/status/204")))
      assert.equal(r, r:raise_for_status())
    end)
  end)

  it("json() raises on a body that is not JSON", function()
    run(function()
      local r = assert(http.get(url("/status/200")))
      assert.has_error(function() r:json() end)
    end)
  end)
end)

describe("aio.http redirects", function()
  it("follows a chain and reports the final url", function()
    run(function()
      local r = assert(http.get(url("/redirect/3")))
      assert.equal(200, r.status)
      assert.equal(url("/echo"), r.url)
    end)
  end)

  it("stops after max_redirects with ETOOMANYREDIRECTS", function()
    run(function()
      local r, msg, code = http.get(url("/redirect/12"))
      assert.is_nil(r)
      assert.equal("ETOOMANYREDIRECTS", code)
      assert.matches("^ETOOMANYREDIRECTS: ", msg)
      r, msg, code = http.get(url("/redirect/3"), {max_redirects = 2})
      assert.equal("ETOOMANYREDIRECTS", code)
      assert.truthy(http.get(url("/redirect/3"), {max_redirects = 3}))
    end)
  end)

  it("follow_redirects = false returns the redirect", function()
    run(function()
      local r = assert(http.get(url("/redirect/1"), {follow_redirects = false}))
      assert.equal(302, r.status)
      assert.equal("/echo", r.headers.location)
    end)
  end)

  it("303, and 301/302 after POST, become GET; 307/308 keep it", function()
    run(function()
      for _, c in ipairs {{303, "PUT", "GET"}, {302, "POST", "GET"},
                          {301, "POST", "GET"}, {302, "PUT", "PUT"},
                          {307, "POST", "POST"}, {308, "PUT", "PUT"}} do
        local e = assert(http.request{method = c[2], body = "b",
          url = url("/redirect/1?code=" .. c[1])}):json()
        assert.equal(c[3], e.method, c[1] .. " " .. c[2])
        assert.equal(c[3] == "GET" and "" or "b", e.body)
      end
    end)
  end)

  it("drops Authorization when a redirect leaves the host", function()
    run(function()
      local other = "http://localhost:" .. ports.http .. "/echo"
      local e = assert(http.get(url("/redirect-to"), {
        query = {url = other}, headers = {Authorization = "Bearer x"}})):json()
      assert.is_nil(e.headers.authorization)
      e = assert(http.get(url("/redirect/2"),
        {headers = {Authorization = "Bearer x"}})):json()
      assert.equal("Bearer x", e.headers.authorization)
    end)
  end)
end)

describe("aio.http failures", function()
  it("a refused connection is ECONNREFUSED", function()
    run(function()
      local l = aio.start_server(function() end, "127.0.0.1", 0)
      local port = l.port
      l:close()
      local r, msg, code = http.get("http://127.0.0.1:" .. port .. "/")
      assert.is_nil(r)
      assert.equal("ECONNREFUSED", code)
      assert.matches("^ECONNREFUSED: ", msg)
    end)
  end)

  it("an unknown host is EAI_NONAME", function()
    run(function()
      local r, msg, code = http.get("http://no-such-host.invalid/")
      assert.is_nil(r)
      assert.equal("EAI_NONAME", code, msg)
    end)
  end)

  it("the request's own timeout is ETIMEDOUT", function()
    run(function()
      local r, msg, code = http.get(url("/slow?delay=3"), {timeout = 0.2})
      assert.is_nil(r)
      assert.equal("ETIMEDOUT", code)
      assert.matches("^ETIMEDOUT: ", msg)
      r, msg, code = http.get(url("/slow?delay=3"), {timeout = {total = 0.2}})
      assert.equal("ETIMEDOUT", code)
      r, msg, code = http.get(url("/stall?delay=4"), {timeout = {read = 1}})
      assert.equal("ETIMEDOUT", code)
    end)
  end)

  it("timeout.connect covers connecting and the TLS handshake only", function()
    run(function()
      -- accepts, then never answers the ClientHello
      local mute = aio.event()
      local srv <close> = aio.start_server(function(c)
        mute:wait()
        c:close()
      end, "127.0.0.1", 0)
      local r, msg, code = http.get("https://127.0.0.1:" .. srv.port .. "/",
                                    {timeout = {connect = 0.3}})
      assert.is_nil(r)
      assert.equal("ETIMEDOUT", code, msg)
      mute:set()
      -- once connected, a slow answer is not a connect timeout
      r = assert(http.get(url("/slow?delay=0.5"), {timeout = {connect = 0.2}}))
      assert.equal(200, r.status)
    end)
  end)

  it("a connection reset by the peer is ECONNRESET", function()
    run(function()
      -- the proxy's /reset: a head, part of the body, then a reset
      local r, msg, code = http.get(PROXY .. "/reset")
      assert.is_nil(r)
      assert.equal("ECONNRESET", code, msg)
    end)
  end)

  it("a broken response is EPROTO", function()
    run(function()
      local r, msg, code = http.get(url("/garbage"))
      assert.is_nil(r)
      assert.equal("EPROTO", code, msg)
      r, msg, code = http.get(url("/close"))
      assert.is_nil(r)
      assert.equal("EPROTO", code, msg)
    end)
  end)

  it("a body over max_body_size is EMSGSIZE, a gzip bomb too", function()
    run(function()
      local r, msg, code = http.get(url("/bytes?n=5000"), {max_body_size = 4096})
      assert.is_nil(r)
      assert.equal("EMSGSIZE", code)
      assert.matches("max_body_size", msg)
      assert.truthy(http.get(url("/bytes?n=4096"), {max_body_size = 4096}))
      r, msg, code = http.get(url("/bomb"))
      assert.equal("EMSGSIZE", code)
    end)
  end)

  it("wrong arguments raise", function()
    run(function()
      assert.has_error(function() http.get(42) end)
      assert.has_error(function() http.get(url("/"), {bogus = 1}) end,
                       "request: unknown option 'bogus'")
      assert.has_error(function() http.get(url("/"), {timeout = -1}) end)
      assert.has_error(function()
        http.get(url("/"), {headers = {["X"] = "a\r\nB: c"}})
      end)
      assert.has_error(function() http.get("ftp://x/") end)
      assert.has_error(function()
        http.post(url("/"), {body = "a", json = {}})
      end)
    end)
  end)
end)

describe("aio.http TLS", function()
  it("verifies against cafile", function()
    run(function()
      local r = assert(http.get(https("good") .. "/echo", {cafile = CA}))
      assert.equal(200, r.status)
      r = assert(http.get(https("good", "127.0.0.1") .. "/echo", {cafile = CA}))
      assert.equal(200, r.status)
    end)
  end)

  it("an unknown CA, a wrong host name, an expired certificate: ETLS", function()
    run(function()
      local r, msg, code = http.get(https("good") .. "/echo")
      assert.is_nil(r)
      assert.equal("ETLS", code)
      assert.matches("certificate", msg)
      r, msg, code = http.get(https("wronghost") .. "/echo", {cafile = CA})
      assert.equal("ETLS", code)
      assert.matches("localhost", msg)
      r, msg, code = http.get(https("expired") .. "/echo", {cafile = CA})
      assert.equal("ETLS", code)
      assert.matches("expired", msg)
    end)
  end)

  it("verify = false accepts any certificate", function()
    run(function()
      assert.truthy(http.get(https("expired") .. "/echo", {verify = false}))
    end)
  end)
end)

local function proxied(name, port, scheme)
  return (scheme or "http") .. "://" .. name .. ".proxied.invalid:" ..
         (port or ports.http)
end

describe("aio.http proxies", function()
  it("proxy: plain requests are forwarded, https goes through CONNECT", function()
    run(function()
      local r, _, code = http.get(proxied("a") .. "/echo")
      assert.is_nil(r) -- no proxy: the name does not resolve
      assert.equal("EAI_NONAME", code)
      r = assert(http.get(proxied("a") .. "/echo?x=1", {proxy = PROXY}))
      assert.equal(200, r.status)
      assert.equal("1.1 luaio-test-proxy", r.headers.via)
      assert.equal("x=1", r:json().query)
      -- https: a tunnel, TLS end to end (the proxy adds no header)
      r = assert(http.get(proxied("b", ports.good, "https") .. "/echo",
                          {proxy = PROXY, verify = false}))
      assert.equal(200, r.status)
      assert.is_nil(r.headers.via)
      local s <close> = http.client{proxy = PROXY}
      r = assert(s:get(proxied("c") .. "/echo"))
      assert.equal("1.1 luaio-test-proxy", r.headers.via)
      -- a request's own proxy wins over the session's
      r, _, code = s:get(proxied("c") .. "/echo",
                         {proxy = "http://127.0.0.1:9"})
      assert.is_nil(r)
      assert.equal("ECONNREFUSED", code)
    end)
  end)

  it("trust_env takes http_proxy, https_proxy, no_proxy; only then", function()
    local LUAIO = assert(os.getenv("LUAIO"), "the test runner sets LUAIO")
    local interp = rawget(_G, "aio") and LUAIO or "lua5.4"
    local function child(mode)
      local cmd = ("env http_proxy=%s https_proxy=%s no_proxy=%s " ..
                   "%s spec/http_client_env.lua %s %s %s %s 2>&1"):format(
        PROXY, PROXY, "skip.proxied.invalid", interp, mode,
        proxied("a") .. "/echo", proxied("b", ports.good, "https") .. "/echo",
        proxied("skip") .. "/echo")
      local p = assert(io.popen(cmd))
      local out = p:read("a")
      assert.is_true(p:close(), out)
      return out
    end
    local through = "ok 200 1.1 luaio-test-proxy\nok 200 -\nerr EAI_NONAME\n"
    assert.equal(through, child("request"))
    assert.equal(through, child("session"))
    assert.equal("err EAI_NONAME\nerr EAI_NONAME\nerr EAI_NONAME\n",
                 child("off"))
  end)

  it("sends the request through proxy (the test server forwards)", function()
    run(function()
      local e = assert(http.get("http://example.invalid/echo?x=1",
                                {proxy = BASE})):json()
      assert.equal("/echo", e.path)
      assert.equal("example.invalid", e.headers.host)
      local s <close> = http.client{proxy = BASE}
      e = assert(s:get("http://other.invalid/echo")):json()
      assert.equal("other.invalid", e.headers.host)
    end)
  end)
end)

describe("aio.http sessions", function()
  it("reuse connections, with base_url and default headers", function()
    run(function()
      -- The key tells this run's connections from other clients' (the
      -- specs run in parallel against one server).
      local key = ("%d-%d-%d"):format(aio.getpid(), os.time(),
                                      math.random(1 << 30))
      local s <close> = http.client{base_url = BASE,
                                    headers = {["X-S"] = "1", ["X-Key"] = key}}
      local news = 0
      for _ = 1, 10 do
        local r = assert(s:get("/echo"))
        assert.equal("1", r:json().headers["x-s"])
        news = news + r.new_connections
      end
      assert.equal(1, news)
      local n = tonumber(assert(http.get(url("/conns"),
                                         {query = {key = key}})).body)
      assert.equal(1, n) -- every request on one connection
    end)
  end)

  it("50 concurrent requests under a semaphore of 10", function()
    run(function()
      local s <close> = http.client{base_url = BASE, limit = 10}
      local sem = aio.semaphore(10)
      local inflight, most = 0, 0
      local tasks = {}
      for i = 1, 50 do
        tasks[i] = aio.spawn(function()
          local p <close> = sem:acquire()
          inflight = inflight + 1
          most = math.max(most, inflight)
          local r = assert(s:get("/echo", {query = {i = i}}))
          inflight = inflight - 1
          return r:json().args.i
        end)
      end
      local got = aio.gather(table.unpack(tasks))
      for i = 1, 50 do assert.equal(tostring(i), got[i]) end
      assert.is_true(most <= 10)
      assert.is_true(most > 1)
    end)
  end)

  it("a session has every verb; the module functions share one session", function()
    run(function()
      local s <close> = http.client{base_url = BASE}
      for _, m in ipairs {"get", "post", "put", "patch", "delete"} do
        local e = assert(s[m](s, "/echo", {body = m ~= "get" and m or nil}))
        e = e:json()
        assert.equal(m:upper(), e.method)
        if m ~= "get" then assert.equal(m, e.body) end
      end
      assert.equal("", assert(s:head("/bytes?n=3")).body)
      -- a method the test server does not know: it answers 501
      local r = assert(s:request{method = "options", url = "/echo"})
      assert.equal(501, r.status)
      assert.is_false(r.ok)
      assert.has_error(function() s.get({}, "/echo") end)
      assert.has_error(function() s:get(nil) end)
      -- module-level requests: one default session, its connection reused
      local key = ("default-%d-%d"):format(aio.getpid(), math.random(1 << 30))
      for _ = 1, 3 do
        assert(http.get(url("/echo"), {headers = {["X-Key"] = key}}))
      end
      local n = tonumber(assert(http.get(url("/conns"),
                                         {query = {key = key}})).body)
      assert.equal(1, n)
    end)
  end)

  it("a pooled connection the server closed is replaced", function()
    run(function()
      local closed = aio.event()
      local answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
      local srv <close> = aio.start_server(function(c)
        repeat local l = c:read_line() until l == nil or l:gsub("\r$", "") == ""
        c:write(answer)
        c:close() -- after one answer, though it said keep-alive
        closed:set()
      end, "127.0.0.1", 0)
      local s <close> = http.client()
      local u = "http://127.0.0.1:" .. srv.port .. "/"
      for _ = 1, 3 do
        local r = assert(s:get(u))
        assert.equal("ok", r.body)
        assert.equal(1, r.new_connections)
        closed:wait()
        closed:clear()
        aio.sleep(0.05) -- the end of file reaches the idle connection's poll
      end
    end)
  end)

  it("limit bounds the session's open connections", function()
    run(function()
      local key = ("limit-%d-%d"):format(aio.getpid(), math.random(1 << 30))
      local s <close> = http.client{base_url = BASE, limit = 2,
                                    headers = {["X-Key"] = key}}
      local jobs = {}
      for i = 1, 8 do
        jobs[i] = function() return assert(s:get("/slow?delay=0.05")).status end
      end
      local got = aio.gather(jobs)
      for i = 1, 8 do assert.equal(200, got[i]) end
      local n = tonumber(assert(http.get(url("/conns"),
                                         {query = {key = key}})).body)
      assert.equal(2, n) -- eight requests at once, two connections
      assert.has_error(function() http.client{limit = 0} end)
      assert.has_error(function() http.client{limit = 1.5} end)
    end)
  end)

  it("a session's timeout is a default; the request's wins", function()
    run(function()
      local s <close> = http.client{base_url = BASE, timeout = 0.2}
      local r, _, code = s:get("/slow?delay=1")
      assert.equal("ETIMEDOUT", code)
      assert.truthy(s:get("/slow?delay=0.5", {timeout = 5}))
    end)
  end)

  it("a closed session raises", function()
    run(function()
      local s = http.client()
      s:close()
      s:close()
      assert.has_error(function() s:get(url("/echo")) end,
                       "attempt to use a closed HTTP session")
    end)
  end)
end)

describe("aio.http HTTP/2", function()
  -- nginx (started by the fixture when installed) over TLS with the test
  -- CA; its answer names the protocol and the connection's serial number.
  local f = io.open(dir .. "/h2/port")
  local h2 = f and "https://localhost:" .. f:read("l") .. "/"

  it("negotiates h2 and multiplexes a session's requests on one connection", function()
    if not h2 then
      pending("nginx is not installed")
      return
    end
    run(function()
      local s <close> = http.client{cafile = CA}
      local first = assert(s:get(h2))
      assert.equal(200, first.status)
      assert.equal("2", first.http_version)
      assert.equal(1, first.new_connections)
      local conn = assert(first.body:match("^HTTP/2.0 connection (%d+)\n$"),
                          first.body)
      local jobs = {}
      for i = 1, 10 do jobs[i] = function() return assert(s:get(h2)) end end
      local rs = aio.gather(jobs) -- ten at once: one connection carries them
      assert.equal(10, #rs)
      for _, r in ipairs(rs) do
        assert.equal("2", r.http_version)
        assert.equal(0, r.new_connections)
        assert.equal("HTTP/2.0 connection " .. conn .. "\n", r.body)
      end
      -- a plain-http session stays on HTTP/1.1
      assert.equal("1.1", assert(http.get(url("/echo"))).http_version)
    end)
  end)
end)

describe("aio.http cancellation", function()
  it("cancelling a request in flight; the session still works", function()
    run(function()
      local s <close> = http.client{base_url = BASE}
      local t = aio.spawn(function() return s:get("/slow?delay=5") end)
      aio.sleep(0.1)
      t:cancel()
      support.assert_cancelled(t)
      local r = assert(s:get("/echo"))
      assert.equal(200, r.status)
    end)
  end)

  it("an enclosing aio.timeout raises TimeoutError", function()
    run(function()
      local ok, e = pcall(aio.wait_for, function()
        return http.get(url("/slow?delay=5"))
      end, 0.1)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "TimeoutError"))
    end)
  end)

  it("cancelled while connecting, in an upload, and in a stream read", function()
    run(function()
      -- before the request starts
      local t = aio.spawn(function() return http.get(url("/echo")) end)
      t:cancel()
      support.assert_cancelled(t)
      -- while the upload iterator waits
      local started = aio.event()
      t = aio.spawn(function()
        local n = 0
        return http.post(url("/echo"), {body = function()
          n = n + 1
          if n == 2 then started:set(); aio.sleep(10) end
          return n < 3 and "x" or nil
        end})
      end)
      started:wait()
      t:cancel()
      support.assert_cancelled(t)
      -- while the transfer waits for a chunk of a stream
      local r = assert(http.get(url("/stall?delay=3"), {stream = true}))
      assert.equal("x", r:read())
      t = aio.spawn(function() return r:read() end)
      aio.sleep(0.05)
      t:cancel()
      support.assert_cancelled(t)
      assert.has_error(function() r:read() end,
                       "attempt to use a cancelled request")
      r:close()
      assert.equal(200, assert(http.get(url("/echo"))).status)
    end)
  end)
end)

describe("aio.http streaming", function()
  it("reads a body chunk by chunk; iter() too", function()
    run(function()
      local r <close> = assert(http.get(url("/stream?size=100000&chunk=1000"),
                                        {stream = true}))
      assert.equal(200, r.status)
      assert.is_nil(r.body)
      local n = 0
      for chunk in r:iter() do n = n + #chunk end
      assert.equal(100000, n)
      assert.is_nil(r:read())
    end)
  end)

  it("a slow reader of a big stream keeps memory bounded", function()
    run(function()
      local function rss()
        local f = io.open("/proc/self/status")
        local kb = f:read("a"):match("VmRSS:%s*(%d+)")
        f:close()
        return tonumber(kb) * 1024
      end
      local size = math.floor(48 * 1024 * 1024 * support.SCALE)
      local r <close> = assert(http.get(url("/stream?size=" .. size),
                                        {stream = true}))
      local before, most, n, i = rss(), 0, 0, 0
      while true do
        local c = r:read()
        if c == nil then break end
        n, i = n + #c, i + 1
        if i % 16 == 0 then
          aio.sleep(0.001)
          collectgarbage("step")
          most = math.max(most, rss() - before)
        end
      end
      assert.equal(size, n)
      -- (A sanitizer's allocator keeps freed memory: no RSS bound there.)
      if support.stock_lua_loads() then
        assert.is_true(most < 16 * 1024 * 1024, "RSS grew by " .. most)
      end
    end)
  end)

  it("close() abandons the rest; the session goes on", function()
    run(function()
      local s <close> = http.client{base_url = BASE}
      local r = assert(s:get("/stream?size=10000000", {stream = true}))
      assert.truthy(r:read())
      r:close()
      r:close()
      assert.is_nil(r:read())
      assert.equal(200, assert(s:get("/echo")).status)
    end)
  end)

  it("a streamed redirect is followed; a small body streams too", function()
    run(function()
      local r <close> = assert(http.get(url("/redirect/2"), {stream = true}))
      assert.equal(url("/echo"), r.url)
      local parts = {}
      for c in r:iter() do parts[#parts + 1] = c end
      assert.equal("GET", aio.json.decode(table.concat(parts)).method)
    end)
  end)
end)

-- aio.http.serve and aio.http.app: routes, bodies, keep-alive and
-- pipelining, handler errors, shutdown (raw sockets and curl).
local aio = require "luaio"
local support = require "support"
local run = support.run

local raw = support.raw

local function get(port, path, extra)
  return raw(port, ("GET %s HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n")
                   :format(path, extra or ""))
end

local function status_of(resp) return tonumber(resp:match("^HTTP/1%.1 (%d+)")) end
local function body_of(resp) return resp:match("\r\n\r\n(.*)$") end

local function with_server(handler, fn, opts)
  return run(function()
    local srv = assert(aio.http.serve(handler, opts))
    local ok, err = pcall(fn, srv.port, srv)
    srv:close()
    assert(ok, err)
  end)
end

describe("aio.http.app", function()
  local app = aio.http.app()
  app:get("/", function() return "root" end)
  app:get("/items/{item_id:int}", function(req)
    return {json = {item_id = req.params.item_id}}
  end)
  app:get("/users/{name}", function(req) return "user " .. req.params.name end)
  app:get("/files/{rest:path}", function(req) return "file " .. req.params.rest end)
  app:post("/echo", function(req)
    return {status = 201, headers = {["x-len"] = #req:body()},
            body = req:body()}
  end)
  app:post("/json", function(req) return {json = {got = req:json().a}} end)
  app:get("/stream", function()
    local i = 0
    return {body = function()
      i = i + 1
      if i <= 3 then return "part" .. i end
    end}
  end)
  app:get("/query", function(req) return req.query.a .. "|" .. req.query.b end)
  app:get("/boom", function() error("secret detail") end)
  app:use(function(req, nxt)
    local res = nxt(req)
    if type(res) == "table" then
      res.headers = res.headers or {}
      res.headers["x-mw"] = "yes"
    end
    return res
  end)

  local logged
  local opts = {log = function(line) logged = line end}

  it("routes with captures, 404 and 405 with Allow", function()
    with_server(app, function(port)
      assert.equal("root", body_of(get(port, "/")))
      local r = get(port, "/items/42")
      assert.equal(200, status_of(r))
      assert.equal('{"item_id":42}', body_of(r))
      assert.truthy(r:lower():find("content-type: application/json", 1, true))
      assert.truthy(r:find("x-mw: yes", 1, true))
      assert.equal(404, status_of(get(port, "/items/abc")))
      assert.equal("user bob", body_of(get(port, "/users/bob")))
      assert.equal("file a/b/c.txt", body_of(get(port, "/files/a/b/c.txt")))
      assert.equal(404, status_of(get(port, "/nope")))
      local r405 = raw(port, "DELETE /items/1 HTTP/1.1\r\nHost: x\r\n" ..
                             "Connection: close\r\n\r\n")
      assert.equal(405, status_of(r405))
      assert.truthy(r405:find("allow: GET, HEAD", 1, true))
    end, opts)
  end)

  it("serves HEAD by GET without a body", function()
    with_server(app, function(port)
      local r = raw(port, "HEAD /users/ann HTTP/1.1\r\nHost: x\r\n" ..
                          "Connection: close\r\n\r\n")
      assert.equal(200, status_of(r))
      assert.truthy(r:find("Content-Length: 8", 1, true))
      assert.equal("", body_of(r))
    end)
  end)

  it("reads bodies, JSON and query strings; streams chunked answers", function()
    with_server(app, function(port)
      local r = raw(port, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n" ..
                          "Connection: close\r\n\r\nhello")
      assert.equal(201, status_of(r))
      assert.equal("hello", body_of(r))
      r = raw(port, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n" ..
                    "Connection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
      assert.equal("abcde", body_of(r))
      r = raw(port, 'POST /json HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n' ..
                    'Connection: close\r\n\r\n{"a":1}')
      assert.equal('{"got":1}', body_of(r))
      assert.equal("x y|&", body_of(get(port, "/query?a=x+y&b=%26")))
      r = get(port, "/stream")
      assert.truthy(r:find("Transfer-Encoding: chunked", 1, true))
      assert.equal("5\r\npart1\r\n5\r\npart2\r\n5\r\npart3\r\n0\r\n\r\n", body_of(r))
    end)
  end)

  it("answers a handler error with 500 and logs its traceback", function()
    logged = nil
    with_server(app, function(port)
      local r = get(port, "/boom")
      assert.equal(500, status_of(r))
      assert.falsy(r:find("secret", 1, true))
      assert.truthy(logged:find("secret detail", 1, true))
      assert.truthy(logged:find("traceback", 1, true))
      assert.equal("root", body_of(get(port, "/"))) -- still serving
    end, opts)
  end)

  it("answers pipelined requests in order on one connection", function()
    with_server(app, function(port)
      local s = assert(aio.open_connection("127.0.0.1", port))
      local reqs = {}
      for i = 1, 20 do
        reqs[#reqs + 1] = ("GET /users/u%d HTTP/1.1\r\nHost: x\r\n\r\n"):format(i)
      end
      reqs[#reqs + 1] = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz"
      reqs[#reqs + 1] = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
      assert(s:write(table.concat(reqs)))
      local all = s:read_all()
      local bodies = {}
      for b in all:gmatch("\r\n\r\n([^H]*)") do
        bodies[#bodies + 1] = b
      end
      assert.equal(22, #bodies)
      for i = 1, 20 do assert.equal("user u" .. i, bodies[i]) end
      assert.equal("xyz", bodies[21])
      assert.equal("root", bodies[22])
      s:close()
    end)
  end)

  it("keeps connections alive, also for HTTP/1.0 with keep-alive", function()
    with_server(app, function(port)
      local s = assert(aio.open_connection("127.0.0.1", port))
      for i = 1, 3 do
        assert(s:write("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"))
        local head = s:read_until("\r\n\r\n")
        assert.truthy(head:find("Connection: keep-alive", 1, true), i)
        assert.equal("root", s:read_exactly(4))
      end
      assert(s:write("GET / HTTP/1.0\r\n\r\n"))
      assert.truthy(s:read_all():find("Connection: close", 1, true))
      s:close()
    end)
  end)

  it("works with curl: keep-alive, chunked upload, --http1.0", function()
    if os.execute("command -v curl >/dev/null") ~= true then return end
    with_server(app, function(port)
      local base = "http://127.0.0.1:" .. port
      local r = aio.exec("curl", {"-s", base .. "/", base .. "/users/x"})
      assert.equal("rootuser x", r.stdout)
      r = aio.exec("curl", {"-s", "-H", "Transfer-Encoding: chunked",
                            "--data-binary", "abc", base .. "/echo"})
      assert.equal("abc", r.stdout)
      r = aio.exec("curl", {"-s", "--http1.0", base .. "/stream"})
      assert.equal("part1part2part3", r.stdout)
    end)
  end)
end)

describe("aio.http.serve", function()
  it("takes a plain function and a string answer", function()
    with_server(function(req) return req.method .. " " .. req.path end,
      function(port)
        local r = get(port, "/a%20b")
        assert.equal("GET /a b", body_of(r))
        assert.truthy(r:find("content-type: text/plain", 1, true))
      end)
  end)

  it("refuses response splitting in a header value", function()
    local logged
    with_server(function() return {headers = {["x-a"] = "a\r\nx-b: 1"}} end,
      function(port)
        local r = get(port, "/")
        assert.equal(500, status_of(r))
        assert.falsy(r:find("x-b", 1, true))
        assert.truthy(logged:find("CR, LF or NUL", 1, true))
      end, {log = function(l) logged = l end})
  end)

  it("shutdown lets the request in flight finish and closes idle ones", function()
    run(function()
      local started = aio.event()
      local srv = assert(aio.http.serve(function(req)
        if req.path == "/slow" then started:set(); aio.sleep(0.2) end
        return "done"
      end))
      local idle = assert(aio.open_connection("127.0.0.1", srv.port))
      assert(idle:write("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
      idle:read_until("done")
      local t = aio.spawn(get, srv.port, "/slow")
      started:wait()
      srv:shutdown(5)
      local r = t:await()
      assert.equal("done", body_of(r))
      assert.truthy(r:find("Connection: close", 1, true))
      assert.is_nil(idle:read()) -- the idle connection was closed
      idle:close()
      assert.is_nil(aio.open_connection("127.0.0.1", srv.port))
    end)
  end)

  it("shutdown cancels what is still running after the grace", function()
    run(function()
      local started, cancelled = aio.event(), false
      local srv = assert(aio.http.serve(function()
        started:set()
        local ok, e = pcall(aio.sleep, 30)
        cancelled = aio.is_error(e, "CancelledError")
        error(e, 0)
      end))
      local t = aio.spawn(get, srv.port, "/")
      started:wait()
      srv:shutdown(0.05)
      assert.is_true(cancelled)
      srv:wait_closed()
      t:await()
    end)
  end)

  it("writes one access log line per request when asked", function()
    local lines = {}
    with_server(function(req) return {status = 201, body = req.path} end,
      function(port)
        get(port, "/a?b=1")
        get(port, "/c")
      end, {access_log = function(l) lines[#lines + 1] = l end})
    assert.same({"GET /a?b=1 HTTP/1.1 201\n", "GET /c HTTP/1.1 201\n"}, lines)
  end)

  it("close cancels connections waiting for a request or a body", function()
    run(function()
      local srv = assert(aio.http.serve(function(req) return req:body() end))
      local idle = assert(aio.open_connection("127.0.0.1", srv.port))
      local mid = assert(aio.open_connection("127.0.0.1", srv.port))
      assert(mid:write("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nab"))
      support.wait_until(function() return next(srv.conns) ~= nil end)
      aio.sleep(0.02)
      srv:close()
      srv:wait_closed()
      assert.is_nil(idle:read())
      assert.is_nil(mid:read())
      assert.is_nil(next(srv.conns))
      idle:close()
      mid:close()
    end)
  end)

  it("answers Expect: 100-continue when the handler first reads", function()
    with_server(function(req) return "got " .. req:body() end, function(port)
      local s = assert(aio.open_connection("127.0.0.1", port))
      assert(s:write("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n" ..
                     "Expect: 100-continue\r\nConnection: close\r\n\r\n"))
      assert.equal("HTTP/1.1 100 Continue\r\n\r\n", s:read_until("\r\n\r\n"))
      assert(s:write("abc"))
      assert.truthy(s:read_all():find("\r\n\r\ngot abc$"))
      s:close()
    end)
  end)

  it("shares a port with reuse_port", function()
    run(function()
      local function answer(name) return function() return name end end
      local a = assert(aio.http.serve(answer("a"), {reuse_port = true}))
      local b = assert(aio.http.serve(answer("b"),
                                      {port = a.port, reuse_port = true}))
      assert.equal(a.port, b.port)
      -- The kernel spreads connections by their addresses: each server
      -- gets some of them, soon.
      local seen, tries = {}, 0
      while not (seen.a and seen.b) and tries < 500 do
        tries = tries + 1
        local who = body_of(get(a.port, "/"))
        seen[who] = (seen[who] or 0) + 1
      end
      assert.is_truthy(seen.a and seen.b, ("a %s, b %s in %d"):format(
        tostring(seen.a), tostring(seen.b), tries))
      a:close()
      b:close()
      -- without the option, the port is taken
      local c = assert(aio.http.serve(answer("c")))
      local d, _, code = aio.http.serve(answer("d"), {port = c.port})
      assert.is_nil(d)
      assert.equal("EADDRINUSE", code)
      c:close()
    end)
  end)

  it("closing its listener closes idle connections and finishes requests",
     function()
    run(function()
      local started, go = aio.event(), aio.event()
      local srv = assert(aio.http.serve(function(req)
        if req.path == "/slow" then started:set(); go:wait() end
        return "done"
      end))
      local idle = assert(aio.open_connection("127.0.0.1", srv.port))
      assert(idle:write("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
      idle:read_until("done")
      local slow = assert(aio.open_connection("127.0.0.1", srv.port))
      assert(slow:write("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"))
      started:wait()
      srv.net:close() -- as a worker's shutdown does
      assert.is_nil(idle:read()) -- the idle connection was closed
      assert.is_nil(aio.open_connection("127.0.0.1", srv.port))
      go:set()
      local r = slow:read_all()
      assert.equal("done", body_of(r))
      assert.truthy(r:find("Connection: close", 1, true))
      srv:wait_closed()
      idle:close()
      slow:close()
    end)
  end)

  it("rejects unknown options", function()
    run(function()
      assert.has_error(function() aio.http.serve(function() end, {prot = 1}) end)
    end)
  end)
end)

describe("a request's task", function()
  it("runs each request of a keep-alive connection as a task of its own",
     function()
    local seen = {}
    with_server(function(req)
      local t = aio.current_task()
      seen[#seen + 1] = t
      t:set_name("request " .. req.path)
      return aio.current_task():name()
    end, function(port)
      local s = assert(aio.open_connection("127.0.0.1", port))
      for i = 1, 3 do
        assert(s:write(("GET /r%d HTTP/1.1\r\nHost: x\r\n\r\n"):format(i)))
        s:read_until("\r\n\r\n")
        assert.equal("request /r" .. i, s:read_exactly(#("request /r1")))
      end
      s:close()
    end)
    assert.equal(3, #seen)
    assert.are_not.equal(seen[1], seen[2])
    assert.are_not.equal(seen[2], seen[3])
    for i = 1, 3 do
      assert.is_true(seen[i]:done()) -- over once its answer was written
      assert.equal("request /r" .. i, seen[i]:name())
    end
  end)

  -- A server whose handler for /slow keeps its task and waits in park
  -- (aio.sleep(30) unless given); other paths answer "fine".  Returns the
  -- server, a connection that sent GET /slow, and that request's task.
  local function slow_request(park)
    local started, task = aio.event(), nil
    local srv = assert(aio.http.serve(function(req)
      if req.path ~= "/slow" then return "fine" end
      task = aio.current_task()
      started:set()
      return (park or aio.sleep)(30)
    end))
    local s = assert(aio.open_connection("127.0.0.1", srv.port))
    assert(s:write("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"))
    started:wait()
    return srv, s, task
  end

  it("ends its connection without an answer when it is cancelled; the " ..
     "server goes on", function()
    run(function()
      local srv, s, task = slow_request()
      assert.is_true(task:cancel())
      assert.is_nil(s:read()) -- closed, nothing written
      s:close()
      support.assert_cancelled(task)
      assert.equal("fine", body_of(get(srv.port, "/")))
      srv:close()
    end)
  end)

  it("a cancellation the handler catches ends with that request", function()
    run(function()
      local srv, s, task = slow_request(function(n)
        local ok, e = pcall(aio.sleep, n)
        assert(not ok and aio.is_error(e, "CancelledError"))
        return "caught"
      end)
      task:cancel()
      s:read_until("\r\n\r\n")
      assert.equal("caught", s:read_exactly(6))
      -- the connection's own task was not cancelled: it serves the next one
      assert(s:write("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
      s:read_until("\r\n\r\n")
      assert.equal("fine", s:read_exactly(4))
      s:close()
      srv:close()
    end)
  end)

  it("is cancelled with its connection when the server closes", function()
    run(function()
      local srv, s, task = slow_request()
      srv:close()
      srv:wait_closed()
      support.assert_cancelled(task)
      assert.is_nil(s:read())
      s:close()
    end)
  end)

  it("keeps a task the handler spawned running after the answer", function()
    local child
    run(function()
      local go = aio.event()
      local srv = assert(aio.http.serve(function()
        child = aio.spawn(function() go:wait(); return "later" end)
        return "now"
      end))
      assert.equal("now", body_of(get(srv.port, "/")))
      assert.is_false(child:done())
      go:set()
      assert.equal("later", child:await())
      srv:close()
    end)
  end)
end)

-- aio.http.serve against real clients beside curl: aiohttp (keep-alive,
-- JSON both ways, a streamed upload, pipelined concurrency on a pool) and
-- wrk (a keep-alive load, every answer a 200).
local aio = require "luaio"
local support = require "support"

local PY = "/usr/bin/python3"

local function have(cmd) return os.execute(cmd .. " >/dev/null 2>&1") == true end

local function app()
  local a = aio.http.app()
  a:get("/items/{item_id:int}", function(req)
    return {json = {item_id = req.params.item_id, q = req.query.q}}
  end)
  a:post("/echo", function(req)
    local v = req:json()
    return {json = {got = v, n = #v.list}}
  end)
  a:post("/count", function(req)
    local n = 0
    for piece in req:chunks() do n = n + #piece end
    return tostring(n)
  end)
  a:get("/hello", function() return "hello" end)
  return a
end

-- The aiohttp client: one session (one connection at a time for the
-- sequential part), trace hooks counting connections made and reused.
local AIOHTTP = [[
import asyncio, json, sys
import aiohttp

async def main(port):
    base = f"http://127.0.0.1:{port}"
    made = reused = 0
    async def on_create(session, ctx, params):
        nonlocal made
        made += 1
    async def on_reuse(session, ctx, params):
        nonlocal reused
        reused += 1
    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(on_create)
    trace.on_connection_reuseconn.append(on_reuse)
    conn = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=conn, trace_configs=[trace]) as s:
        items = []
        for i in range(20):
            async with s.get(f"{base}/items/{i}", params={"q": "a b"}) as r:
                items.append((r.status, await r.json()))
        async with s.post(f"{base}/echo", json={"list": [1, 2, 3], "s": "é"}) as r:
            echo = await r.json()
        async def body():
            for _ in range(100):
                yield b"x" * 1000
        async with s.post(f"{base}/count", data=body()) as r:
            count = await r.text()
    async with aiohttp.ClientSession() as s:
        async def one(i):
            async with s.get(f"{base}/items/{i}") as r:
                return (await r.json())["item_id"]
        many = await asyncio.gather(*(one(i) for i in range(50)))
    print(json.dumps({"items": items, "echo": echo, "count": count,
                      "made": made, "reused": reused, "many": many}))

asyncio.run(main(int(sys.argv[1])))
]]

describe("aio.http.serve with real clients", function()
  it("serves aiohttp: keep-alive, JSON both ways, a streamed upload", function()
    if not have(PY .. " -c 'import aiohttp'") then
      pending("python3-aiohttp is not installed")
      return
    end
    support.run(function()
      local srv = assert(aio.http.serve(app()))
      local r = aio.exec(PY, {"-c", AIOHTTP, tostring(srv.port)})
      srv:close()
      assert.equal(0, r.status, r.stderr)
      local out = aio.json.decode(r.stdout)
      assert.equal(20, #out.items)
      for i, it in ipairs(out.items) do
        assert.equal(200, it[1])
        assert.same({item_id = i - 1, q = "a b"}, it[2])
      end
      assert.same({got = {list = {1, 2, 3}, s = "é"}, n = 3}, out.echo)
      assert.equal("100000", out.count)
      -- 22 sequential requests on one kept-alive connection
      assert.equal(1, out.made)
      assert.equal(21, out.reused)
      local want = {}
      for i = 1, 50 do want[i] = i - 1 end
      assert.same(want, out.many)
    end)
  end)

  it("serves wrk's keep-alive load with a 200 for every request", function()
    if not have("command -v wrk") then
      pending("wrk is not installed")
      return
    end
    support.run(function()
      local srv = assert(aio.http.serve(app()))
      local r = aio.exec("wrk", {"-t1", "-c10", "-d1s", "--timeout", "30s",
                                 "http://127.0.0.1:" .. srv.port .. "/hello"})
      srv:close()
      assert.equal(0, r.status, r.stderr)
      local n = tonumber(r.stdout:match("(%d+) requests in"))
      assert.is_true(n ~= nil and n > 0, r.stdout)
      assert.falsy(r.stdout:find("Non%-2xx"), r.stdout)
      assert.falsy(r.stdout:find("Socket errors"), r.stdout)
    end)
  end)
end)

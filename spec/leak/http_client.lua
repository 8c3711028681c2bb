-- Shutdown with HTTP transfers in flight: requests that finished, a
-- streamed response left open, a request still waiting and a session never
-- closed.  Run under valgrind and the ASan tree by spec/http_client.cmake;
-- it prints a line the test matches.
local aio = require "luaio"
local dir = assert(os.getenv("LUAIO_HTTP_PEER"))
local f = assert(io.open(dir .. "/ports"))
local ports = aio.json.decode(f:read("a"))
f:close()
local base = "http://127.0.0.1:" .. ports.http
local s = aio.http.client{base_url = base}
local ok = 0
for i = 1, 5 do
  local r = assert(s:get("/echo", {query = {i = i}}))
  if r.status == 200 then ok = ok + 1 end
end
assert(aio.http.get("https://localhost:" .. ports.good .. "/echo",
                    {cafile = dir .. "/ca.pem"}))
local stream = assert(s:get("/stream?size=1000000", {stream = true}))
assert(stream:read())
aio.spawn(function() s:get("/slow?delay=5") end) -- cancelled at the end
aio.spawn(function() aio.http.get(base .. "/slow?delay=5") end)
aio.sleep(0.2)
print(ok .. " requests, leaving transfers in flight")

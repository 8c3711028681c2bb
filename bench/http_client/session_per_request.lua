-- bench/http_client/session_per_request.lua PORT [N]: a new session per
-- request to the bench server (server.lua), by name ("localhost") and by
-- address: what a DNS cache shared between sessions (CURLSH) could save
local aio = require "luaio"
local port, n = arg[1], tonumber(arg[2] or 300)
aio.run(function()
  for _, host in ipairs {"127.0.0.1", "localhost", "127.0.0.1", "localhost"} do
    local u = "http://" .. host .. ":" .. port .. "/"
    local c0, w0 = os.clock(), aio.time()
    for _ = 1, n do
      local s <close> = aio.http.client()
      assert(s:get(u))
    end
    print(host, ("cpu %.0f us wall %.0f us per session+request"):format(
      (os.clock() - c0) * 1e6 / n, (aio.time() - w0) * 1e6 / n))
  end
end)

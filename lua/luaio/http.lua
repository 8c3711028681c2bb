-- luaio.http: the HTTP client (luaio.http.client), the server
-- (luaio.http.server) and WebSocket (luaio.http.websocket) under one
-- name, aio.http.  Each part is required the first time one of its names
-- is used, so a script that only fetches never loads the server.

local parts = {
  request = "client", get = "client", post = "client", put = "client",
  patch = "client", delete = "client", head = "client", client = "client",
  serve = "server", app = "server",
  websocket = "websocket",
}

return setmetatable({}, {
  __index = function(self, k)
    local part = parts[k]
    if part == nil then return nil end
    local v = require("luaio.http." .. part)[k]
    rawset(self, k, v)
    return v
  end,
})

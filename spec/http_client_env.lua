-- spec/http_client_env.lua MODE URL...: run by spec/http_client_spec.lua
-- with http_proxy/https_proxy/no_proxy in its environment.  MODE is
-- "request" (trust_env = true on each request), "session" (a session with
-- trust_env = true) or "off" (neither).  Prints one line per URL:
-- "ok STATUS VIA" or "err CODE".
local aio = require "luaio"
local mode = arg[1]
aio.run(function()
  local s <close> = aio.http.client{trust_env = mode == "session"}
  for i = 2, #arg do
    local r, _, code = s:get(arg[i], {verify = false,
                                      trust_env = mode == "request" or nil})
    if r then
      print("ok " .. r.status .. " " .. (r.headers.via or "-"))
    else
      print("err " .. code)
    end
  end
end)

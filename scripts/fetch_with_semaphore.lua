-- Concurrent fetches limited by a semaphore (the asyncio guide's pattern).
-- The script starts a small line-based server of its own, then fetches ten
-- "pages" from it at once; aio.semaphore(3) lets at most three
-- connections be open at a time.
--
--   luaio scripts/fetch_with_semaphore.lua   or   lua5.4 scripts/...
local aio = require "luaio"

local LIMIT, PAGES = 3, 10

-- The server: "GET name" -> "page name", after a short delay.
local function serve(stream)
  local request = stream:read_line()
  local name = request and request:match("^GET (%S+)$")
  aio.sleep(0.02)
  stream:write(name and ("page " .. name .. "\n") or "error\n")
end

aio.run(function()
  local server <close> = assert(aio.start_server(serve, "127.0.0.1", 0))
  local sem = aio.semaphore(LIMIT)
  local open, most = 0, 0

  local function fetch(name)
    local _ <close> = sem:acquire()
    local conn <close> = assert(aio.open_connection("127.0.0.1", server.port))
    open = open + 1
    most = math.max(most, open)
    conn:write("GET " .. name .. "\n")
    local body = conn:read_line()
    open = open - 1
    return body
  end

  local fns = {}
  for i = 1, PAGES do
    fns[i] = function() return fetch("p" .. i) end
  end
  local pages = aio.gather(fns)
  for i = 1, pages.n do print(pages[i]) end
  print(("%d pages, at most %d connections at once"):format(pages.n, most))
end)

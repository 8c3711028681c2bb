-- The asyncio guide's fetch_all: many HTTP requests at once with
-- aio.gather, through one aio.http session that keeps its connections.
--
-- The script serves its own pages: a minimal HTTP/1.1 server on
-- aio.start_server (port 0: whatever port is free), where /page/N answers
-- after N * 10 ms.  gather returns the responses in the order asked for,
-- whatever order they finished in.
local aio = require "luaio"

-- One connection: answer each request on it, keep-alive.
local function serve(stream)
  while true do
    local line = stream:read_line()
    if line == nil then break end
    local path = line:match("^%u+ (%S+)")
    repeat -- the head's fields: not needed here
      local h = stream:read_line()
    until h == nil or h:gsub("\r$", "") == ""
    local n = tonumber(path and path:match("^/page/(%d+)$"))
    local status, body = "200 OK", "page " .. tostring(n)
    if n == nil then status, body = "404 Not Found", "no such page" end
    aio.sleep((n or 0) * 0.01)
    stream:write(("HTTP/1.1 %s\r\nContent-Type: text/plain\r\n" ..
                  "Content-Length: %d\r\n\r\n%s"):format(status, #body, body))
  end
  stream:close()
end

local function fetch_all(session, urls)
  local jobs = {}
  for i, url in ipairs(urls) do
    jobs[i] = function()
      local r = assert(session:get(url))
      return r:raise_for_status().body
    end
  end
  return aio.gather(jobs)
end

aio.run(function()
  local server = aio.start_server(serve, "127.0.0.1", 0)
  local session <close> = aio.http.client{
    base_url = "http://127.0.0.1:" .. server.port}

  local urls = {"/page/5", "/page/1", "/page/3", "/page/2", "/page/4"}
  local started = aio.time()
  local bodies = fetch_all(session, urls)
  local took = aio.time() - started
  for i, url in ipairs(urls) do print(url .. " -> " .. bodies[i]) end
  -- 50 ms for the slowest; one after another would take 150 ms.
  print("concurrent: " .. tostring(took < 0.15))

  -- A missing page is a response; raise_for_status makes it an HTTPError.
  local ok, err = pcall(fetch_all, session, {"/missing"})
  print("missing: " .. tostring(ok) .. " " ..
        tostring(aio.is_error(err, "HTTPError")) .. " " .. err.status)
  server:close()
end)

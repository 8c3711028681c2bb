-- The asyncio guide's rate limiting: 20 HTTP requests, at most 3 in
-- flight, with aio.semaphore around each request.
--
-- The script serves its own pages with a minimal HTTP/1.1 server on
-- aio.start_server (port 0) that counts how many requests it is answering
-- at once, so the limit can be seen from the server's side.
local aio = require "luaio"

local busy, most = 0, 0

local function serve(stream)
  while true do
    local line = stream:read_line()
    if line == nil then break end
    local path = line:match("^%u+ (%S+)")
    repeat local h = stream:read_line() until h == nil or h:gsub("\r$", "") == ""
    busy = busy + 1
    most = math.max(most, busy)
    aio.sleep(0.01)
    busy = busy - 1
    local body = "done " .. path
    stream:write(("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s")
                 :format(#body, body))
  end
  stream:close()
end

aio.run(function()
  local server = aio.start_server(serve, "127.0.0.1", 0)
  local session <close> = aio.http.client{
    base_url = "http://127.0.0.1:" .. server.port}
  local limit = aio.semaphore(3)

  local jobs = {}
  for i = 1, 20 do
    jobs[i] = function()
      local permit <close> = limit:acquire()
      return assert(session:get("/item/" .. i)).body
    end
  end
  local bodies = aio.gather(jobs)
  print(#bodies .. " responses, first: " .. bodies[1] .. ", last: " ..
        bodies[20])
  print("most at once on the server: " .. most)
  server:close()
end)

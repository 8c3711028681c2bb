-- Thousands of loopback connections, run by ctest under valgrind: nothing
-- may leak or be touched after it was freed.  Prints what it did.
local aio = require "luaio"

local N = tonumber(arg and arg[1]) or 2000

aio.run(function()
  local served = 0
  local server <close> = aio.start_server(function(stream)
    local line = stream:read_line()
    if line then stream:write(line .. "\n") end
    served = served + 1
  end, "127.0.0.1", 0)
  local sem = aio.semaphore(50)
  local ok = 0
  local tasks = {}
  for i = 1, N do
    tasks[i] = aio.spawn(function()
      local _ <close> = sem:acquire()
      local s <close> = assert(aio.open_connection("127.0.0.1", server.port))
      s:write("ping " .. i .. "\n")
      if s:read_line() == "ping " .. i then ok = ok + 1 end
    end)
  end
  aio.gather(tasks)
  -- A few that go wrong: refused, reset by a closed peer, cancelled reads.
  local refused = select(3, aio.open_connection("127.0.0.1", 1))
  local t = aio.spawn(function()
    local s <close> = assert(aio.open_connection("127.0.0.1", server.port))
    s:read()
  end)
  aio.sleep(0.01)
  t:cancel()
  pcall(t.await, t)
  print(string.format("%d echoes of %d, refused: %s", ok, N, tostring(refused)))
end)

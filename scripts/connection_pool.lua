-- A connection pool (the asyncio guide's pattern) over real TCP
-- connections: a little "database" server answers one query per line, and
-- ten tasks query it through a pool of at most three connections.  A lease
-- is a <close> value: it gives the connection back at the end of the
-- block, also when an error unwinds it, and lease:discard() throws away a
-- connection that broke.  A connection idle in the pool is checked before
-- it is lent again.
--
--   luaio scripts/connection_pool.lua   or   lua5.4 scripts/connection_pool.lua
local aio = require "luaio"
local P = require "luaio.patterns"

local MAX, QUERIES = 3, 10

-- The server: "SELECT n" answers "n * n"; "BREAK" hangs up.
local function serve(stream)
  for line in stream:lines() do
    if line == "BREAK" then return end
    local n = tonumber(line:match("^SELECT (%d+)$"))
    stream:write((n and tostring(n * n) or "ERROR") .. "\n")
  end
end

aio.run(function()
  local server <close> = assert(aio.start_server(serve, "127.0.0.1", 0))
  local opened, closed, in_use, most = 0, 0, 0, 0

  local pool <close> = P.pool{
    max = MAX,
    create = function()
      local conn = assert(aio.open_connection("127.0.0.1", server.port))
      opened = opened + 1
      return conn
    end,
    destroy = function(conn)
      closed = closed + 1
      conn:close()
    end,
    -- A ping before lending a connection that sat idle.
    check = function(conn)
      return conn:write("SELECT 1\n") and conn:read_line() == "1"
    end,
  }

  local function query(n)
    local conn, lease <close> = pool:acquire()
    in_use = in_use + 1
    most = math.max(most, in_use)
    conn:write(("SELECT %d\n"):format(n))
    local answer = conn:read_line()
    aio.sleep(0.005) -- the caller works with the answer a while
    in_use = in_use - 1
    if answer == nil then lease:discard() end
    return tonumber(answer)
  end

  local tasks, results = {}, {}
  for i = 1, QUERIES do tasks[i] = aio.spawn(query, i) end
  for i = 1, QUERIES do results[i] = tasks[i]:await() end
  print("answers: " .. table.concat(results, " "))
  print(("%d queries over %d connections, at most %d in use at once")
        :format(QUERIES, opened, most))

  -- A connection that breaks is discarded, and the next one is new.
  do
    local conn, lease <close> = pool:acquire()
    conn:write("BREAK\n")
    if conn:read_line() == nil then
      print("a connection broke: discarded")
      lease:discard()
    end
  end
  print("stats: " .. tostring(pool))
  print("after a broken one, still answers: " .. query(12))

  pool:close()
  print(("closed: %d opened, %d closed"):format(opened, closed))
end)

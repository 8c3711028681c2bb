-- An async cache with a TTL (the asyncio guide's pattern): a slow lookup
-- is cached for a minute.  Five tasks asking for the same user at once share
-- one lookup ("single flight"); a failed lookup is not cached, so the next
-- caller tries again; the least recently used entries go when the cache
-- is full.  The cache reads the time from opts.clock (aio.time by
-- default); here it is a clock the script moves, so the minute passes at
-- once.
--
--   luaio scripts/ttl_cache.lua   or   lua5.4 scripts/ttl_cache.lua
local aio = require "luaio"
local P = require "luaio.patterns"

aio.run(function()
  local lookups = 0
  local down = false
  local function fetch_user(id)
    lookups = lookups + 1
    aio.sleep(0.005) -- the database
    if down then error("database unavailable", 0) end
    return {id = id, name = "user" .. id}
  end

  local now = 0
  local cache = P.ttl_cache{ttl = 60, max_entries = 2,
                            clock = function() return now end}

  local tasks = {}
  for i = 1, 5 do
    tasks[i] = aio.spawn(cache.get_or_load, cache, 7, fetch_user)
  end
  local names = {}
  for i = 1, 5 do names[i] = tasks[i]:await().name end
  print(("5 concurrent requests: %s, %d lookup")
        :format(table.concat(names, " "), lookups))

  cache:get_or_load(7, fetch_user)
  print(("again, from the cache: %d lookup"):format(lookups))

  now = now + 60 -- a minute later the entry has expired
  cache:get_or_load(7, fetch_user)
  print(("after the TTL: %d lookups"):format(lookups))

  down = true
  local ok, err = pcall(cache.get_or_load, cache, 8, fetch_user)
  print(("a failed lookup: %s %s"):format(ok, err))
  down = false
  print(("not cached: the next caller gets %s, %d lookups")
        :format(cache:get_or_load(8, fetch_user).name, lookups))

  cache:get_or_load(9, fetch_user) -- a third entry: 7 was used least lately
  print(("at most 2 entries: 7 cached %s, 8 %s, 9 %s")
        :format(select(2, cache:get(7)), select(2, cache:get(8)),
                select(2, cache:get(9))))
end)

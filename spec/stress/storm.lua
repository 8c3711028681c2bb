-- A seeded random cancellation storm over every kind of wait: locks,
-- queues, conditions, events, streams, files, processes, UDP and DNS,
-- with full collections at random points.  Run in the sanitizer tree, a
-- use after free, a leak (LeakSanitizer at exit) or a hang fails it.
--   luaio spec/stress/storm.lua [seed...]   (default: three seeds)
-- Every task's own failure other than a cancellation or a timeout fails
-- the storm, so a wait that returns garbage is seen too.  Each kind holds
-- what it acquires under <close>: a condition's lock held by a task that
-- swallowed its cancellation would block the rest for good, as in asyncio.
local aio = require "luaio"

local seeds = {}
for i = 1, #arg do seeds[#seeds + 1] = assert(math.tointeger(tonumber(arg[i]))) end
if #seeds == 0 then
  local base = os.time()
  seeds = {base, base + 1, base + 2}
end

local ROUNDS = tonumber(os.getenv("STORM_ROUNDS")) or 150

local function storm(seed)
  math.randomseed(seed)
  local rnd = math.random
  local lock, cond = aio.lock(), aio.condition()
  local ev, q = aio.event(), aio.queue(4)
  local sem = aio.semaphore(1)
  local dir = os.tmpname()
  os.remove(dir)
  assert(aio.fs.mkdir(dir))
  assert(aio.fs.write_file(dir .. "/f", ("line\n"):rep(2000)))
  local u1 = assert(aio.udp.bind("127.0.0.1", 0))
  local u2 = assert(aio.udp.bind("127.0.0.1", 0))
  local _, uport = u2:sockname()
  local srv = assert(aio.start_server(function(s)
    for line in s:lines() do
      if not s:write(line .. "\n") then break end
    end
    s:close()
  end, "127.0.0.1", 0))

  local kinds = {
    function() local _ <close> = lock:acquire() aio.sleep(rnd() * 0.002) end,
    function() local _ <close> = cond:acquire() cond:wait() end,
    function() local _ <close> = cond:acquire() cond:notify(rnd(2)) end,
    function() ev:wait() end,
    function() if rnd(3) == 1 then ev:set() else ev:clear() end end,
    function() q:put(rnd(100)) end,
    function() q:get() end,
    function() local _ <close> = sem:acquire() aio.sleep(0) end,
    function()
      local s = assert(aio.open_connection("127.0.0.1", srv.port))
      s:write("ping\n")
      s:read_line()
      if rnd(2) == 1 then s:read_until("XYZ") end
      s:close()
    end,
    function()
      local f <close> = assert(aio.fs.open(dir .. "/f"))
      f:read(rnd(50))
      for _ in f:lines() do break end
      f:read()
    end,
    function() aio.fs.read_file(dir .. "/f") end,
    function() aio.fs.stat(dir) end,
    function() aio.exec("sh", {"-c", "echo x"}) end,
    function()
      local p = assert(aio.subprocess("sleep", {"0.01"}))
      p:wait()
    end,
    function() u1:send_to(("d"):rep(rnd(200)), "127.0.0.1", uport) end,
    function() u2:recv_from() end,
    function() aio.getaddrinfo("localhost") end,
    function() aio.wait_for(aio.spawn(aio.sleep, 0.001), rnd() * 0.002) end,
    function() aio.gather({function() aio.sleep(0) end, function() ev:wait() end}) end,
  }

  local live, failures = {}, {}
  for round = 1, ROUNDS do
    local fn = kinds[rnd(#kinds)]
    live[#live + 1] = aio.spawn(function()
      local ok, err = pcall(fn)
      if not ok and not aio.is_error(err, "CancelledError")
          and not aio.is_error(err, "TimeoutError") then
        failures[#failures + 1] = tostring(err)
      end
    end)
    local r = rnd(10)
    if r <= 4 and #live > 0 then
      table.remove(live, rnd(#live)):cancel()
    elseif r == 5 then
      collectgarbage()
    elseif r == 6 then
      aio.sleep(rnd() * 0.003)
    end
    if rnd(4) == 1 then aio.sleep(0) end
    if round % 50 == 0 then ev:set() end
  end
  for _, t in ipairs(live) do t:cancel() end
  for _, t in ipairs(live) do pcall(t.await, t) end
  srv:close()
  u1:close()
  u2:close()
  collectgarbage()
  os.remove(dir .. "/f")
  os.remove(dir)
  if #failures > 0 then error(table.concat(failures, "\n"), 0) end
end

for _, seed in ipairs(seeds) do
  io.write("storm seed ", seed, "\n")
  io.flush()
  local ok, err = pcall(aio.run, function() storm(seed) end)
  if not ok then
    io.write("storm FAILED with seed ", seed, ": ", tostring(err), "\n")
    os.exit(1)
  end
end
io.write("storm passed: ", #seeds, " seeds\n")

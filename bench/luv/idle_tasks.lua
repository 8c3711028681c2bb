-- idle_tasks on luv with sched.lua.
local S = dofile(arg[0]:match("^(.-)[^/]*$") .. "sched.lua")
local N = tonumber(arg[1]) or 100000

S.run(function()
  local ev = S.event()
  collectgarbage(); collectgarbage()
  local r0 = S.rss()
  for _ = 1, N do S.spawn0(ev.wait) end
  S.sleep(0)
  collectgarbage(); collectgarbage()
  local r1 = S.rss()
  print(string.format("RESULT %.1f", (r1 - r0) / N))
  os.exit(0)
end)

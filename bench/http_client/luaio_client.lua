-- 50 tasks through one aio.http session, N small GETs in all; prints
-- RESULT <wall ns per request> <CPU ns per request>.
local aio = require "luaio"
local url, n, conc = arg[1], tonumber(arg[2] or 20000), tonumber(arg[3] or 50)
aio.run(function()
  local s <close> = aio.http.client{limit = conc}
  local left = n
  local function worker()
    while left > 0 do
      left = left - 1
      local r = assert(s:get(url))
      assert(r.status == 200)
    end
  end
  for _ = 1, 200 do assert(s:get(url)) end -- warm-up
  local w0, c0 = aio.time(), os.clock()
  local jobs = {}
  for i = 1, conc do jobs[i] = worker end
  aio.gather(jobs)
  print(("RESULT %.0f %.0f"):format((aio.time() - w0) * 1e9 / n,
                                    (os.clock() - c0) * 1e9 / n))
end)

-- Graceful shutdown (the asyncio guide's pattern): a job service with two
-- workers.  On SIGINT or SIGTERM the hook stops taking jobs, the workers
-- finish the jobs they hold, for up to GRACE seconds, and the rest is
-- cancelled; a second signal cancels at once.  The exit status says how
-- it ended: 0 graceful, 124 when the grace ran out, 128 + the signal's
-- number when forced.
--
--   lua5.4 scripts/graceful_shutdown.lua [JOB_SECONDS [GRACE]]
-- then press Ctrl-C (twice to force).  Under the luaio command the
-- script owns SIGINT/SIGTERM once the command lets a script that watches
-- a signal handle it.
local aio = require "luaio"
local P = require "luaio.patterns"

local JOB = tonumber(arg and arg[1]) or 0.05
local GRACE = tonumber(arg and arg[2]) or 5

io.stdout:setvbuf("line") -- whoever reads our output sees each line

local status = aio.run(function()
  local sd <close> = P.shutdown{signals = {"SIGINT", "SIGTERM"},
                                grace = GRACE}
  local jobs = aio.queue(2)

  sd:on_shutdown(function(signal)
    print(signal .. ": no new jobs; finishing the current ones")
    jobs:shutdown() -- workers take what is queued, then stop
  end)

  for w = 1, 2 do
    sd:spawn(function()
      for job in jobs:iter() do
        local ok = pcall(aio.sleep, JOB) -- the work
        if not ok then
          print(("worker %d: job %d cut off"):format(w, job))
          return
        end
      end
    end)
  end

  -- The main work: jobs keep coming until the shutdown.
  local code, reason = sd:run(function()
    local n = 0
    while pcall(jobs.put, jobs, n + 1) do
      n = n + 1
      if n == 4 then print("ready") end
    end
  end)
  print(("shutdown: %s, exit status %d"):format(reason, code))
  return code
end)
os.exit(status)

-- Shared by the cqueues workloads: a controller, the clock, a semaphore and
-- a bounded queue built on cqueues.condition (cqueues has neither).
local cqueues = require "cqueues"
local condition = require "cqueues.condition"

local C = {}
C.promise = require "cqueues.promise"
C.sleep = cqueues.sleep
C.now = cqueues.monotime -- seconds

function C.run(main)
  local cq = cqueues.new()
  cq:wrap(main)
  assert(cq:loop())
end

function C.report(n, w0, c0)
  print(string.format("RESULT %.1f %.1f", (cqueues.monotime() - w0) * 1e9 / n,
                      (os.clock() - c0) * 1e9 / n))
end

function C.semaphore(n)
  local sem = { value = n, cond = condition.new() }
  function sem.acquire()
    while sem.value == 0 do sem.cond:wait() end
    sem.value = sem.value - 1
  end
  function sem.release()
    sem.value = sem.value + 1
    sem.cond:signal(1)
  end
  return sem
end

function C.queue(maxsize)
  local q = { h = 1, t = 0, notempty = condition.new(), notfull = condition.new() }
  function q.put(x)
    while q.t - q.h + 1 >= maxsize do q.notfull:wait() end
    q.t = q.t + 1
    q[q.t] = x
    q.notempty:signal(1)
  end
  function q.get()
    while q.t < q.h do q.notempty:wait() end
    local x = q[q.h]
    q[q.h] = nil
    q.h = q.h + 1
    q.notfull:signal(1)
    return x
  end
  return q
end

C.condition = condition

function C.rss()
  local f = assert(io.open("/proc/self/statm"))
  local _, res = f:read("n", "n")
  f:close()
  return res * 4096
end

return C

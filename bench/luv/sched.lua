-- A small coroutine scheduler on luv, the way one would write it by hand:
-- tasks are coroutines, a ready queue is drained in a check handle (an idle
-- handle keeps the poll from blocking while tasks are ready), sleeps are
-- one uv timer each; semaphore, event and a bounded queue hand off FIFO.
local uv = require "luv"

local S = {}
local ready, rhead, rtail = {}, 1, 0
local current
local idle = uv.new_idle()
local check = uv.new_check()
local idling = false

local function schedule(t, v)
  rtail = rtail + 1
  ready[rtail] = t
  t.wake = v
  if not idling then
    idling = true
    idle:start(function() end)
  end
end

local function step(t)
  current = t
  local ok, err = coroutine.resume(t.co, t.wake)
  current = nil
  if coroutine.status(t.co) == "dead" then
    if not ok then error(err, 0) end
    t.done, t.value = true, err
    local ws = t.waiters
    if ws then
      for i = 1, #ws do schedule(ws[i]) end
    end
  end
end

check:start(function()
  local last = rtail -- tasks made ready while draining wait for next turn
  while rhead <= last do
    local t = ready[rhead]
    ready[rhead] = nil
    rhead = rhead + 1
    step(t)
  end
  if rhead > rtail then
    rhead, rtail = 1, 0
    idling = false
    idle:stop()
  end
end)
check:unref()

local function fifo() return { h = 1, t = 0 } end
local function fpush(q, x) q.t = q.t + 1; q[q.t] = x end
local function fpop(q)
  local h = q.h
  if h > q.t then return nil end
  local x = q[h]
  q[h] = nil
  q.h = h + 1
  return x
end

function S.spawn(fn, ...)
  local args = table.pack(...)
  local t = {}
  t.co = coroutine.create(function() return fn(table.unpack(args, 1, args.n)) end)
  schedule(t)
  return t
end

-- spawn without varargs (the cheap path the workloads use)
function S.spawn0(fn)
  local t = { co = coroutine.create(fn) }
  schedule(t)
  return t
end

function S.await(t)
  if not t.done then
    local ws = t.waiters
    if not ws then ws = {}; t.waiters = ws end
    ws[#ws + 1] = current
    coroutine.yield()
  end
  return t.value
end

function S.gather(ts)
  local res = {}
  for i = 1, #ts do res[i] = S.await(ts[i]) end
  return res
end

function S.sleep(s)
  local t = current
  if s <= 0 then
    schedule(t)
  else
    local timer = uv.new_timer()
    timer:start(math.floor(s * 1000 + 0.5), 0, function()
      timer:close()
      schedule(t)
    end)
  end
  coroutine.yield()
end

function S.semaphore(n)
  local sem = { value = n, waiters = fifo() }
  function sem.acquire()
    if sem.value > 0 then
      sem.value = sem.value - 1
    else
      fpush(sem.waiters, current)
      coroutine.yield() -- handed a permit
    end
  end
  function sem.release()
    local w = fpop(sem.waiters)
    if w then schedule(w) else sem.value = sem.value + 1 end
  end
  return sem
end

function S.event()
  local ev = { set = false, waiters = fifo() }
  function ev.wait()
    if not ev.set then
      fpush(ev.waiters, current)
      coroutine.yield()
    end
  end
  return ev
end

function S.queue(maxsize)
  local q = { items = fifo(), getters = fifo(), putters = fifo(), n = 0 }
  function q.put(x)
    local g = fpop(q.getters)
    if g then return schedule(g, x) end
    if q.n < maxsize then
      q.n = q.n + 1
      return fpush(q.items, x)
    end
    fpush(q.putters, { current, x })
    coroutine.yield()
  end
  function q.get()
    if q.n > 0 then
      local x = fpop(q.items)
      local p = fpop(q.putters)
      if p then
        fpush(q.items, p[2])
        schedule(p[1])
      else
        q.n = q.n - 1
      end
      return x
    end
    fpush(q.getters, current)
    return coroutine.yield()
  end
  return q
end

S.now = uv.hrtime -- nanoseconds

function S.run(main)
  S.spawn0(main)
  uv.run()
end

function S.report(n, w0, c0)
  print(string.format("RESULT %.1f %.1f", (uv.hrtime() - w0) / n,
                      (os.clock() - c0) * 1e9 / n))
end

function S.rss()
  local f = assert(io.open("/proc/self/statm"))
  local _, res = f:read("n", "n")
  f:close()
  return res * 4096
end

return S

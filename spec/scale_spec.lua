-- Scale: many tasks, deep nesting, memory.  SEMANTICS.md "Known failure
-- modes" (waking 10k waiters by recursive resume, skynet#1180/#1418;
-- timers that leak, lua-lluv#9), "Timeouts" (Trio
-- test_very_deep_cancel_scope_nesting).  No wall-clock bounds: only
-- results, order, memory and CPU time relative to a baseline in the same
-- process.
local aio = require "luaio"
local S = require "support"
local run, SCALE, BIG = S.run, S.SCALE, S.BIG

local function is_cancelled(e) return aio.is_error(e, "CancelledError") end

local function kb()
  collectgarbage()
  collectgarbage()
  return collectgarbage("count")
end

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- Run a Lua script in a fresh process under the interpreter this spec file
-- runs under: the luaio command (host:) or stock lua5.4 (lua:).  A crash
-- there fails one spec instead of the whole file.
local function run_script(src)
  local cmd
  if aio.current_task() then
    cmd = quote(assert(os.getenv("LUAIO"), "LUAIO is not set"))
  else
    cmd = "LUA_CPATH=" .. quote(package.cpath) .. " lua5.4"
  end
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(src)
  f:close()
  local p = assert(io.popen(cmd .. " " .. quote(path) .. " 2>&1"))
  local out = p:read("a")
  local ok, how, code = p:close()
  os.remove(path)
  return out, ok, how, code
end

describe("100,000 tasks", function()
  it("sleeping on the same deadline are woken at once, none early",
     function()
    run(function()
      local n, woke, early = BIG, 0, 0
      local deadline = aio.time() + 0.2
      local ts = {}
      for i = 1, n do
        ts[i] = aio.spawn(function()
          aio.sleep(deadline - aio.time())
          if aio.time() < deadline - 1e-6 then early = early + 1 end
          woke = woke + 1
          return i
        end)
      end
      local sum = 0
      for i = 1, n do sum = sum + ts[i]:await() end
      assert.equal(n, woke)
      assert.equal(0, early)
      assert.equal(n * (n + 1) // 2, sum)
    end)
  end)

  it("awaiting one task all get its results", function()
    run(function()
      local n = BIG
      local target = aio.spawn(function() aio.sleep(0.01) return "r", 2 end)
      local ts, good = {}, 0
      for i = 1, n do
        ts[i] = aio.spawn(function()
          local a, b = target:await()
          if a == "r" and b == 2 then good = good + 1 end
        end)
      end
      for i = 1, n do ts[i]:await() end
      assert.equal(n, good)
    end)
  end)

  it("sleeping are all cancelled, each at its wait", function()
    run(function()
      local n, seen, after = BIG, 0, 0
      local ts = {}
      for i = 1, n do
        ts[i] = aio.spawn(function()
          local ok, e = pcall(aio.sleep, 100)
          if not ok and is_cancelled(e) then seen = seen + 1 end
          if ok then after = after + 1 end
          aio.sleep(100) -- raises again
          after = after + 1
        end)
      end
      aio.sleep(0.001)
      for i = 1, n do ts[i]:cancel() end
      local cancelled = 0
      for i = 1, n do
        pcall(ts[i].await, ts[i])
        if ts[i]:cancelled() then cancelled = cancelled + 1 end
      end
      assert.equal(n, seen)
      assert.equal(0, after)
      assert.equal(n, cancelled)
    end)
  end)
end)

describe("5,000 nested timeout scopes", function()
  local depth = 5000

  -- Trio test_very_deep_cancel_scope_nesting
  it("let a sleep(0) inside run and unwind cleanly", function()
    run(function()
      local function nest(n)
        if n == 0 then
          aio.sleep(0)
          return "bottom"
        end
        local _ <close> = aio.timeout(100)
        local r = nest(n - 1)
        return r
      end
      assert.equal("bottom", nest(depth))
      -- the task is left in no scope: a later cancel still reaches it
      local t = aio.spawn(function()
        nest(depth)
        aio.sleep(100)
      end)
      aio.sleep(0.01)
      t:cancel()
      local ok, e = pcall(t.await, t)
      assert.is_false(ok)
      assert.is_true(is_cancelled(e))
    end)
  end)

  it("the outermost expiring reaches the innermost wait and converts "
     .. "only there", function()
    run(function()
      local inner_saw, passed = nil, 0
      -- closes after the timeout scope declared below it: sees what left it
      local watch = {__close = function(_, e)
        if is_cancelled(e) then passed = passed + 1 end
      end}
      local function nest(n)
        if n == 0 then
          local ok, e = pcall(aio.sleep, 10)
          inner_saw = not ok and is_cancelled(e)
          error(e, 0)
        end
        local _w <close> = setmetatable({}, watch)
        local _ <close> = aio.timeout(100)
        nest(n - 1)
      end
      local outer
      local ok, e = pcall(function()
        outer = aio.timeout(0.02)
        local _ <close> = outer
        nest(depth)
      end)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "TimeoutError"), tostring(e))
      assert.is_true(inner_saw)
      assert.equal(depth, passed) -- every inner scope let it through as is
      assert.is_true(outer:expired())
    end)
  end)

  it("the innermost expiring raises TimeoutError through all the others",
     function()
    run(function()
      local function nest(n)
        if n == 0 then
          local _ <close> = aio.timeout(0.01)
          aio.sleep(10)
        end
        local _ <close> = aio.timeout(100)
        nest(n - 1)
      end
      local ok, e = pcall(nest, depth)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "TimeoutError"), tostring(e))
      assert.equal("v", aio.sleep(0, "v")) -- not left cancelled
    end)
  end)
end)

describe("a chain of 1,000 tasks each awaiting the next", function()
  local depth = 1000

  -- link(1) spawns link(2) and awaits it, …; the last one runs `last`.
  local function chain(last)
    local ts = {}
    local function link(i)
      if i == depth then return last() end
      ts[i + 1] = aio.spawn(link, i + 1)
      return ts[i + 1]:await()
    end
    ts[1] = aio.spawn(link, 1)
    return ts
  end

  it("returns the innermost results to the outermost", function()
    run(function()
      local ts = chain(function() aio.sleep(0.01) return "deep", nil, 3 end)
      assert.are.same({"deep", nil, 3, n = 3}, table.pack(ts[1]:await()))
      for i = 1, depth do assert.is_true(ts[i]:done()) end
    end)
  end)

  it("passes a cancel of the outermost down to the innermost wait",
     function()
    run(function()
      local reached = false
      local ts = chain(function()
        local ok, e = pcall(aio.sleep, 100)
        reached = not ok and is_cancelled(e)
        error(e, 0)
      end)
      while not ts[depth] do aio.sleep(0) end
      aio.sleep(0.001)
      ts[1]:cancel()
      local ok, e = pcall(ts[1].await, ts[1])
      assert.is_false(ok)
      assert.is_true(is_cancelled(e))
      assert.is_true(reached)
      for i = 1, depth do assert.is_true(ts[i]:cancelled()) end
    end)
  end)

  it("passes the innermost error unchanged", function()
    run(function()
      local err = {"deep"}
      local ts = chain(function() aio.sleep(0.01) error(err) end)
      local ok, e = pcall(ts[1].await, ts[1])
      assert.is_false(ok)
      assert.equal(err, e)
      for i = 1, depth do assert.equal(err, ts[i]:error()) end
    end)
  end)

  it("keeps failed tasks' reports in memory linear in depth", function()
    run(function()
      -- 300 links: enough to tell linear from quadratic without using
      -- hundreds of MB when it is quadratic
      local n, ts = 300, {}
      local function link(i)
        if i == n then aio.sleep(0.01) error({"deep"}) end
        ts[i + 1] = aio.spawn(link, i + 1)
        return ts[i + 1]:await()
      end
      local base = kb()
      ts[1] = aio.spawn(link, 1)
      pcall(ts[1].await, ts[1])
      -- 300 failed tasks and their reports: a few MB at most, not a report
      -- per task that copies the reports of the whole chain below it
      local grown = kb() - base
      assert.is_true(grown < 16 * 1024,
                     string.format("%.0f KB kept by %d failed tasks; the "
                                   .. "outermost report is %d bytes", grown,
                                   n, #ts[1]:traceback()))
    end)
  end)
end)

describe("many tasks awaiting one that fails", function()
  it("all get the same error, in memory linear in their number", function()
    run(function()
      local n, err = 1000, {"shared"}
      local base = kb()
      local target = aio.spawn(function() aio.sleep(0.01) error(err) end)
      local ts = {}
      for i = 1, n do ts[i] = aio.spawn(function() return target:await() end) end
      local same = 0
      for i = 1, n do
        local ok, e = pcall(ts[i].await, ts[i])
        if not ok and e == err then same = same + 1 end
      end
      assert.equal(n, same)
      local grown = kb() - base
      assert.is_true(grown < 16 * 1024,
                     string.format("%.0f KB kept by %d failed tasks; the "
                                   .. "report of one is %d bytes", grown, n,
                                   #ts[1]:traceback()))
    end)
  end)
end)

describe("memory", function()
  -- A burst of tasks of every kind: returning, sleeping on timers,
  -- cancelled, failing (retrieved), awaiting, inside timeouts and shields,
  -- waiting inside nested coroutines.
  local function burst(n)
    local ts = {}
    for i = 1, n do
      local k = i % 8
      ts[i] = aio.spawn(function()
        if k == 0 then
          return i
        elseif k == 1 then
          aio.sleep(0.001)
        elseif k == 2 then
          aio.sleep(100) -- cancelled below
        elseif k == 3 then
          aio.sleep(0)
          if i % 80 == 3 then error({i}) end -- 1 in 80 fails
        elseif k == 4 then
          local _ <close> = aio.timeout(100)
          aio.sleep(0)
        elseif k == 5 then
          aio.shield(function() aio.sleep(0) end)
        elseif k == 6 then
          return coroutine.wrap(function() aio.sleep(0) return i end)()
        else
          return ts[i - 1]:await()
        end
      end)
    end
    aio.sleep(0)
    for i = 2, n, 8 do ts[i]:cancel() end
    for i = 1, n do pcall(ts[i].await, ts[i]) end
  end

  it("returns after a burst of 50,000 finished tasks", function()
    run(function()
      local n = math.floor(50000 * SCALE)
      -- The threads a burst leaves idle go back to the collector once they
      -- sat idle for a whole trim period (500 ms): two periods after it.
      local function settle() aio.sleep(1.1) end
      burst(5000)
      settle()
      local base = kb()
      burst(n)
      local peak = kb() -- the burst's threads are still pooled
      settle()
      local after = kb()
      assert.is_true(after < peak, string.format(
        "%.0f KB with the burst's threads pooled, %.0f KB after", peak,
        after))
      assert.is_true(after <= 2 * base + 1024,
                     string.format("%.0f KB before, %.0f KB after", base,
                                   after))
      burst(n)
      settle()
      local again = kb()
      assert.is_true(again <= after + 1024,
                     string.format("%.0f KB after one burst, %.0f KB after "
                                   .. "two", after, again))
    end)
  end)
end)

describe("a chain of 100,000 tasks each awaiting the next", function()
  -- Cancelling the outermost must reach the innermost without recursing
  -- once per link on the C stack (as waking 10k waiters must not;
  -- skynet#1180).  Run in its own process: a stack overflow crashes it.
  it("passes a cancel of the outermost down to the innermost wait",
     function()
    local out, ok, how, code = run_script("local N = " .. BIG .. "\n" .. [[
local aio = require "luaio"
aio.run(function()
  local ts, reached = {}, false
  local function link(i)
    if i == N then
      local ok, e = pcall(aio.sleep, 100)
      reached = not ok and aio.is_error(e, "CancelledError")
      error(e, 0)
    end
    ts[i + 1] = aio.spawn(link, i + 1)
    return ts[i + 1]:await()
  end
  ts[1] = aio.spawn(link, 1)
  while not ts[N] do aio.sleep(0) end
  aio.sleep(0.001)
  ts[1]:cancel()
  local ok, e = pcall(ts[1].await, ts[1])
  print("cancelled:", not ok and aio.is_error(e, "CancelledError"),
        "reached:", reached, "innermost:", ts[N]:cancelled())
end)
]])
    assert.is_true(ok, string.format("the script ended by %s %s: %s",
                                     tostring(how), tostring(code), out))
    assert.matches("cancelled:%s+true%s+reached:%s+true%s+innermost:%s+true",
                   out)
  end)
end)

-- aio.gather and aio.first, and the example scripts that use them.
local aio = require "luaio"
local S = require "support"
local BIG, MANY, run = S.BIG, S.MANY, S.run

local function sleeper(s, ...)
  local v = table.pack(...)
  return function()
    aio.sleep(s)
    return table.unpack(v, 1, v.n)
  end
end

-- Run Lua code under the luaio command; returns its output (stderr
-- included) and whether it exited with status 0.
local function luaio_output(code)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(code)
  f:close()
  local p = assert(io.popen(os.getenv("LUAIO") .. " " .. path .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  os.remove(path)
  return out, ok
end

describe("aio.gather", function()
  -- GatherTestsBase: results in argument order, gather() returns at once.
  it("returns the first result of each, in argument order, nils kept",
     function()
    run(function()
      local r = aio.gather(sleeper(0.03, "a", "extra"), sleeper(0.01, nil),
                           sleeper(0.02, "c"))
      assert.equal(3, r.n)
      assert.are.same({n = 3, "a", nil, "c"}, r)
    end)
  end)

  it("returns at once for no arguments and an empty array", function()
    run(function()
      assert.are.same({n = 0}, aio.gather())
      assert.are.same({n = 0}, aio.gather({}))
      assert.are.same({n = 0}, aio.gather({n = 0}))
      local r, e = aio.gather({}, {return_errors = true})
      assert.are.same({n = 0}, r)
      assert.are.same({n = 0}, e)
    end)
  end)

  it("takes tasks, functions, callable tables, or one array of them",
     function()
    run(function()
      local t = aio.spawn(sleeper(0.01, "task"))
      local callable = setmetatable({}, {__call = function() return "call" end})
      local r = aio.gather(t, function() return "fn" end, callable)
      assert.are.same({n = 3, "task", "fn", "call"}, r)
      r = aio.gather({t, function() return 2 end})
      assert.are.same({n = 2, "task", 2}, r)
    end)
  end)

  it("uses the array's n field, so nil results of done tasks line up",
     function()
    run(function()
      local a = aio.spawn(function() return nil end)
      local b = aio.spawn(function() return 2 end)
      a:await(); b:await()
      local r = aio.gather({n = 2, a, b})
      assert.are.same({n = 2, nil, 2}, r)
    end)
  end)

  it("gives the same task twice its result twice", function()
    run(function()
      local t = aio.spawn(sleeper(0.01, 7))
      assert.are.same({n = 2, 7, 7}, aio.gather(t, t))
    end)
  end)

  -- test_one_exception, bpo-31452: the first error propagates at once and
  -- the siblings keep running.
  it("raises the first error as it is, siblings keep running", function()
    run(function()
      local e = setmetatable({}, {__tostring = function() return "mine" end})
      -- The siblings end only when told, so however late the loop comes
      -- round they are still running when gather raises.
      local go = aio.event()
      local slow = aio.spawn(function() go:wait() return "slow" end)
      local second = aio.spawn(function() go:wait() error("second") end)
      local ok, got = pcall(aio.gather, slow, function()
        aio.sleep(0.01)
        error(e)
      end, second)
      assert.is_false(ok)
      assert.equal(e, got)
      assert.is_false(slow:done())
      assert.is_false(second:done())
      go:set()
      assert.equal("slow", slow:await())
      assert.is_false(pcall(second.await, second))
      assert.matches("second", tostring(second:error()))
      assert.is_false(slow:cancelled())
    end)
  end)

  it("raises an error of a task that had already failed", function()
    run(function()
      local t = aio.spawn(function() error("early", 0) end)
      pcall(t.await, t)
      local ok, e = pcall(aio.gather, sleeper(0.01, 1), t)
      assert.is_false(ok)
      assert.equal("early", e)
    end)
  end)

  it("raises CancelledError when a child was cancelled", function()
    run(function()
      local t = aio.spawn(sleeper(1))
      local other = aio.spawn(sleeper(0.01, "x"))
      aio.spawn(function() aio.sleep(0) t:cancel() end)
      local ok, e = pcall(aio.gather, t, other)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "CancelledError"))
      assert.is_true(t:cancelled())
    end)
  end)

  -- test_return_exceptions: errors in place, waits for all.
  it("with return_errors returns results and errors indexed alike",
     function()
    run(function()
      local e = {}
      local cancelled = aio.spawn(sleeper(1))
      aio.spawn(function() aio.sleep(0) cancelled:cancel() end)
      local r, errs = aio.gather({
        sleeper(0.02, "a"),
        function() aio.sleep(0.01) error(e) end,
        cancelled,
        function() return nil end,
      }, {return_errors = true})
      assert.equal(4, r.n)
      assert.equal(4, errs.n)
      assert.equal("a", r[1])
      assert.is_nil(r[2])
      assert.equal(e, errs[2])
      assert.is_nil(r[3])
      assert.is_true(aio.is_error(errs[3], "CancelledError"))
      assert.is_nil(r[4])
      assert.is_nil(errs[1])
      assert.is_nil(errs[4])
    end)
  end)

  -- test_return_exceptions, bpo-32684: a cancel of the caller still
  -- propagates with return_errors.
  it("with return_errors still raises the caller's cancellation",
     function()
    run(function()
      local kids = {aio.spawn(sleeper(1)), aio.spawn(sleeper(1))}
      local g = aio.spawn(function()
        return aio.gather(kids, {return_errors = true})
      end)
      aio.sleep(0.01)
      assert.is_true(g:cancel())
      local ok, e = pcall(g.await, g)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "CancelledError"))
      assert.is_true(g:cancelled())
      aio.sleep(0)
      assert.is_true(kids[1]:cancelled())
      assert.is_true(kids[2]:cancelled())
    end)
  end)

  -- test_cancellation_broadcast, bpo-26923: cancelling the waiter cancels
  -- every unfinished child, and leaves the finished ones alone.
  it("cancels every unfinished child when the caller is cancelled",
     function()
    run(function()
      local done = aio.spawn(function() return "done" end)
      local a, b = aio.spawn(sleeper(1)), aio.spawn(sleeper(1))
      local g = aio.spawn(function() return aio.gather(done, a, b) end)
      aio.sleep(0.01)
      g:cancel()
      assert.is_true(aio.is_error(select(2, pcall(g.await, g)),
                                  "CancelledError"))
      aio.sleep(0)
      assert.is_true(a:cancelled())
      assert.is_true(b:cancelled())
      assert.is_false(done:cancelled())
      assert.equal("done", done:result())
    end)
  end)

  -- bpo-26923: after every child is done, a cancel changes nothing: the
  -- results stand and no child is cancelled; the cancel is delivered at
  -- the caller's next wait (level-triggered).
  it("returns its results when cancelled after all children finished",
     function()
    run(function()
      local a = aio.spawn(function() aio.sleep(0) return 1 end)
      local b = aio.spawn(function() aio.sleep(0) return 2 end)
      local got, after
      local g = aio.spawn(function()
        got = aio.gather(a, b)
        after = select(2, pcall(aio.sleep, 0))
      end)
      local cancelled
      aio.spawn(function() aio.sleep(0) cancelled = g:cancel() end)
      pcall(g.await, g)
      assert.is_true(cancelled)
      assert.are.same({n = 2, 1, 2}, got)
      assert.is_true(aio.is_error(after, "CancelledError"))
      assert.is_false(a:cancelled())
      assert.is_false(b:cancelled())
    end)
  end)

  it("raises at once, spawning nothing, when the caller is cancelled",
     function()
    run(function()
      local started = false
      local g = aio.spawn(function()
        pcall(aio.sleep, 1) -- swallowed: the task stays cancelled
        return aio.gather(function() started = true end)
      end)
      aio.sleep(0)
      g:cancel()
      local ok, e = pcall(g.await, g)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "CancelledError"))
      aio.sleep(0)
      assert.is_false(started)
    end)
  end)

  -- test_gather_shield: cancelling a gather of shields cancels the shields,
  -- not the tasks.
  it("of shields: cancelling it cancels the shields, not the tasks",
     function()
    run(function()
      local inner = aio.spawn(sleeper(0.03, "inner"))
      local g = aio.spawn(function()
        return aio.gather(function() return aio.shield(inner) end)
      end)
      aio.sleep(0.01)
      g:cancel()
      assert.is_false(pcall(g.await, g))
      assert.equal("inner", inner:await())
      assert.is_false(inner:cancelled())
    end)
  end)

  it("raises on bad arguments", function()
    run(function()
      local function fails(pattern, ...)
        local ok, e = pcall(aio.gather, ...)
        assert.is_false(ok)
        assert.matches(pattern, tostring(e))
      end
      fails("task or function", 1)
      fails("task or function", function() end, "x")
      fails("item 2 is a string", {function() end, "x"})
      fails("field 'n'", {n = "x"})
      fails("table expected", {}, 3)
      fails("item 1 is a nil", {n = 1})
      local ok, e = pcall(aio.gather, aio.current_task())
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "InvalidStateError"))
    end)
  end)

  it("refuses to wait outside a running loop", function()
    if aio.current_task() then return end -- under the luaio command
    local ok, e = pcall(aio.gather, function() end)
    assert.is_false(ok)
    assert.matches("no running event loop", e)
  end)

  it("gathers 10,000 tasks, and cancels 10,000", function()
    run(function()
      local fns = {}
      for i = 1, MANY do
        fns[i] = function() aio.sleep(0) return i end
      end
      local r = aio.gather(fns)
      assert.equal(MANY, r.n)
      for i = 1, MANY do assert.equal(i, r[i]) end
      local ts = {}
      for i = 1, MANY do ts[i] = aio.spawn(sleeper(10)) end
      local g = aio.spawn(function() return aio.gather(ts) end)
      aio.sleep(0.01)
      g:cancel()
      assert.is_false(pcall(g.await, g))
      aio.sleep(0)
      for i = 1, MANY do assert.is_true(ts[i]:cancelled()) end
    end)
  end)

  -- A child's error consumed by gather is not "never retrieved"; one that
  -- nobody saw still is.
  it("marks the errors it consumes retrieved", function()
    local out, ok = luaio_output([[
      local aio = require "luaio"
      aio.run(function()
        local r, e = aio.gather({function() error("consumed one") end},
                                {return_errors = true})
        pcall(aio.gather, function() error("consumed two") end)
        aio.spawn(function() error("nobody saw") end)
        aio.sleep(0.01)
      end)
      collectgarbage()
    ]])
    assert.truthy(ok)
    assert.matches("nobody saw", out)
    assert.not_matches("consumed", out)
  end)
end)

describe("aio.first", function()
  it("returns every result of the first task that succeeds", function()
    run(function()
      local a, b = aio.first(sleeper(0.03, "slow"), function()
        aio.sleep(0.01)
        return "fast", 2
      end)
      assert.equal("fast", a)
      assert.equal(2, b)
    end)
  end)

  it("skips failures, cancels the others and waits for nothing more",
     function()
    run(function()
      local cleaned = false
      local loser = aio.spawn(function()
        local ok = pcall(aio.sleep, 1)
        aio.shield(function() aio.sleep(0.02) end)
        cleaned = not ok
      end)
      local r = aio.first({function() error("no") end, loser,
                           sleeper(0.01, "win")})
      assert.equal("win", r)
      assert.is_false(cleaned)
      assert.is_false(loser:done())
      loser:await()
      assert.is_true(cleaned)
    end)
  end)

  it("returns a task that had already succeeded", function()
    run(function()
      local t = aio.spawn(function() return "ready" end)
      t:await()
      local other = aio.spawn(sleeper(1))
      assert.equal("ready", aio.first(other, t))
      aio.sleep(0)
      assert.is_true(other:cancelled())
    end)
  end)

  it("raises an ErrorGroup of every error, in argument order, if all fail",
     function()
    run(function()
      local e2 = {}
      local c = aio.spawn(sleeper(1))
      aio.spawn(function() aio.sleep(0) c:cancel() end)
      local ok, eg = pcall(aio.first, function()
        aio.sleep(0.02)
        error("one", 0)
      end, function() error(e2) end, c)
      assert.is_false(ok)
      assert.is_true(aio.is_error(eg, "ErrorGroup"))
      assert.matches("^ErrorGroup: all 3 tasks failed", tostring(eg))
      assert.equal(3, eg.errors.n)
      assert.equal("one", eg.errors[1])
      assert.equal(e2, eg.errors[2])
      assert.is_true(aio.is_error(eg.errors[3], "CancelledError"))
    end)
  end)

  it("cancels every child when the caller is cancelled", function()
    run(function()
      local a, b = aio.spawn(sleeper(1)), aio.spawn(sleeper(1))
      local g = aio.spawn(function() return aio.first(a, b) end)
      aio.sleep(0.01)
      g:cancel()
      local ok, e = pcall(g.await, g)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "CancelledError"))
      aio.sleep(0)
      assert.is_true(a:cancelled())
      assert.is_true(b:cancelled())
    end)
  end)

  it("raises on no arguments and bad ones", function()
    run(function()
      assert.is_false(pcall(aio.first))
      assert.is_false(pcall(aio.first, {}))
      assert.is_false(pcall(aio.first, 42))
      assert.is_false(pcall(aio.first, {function() end}, {}))
    end)
  end)

  it("does not report the failures it skipped", function()
    local out, ok = luaio_output([[
      local aio = require "luaio"
      aio.run(function()
        assert(aio.first(function() error("skipped") end,
                         function() aio.sleep(0.01) return 1 end) == 1)
      end)
      collectgarbage()
    ]])
    assert.truthy(ok)
    assert.not_matches("skipped", out)
  end)
end)

describe("example scripts", function()
  local function script(name)
    local p = assert(io.popen(os.getenv("LUAIO") .. " scripts/" .. name ..
                              " 2>&1"))
    local out = p:read("a")
    return out, p:close()
  end

  it("gather_fetch.lua fetches concurrently and keeps the order", function()
    local out, ok = script("gather_fetch.lua")
    assert.truthy(ok, out)
    assert.matches("https://example.org/a %-> 200 %(1200 bytes%)", out)
    assert.matches("https://example.org/missing %-> failed: 404", out)
    assert.matches("order kept: true", out)
    assert.matches("concurrent: true", out)
  end)

  it("spawn_vs_sequential.lua shows max-of against sum-of", function()
    local out, ok = script("spawn_vs_sequential.lua")
    assert.truthy(ok, out)
    assert.matches("sequential took at least the sum: true", out)
    assert.matches("concurrent took at least the longest: true", out)
    assert.matches("concurrent faster: true", out)
  end)
end)

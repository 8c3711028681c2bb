-- aio.wait and aio.as_completed.
local aio = require "luaio"
local S = require "support"
local run = S.run

local function sleeper(s, v)
  return function() aio.sleep(s) return v end
end

local function spawn_all(...)
  local ts = {}
  for i, s in ipairs({...}) do ts[i] = aio.spawn(sleeper(s, s)) end
  return ts
end

local function contains(list, x)
  for i = 1, list.n or #list do if list[i] == x then return true end end
  return false
end

describe("aio.wait", function()
  it("waits for all by default, cancelling nothing", function()
    run(function()
      local ts = spawn_all(0.02, 0.01, 0.03)
      local done, pending = aio.wait(ts)
      assert.equal(3, #done)
      assert.equal(3, done.n)
      assert.equal(0, #pending)
      assert.are.same(ts, {done[1], done[2], done[3]}) -- argument order
      for _, t in ipairs(ts) do assert.is_true(t:done()) end
    end)
  end)

  it("with return_when = \"first\" returns after the first", function()
    run(function()
      local ts = spawn_all(0.05, 0.01, 0.05)
      local done, pending = aio.wait(ts, {return_when = "first"})
      assert.are.same({n = 1, ts[2]}, done)
      assert.are.same({n = 2, ts[1], ts[3]}, pending)
      assert.is_false(ts[1]:done())
      assert.equal(0.05, ts[1]:await())
      assert.is_false(ts[1]:cancelled())
    end)
  end)

  it("with return_when = \"first_error\" returns at the first error",
     function()
    run(function()
      local bad = aio.spawn(function() aio.sleep(0.01) error("bad", 0) end)
      local slow = aio.spawn(sleeper(1))
      local done, pending = aio.wait({slow, bad},
                                     {return_when = "first_error"})
      assert.are.same({n = 1, bad}, done)
      assert.are.same({n = 1, slow}, pending)
      assert.equal("bad", bad:error())
      slow:cancel()
    end)
  end)

  it("with \"first_error\" waits for all when none fails, and does not "
     .. "count a cancelled task as an error", function()
    run(function()
      local c = aio.spawn(sleeper(1))
      aio.spawn(function() aio.sleep(0) c:cancel() end)
      local ts = spawn_all(0.02, 0.01)
      ts[3] = c
      local done, pending = aio.wait(ts, {return_when = "first_error"})
      assert.equal(3, #done)
      assert.equal(0, #pending)
    end)
  end)

  it("returns on timeout and cancels nothing", function()
    run(function()
      local ts = spawn_all(0.01, 0.2)
      local started = aio.time()
      local done, pending = aio.wait(ts, {timeout = 0.05})
      assert.is_true(aio.time() - started >= 0.05)
      assert.are.same({n = 1, ts[1]}, done)
      assert.are.same({n = 1, ts[2]}, pending)
      assert.is_false(ts[2]:done())
      assert.equal(0.2, ts[2]:await())
    end)
  end)

  it("with timeout 0 only looks", function()
    run(function()
      local t = aio.spawn(sleeper(0.01, 1))
      local d = aio.spawn(function() return 2 end)
      d:await()
      local done, pending = aio.wait({t, d}, {timeout = 0})
      assert.are.same({n = 1, d}, done)
      assert.are.same({n = 1, t}, pending)
      t:await()
    end)
  end)

  it("returns at once for an empty array and finished tasks", function()
    run(function()
      local done, pending = aio.wait({})
      assert.are.same({n = 0}, done)
      assert.are.same({n = 0}, pending)
      local t = aio.spawn(function() end)
      t:await()
      done, pending = aio.wait({t}, {return_when = "first"})
      assert.are.same({n = 1, t}, done)
      assert.are.same({n = 0}, pending)
    end)
  end)

  it("raises CancelledError when the caller is cancelled, and cancels "
     .. "no task", function()
    run(function()
      local ts = spawn_all(0.05, 0.05)
      local w = aio.spawn(function() return aio.wait(ts) end)
      aio.sleep(0.01)
      w:cancel()
      local ok, e = pcall(w.await, w)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "CancelledError"))
      assert.is_false(ts[1]:done())
      aio.wait(ts)
      assert.is_false(ts[1]:cancelled())
      assert.is_false(ts[2]:cancelled())
    end)
  end)

  it("raises again at every later wait once cancelled (level-triggered)",
     function()
    run(function()
      local ts = spawn_all(0.05)
      local seen = 0
      local w = aio.spawn(function()
        for _ = 1, 3 do
          local ok, e = pcall(aio.wait, ts, {timeout = 1})
          if not ok and aio.is_error(e, "CancelledError") then
            seen = seen + 1
          end
        end
      end)
      aio.sleep(0.01)
      w:cancel()
      w:await()
      assert.equal(3, seen)
    end)
  end)

  it("raises on bad arguments", function()
    run(function()
      local t = aio.spawn(function() end)
      local function fails(pattern, ...)
        local ok, e = pcall(aio.wait, ...)
        assert.is_false(ok)
        assert.matches(pattern, tostring(e))
      end
      fails("array of tasks expected", t)
      fails("array of tasks expected", nil)
      fails("item 1 is a function", {function() end})
      fails("invalid return_when 'some'", {t}, {return_when = "some"})
      fails("return_when must be", {t}, {return_when = 1})
      fails("timeout must be a number", {t}, {timeout = "soon"})
      fails("table expected", {t}, 5)
    end)
  end)
end)

describe("aio.as_completed", function()
  it("yields the tasks in completion order", function()
    run(function()
      local ts = spawn_all(0.03, 0.01, 0.02)
      local order = {}
      for t in aio.as_completed(ts) do
        assert.is_true(t:done())
        order[#order + 1] = t:result()
      end
      assert.are.same({0.01, 0.02, 0.03}, order)
    end)
  end)

  it("yields finished tasks first, and spawns functions", function()
    run(function()
      local d = aio.spawn(function() return "done" end)
      d:await()
      local got = {}
      for t in aio.as_completed({sleeper(0.01, "fn"), d}) do
        got[#got + 1] = t:result()
      end
      assert.are.same({"done", "fn"}, got)
    end)
  end)

  it("runs no step for an empty array", function()
    run(function()
      for _ in aio.as_completed({}) do error("not reached") end
    end)
  end)

  it("raises TimeoutError after the tasks that finished in time",
     function()
    run(function()
      local ts = spawn_all(0.01, 0.3)
      local got = {}
      local started = aio.time()
      local ok, e = pcall(function()
        for t in aio.as_completed(ts, {timeout = 0.05}) do
          got[#got + 1] = t
        end
      end)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "TimeoutError"))
      assert.is_true(aio.time() - started >= 0.05)
      assert.are.same({ts[1]}, got)
      assert.is_false(ts[2]:done()) -- not cancelled either
      ts[2]:cancel()
    end)
  end)

  it("keeps raising TimeoutError once timed out", function()
    run(function()
      local ts = spawn_all(0.3)
      local next_task = aio.as_completed(ts, {timeout = 0})
      for _ = 1, 2 do
        local ok, e = pcall(next_task)
        assert.is_false(ok)
        assert.is_true(aio.is_error(e, "TimeoutError"))
      end
      ts[1]:cancel()
    end)
  end)

  it("can be left with break; later completions are harmless", function()
    run(function()
      local ts = spawn_all(0.01, 0.02, 0.03)
      for t in aio.as_completed(ts, {timeout = 0.02}) do
        assert.equal(ts[1], t)
        break
      end
      collectgarbage()
      aio.wait(ts)
      aio.sleep(0.03) -- past the timeout too
      for _, t in ipairs(ts) do assert.is_false(t:cancelled()) end
    end)
  end)

  it("raises CancelledError when the caller is cancelled mid-loop",
     function()
    run(function()
      local ts = spawn_all(0.01, 0.5)
      local seen = {}
      local w = aio.spawn(function()
        for t in aio.as_completed(ts) do seen[#seen + 1] = t end
      end)
      aio.sleep(0.05)
      w:cancel()
      local ok, e = pcall(w.await, w)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "CancelledError"))
      assert.are.same({ts[1]}, seen)
      assert.is_false(ts[2]:done())
      ts[2]:cancel()
    end)
  end)

  it("raises on bad arguments", function()
    run(function()
      assert.is_false(pcall(aio.as_completed, aio.spawn(function() end)))
      assert.is_false(pcall(aio.as_completed, {1}))
      assert.is_false(pcall(aio.as_completed, {}, {timeout = "x"}))
    end)
  end)
end)

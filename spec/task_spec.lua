-- Tasks: spawning, awaiting, results and errors, names, callbacks.
local aio = require "luaio"
local S = require "support"
local BIG, MANY, run = S.BIG, S.MANY, S.run

describe("tasks", function()
  it("return every result of the function, nils included", function()
    run(function()
      local t = aio.spawn(function(a, b) return a, nil, b end, 1, 2)
      local x, y, z = t:await()
      assert.are.same({1, nil, 2}, {x, y, z})
      assert.is_true(t:done())
      assert.are.same({1, nil, 2}, {t:result()})
    end)
  end)

  it("get exactly the arguments given, nils and tables included", function()
    run(function()
      local function count(...) return select("#", ...), ... end
      local tbl = {n = 7}
      local many = {}
      for i = 1, 300 do many[i] = i end
      local cases = {
        {}, {nil}, {nil, nil}, {tbl}, {false}, {tbl, nil, 3}, many,
      }
      local ts = {}
      for i, args in ipairs(cases) do
        ts[i] = aio.spawn(count, table.unpack(args, 1, #args))
      end
      ts[2] = aio.spawn(count, nil)
      ts[3] = aio.spawn(count, nil, nil)
      ts[6] = aio.spawn(count, tbl, nil, 3)
      local want = {0, 1, 2, 1, 1, 3, 300}
      for i, t in ipairs(ts) do
        local r = {t:await()}
        assert.equal(want[i], r[1])
      end
      assert.equal(tbl, select(2, ts[4]:await()))
      assert.is_false(select(2, ts[5]:await()))
      assert.equal(3, select(4, ts[6]:await()))
      assert.equal(300, select(301, ts[7]:await()))
    end)
  end)

  it("start at the next turn, in spawn order", function()
    run(function()
      local order = {}
      local a = aio.spawn(function() order[#order + 1] = "a" end)
      local b = aio.spawn(function() order[#order + 1] = "b" end)
      order[#order + 1] = "main"
      a:await(); b:await()
      assert.are.same({"main", "a", "b"}, order)
    end)
  end)

  it("re-raise the same error value when awaited", function()
    run(function()
      local e = {"mine"}
      local t = aio.spawn(function() aio.sleep(0) error(e) end)
      local ok, got = pcall(t.await, t)
      assert.is_false(ok)
      assert.equal(e, got)
      assert.equal(e, t:error())
      assert.is_false(t:cancelled())
    end)
  end)

  it("raise InvalidStateError for result() before done", function()
    run(function()
      local t = aio.spawn(function() aio.sleep(0.01) end)
      local ok, e = pcall(t.result, t)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "InvalidStateError"))
      t:await()
    end)
  end)

  it("cannot await themselves", function()
    run(function()
      local ok, e = pcall(function() return aio.current_task():await() end)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "InvalidStateError"))
    end)
  end)

  it("have names and print what they are", function()
    run(function()
      local t = aio.spawn(function() aio.sleep(0) end)
      assert.matches("^Task%-%d+$", t:name())
      t:set_name("fetch")
      assert.equal("fetch", t:name())
      assert.matches('^<task %d+ "fetch" pending>$', tostring(t))
      t:await()
      assert.matches('^<task %d+ "fetch" done>$', tostring(t))
    end)
  end)

  it("call done callbacks once, with the task", function()
    run(function()
      local seen = {}
      local t = aio.spawn(function() return 1 end)
      t:add_done_callback(function(x) seen[#seen + 1] = x end)
      t:await()
      aio.sleep(0)
      assert.are.same({t}, seen)
      t:add_done_callback(function(x) seen[#seen + 1] = x end)
      assert.equal(2, #seen)
    end)
  end)

  it("are listed by all_tasks until done", function()
    run(function()
      local t = aio.spawn(function() aio.sleep(0.01) end)
      local found = false
      for _, x in ipairs(aio.all_tasks()) do found = found or x == t end
      assert.is_true(found)
      assert.equal(aio.current_task(), aio.current_task())
      t:await()
      for _, x in ipairs(aio.all_tasks()) do assert.are_not.equal(t, x) end
    end)
  end)

  it("keep a traceback with the failing line", function()
    run(function()
      local t = aio.spawn(function()
        aio.sleep(0)
        error("deep failure")
      end)
      pcall(t.await, t)
      local tb = t:traceback()
      assert.matches("deep failure", tb)
      assert.matches("task_spec.lua:%d+", tb)
      assert.matches("spawned at", tb)
    end)
  end)

  it("name each frame of the traceback as the calling code does", function()
    run(function()
      local function inner() error("boom") end
      local function deep(n)
        if n == 0 then inner() end
        return (deep(n - 1)) -- not a tail call: one frame a level
      end
      local t = aio.spawn(deep, 40)
      pcall(t.await, t)
      local tb = t:traceback()
      local lines = {}
      for line in tb:gmatch("[^\n]+") do lines[#lines + 1] = line end
      assert.equal("stack traceback:", lines[2])
      assert.equal("\t[C]: in function 'error'", lines[3])
      assert.matches("^\t[^\t]-task_spec%.lua:%d+: in upvalue 'inner'$",
                     lines[4])
      -- 43 frames: the first 10, a gap, the last 11.
      assert.truthy(tb:find("\n\t...\t(skipping 22 levels)\n", 1, true), tb)
      local frames =
        select(2, tb:gsub("\n\t[^\n]-task_spec%.lua:%d+: in ", ""))
      assert.equal(10 + 11 - 1, frames)
      -- The task's own C frame underneath is not shown.
      assert.is_nil(tb:find("in ?", 1, true))
    end)
  end)

  it("report a stack overflow in a short traceback", function()
    run(function()
      local function f(n) return 1 + f(n + 1) end
      local t = aio.spawn(f, 1)
      local ok, e = pcall(t.await, t)
      assert.is_false(ok)
      assert.matches("stack overflow", tostring(e))
      local tb = t:traceback()
      assert.matches("skipping %d+ levels", tb)
      assert.is_true(#tb < 4000, #tb)
    end)
  end)

  it("run 100,000 tasks", function()
    run(function()
      local n, ts = 0, {}
      for i = 1, BIG do ts[i] = aio.spawn(function() n = n + 1 return i end) end
      local sum = 0
      for i = 1, #ts do sum = sum + ts[i]:await() end
      assert.equal(BIG, n)
      assert.equal(BIG * (BIG + 1) // 2, sum)
    end)
  end)

  it("refuse to spawn outside a running loop", function()
    if aio.current_task() then return end -- under the luaio command
    local ok, e = pcall(aio.spawn, function() end)
    assert.is_false(ok)
    assert.matches("no running event loop", e)
  end)
end)

describe("aio.run", function()
  it("returns the results and raises the error of its function", function()
    assert.are.same({1, 2}, {aio.run(function(a) return a, 2 end, 1)})
    local e = setmetatable({}, {})
    local ok, got = pcall(aio.run, function() error(e) end)
    assert.is_false(ok)
    assert.equal(e, got)
  end)

  it("cancels the tasks left and waits for their cleanup, nested or not "
     .. "(issue 12, item 1)", function()
    local cleaned = false
    local t
    aio.run(function()
      t = aio.spawn(function()
        local ok = pcall(aio.sleep, 10)
        aio.shield(function() aio.sleep(0.01) end)
        cleaned = not ok
      end)
      aio.sleep(0)
    end)
    assert.is_true(cleaned)
    assert.is_true(t:done())
  end)

  it("nests: inside a task it runs the function as a task", function()
    assert.equal(6, aio.run(function()
      return aio.run(function(x) aio.sleep(0) return x * 2 end, 3)
    end))
  end)

  it("nested, leaves the caller's other tasks alone and cancels only the "
     .. "run's own, those they spawn included", function()
    aio.run(function()
      local mine = aio.spawn(aio.sleep, 0.05, "untouched")
      local inner, grandchild
      aio.run(function()
        inner = aio.spawn(function()
          grandchild = aio.spawn(aio.sleep, 10)
          aio.sleep(10)
        end)
        aio.sleep(0)
      end)
      assert.is_true(inner:cancelled())
      assert.is_true(grandchild:cancelled())
      assert.is_false(mine:done())
      assert.equal("untouched", mine:await())
    end)
  end)

  it("nested and cancelled, waits for its function's cleanup", function()
    aio.run(function()
      local order = {}
      local outer = aio.spawn(function()
        aio.run(function()
          local ok, err = pcall(aio.sleep, 10)
          aio.shield(function() aio.sleep(0.01) end)
          order[#order + 1] = "cleanup done"
          if not ok then error(err, 0) end
        end)
      end)
      aio.sleep(0.001)
      outer:cancel()
      S.assert_cancelled(outer)
      order[#order + 1] = "outer ended"
      assert.same({"cleanup done", "outer ended"}, order)
    end)
  end)
end)

describe("t:await() in a task that is cancelled (issue 12, item 1)", function()
  it("cancels t and waits until t has finished cancelling", function()
    run(function()
      local order = {}
      local inner = aio.spawn(function()
        local ok = pcall(aio.sleep, 10)
        aio.shield(function() aio.sleep(0.01) end)
        order[#order + 1] = "inner cleaned up"
        if not ok then error(aio.error("CancelledError", "gave up")) end
      end)
      local awaiter = aio.spawn(function() return inner:await() end)
      aio.sleep(0)
      awaiter:cancel()
      S.assert_cancelled(awaiter)
      order[#order + 1] = "awaiter ended"
      assert.same({"inner cleaned up", "awaiter ended"}, order)
      assert.is_true(inner:done())
    end)
  end)

  it("raises the awaiter's own cancellation, which its scopes catch",
     function()
    run(function()
      local inner = aio.spawn(aio.sleep, 10)
      local ok, err = pcall(function()
        local _ <close> = aio.timeout(0.01)
        inner:await()
      end)
      assert.is_false(ok)
      assert.is_true(aio.is_error(err, "TimeoutError"))
      assert.is_true(inner:cancelled())
    end)
  end)

  it("returns what t returned when t swallowed the cancellation; the "
     .. "awaiter's next wait raises", function()
    run(function()
      local awaiter = aio.spawn(function()
        local inner = aio.spawn(function()
          pcall(aio.sleep, 10)
          return 42
        end)
        local got = inner:await()
        local ok = pcall(aio.sleep, 0)
        return got, ok
      end)
      aio.sleep(0)
      aio.sleep(0)
      awaiter:cancel()
      local got, ok = awaiter:await()
      assert.equal(42, got)
      assert.is_false(ok)
    end)
  end)

  it("raises t's own error when t fails while cancelling", function()
    run(function()
      local awaiter = aio.spawn(function()
        local inner = aio.spawn(function()
          pcall(aio.sleep, 10)
          error("cleanup failed", 0)
        end)
        return inner:await()
      end)
      aio.sleep(0)
      aio.sleep(0)
      awaiter:cancel()
      local ok, err = pcall(awaiter.await, awaiter)
      assert.is_false(ok)
      assert.equal("cleanup failed", err)
    end)
  end)

  it("through aio.shield(t) does not cancel t, nor wait for it", function()
    run(function()
      local go = aio.event() -- inner ends when told, however slow the loop
      local inner = aio.spawn(function() go:wait() return "kept" end)
      local awaiter = aio.spawn(function() return aio.shield(inner) end)
      aio.sleep(0)
      awaiter:cancel()
      S.assert_cancelled(awaiter)
      assert.is_false(inner:done())
      go:set()
      assert.equal("kept", inner:await())
    end)
  end)
end)

describe("aio.sleep", function()
  it("does not return early and returns its value", function()
    run(function()
      local t0 = aio.time()
      assert.equal("v", aio.sleep(0.03, "v"))
      assert.equal(0, select("#", aio.sleep(0)))
      assert.equal(1, select("#", aio.sleep(0, nil)))
      assert.is_true(aio.time() - t0 >= 0.03)
    end)
  end)

  it("sleep(0) lets every other ready task run once, in order", function()
    run(function()
      local order = {}
      local ts = {}
      for i = 1, 3 do
        ts[i] = aio.spawn(function()
          for j = 1, 2 do order[#order + 1] = i * 10 + j; aio.sleep(0) end
        end)
      end
      for i = 1, 3 do ts[i]:await() end
      assert.are.same({11, 21, 31, 12, 22, 32}, order)
    end)
  end)

  it("wakes sleepers in deadline order", function()
    run(function()
      local order = {}
      local ts = {}
      for _, d in ipairs({0.03, 0.01, 0.02}) do
        ts[#ts + 1] = aio.spawn(function() aio.sleep(d) order[#order + 1] = d end)
      end
      for _, t in ipairs(ts) do t:await() end
      assert.are.same({0.01, 0.02, 0.03}, order)
    end)
  end)

  it("wakes thousands of timers in deadline order, none early", function()
    -- Deadlines spread over many milliseconds, several in each, made in an
    -- order unlike their own: each task reads its exact deadline from its
    -- timeout scope, and the wake order must follow it.
    run(function()
      math.randomseed(12)
      local woke, ts = {}, {}
      for i = 1, 3000 do
        local d = math.random(1, 4000) / 20000 -- up to 0.2 s in 50 us steps
        ts[i] = aio.spawn(function()
          local s <close> = aio.timeout(d)
          local due = s:when()
          pcall(aio.sleep, 10)
          woke[#woke + 1] = {due = due, at = aio.time(), i = i}
        end)
      end
      aio.gather(ts)
      assert.equal(3000, #woke)
      for k = 2, #woke do
        if woke[k].due < woke[k - 1].due then
          error(("task %d (due %.6f) woke after task %d (due %.6f)"):format(
            woke[k].i, woke[k].due, woke[k - 1].i, woke[k - 1].due))
        end
      end
      for _, w in ipairs(woke) do assert.is_true(w.at >= w.due) end
    end)
  end)

  it("keeps the other sleepers of a millisecond when some are cancelled", function()
    run(function()
      local woke, ts = {}, {}
      for i = 1, 200 do
        ts[i] = aio.spawn(function()
          local t0 = aio.time()
          aio.sleep(0.02)
          assert.is_true(aio.time() - t0 >= 0.02)
          woke[#woke + 1] = i
        end)
      end
      aio.sleep(0)
      for i = 1, 200, 2 do ts[i]:cancel() end
      for i = 1, 200 do pcall(ts[i].await, ts[i]) end
      assert.equal(100, #woke)
      for k, i in ipairs(woke) do assert.equal(2 * k, i) end
      for i = 1, 200, 2 do assert.is_true(ts[i]:cancelled()) end
    end)
  end)

  it("rejects a duration that is not a number", function()
    run(function()
      assert.has_error(function() aio.sleep("x") end)
      assert.has_error(function() aio.sleep(0 / 0) end)
    end)
  end)
end)

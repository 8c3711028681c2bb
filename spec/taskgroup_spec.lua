-- Task groups (CPython test_taskgroups, Trio nurseries).
local aio = require "luaio"
local S = require "support"
local BIG, MANY, run = S.BIG, S.MANY, S.run

local function errors_of(e)
  assert.is_true(aio.is_error(e, "ErrorGroup"), tostring(e))
  return e.errors
end

describe("aio.taskgroup", function()
  it("waits for every child at the end of the scope", function()
    run(function()
      local done = {}
      do
        local tg <close> = aio.taskgroup()
        for i = 1, 3 do
          tg:spawn(function() aio.sleep(0.01 * i) done[#done + 1] = i end)
        end
      end
      assert.are.same({1, 2, 3}, done)
    end)
  end)

  it("waits also for children spawned while it waits", function()
    run(function()
      local done = {}
      do
        local tg <close> = aio.taskgroup()
        tg:spawn(function()
          aio.sleep(0.01)
          tg:spawn(function() aio.sleep(0.01) done[#done + 1] = "late" end)
          done[#done + 1] = "first"
        end)
      end -- test_taskgroup_24/25
      assert.are.same({"first", "late"}, done)
    end)
  end)

  it("one child fails: siblings and body cancelled, real errors only", function()
    -- test_taskgroup_04, test_cancel_children_on_child_error
    run(function()
      local sibling, after = nil, false
      local boom = {"boom"}
      local ok, e = pcall(function()
        local tg <close> = aio.taskgroup()
        tg:spawn(function() aio.sleep(0.01) error(boom) end)
        tg:spawn(function()
          local ok2, e2 = pcall(aio.sleep, 10)
          sibling = e2
        end)
        aio.sleep(10)
        after = true
      end)
      assert.is_false(ok)
      local errs = errors_of(e)
      assert.equal(1, #errs)
      assert.equal(boom, errs[1])
      assert.is_true(aio.is_error(sibling, "CancelledError"))
      assert.is_false(after)
    end)
  end)

  it("a body that never waits does not run past a failure", function()
    run(function()
      local ok, e = pcall(function()
        local tg <close> = aio.taskgroup()
        tg:spawn(function() error("x") end)
      end)
      assert.is_false(ok)
      assert.equal(1, #errors_of(e))
    end)
  end)

  it("the body raises: children cancelled, its error in the group", function()
    -- test_taskgroup_09/10
    run(function()
      local child
      local mine = {"body"}
      local ok, e = pcall(function()
        local tg <close> = aio.taskgroup()
        tg:spawn(function() local _, ce = pcall(aio.sleep, 10) child = ce end)
        aio.sleep(0)
        error(mine)
      end)
      assert.is_false(ok)
      local errs = errors_of(e)
      assert.equal(mine, errs[1])
      assert.is_true(aio.is_error(child, "CancelledError"))
    end)
  end)

  it("a cancelled owner gets a plain CancelledError", function()
    -- test_taskgroup_07, gh-116720
    run(function()
      local child
      local t = aio.spawn(function()
        local tg <close> = aio.taskgroup()
        tg:spawn(function() local _, ce = pcall(aio.sleep, 10) child = ce end)
        aio.sleep(10)
      end)
      aio.sleep(0.01)
      t:cancel()
      local ok, e = pcall(t.await, t)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "CancelledError"))
      assert.is_true(aio.is_error(child, "CancelledError"))
      assert.is_true(t:cancelled())
    end)
  end)

  it("an owner cancelled while waiting at the exit cancels the children",
     function()
    run(function()
      local cleaned = false
      local t = aio.spawn(function()
        local tg <close> = aio.taskgroup()
        tg:spawn(function()
          local ok = pcall(aio.sleep, 10)
          aio.shield(function() aio.sleep(0.01) end)
          cleaned = not ok
        end)
      end)
      aio.sleep(0.01)
      t:cancel()
      local ok, e = pcall(t.await, t)
      assert.is_true(aio.is_error(e, "CancelledError"))
      assert.is_true(cleaned)
    end)
  end)

  it("collects a child's cleanup error raised while cancelled", function()
    -- test_taskgroup_18/19
    run(function()
      local ok, e = pcall(function()
        local tg <close> = aio.taskgroup()
        tg:spawn(function() aio.sleep(0.01) error("first") end)
        tg:spawn(function()
          local ok2 = pcall(aio.sleep, 10)
          error("cleanup")
        end)
      end)
      local errs = errors_of(e)
      assert.equal(2, #errs)
      assert.matches("first", errs[1])
      assert.matches("cleanup", errs[2])
    end)
  end)

  it("nests ErrorGroups; an outer failure cancels the inner group", function()
    -- test_taskgroup_13/14
    run(function()
      local inner_child
      local ok, e = pcall(function()
        local outer <close> = aio.taskgroup()
        outer:spawn(function()
          local inner <close> = aio.taskgroup()
          inner:spawn(function() aio.sleep(0.01) error("inner") end)
          aio.sleep(10)
        end)
      end)
      local errs = errors_of(e)
      assert.equal(1, #errs)
      local nested = errors_of(errs[1])
      assert.matches("inner", nested[1])

      ok, e = pcall(function()
        local outer <close> = aio.taskgroup()
        outer:spawn(function() aio.sleep(0.01) error("outer") end)
        outer:spawn(function()
          local inner <close> = aio.taskgroup()
          inner:spawn(function() local _, ce = pcall(aio.sleep, 10) inner_child = ce end)
          aio.sleep(10)
        end)
      end)
      errs = errors_of(e)
      assert.equal(1, #errs)
      assert.matches("outer", errs[1])
      assert.is_true(aio.is_error(inner_child, "CancelledError"))
    end)
  end)

  it("refuses spawns after a failure and after the end", function()
    -- test_taskgroup_no_create_task_after_failure
    run(function()
      local saved
      local late_ok, late_e
      pcall(function()
        local tg <close> = aio.taskgroup()
        saved = tg
        tg:spawn(function() error("x") end)
        aio.sleep(0.01)
      end)
      late_ok, late_e = pcall(saved.spawn, saved, function() end)
      assert.is_false(late_ok)
      assert.is_true(aio.is_error(late_e, "InvalidStateError"))
      local ok, e = pcall(function()
        local tg <close> = aio.taskgroup()
        tg:spawn(function() error("x") end)
        pcall(aio.sleep, 0.01)
        tg:spawn(function() end)
      end)
      assert.is_false(ok)
    end)
  end)

  it("does not leave the owner cancelled after a handled failure", function()
    -- test_cancellation_does_not_leak_out_of_tg
    run(function()
      pcall(function()
        local tg <close> = aio.taskgroup()
        tg:spawn(function() error("x") end)
        aio.sleep(10)
      end)
      assert.equal("fine", aio.sleep(0.001, "fine"))
      assert.is_false(aio.current_task():cancelled())
    end)
  end)

  it("starts a child spawned into a cancelled group, cancelled at its first wait",
     function() -- Trio test_precancelled_task
    run(function()
      local started, reached = false, false
      local t = aio.spawn(function()
        local tg <close> = aio.taskgroup()
        aio.current_task():cancel()
        tg:spawn(function() started = true aio.sleep(0) reached = true end)
      end)
      local ok, e = pcall(t.await, t)
      assert.is_true(aio.is_error(e, "CancelledError"))
      assert.is_true(started)
      assert.is_false(reached)
    end)
  end)

  it("works the same as a function, returning its results", function()
    run(function()
      local a, b = aio.taskgroup(function(tg)
        local t = tg:spawn(function() aio.sleep(0.01) return 5 end)
        return "body", t
      end)
      assert.equal("body", a)
      assert.equal(5, b:result())
      local ok, e = pcall(aio.taskgroup, function(tg)
        tg:spawn(function() error("fails") end)
      end)
      assert.equal(1, #errors_of(e))
    end)
  end)

  it("handles 10,000 children", function()
    run(function()
      local n = 0
      do
        local tg <close> = aio.taskgroup()
        for _ = 1, MANY do tg:spawn(function() aio.sleep(0) n = n + 1 end) end
      end
      assert.equal(MANY, n)
    end)
  end)
end)

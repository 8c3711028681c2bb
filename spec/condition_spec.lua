-- aio.condition([lock]): wait releases the lock and always re-acquires it,
-- also when cancelled; notifications are never lost to a cancellation.
local aio = require "luaio"
local S = require "support"
local BIG, MANY, run, waiting = S.BIG, S.MANY, S.run, S.waiting

local function assert_raises(type, fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok)
  assert.is_true(aio.is_error(e, type), tostring(e))
  return e
end

-- A task that waits on c once, holding the lock through <close>; it
-- reports whether wait returned, whether it held the lock right after,
-- and the error it raised, if any.
local function waiter(c, log, name)
  return aio.spawn(function()
    local _ <close> = c:acquire()
    local ok, e = pcall(c.wait, c)
    log[#log + 1] = name
    return ok, c:locked(), e
  end)
end

describe("aio.condition", function()
  it("acquire returns the condition; release and locked", function()
    run(function()
      local c = aio.condition()
      assert.is_false(c:locked())
      assert.equal(c, c:acquire())
      assert.is_true(c:locked())
      c:release()
      assert.is_false(c:locked())
      assert_raises("RuntimeError", c.release, c)
      do
        local _ <close> = c:acquire()
      end
      assert.is_false(c:locked())
    end)
  end)

  it("shares the lock it is given", function()
    run(function()
      local l = aio.lock()
      local c = aio.condition(l)
      l:acquire()
      assert.is_true(c:locked())
      c:release()
      assert.is_false(l:locked())
      assert.has_error(function() aio.condition(aio.event()) end)
      assert.has_error(function() aio.condition({}) end)
    end)
  end)

  it("raises RuntimeError for wait and notify without the lock", function()
    run(function()
      local c = aio.condition()
      assert_raises("RuntimeError", c.wait, c)
      assert_raises("RuntimeError", c.wait_for, c, function() end)
      assert_raises("RuntimeError", c.notify, c)
      assert_raises("RuntimeError", c.notify_all, c)
      assert.equal(0, waiting(c))
    end)
  end)

  it("wait releases the lock and holds it again when it returns",
     function()
    run(function()
      local c = aio.condition()
      local log = {}
      local t = waiter(c, log, "t")
      aio.sleep(0)
      assert.is_false(c:locked()) -- released while t waits
      assert.equal(1, waiting(c))
      c:acquire()
      assert.equal(1, c:notify())
      aio.sleep(0)
      aio.sleep(0)
      assert.are.same({}, log) -- notified, but the lock is still ours
      c:release()
      local ok, held = t:await()
      assert.is_true(ok)
      assert.is_true(held)
      assert.are.same({"t"}, log)
      assert.is_false(c:locked())
    end)
  end)

  it("notify(n) wakes n waiters in FIFO order; notify_all the rest",
     function()
    run(function()
      local c = aio.condition()
      local log, ts = {}, {}
      for i = 1, 5 do ts[i] = waiter(c, log, i) end
      aio.sleep(0)
      assert.equal(5, waiting(c))
      c:acquire()
      assert.equal(2, c:notify(2))
      assert.equal(3, waiting(c))
      c:release()
      ts[1]:await()
      ts[2]:await()
      assert.are.same({1, 2}, log)
      c:acquire()
      assert.equal(1, c:notify())
      assert.equal(2, c:notify_all())
      assert.equal(0, c:notify())
      c:release()
      for i = 3, 5 do ts[i]:await() end
      assert.are.same({1, 2, 3, 4, 5}, log)
    end)
  end)

  it("keeps notifications FIFO over many rounds", function()
    run(function()
      local c = aio.condition()
      local record, ts, stop = {}, {}, false
      for i = 1, 4 do
        ts[i] = aio.spawn(function()
          local _ <close> = c:acquire()
          while not stop do
            c:wait()
            record[#record + 1] = i
          end
        end)
      end
      aio.sleep(0)
      for _ = 1, 100 do
        c:acquire()
        c:notify()
        c:release()
        aio.sleep(0)
      end
      c:acquire()
      stop = true
      c:notify_all()
      c:release()
      for i = 1, 4 do ts[i]:await() end
      for k = 1, 100 do assert.equal((k - 1) % 4 + 1, record[k]) end
    end)
  end)

  it("wait raises CancelledError only after re-acquiring the lock",
     function()
    run(function()
      local c = aio.condition()
      local log = {}
      local t = waiter(c, log, "t")
      aio.sleep(0)
      c:acquire()
      t:cancel()
      aio.sleep(0)
      aio.sleep(0)
      assert.is_false(t:done()) -- it waits for the lock first
      assert.are.same({}, log)
      c:release()
      local ok, held, e = t:await()
      assert.is_false(ok)
      assert.is_true(held)
      assert.is_true(aio.is_error(e, "CancelledError"))
      assert.is_false(c:locked())
      assert.equal(0, waiting(c))
    end)
  end)

  it("raises at once in a cancelled task, keeping the lock", function()
    run(function()
      local c = aio.condition()
      local t = aio.spawn(function()
        local _ <close> = c:acquire()
        aio.current_task():cancel()
        local ok, e = pcall(c.wait, c)
        return ok, aio.is_error(e, "CancelledError"), c:locked()
      end)
      local ok, is_cancel, held = t:await()
      assert.is_false(ok)
      assert.is_true(is_cancel)
      assert.is_true(held)
      assert.is_false(c:locked())
      assert.equal(0, waiting(c))
    end)
  end)

  -- test_cancelled_wakeup; gh-112202.
  it("passes the notification on when a notified waiter is cancelled",
     function()
    run(function()
      local c = aio.condition()
      local log = {}
      local t1, t2 = waiter(c, log, 1), waiter(c, log, 2)
      aio.sleep(0)
      c:acquire()
      c:notify(1) -- wakes t1 ...
      t1:cancel() -- ... which is cancelled before it runs: t2 is woken
      assert.equal(0, waiting(c))
      c:release()
      local ok1, held1, e1 = t1:await()
      local ok2, held2 = t2:await()
      assert.is_false(ok1)
      assert.is_true(held1)
      assert.is_true(aio.is_error(e1, "CancelledError"))
      assert.is_true(ok2)
      assert.is_true(held2)
      assert.is_false(c:locked())
    end)
  end)

  -- bpo-32841; gh-112202.
  it("stays in line for the lock when cancelled while re-acquiring, and " ..
     "passes the notification on", function()
    run(function()
      local c = aio.condition()
      local log = {}
      local t1, t2 = waiter(c, log, 1), waiter(c, log, 2)
      aio.sleep(0)
      c:acquire()
      c:notify(1)
      aio.sleep(0) -- t1 runs and waits for the lock
      assert.matches("re%-acquiring", tostring(t1))
      t1:cancel() -- shielded: it keeps its place in the lock's line
      aio.sleep(0)
      assert.is_false(t1:done())
      assert.equal(1, waiting(c)) -- t2 still waits to be notified
      c:release() -- the lock goes to t1, which raises holding it
      local ok1, held1, e1 = t1:await()
      assert.is_false(ok1)
      assert.is_true(held1)
      assert.is_true(aio.is_error(e1, "CancelledError"))
      local ok2, held2 = t2:await() -- t1 passed the notification on
      assert.is_true(ok2)
      assert.is_true(held2)
      assert.are.same({1, 2}, log)
      assert.is_false(c:locked())
      assert.equal(0, waiting(c))
    end)
  end)

  it("never has two holders under random cancellations", function()
    run(function()
      math.randomseed(5)
      local c = aio.condition()
      local holders, most, items = 0, 0, 0
      local leave = setmetatable({}, {
        __close = function() holders = holders - 1 end})
      local function hold()
        holders = holders + 1
        most = math.max(most, holders)
      end
      local ts = {}
      for i = 1, 30 do
        ts[i] = aio.spawn(function()
          while true do
            local _ <close> = c:acquire()
            hold()
            local _ <close> = leave
            while items == 0 do
              holders = holders - 1
              local ok, e = pcall(c.wait, c)
              hold()
              if not ok then error(e, 0) end
            end
            items = items - 1
            aio.sleep(0)
          end
        end)
      end
      for _ = 1, 300 do
        do
          local _ <close> = c:acquire()
          hold()
          local _ <close> = leave
          items = items + 1
          c:notify()
        end
        if math.random() < 0.3 then ts[math.random(#ts)]:cancel() end
        if math.random() < 0.5 then aio.sleep(0) end
      end
      for i = 1, #ts do ts[i]:cancel() end
      for i = 1, #ts do pcall(ts[i].await, ts[i]) end
      assert.equal(1, most)
      assert.equal(0, holders)
      assert.is_false(c:locked())
      assert.equal(0, waiting(c))
    end)
  end)

  describe("wait_for", function()
    it("returns at once, keeping the lock, when pred is true", function()
      run(function()
        local c = aio.condition()
        c:acquire()
        assert.equal("yes", c:wait_for(function() return "yes" end))
        assert.is_true(c:locked())
        c:release()
      end)
    end)

    it("waits until pred returns a truthy value and returns it",
       function()
      run(function()
        local c = aio.condition()
        local box, calls = {}, 0
        local t = aio.spawn(function()
          local _ <close> = c:acquire()
          local v = c:wait_for(function()
            calls = calls + 1
            return box.value
          end)
          return v, c:locked()
        end)
        aio.sleep(0)
        for i = 1, 3 do
          c:acquire()
          if i == 3 then box.value = 42 end
          c:notify()
          c:release()
          aio.sleep(0)
        end
        local v, held = t:await()
        assert.equal(42, v)
        assert.is_true(held)
        assert.equal(4, calls)
      end)
    end)

    it("lets pred's error through, holding the lock", function()
      run(function()
        local c = aio.condition()
        c:acquire()
        local e = {}
        local ok, got = pcall(c.wait_for, c, function() error(e) end)
        assert.is_false(ok)
        assert.equal(e, got)
        assert.is_true(c:locked())
        assert.has_error(function() c:wait_for("nope") end)
        c:release()
      end)
    end)

    it("raises CancelledError holding the lock when cancelled", function()
      run(function()
        local c = aio.condition()
        local t = aio.spawn(function()
          local _ <close> = c:acquire()
          local ok, e = pcall(c.wait_for, c, function() return false end)
          return ok, aio.is_error(e, "CancelledError"), c:locked()
        end)
        aio.sleep(0)
        t:cancel()
        local ok, is_cancel, held = t:await()
        assert.is_false(ok)
        assert.is_true(is_cancel)
        assert.is_true(held)
        assert.is_false(c:locked())
      end)
    end)
  end)

  it("prints its state and refuses a wrong self", function()
    run(function()
      local c = aio.condition()
      local t = waiter(c, {}, "t")
      aio.sleep(0)
      assert.equal("<condition unlocked, 1 waiting>", tostring(c))
      assert.matches("in condition>$", tostring(t))
      c:acquire()
      assert.equal("<condition locked, 1 waiting>", tostring(c))
      c:notify()
      c:release()
      t:await()
      assert.equal("luaio.Condition", getmetatable(c).__name)
      assert.has_error(function() c.wait(aio.lock()) end)
      assert.has_error(function() c.notify({}) end)
    end)
  end)

  it("wakes 100,000 waiters with notify_all", function()
    run(function()
      local c = aio.condition()
      local n, ts = 0, {}
      for i = 1, BIG do
        ts[i] = aio.spawn(function()
          local _ <close> = c:acquire()
          c:wait()
          n = n + 1
        end)
      end
      aio.sleep(0)
      assert.equal(BIG, waiting(c))
      c:acquire()
      assert.equal(BIG, c:notify_all())
      c:release()
      for i = 1, #ts do ts[i]:await() end
      assert.equal(BIG, n)
      assert.is_false(c:locked())
    end)
  end)
end)

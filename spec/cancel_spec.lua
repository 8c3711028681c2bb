-- Cancellation: level-triggered (Trio) under asyncio's names.  API.md
-- "Tasks", DESIGN.md "Cancellation", SEMANTICS.md "Tasks and cancellation".
local aio = require "luaio"
local S = require "support"
local run = S.run

local function is_cancelled(e) return aio.is_error(e, "CancelledError") end

-- Let the other tasks run until `cond()` holds.
local function until_(cond)
  for _ = 1, 1000 do
    if cond() then return end
    aio.sleep(0)
  end
  error("condition never held", 2)
end

-- The error a task ended with (awaiting it).
local function failure(t)
  local ok, e = pcall(t.await, t)
  assert.is_false(ok, "the task did not fail")
  return e
end

describe("cancel", function()
  -- test_cancel_with_message_before_starting_task
  it("before the first run: the body never runs", function()
    run(function()
      local ran = false
      local t = aio.spawn(function() ran = true end)
      assert.is_true(t:cancel())
      local e = failure(t)
      assert.is_true(is_cancelled(e))
      assert.is_false(ran)
      assert.is_true(t:done())
      assert.is_true(t:cancelled())
      assert.is_false(t:cancel())
    end)
  end)

  it("before the first run keeps the message", function()
    run(function()
      local t = aio.spawn(function() end)
      t:cancel("too early")
      local e = failure(t)
      assert.is_true(is_cancelled(e))
      assert.equal("too early", e.message)
    end)
  end)

  -- test_cancel
  it("a sleeping task: cancelled() afterwards, cancel() false once done",
     function()
    run(function()
      local after = false
      local t = aio.spawn(function() aio.sleep(10) after = true end)
      aio.sleep(0)
      assert.is_false(t:cancelled())
      assert.is_true(t:cancel())
      assert.is_true(t:cancel()) -- still pending: true again
      assert.is_false(t:done())
      assert.is_true(is_cancelled(failure(t)))
      assert.is_true(t:cancelled())
      assert.is_false(after)
      assert.is_false(t:cancel())
      assert.is_false(t:cancel("again"))
      assert.is_true(is_cancelled(t:error()))
    end)
  end)

  -- test_cancel_task_catching
  it("caught, then return 42: result 42, not cancelled", function()
    run(function()
      local t = aio.spawn(function()
        local ok, e = pcall(aio.sleep, 10)
        assert(not ok and is_cancelled(e))
        return 42
      end)
      aio.sleep(0)
      t:cancel()
      assert.equal(42, t:await())
      assert.is_false(t:cancelled())
      assert.is_nil(t:error())
    end)
  end)

  -- test_cancel_task_ignoring; Trio test_cancel_edge_cases
  it("is level-triggered: every later wait raises again, in pcall too",
     function()
    run(function()
      local seen, reached = {}, false
      local t = aio.spawn(function()
        local function note(ok, e) seen[#seen + 1] = not ok and is_cancelled(e) end
        note(pcall(aio.sleep, 10))   -- the wait in progress
        note(pcall(aio.sleep, 10))   -- swallowed: the same wait raises again
        note(pcall(aio.sleep, 0))    -- and sleep(0)
        note(pcall(function()        -- inside nested pcalls
          local ok, e = pcall(aio.sleep, 10)
          note(ok, e)
          aio.sleep(10)
        end))
        local other = aio.spawn(function() aio.sleep(0.01) return 1 end)
        note(pcall(other.await, other)) -- an await
        aio.sleep(10)
        reached = true
      end)
      aio.sleep(0)
      t:cancel()
      assert.is_true(is_cancelled(failure(t)))
      assert.are.same({true, true, true, true, true, true}, seen)
      assert.is_false(reached)
      assert.is_true(t:cancelled())
    end)
  end)

  -- test_cancel_current_task
  it("a task cancelling itself raises at its next wait, at once", function()
    run(function()
      local other_ran = false
      local result
      local t = aio.spawn(function()
        aio.spawn(function() other_ran = true end)
        assert.is_true(aio.current_task():cancel())
        local ok, e = pcall(aio.sleep, 10)
        result = {ok, is_cancelled(e), other_ran}
        aio.sleep(0)
        result[4] = "not raised again"
      end)
      assert.is_true(is_cancelled(failure(t)))
      -- the wait raised without yielding: the other task had not run yet
      assert.are.same({false, true, false}, result)
      assert.is_true(t:cancelled())
    end)
  end)

  -- test_cancel_at_end
  it("a task cancelling itself and returning without a wait ends normally",
     function()
    run(function()
      local t = aio.spawn(function()
        aio.current_task():cancel()
        return "fine", 2
      end)
      assert.are.same({"fine", 2}, {t:await()})
      assert.is_false(t:cancelled())
      assert.is_nil(t:error())
    end)
  end)

  it("has the message given to cancel()", function()
    run(function()
      local t = aio.spawn(function() aio.sleep(10) end)
      aio.sleep(0)
      assert.is_true(t:cancel("why")) -- a boolean, as without a message
      local e = failure(t)
      assert.equal("why", e.message)
      assert.equal("CancelledError: why", tostring(e))
    end)
  end)

  it("raises a luaio CancelledError", function()
    run(function()
      local t = aio.spawn(function() aio.sleep(10) end)
      aio.sleep(0)
      t:cancel()
      local e = failure(t)
      assert.is_true(aio.is_error(e))
      assert.is_true(aio.is_error(e, "CancelledError"))
      assert.is_false(aio.is_error(e, "TimeoutError"))
      assert.equal("CancelledError", e.type)
      assert.equal("table", type(e))
      assert.matches("^CancelledError: ", tostring(e))
      assert.equal(e, t:error()) -- the same value each time
      assert.equal(e, failure(t))
    end)
  end)
end)

describe("cancellation reaches every kind of wait", function()
  -- Each body calls mark() just before it waits; the code after the wait
  -- must never run, and the task must end with the CancelledError.
  local kinds = {
    sleep = function(mark) mark(); aio.sleep(10) end,
    ["sleep(0)"] = function(mark) mark(); while true do aio.sleep(0) end end,
    await = function(mark)
      local inner = aio.spawn(function() aio.sleep(10) end)
      mark()
      inner:await()
    end,
    pcall = function(mark)
      mark()
      local ok, e = pcall(aio.sleep, 10)
      assert(not ok)
      error(e, 0)
    end,
    ["__close"] = function(mark)
      do
        local _ <close> = setmetatable({}, {__close = function()
          mark(); aio.sleep(10)
        end})
      end
    end,
    ["__index"] = function(mark)
      local p = setmetatable({}, {__index = function(_, k)
        mark(); aio.sleep(10); return k
      end})
      return p.x
    end,
    ["__lt"] = function(mark)
      local mt = {__lt = function() mark(); aio.sleep(10); return true end}
      local a, b = setmetatable({}, mt), setmetatable({}, mt)
      return a < b
    end,
    ["__concat"] = function(mark)
      local p = setmetatable({}, {__concat = function()
        mark(); aio.sleep(10); return "x"
      end})
      return p .. "y"
    end,
    ["coroutine.wrap"] = function(mark)
      coroutine.wrap(function() mark(); aio.sleep(10) end)()
    end,
    ["coroutine.resume"] = function(mark)
      local co = coroutine.create(function() mark(); aio.sleep(10) end)
      local ok, e = coroutine.resume(co)
      assert(not ok)
      assert(coroutine.status(co) == "dead")
      error(e, 0)
    end,
    ["a coroutine in a coroutine"] = function(mark)
      coroutine.wrap(function()
        coroutine.wrap(function() mark(); aio.sleep(10) end)()
      end)()
    end,
  }
  local names = {}
  for name in pairs(kinds) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    it(name, function()
      run(function()
        local waiting, after = false, false
        local t = aio.spawn(function()
          kinds[name](function() waiting = true end)
          after = true
        end)
        until_(function() return waiting end)
        aio.sleep(0.001)
        t:cancel(name)
        local e = failure(t)
        assert.is_true(is_cancelled(e), tostring(e))
        assert.equal(name, e.message)
        assert.is_false(after)
        assert.is_true(t:cancelled())
      end)
    end)
  end
end)

describe("cancelling a task inside scopes", function()
  -- DESIGN.md: a wait raises while any scope between the innermost one and
  -- the nearest shield is cancelled; timeouts and task groups are no
  -- shields, whatever the memory they get held before.
  local function dirty_memory(i)
    do
      local junk = {}
      for j = 1, 64 do junk[j] = string.rep("\255", 60 + j * 2) .. i end
    end
    collectgarbage()
  end

  it("reaches a wait inside timeout scopes and task groups, every time",
     function()
    run(function()
      local missed, n = 0, 40
      for i = 1, n do
        dirty_memory(i)
        local t = aio.spawn(function()
          local _a <close> = aio.timeout(100)
          local _g <close> = aio.taskgroup()
          local _b <close> = aio.timeout(100)
          aio.sleep(0.05)
        end)
        aio.sleep(0)
        t:cancel()
        local ok, e = pcall(t.await, t)
        if ok or not is_cancelled(e) then missed = missed + 1 end
      end
      assert.equal(0, missed, missed .. " of " .. n .. " cancels missed")
    end)
  end)

  it("an expired outer timeout reaches a wait inside inner timeouts",
     function()
    run(function()
      local missed, n = 0, 40
      for i = 1, n do
        dirty_memory(i)
        local ok, e = pcall(function()
          local _ <close> = aio.timeout(0.001)
          local _i <close> = aio.timeout(100)
          local _j <close> = aio.timeout(100)
          aio.sleep(0.05)
        end)
        if ok or not aio.is_error(e, "TimeoutError") then
          missed = missed + 1
        end
      end
      assert.equal(0, missed, missed .. " of " .. n .. " expiries missed")
    end)
  end)
end)

describe("cancelling an await", function()
  -- test_yield_future_passes_cancel; bpo-34872
  it("reaches the innermost wait of a chain of three tasks", function()
    run(function()
      local inner_saw
      local c = aio.spawn(function()
        local ok, e = pcall(aio.sleep, 10)
        inner_saw = not ok and is_cancelled(e)
        if not ok then error(e, 0) end
      end)
      local b = aio.spawn(function() return c:await() end)
      local a = aio.spawn(function() return b:await() end)
      aio.sleep(0.001)
      assert.is_true(a:cancel())
      assert.is_true(is_cancelled(failure(a)))
      assert.is_true(inner_saw)
      assert.is_true(a:cancelled())
      assert.is_true(b:cancelled())
      assert.is_true(c:cancelled())
    end)
  end)

  it("from a cancelled waiter cancels the awaited task", function()
    run(function()
      local target = aio.spawn(function() aio.sleep(10) end)
      local waiter = aio.spawn(function() return target:await() end)
      aio.sleep(0.001)
      waiter:cancel()
      assert.is_true(is_cancelled(failure(waiter)))
      assert.is_true(is_cancelled(failure(target)))
      assert.is_true(target:cancelled())
    end)
  end)
end)

describe("errors through await chains", function()
  local function chain(fn)
    local c = aio.spawn(function() aio.sleep(0) return fn() end)
    local b = aio.spawn(function() return c:await() end)
    local a = aio.spawn(function() return b:await() end)
    return a, b, c
  end

  it("keep the identity of a table error", function()
    run(function()
      local err = setmetatable({"mine"}, {})
      local a, b, c = chain(function() error(err) end)
      assert.equal(err, failure(a))
      assert.equal(err, b:error())
      assert.equal(err, c:error())
      assert.is_false(a:cancelled())
    end)
  end)

  it("keep a string error exactly, with its position", function()
    run(function()
      local expected
      local a, _, c = chain(function()
        local function fail() error("positioned") end
        local info = debug.getinfo(fail, "S")
        expected = info.short_src .. ":" .. info.linedefined .. ": positioned"
        fail()
      end)
      local e = failure(a)
      assert.equal(expected, e)
      assert.equal(e, c:error())
      local a2 = chain(function() error("bare", 0) end)
      assert.equal("bare", failure(a2))
    end)
  end)

  it("keep numbers, functions and booleans", function()
    run(function()
      local f = function() end
      assert.equal(42, failure((chain(function() error(42) end))))
      assert.equal(f, failure((chain(function() error(f) end))))
      assert.equal(false, failure((chain(function() error(false) end))))
    end)
  end)

  -- test_exception_traceback; bpo-28843
  it("report the failing line and every awaiting task", function()
    run(function()
      local line
      local c = aio.spawn(function()
        aio.sleep(0.001)
        line = debug.getinfo(1, "l").currentline; error("deep")
      end)
      c:set_name("innermost")
      local b = aio.spawn(function() return c:await() end)
      b:set_name("middle")
      local a = aio.spawn(function() return b:await() end)
      a:set_name("outer")
      failure(a)
      local tb = c:traceback()
      assert.matches("cancel_spec.lua:" .. line .. ": deep", tb, 1, true)
      assert.matches("task 'innermost'", tb, 1, true)
      assert.matches("awaited by task 'middle'", tb, 1, true)
      assert.matches("awaited by task 'outer'", tb, 1, true)
    end)
  end)
end)

describe("the end of aio.run", function()
  it("cancels every pending task and waits for their cleanup", function()
    if aio.current_task() then return end -- nested under the luaio command
    local log = {}
    local never, sleeper, closer, awaiter
    aio.run(function()
      sleeper = aio.spawn(function()
        local ok, e = pcall(aio.sleep, 10)
        log.sleeper = not ok and is_cancelled(e)
      end)
      closer = aio.spawn(function()
        local _ <close> = setmetatable({}, {__close = function(_, e)
          log.closer_err = is_cancelled(e)
          aio.shield(function() aio.sleep(0.02) end)
          log.closer = "cleaned"
        end})
        aio.sleep(10)
      end)
      awaiter = aio.spawn(function() return sleeper:await() end)
      aio.sleep(0.001)
      -- spawned last: it may or may not start (asyncio starts it) before
      -- the cancel, but its wait is cancelled either way
      never = aio.spawn(function() aio.sleep(10) log.never = "ran" end)
    end)
    assert.is_true(log.sleeper)
    assert.is_true(log.closer_err)
    assert.equal("cleaned", log.closer)
    assert.is_nil(log.never)
    for _, t in ipairs({never, sleeper, closer, awaiter}) do
      assert.is_true(t:done())
    end
    assert.is_true(never:cancelled())
    assert.is_true(closer:cancelled())
  end)
end)

describe("an error nobody retrieved", function()
  local script = [[
local aio = require "luaio"
aio.run(function()
  aio.spawn(function() aio.sleep(0) error("lost failure 7311") end)
  local seen = aio.spawn(function() aio.sleep(0) error("seen failure") end)
  local cancelled = aio.spawn(function() aio.sleep(10) end)
  aio.sleep(0.01)
  collectgarbage(); collectgarbage()
  pcall(seen.await, seen)
  cancelled:cancel()
  aio.sleep(0.01)
  collectgarbage(); collectgarbage()
end)
]]

  local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

  local function run_script(cmd)
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(script)
    f:close()
    local p = assert(io.popen(cmd .. " " .. quote(path) .. " 2>&1"))
    local out = p:read("a")
    p:close()
    os.remove(path)
    return out
  end

  local function count(s, pat)
    local n = 0
    for _ in s:gmatch(pat) do n = n + 1 end
    return n
  end

  local function check(out)
    assert.equal(1, count(out, "Task exception was never retrieved"), out)
    assert.equal(1, count(out, "lost failure 7311"), out)
    assert.matches("stack traceback", out)
    assert.matches("spawned at", out)
    assert.equal(0, count(out, "seen failure"), out)
    assert.equal(0, count(out, "CancelledError"), out)
  end

  it("is reported once, with its traceback, by the luaio command", function()
    local luaio = os.getenv("LUAIO")
    assert.is_not_nil(luaio, "LUAIO is not set")
    check(run_script(quote(luaio)))
  end)

  it("is reported once by a stock lua5.4 that loads the module", function()
    local out = run_script("LUA_CPATH=" .. quote(package.cpath) .. " lua5.4")
    if out:find("ASan runtime does not come first", 1, true) then
      pending("a sanitizer build's module cannot load into stock lua5.4")
      return
    end
    check(out)
  end)
end)

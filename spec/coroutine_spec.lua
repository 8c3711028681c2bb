-- Lua coroutines made by a task keep working inside it: a wait inside them
-- suspends the whole task and resumes them in place; plain yields go to
-- their resumer.  API.md "Tasks" (last paragraph), DESIGN.md "one way to
-- wait", SEMANTICS.md "Known failure modes" (yield across a C-call
-- boundary).
local aio = require "luaio"
local S = require "support"
local run = S.run

-- A task that counts turns of the loop while it lives.
local function ticker()
  local n = {count = 0, stop = false}
  n.task = aio.spawn(function()
    while not n.stop do n.count = n.count + 1; aio.sleep(0.001) end
  end)
  return n
end

describe("a wait inside a nested coroutine", function()
  it("suspends the whole task: a generator sleeping between yields",
     function()
    run(function()
      local tick = ticker()
      local gen = coroutine.wrap(function(first)
        local got = {first}
        for i = 1, 3 do
          aio.sleep(0.01)
          got[#got + 1] = coroutine.yield(i)
        end
        return "end", got
      end)
      local t0 = aio.time()
      local out = {gen("a")}
      out[#out + 1] = gen("b")
      out[#out + 1] = gen("c")
      local last, got = gen("d")
      out[#out + 1] = last
      assert.are.same({1, 2, 3, "end"}, out)
      assert.are.same({"a", "b", "c", "d"}, got)
      assert.is_true(aio.time() - t0 >= 0.03)
      assert.is_true(tick.count >= 2) -- other tasks ran while it slept
      tick.stop = true
      tick.task:await()
    end)
  end)

  it("works in iterators of a for loop", function()
    run(function()
      local function countdown(n)
        return coroutine.wrap(function()
          for i = n, 1, -1 do
            aio.sleep(0)
            coroutine.yield(i, i * i)
            aio.sleep(0.001)
          end
        end)
      end
      local seen = {}
      for i, sq in countdown(3) do seen[#seen + 1] = i .. ":" .. sq end
      assert.are.same({"3:9", "2:4", "1:1"}, seen)
      -- an iterator function that is no coroutine may wait too
      local k = 0
      local function waiting_iter()
        aio.sleep(0)
        k = k + 1
        if k <= 2 then return k end
      end
      seen = {}
      for v in waiting_iter do seen[#seen + 1] = v end
      assert.are.same({1, 2}, seen)
    end)
  end)

  it("resumes in place through coroutine.resume, values both ways",
     function()
    run(function()
      local co = coroutine.create(function(a)
        aio.sleep(0.001)
        local b, c = coroutine.yield(a + 1, nil, "x")
        aio.sleep(0)
        local d = coroutine.yield(b * c)
        aio.sleep(0.001)
        return d, "done"
      end)
      assert.are.same({true, 2, nil, "x", n = 4},
                      table.pack(coroutine.resume(co, 1)))
      assert.equal("suspended", coroutine.status(co))
      assert.are.same({true, 12}, {coroutine.resume(co, 3, 4)})
      assert.are.same({true, "last", "done"}, {coroutine.resume(co, "last")})
      assert.equal("dead", coroutine.status(co))
      assert.are.same({false, "cannot resume dead coroutine"},
                      {coroutine.resume(co)})
    end)
  end)

  it("works for a coroutine inside a coroutine inside a task", function()
    run(function()
      local log = {}
      local function add(v) log[#log + 1] = v end
      local outer = coroutine.wrap(function()
        local inner = coroutine.wrap(function()
          aio.sleep(0.001)
          add("inner slept")
          coroutine.yield("from inner")
          aio.sleep(0)
          return "inner done"
        end)
        add(inner())
        aio.sleep(0.001)
        coroutine.yield("from outer")
        add(inner())
        local ok, v = pcall(function() aio.sleep(0) return "pcall in outer" end)
        add(ok and v)
        return "outer done"
      end)
      add(outer())
      add(outer())
      assert.are.same({"inner slept", "from inner", "from outer",
                       "inner done", "pcall in outer", "outer done"}, log)
    end)
  end)

  it("keeps two tasks' coroutines apart", function()
    run(function()
      local function worker(tag, d)
        return aio.spawn(function()
          local gen = coroutine.wrap(function()
            for i = 1, 3 do aio.sleep(d) coroutine.yield(tag .. i) end
          end)
          return gen() .. gen() .. gen()
        end)
      end
      local a, b = worker("a", 0.002), worker("b", 0.003)
      assert.equal("a1a2a3", a:await())
      assert.equal("b1b2b3", b:await())
    end)
  end)

  it("can await a task and get its results", function()
    run(function()
      local t = aio.spawn(function() aio.sleep(0.001) return 1, 2 end)
      local co = coroutine.wrap(function() return t:await() end)
      assert.are.same({1, 2}, {co()})
    end)
  end)
end)

describe("errors inside nested coroutines", function()
  it("make resume return false and the error, after a wait too",
     function()
    run(function()
      local err = {}
      local co = coroutine.create(function() aio.sleep(0) error(err) end)
      local ok, e = coroutine.resume(co)
      assert.is_false(ok)
      assert.equal(err, e)
      assert.equal("dead", coroutine.status(co))
      local function fail() aio.sleep(0.001) error("bad") end
      local info = debug.getinfo(fail, "S")
      co = coroutine.create(fail)
      ok, e = coroutine.resume(co)
      assert.is_false(ok)
      assert.equal(info.short_src .. ":" .. info.linedefined .. ": bad", e)
    end)
  end)

  it("make wrap raise with the position, as the standard library does",
     function()
    run(function()
      local function fail() aio.sleep(0.001) error("bad") end
      local info = debug.getinfo(fail, "S")
      local f = coroutine.wrap(fail)
      local line
      local ok, e = pcall(function()
        line = debug.getinfo(1, "l").currentline; f()
      end)
      assert.is_false(ok)
      local where = info.short_src .. ":"
      assert.equal(where .. line .. ": " .. where .. info.linedefined ..
                   ": bad", e)
      -- a table error passes through unchanged
      local err = {}
      ok, e = pcall(coroutine.wrap(function() aio.sleep(0) error(err) end))
      assert.is_false(ok)
      assert.equal(err, e)
    end)
  end)

  it("do not disturb the task: it goes on waiting normally", function()
    run(function()
      pcall(coroutine.wrap(function() aio.sleep(0) error("x") end))
      local t0 = aio.time()
      aio.sleep(0.02)
      assert.is_true(aio.time() - t0 >= 0.02)
    end)
  end)
end)

describe("coroutine.yield", function()
  it("at a task's top level raises an error naming the mistake", function()
    run(function()
      local ok, e = pcall(coroutine.yield, 1)
      assert.is_false(ok)
      assert.matches("coroutine%.yield", tostring(e))
      assert.matches("aio%.sleep%(0%)", tostring(e))
      local t = aio.spawn(function() coroutine.yield("lost") end)
      ok, e = pcall(t.await, t)
      assert.is_false(ok)
      assert.matches("coroutine%.yield", tostring(e))
      -- the task goes on after the caught one
      assert.equal("v", aio.sleep(0, "v"))
    end)
  end)

  it("inside a pcall inside a nested coroutine still reaches the resumer",
     function()
    run(function()
      local co = coroutine.wrap(function()
        local ok, v = pcall(coroutine.yield, "out")
        aio.sleep(0)
        return ok, v
      end)
      assert.equal("out", co())
      assert.are.same({true, "in"}, {co("in")})
    end)
  end)
end)

describe("coroutine.isyieldable, running and status", function()
  it("behave as in stock Lua, across waits", function()
    run(function()
      local main, ismain = coroutine.running()
      assert.equal("thread", type(main))
      assert.is_false(ismain)
      assert.is_true(coroutine.isyieldable())
      assert.equal("running", coroutine.status(main))
      local co
      co = coroutine.create(function()
        local me = coroutine.running()
        local r = {me == co, coroutine.status(co), coroutine.status(main),
                   coroutine.isyieldable()}
        aio.sleep(0.001)
        r[#r + 1] = coroutine.running() == co
        r[#r + 1] = coroutine.status(co)
        r[#r + 1] = coroutine.status(main)
        return r
      end)
      assert.equal("suspended", coroutine.status(co))
      local ok, r = coroutine.resume(co)
      assert.is_true(ok)
      assert.are.same({true, "running", "normal", true,
                       true, "running", "normal"}, r)
      assert.equal("dead", coroutine.status(co))
      assert.equal(main, coroutine.running())
      local sorted_yieldable
      table.sort({2, 1}, function(a, b)
        sorted_yieldable = coroutine.isyieldable()
        return a < b
      end)
      assert.is_false(sorted_yieldable)
    end)
  end)
end)

describe("a wait where Lua cannot suspend", function()
  local function check_error(ok, e)
    assert.is_false(ok)
    assert.equal("string", type(e))
    assert.matches("cannot", e)
  end

  it("inside a table.sort comparator raises a clear error", function()
    run(function()
      check_error(pcall(table.sort, {3, 1, 2}, function(a, b)
        aio.sleep(0)
        return a < b
      end))
    end)
  end)

  it("inside a string.gsub callback raises a clear error", function()
    run(function()
      check_error(pcall(string.gsub, "abc", "%w", function(c)
        aio.sleep(0.01)
        return c
      end))
    end)
  end)

  it("inside a __gc metamethod raises a clear error", function()
    run(function()
      local res
      do
        setmetatable({}, {__gc = function() res = {pcall(aio.sleep, 0)} end})
      end
      collectgarbage(); collectgarbage()
      assert.is_not_nil(res, "the finalizer did not run")
      check_error(table.unpack(res))
    end)
  end)

  it("leaves the task able to wait normally afterwards", function()
    run(function()
      pcall(table.sort, {3, 1, 2}, function(a, b) aio.sleep(0) return a < b end)
      pcall(string.gsub, "abc", "%w", function() aio.sleep(0) end)
      local t0 = aio.time()
      aio.sleep(0.02)
      assert.is_true(aio.time() - t0 >= 0.02)
    end)
  end)

  -- The nested coroutine's wait is abandoned when its resumer cannot yield.
  it("inside a coroutine resumed from a comparator raises a clear error",
     function()
    run(function()
      local co = coroutine.wrap(function() aio.sleep(0.01) end)
      check_error(pcall(table.sort, {3, 1, 2}, function(a, b)
        co()
        return a < b
      end))
      local co2 = coroutine.create(function() aio.sleep(0.01) end)
      local ok, e
      string.gsub("a", "%w", function() ok, e = coroutine.resume(co2) end)
      check_error(ok, e)
    end)
  end)

  it("inside a coroutine resumed from a comparator leaves no stale "
     .. "wake-up: sleep(0)", function()
    run(function()
      local co = coroutine.wrap(function() aio.sleep(0) end)
      check_error(pcall(table.sort, {3, 1, 2}, function(a, b)
        co()
        return a < b
      end))
      -- the abandoned sleep(0) must not wake this later sleep early
      local t0 = aio.time()
      aio.sleep(0.05)
      assert.is_true(aio.time() - t0 >= 0.05, "sleep(0.05) returned early")
    end)
  end)

  it("inside a coroutine resumed from a comparator does not cancel the "
     .. "awaited task", function()
    run(function()
      local child = aio.spawn(function() aio.sleep(0.01) return "result" end)
      local co = coroutine.wrap(function() return child:await() end)
      check_error(pcall(table.sort, {3, 1, 2}, function(a, b)
        co()
        return a < b
      end))
      -- a failed attempt to wait has no effect on the task it waited for,
      -- just as when the comparator calls child:await() itself
      assert.equal("result", child:await())
      assert.is_false(child:cancelled())
    end)
  end)
end)

-- luaio.patterns.pool: leases, FIFO waiters, check on borrow, idle
-- timeout, discard, close; cancellation at every wait leaks nothing.
local aio = require "luaio"
local P = require "luaio.patterns"
local S = require "support"
local run, assert_cancelled = S.run, S.assert_cancelled
local until_, named = S.wait_until, S.named_tasks
local assert_raises = S.assert_raises

-- A factory of numbered resources that counts what it made and destroyed;
-- opts.create_wait makes create wait on an event, opts.fail_create fails.
local function factory(opts)
  opts = opts or {}
  local f = {made = 0, destroyed = {}, live = {}}
  f.create = function()
    if opts.gate then opts.gate:wait() end
    if opts.fail and opts.fail() then error("cannot connect", 0) end
    f.made = f.made + 1
    local r = {id = f.made}
    f.live[r] = true
    return r
  end
  f.destroy = function(r)
    assert.is_true(f.live[r], "destroyed twice or never made")
    f.live[r] = nil
    f.destroyed[#f.destroyed + 1] = r.id
  end
  f.nlive = function()
    local n = 0
    for _ in pairs(f.live) do n = n + 1 end
    return n
  end
  return f
end

local function new_pool(f, extra)
  local o = {create = f.create, destroy = f.destroy, max = 2}
  for k, v in pairs(extra or {}) do o[k] = v end
  return P.pool(o)
end

describe("pool", function()
  it("creates up to max, lends, and reuses the newest idle one", function()
    run(function()
      local f = factory()
      local p = new_pool(f)
      local r1, l1 = p:acquire()
      local r2, l2 = p:acquire()
      assert.same({1, 2}, {r1.id, r2.id})
      assert.same({open = 2, idle = 0, borrowed = 2, waiting = 0, max = 2},
                  p:stats())
      l1:close()
      l2:close()
      assert.equal(2, p:stats().idle)
      local r, _ <close> = p:acquire()
      assert.equal(r2, r) -- the most recently returned
      assert.equal(2, f.made)
      assert.matches("<pool 2/2 open, 1 idle, 1 borrowed, 0 waiting>",
                     tostring(p))
    end)
  end)

  it("a <close> lease returns the resource, also when an error unwinds",
     function()
    run(function()
      local f = factory()
      local seen = {}
      local p = new_pool(f, {reset = function(r, err)
        seen[#seen + 1] = {r.id, err}
      end})
      do
        local _, _ <close> = p:acquire()
      end
      local ok, e = pcall(function()
        local _, _ <close> = p:acquire()
        error("query failed", 0)
      end)
      assert.is_false(ok)
      assert.equal("query failed", e)
      assert.same({{1}, {1, "query failed"}}, seen)
      assert.same({open = 1, idle = 1, borrowed = 0, waiting = 0, max = 2},
                  p:stats())
      assert.equal(1, f.made)
    end)
  end)

  it("closing a lease twice is harmless; a closed lease cannot discard",
     function()
    run(function()
      local p = new_pool(factory())
      local _, l = p:acquire()
      assert.equal("<lease open>", tostring(l))
      l:close()
      l:close()
      assert.equal("<lease closed>", tostring(l))
      assert_raises("InvalidStateError", l.discard, l)
      assert.equal(1, p:stats().idle)
    end)
  end)

  it("serves waiters first come, first served, by hand-off", function()
    run(function()
      local f = factory()
      local p = new_pool(f, {max = 1})
      local r, lease = p:acquire()
      local order = {}
      local ts = {}
      for i = 1, 5 do
        ts[i] = aio.spawn(function()
          local x, _ <close> = p:acquire()
          order[#order + 1] = i
          assert.equal(r, x)
          aio.sleep(0)
        end)
      end
      until_(function() return p:stats().waiting == 5 end)
      lease:close()
      -- handed to the first waiter: a newcomer cannot barge in
      assert.equal(0, p:stats().idle)
      local late = aio.spawn(function()
        local _, _ <close> = p:acquire()
        order[#order + 1] = "late"
      end)
      for i = 1, 5 do ts[i]:await() end
      late:await()
      assert.same({1, 2, 3, 4, 5, "late"}, order)
      assert.equal(1, f.made)
    end)
  end)

  it("discard destroys the resource and frees its slot", function()
    run(function()
      local f = factory()
      local p = new_pool(f, {max = 1})
      local r, lease = p:acquire()
      local waiter = aio.spawn(function()
        local x, _ <close> = p:acquire()
        return x.id
      end)
      until_(function() return p:stats().waiting == 1 end)
      lease:discard()
      assert.equal("<lease discarded>", tostring(lease))
      lease:close()
      assert.same({r.id}, f.destroyed)
      assert.equal(2, waiter:await()) -- the waiter made a new one
      assert.same({open = 1, idle = 1, borrowed = 0, waiting = 0, max = 1},
                  p:stats())
    end)
  end)

  it("checks an idle resource on borrow, and replaces a broken one",
     function()
    run(function()
      local f = factory()
      local checks = {}
      local broken = {}
      local p = new_pool(f, {check = function(r, idle)
        assert.is_true(idle >= 0)
        checks[#checks + 1] = r.id
        aio.sleep(0) -- a check may wait (a ping)
        if broken[r.id] then return false end
      end})
      local r1, l1 = p:acquire()
      local r2, l2 = p:acquire()
      assert.same({}, checks) -- new ones are not checked
      l1:close()
      l2:close()
      broken[r2.id] = true
      local r, l = p:acquire()
      assert.equal(r1, r) -- r2 failed its check and was destroyed
      assert.same({2, 1}, checks)
      assert.same({2}, f.destroyed)
      broken[r1.id] = true
      l:close()
      local r3, _ <close> = p:acquire() -- r1 broken too: a new one
      assert.equal(3, r3.id)
      assert.same({2, 1}, f.destroyed)
      assert.same({open = 1, idle = 0, borrowed = 1, waiting = 0, max = 2},
                  p:stats())
    end)
  end)

  it("a check that raises counts as broken", function()
    run(function()
      local f = factory()
      local p = new_pool(f, {check = function() error("ping failed") end})
      local _, l = p:acquire()
      l:close()
      local r, _ <close> = p:acquire()
      assert.equal(2, r.id)
      assert.same({1}, f.destroyed)
    end)
  end)

  it("a resource handed straight to a waiter is not checked", function()
    run(function()
      local checked = 0
      local p = new_pool(factory(), {max = 1, check = function()
        checked = checked + 1
      end})
      local _, lease = p:acquire()
      local t = aio.spawn(function()
        local _, _ <close> = p:acquire()
      end)
      until_(function() return p:stats().waiting == 1 end)
      lease:close()
      t:await()
      assert.equal(0, checked)
    end)
  end)

  it("a create that fails raises, frees its slot, wakes the next waiter",
     function()
    run(function()
      local attempts = 0
      local gate = aio.event()
      local f = factory({gate = gate, fail = function()
        attempts = attempts + 1
        return attempts == 1 -- only the first attempt fails
      end})
      local p = new_pool(f, {max = 1})
      local a = aio.spawn(function() return p:acquire() end)
      local b = aio.spawn(function()
        local r, _ <close> = p:acquire()
        return r.id
      end)
      until_(function() return p:stats().waiting == 1 end)
      gate:set()
      local ok, e = pcall(a.await, a)
      assert.is_false(ok)
      assert.equal("cannot connect", e)
      assert.equal(1, b:await())
      assert.same({open = 1, idle = 1, borrowed = 0, waiting = 0, max = 1},
                  p:stats())
    end)
  end)

  it("a create returning nothing is an error and frees the slot", function()
    run(function()
      local p = P.pool{create = function() end, max = 1}
      assert.has_error(function() p:acquire() end,
                       "pool: create returned no resource")
      assert.equal(0, p:stats().open)
    end)
  end)

  it("a create that is cancelled frees its slot for the next waiter",
     function()
    run(function()
      local gate = aio.event()
      local f = factory({gate = gate})
      local p = new_pool(f, {max = 1})
      local a = aio.spawn(function() return p:acquire() end)
      local b = aio.spawn(function()
        local r, _ <close> = p:acquire()
        return r.id
      end)
      until_(function() return p:stats().waiting == 1 end)
      a:cancel()
      assert_cancelled(a)
      gate:set()
      assert.equal(1, b:await())
      assert.equal(1, f.made)
      assert.same({open = 1, idle = 1, borrowed = 0, waiting = 0, max = 1},
                  p:stats())
    end)
  end)

  it("a waiter cancelled in line leaves no trace", function()
    run(function()
      local f = factory()
      local p = new_pool(f, {max = 1})
      local _, lease = p:acquire()
      local ts = {}
      for i = 1, 10 do ts[i] = aio.spawn(function() return p:acquire() end) end
      until_(function() return p:stats().waiting == 10 end)
      for i = 1, 10, 2 do ts[i]:cancel() end
      for i = 1, 10, 2 do assert_cancelled(ts[i]) end
      assert.equal(5, p:stats().waiting)
      for i = 2, 10, 2 do
        lease:close()
        local _, l = ts[i]:await()
        lease = l
      end
      lease:close()
      assert.same({open = 1, idle = 1, borrowed = 0, waiting = 0, max = 1},
                  p:stats())
    end)
  end)

  it("a waiter cancelled after the hand-off passes the resource on",
     function()
    run(function()
      local f = factory()
      local p = new_pool(f, {max = 1})
      local r, lease = p:acquire()
      local a = aio.spawn(function() return p:acquire() end)
      local b = aio.spawn(function()
        local x, _ <close> = p:acquire()
        return x
      end)
      until_(function() return p:stats().waiting == 2 end)
      lease:close() -- handed to a ...
      a:cancel()    -- ... which is cancelled before it runs
      assert_cancelled(a)
      assert.equal(r, b:await())
      assert.same({open = 1, idle = 1, borrowed = 0, waiting = 0, max = 1},
                  p:stats())
      assert.equal(1, f.made)
    end)
  end)

  it("a waiter cancelled after a slot was freed for it passes it on",
     function()
    run(function()
      local f = factory()
      local p = new_pool(f, {max = 1})
      local _, lease = p:acquire()
      local a = aio.spawn(function() return p:acquire() end)
      local b = aio.spawn(function()
        local x, _ <close> = p:acquire()
        return x.id
      end)
      until_(function() return p:stats().waiting == 2 end)
      lease:discard()
      lease:close() -- a slot for a ...
      a:cancel()
      assert_cancelled(a)
      assert.equal(2, b:await()) -- ... which b used
      assert.equal(1, p:stats().open)
    end)
  end)

  it("an acquire cancelled while it checks destroys the resource", function()
    run(function()
      local f = factory()
      local in_check = aio.event()
      local p = new_pool(f, {check = function()
        in_check:set()
        aio.sleep(math.huge)
      end})
      local _, l = p:acquire()
      l:close()
      local t = aio.spawn(function() return p:acquire() end)
      in_check:wait()
      t:cancel()
      assert_cancelled(t)
      assert.same({1}, f.destroyed)
      assert.same({open = 0, idle = 0, borrowed = 0, waiting = 0, max = 2},
                  p:stats())
    end)
  end)

  it("a timeout around acquire leaves the pool whole", function()
    run(function()
      local f = factory()
      local p = new_pool(f, {max = 1})
      local _, lease = p:acquire()
      local ok, e = pcall(function()
        local _ <close> = aio.timeout(0.01)
        return p:acquire()
      end)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "TimeoutError"))
      assert.equal(0, p:stats().waiting)
      lease:close()
      local _, _ <close> = p:acquire()
    end)
  end)

  it("destroys resources idle past idle_timeout, and then stops", function()
    run(function()
      local f = factory()
      local gone = aio.event()
      local when
      local p = new_pool(f, {idle_timeout = 0.02, destroy = function(r)
        f.destroy(r)
        when = aio.time()
        gone:set()
      end})
      local _, l = p:acquire()
      local t0 = aio.time()
      assert.equal(0, named("pool reaper"))
      l:close()
      assert.equal(1, named("pool reaper"))
      gone:wait()
      assert.is_true(when - t0 >= 0.02)
      assert.same({open = 0, idle = 0, borrowed = 0, waiting = 0, max = 2},
                  p:stats())
      until_(function() return named("pool reaper") == 0 end) -- it ended
      local r, l2 = p:acquire()
      assert.equal(2, r.id)
      l2:close()
      p:close()
    end)
  end)

  it("keeps resources that are used within idle_timeout", function()
    run(function()
      local f = factory()
      local p = new_pool(f, {idle_timeout = 1000})
      for _ = 1, 5 do
        local _, _ <close> = p:acquire()
        aio.sleep(0.001)
      end
      assert.equal(1, f.made)
      assert.equal(1, named("pool reaper"))
      p:close() -- and close ends the reaper
      until_(function() return named("pool reaper") == 0 end)
    end)
  end)

  it("reset that returns false or raises destroys the resource", function()
    run(function()
      local f = factory()
      local errors = {}
      local n = 0
      local p = new_pool(f, {
        reset = function()
          n = n + 1
          if n == 1 then return false end
          error("reset failed", 0)
        end,
        on_error = function(e, what)
          errors[#errors + 1] = what .. ": " .. e
        end,
      })
      for _ = 1, 2 do
        local _, _ <close> = p:acquire()
      end
      assert.same({1, 2}, f.destroyed)
      assert.same({"reset: reset failed"}, errors)
      assert.equal(0, p:stats().open)
    end)
  end)

  it("a destroy that raises is reported, and the slot is freed", function()
    run(function()
      local errors = {}
      local p = P.pool{create = function() return {} end, max = 1,
                       destroy = function() error("close failed", 0) end,
                       on_error = function(e, what)
                         errors[#errors + 1] = what .. ": " .. e
                       end}
      local _, l = p:acquire()
      l:discard()
      l:close()
      assert.same({"destroy: close failed"}, errors)
      assert.equal(0, p:stats().open)
    end)
  end)

  it("close waits for lent resources and destroys them all", function()
    run(function()
      local f = factory()
      local p = new_pool(f, {max = 3})
      local _, l1 = p:acquire()
      local _, l2 = p:acquire()
      l2:close() -- one idle
      local closed = aio.spawn(function() return p:close() end)
      aio.sleep(0)
      assert.same({2}, f.destroyed) -- the idle one at once
      assert.is_false(closed:done()) -- waits for the lent one
      l1:close()
      assert.is_true(closed:await())
      assert.same({2, 1}, f.destroyed)
      assert.equal(0, f.nlive())
      assert_raises("InvalidStateError", p.acquire, p)
      assert.is_true(p:close()) -- again: harmless
      assert.matches("closed>$", tostring(p))
    end)
  end)

  it("close wakes the waiters with an error", function()
    run(function()
      local p = new_pool(factory(), {max = 1})
      local done = aio.event()
      local other = aio.spawn(function()
        local _, l = p:acquire()
        done:wait()
        l:close()
      end)
      until_(function() return p:stats().borrowed == 1 end)
      local w = aio.spawn(function() return p:acquire() end)
      until_(function() return p:stats().waiting == 1 end)
      local closer = aio.spawn(function() return p:close() end)
      local e = assert_raises("InvalidStateError", w.await, w)
      assert.matches("pool is closed", tostring(e))
      done:set()
      other:await()
      assert.is_true(closer:await())
    end)
  end)

  it("close at its deadline cancels the holders and returns false",
     function()
    run(function()
      local f = factory()
      local p = new_pool(f)
      local holder = aio.spawn(function()
        local _, _ <close> = p:acquire()
        aio.sleep(math.huge)
      end)
      until_(function() return p:stats().borrowed == 1 end)
      assert.is_false(p:close(0.01))
      assert_cancelled(holder)
      assert.equal(0, f.nlive())
      assert.equal(0, p:stats().open)
    end)
  end)

  it("close cancelled from outside cancels the holders too", function()
    run(function()
      local f = factory()
      local p = new_pool(f)
      local holder = aio.spawn(function()
        local _, _ <close> = p:acquire()
        aio.sleep(math.huge)
      end)
      until_(function() return p:stats().borrowed == 1 end)
      local closer = aio.spawn(function() return p:close() end)
      aio.sleep(0)
      closer:cancel()
      assert_cancelled(closer)
      assert_cancelled(holder)
      assert.equal(0, f.nlive())
    end)
  end)

  it("close reclaims a lease whose task ended without closing it",
     function()
    run(function()
      local f = factory()
      local p = new_pool(f)
      aio.spawn(function() p:acquire() end):await() -- lease forgotten
      assert.equal(1, p:stats().borrowed)
      assert.is_true(p:close())
      assert.equal(0, f.nlive())
    end)
  end)

  it("close by a task holding a lease raises instead of waiting forever",
     function()
    run(function()
      local p = new_pool(factory())
      local _, l = p:acquire()
      local e = assert_raises("InvalidStateError", p.close, p)
      assert.matches("holds one of its leases", tostring(e))
      l:close()
      assert.is_true(p:close())
    end)
  end)

  it("a resource made while the pool closes is destroyed", function()
    run(function()
      local gate = aio.event()
      local f = factory({gate = gate})
      local p = new_pool(f)
      local a = aio.spawn(function() return p:acquire() end)
      until_(function() return p:stats().open == 1 end)
      local closer = aio.spawn(function() return p:close() end)
      aio.sleep(0)
      gate:set()
      assert_raises("InvalidStateError", a.await, a)
      assert.is_true(closer:await())
      assert.equal(1, f.made)
      assert.equal(0, f.nlive())
    end)
  end)

  it("never lends more than max under random cancellation", function()
    run(function()
      local f = factory()
      local p = new_pool(f, {max = 3, check = function()
        if math.random() < 0.1 then aio.sleep(0) end
        return math.random() > 0.05
      end})
      local lent, most, out = 0, 0, {}
      local tasks = {}
      for i = 1, 300 * S.SCALE // 1 + 20 do
        tasks[i] = aio.spawn(function()
          local r, l <close> = p:acquire()
          assert.is_true(f.live[r])
          assert.is_nil(out[r]) -- never lent twice at once
          out[r] = true
          lent = lent + 1
          most = math.max(most, lent)
          local _ <close> = setmetatable({}, {__close = function()
            out[r] = nil
            lent = lent - 1
          end})
          if math.random() < 0.2 then l:discard() end
          aio.sleep(0)
        end)
        if math.random() < 0.3 then
          local victim = tasks[math.random(#tasks)]
          victim:cancel()
        end
        if i % 7 == 0 then aio.sleep(0) end
      end
      for _, t in ipairs(tasks) do pcall(t.await, t) end
      assert.is_true(most <= 3)
      local st = p:stats()
      assert.equal(0, st.borrowed)
      assert.equal(0, st.waiting)
      assert.equal(st.idle, st.open)
      assert.equal(st.open, f.nlive())
      assert.is_true(p:close())
      assert.equal(0, f.nlive())
    end)
  end)

  it("checks its options and its self", function()
    run(function()
      assert.has_error(function() P.pool() end,
        "bad argument #1 to 'luaio.patterns.pool' (table expected, got nil)")
      assert.has_error(function() P.pool{create = print, maxx = 1} end,
        "bad argument #1 to 'luaio.patterns.pool' (unknown option 'maxx')")
      assert.has_error(function() P.pool{} end,
        "bad argument #1 to 'luaio.patterns.pool' " ..
        "(option 'create' must be a function)")
      assert.has_error(function() P.pool{create = print, max = 0} end)
      assert.has_error(function() P.pool{create = print, max = 1.5} end)
      assert.has_error(function() P.pool{create = print, idle_timeout = 0} end)
      local p = P.pool{create = print}
      assert.has_error(function() p.acquire({}) end,
        "bad argument #1 to 'pool:acquire' (luaio.Pool expected)")
    end)
  end)
end)

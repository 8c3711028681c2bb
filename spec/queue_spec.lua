-- Queues: FIFO, LIFO and priority order, maxsize, the nowait errors,
-- hand-off to waiters, cancellation at every wait point, task_done/join,
-- shutdown, iter, and many waiters.  Regression specs name the CPython test
-- or bug they come from (SEMANTICS.md, "Queue").
local aio = require "luaio"
local S = require "support"
local BIG, MANY, run = S.BIG, S.MANY, S.run

-- The luaio error type raised by fn(...), or nil if it did not raise.
local function raised(fn, ...)
  local ok, e = pcall(fn, ...)
  if ok then return nil end
  return aio.is_error(e) and e.type or tostring(e)
end

-- Drain q with get_nowait into an array (n set, nil items kept).
local function drain(q)
  local out = {n = 0}
  while not q:empty() do
    out.n = out.n + 1
    out[out.n] = q:get_nowait()
  end
  return out
end

-- A task that waits in q:get() and returns what it got.
local function getter(q) return aio.spawn(function() return q:get() end) end

describe("aio.queue", function()
  -- test_order
  it("gives items back first in, first out, nil items included", function()
    run(function()
      local q = aio.queue()
      for _, v in ipairs({1, 3, 2}) do q:put(v) end
      q:put(nil)
      q:put(false)
      assert.equal(5, q:qsize())
      assert.are.same({1, 3, 2, nil, false, n = 5}, drain(q))
      assert.is_true(q:empty())
    end)
  end)

  it("keeps the order while it grows, wraps and shrinks", function()
    run(function()
      local q = aio.queue()
      local want, got, nextin = {}, {}, 1
      for round = 1, 2000 do
        q:put(nextin); want[#want + 1] = nextin; nextin = nextin + 1
        if round % 3 == 0 then got[#got + 1] = q:get() end
      end
      while not q:empty() do got[#got + 1] = q:get() end
      assert.are.same(want, got)
      for i = 1, 5000 do q:put(i) end
      for i = 1, 5000 do assert.equal(i, q:get()) end
      assert.equal(0, q:qsize())
    end)
  end)

  it("keeps the order through many fills and drains while bounded",
     function()
    run(function()
      -- Sizes below and above the slots a bounded queue keeps (1024).
      for _, size in ipairs({1, 7, 8, 100, 3000}) do
        local q, n = aio.queue(size), 5 * size + 3
        local p = aio.spawn(function()
          for i = 1, n do q:put(i) end
        end)
        local wrong = 0 -- counted, not asserted per item: cheap under gc:
        for i = 1, n do
          if q:get() ~= i then wrong = wrong + 1 end
        end
        p:await()
        -- Filled and drained without waiting, wrapping at other offsets.
        for round = 1, 3 do
          for i = 1, size do q:put_nowait(round * i) end
          assert.is_true(q:full())
          for i = 1, size do
            if q:get_nowait() ~= round * i then wrong = wrong + 1 end
          end
          q:put_nowait("x")
          assert.equal("x", q:get_nowait())
        end
        assert.equal(0, wrong)
        assert.equal(0, q:qsize())
      end
    end)
  end)

  -- test_maxsize
  it("makes put wait while full", function()
    run(function()
      local q = aio.queue(2)
      assert.equal(2, q:maxsize())
      local done = 0
      local p = aio.spawn(function()
        for i = 1, 3 do q:put(i); done = done + 1 end
      end)
      aio.sleep(0)
      assert.equal(2, done)
      assert.is_true(q:full())
      assert.matches("1 putter waiting", tostring(q))
      assert.equal(1, q:get()) -- moves the putter's item in
      assert.equal(2, q:qsize())
      aio.sleep(0)
      assert.equal(3, done)
      p:await()
      assert.are.same({2, 3, n = 2}, drain(q))
    end)
  end)

  it("is unbounded with maxsize 0 or none", function()
    run(function()
      for _, q in ipairs({aio.queue(), aio.queue(0)}) do
        assert.equal(0, q:maxsize())
        for i = 1, 1000 do q:put_nowait(i) end
        assert.is_false(q:full())
        assert.equal(1000, q:qsize())
      end
    end)
  end)

  -- test_nonblocking_get_exception, test_nonblocking_put_exception
  it("raises QueueEmpty and QueueFull from the nowait variants", function()
    run(function()
      local q = aio.queue(1)
      assert.equal("QueueEmpty", raised(q.get_nowait, q))
      q:put_nowait("a")
      assert.equal("QueueFull", raised(q.put_nowait, q, "b"))
      assert.equal(1, q:qsize())
      assert.equal("a", q:get_nowait())
      local ok, e = pcall(q.get_nowait, q)
      assert.is_false(ok)
      assert.matches("^QueueEmpty: ", tostring(e))
    end)
  end)

  it("wakes waiting getters in the order they came (FIFO)", function()
    run(function()
      local q = aio.queue()
      local ts = {}
      for i = 1, 5 do ts[i] = getter(q) end
      aio.sleep(0)
      assert.matches("5 getters waiting", tostring(q))
      for i = 1, 5 do q:put(i * 10) end
      for i = 1, 5 do assert.equal(i * 10, ts[i]:await()) end
    end)
  end)

  it("wakes waiting putters in the order they came (FIFO)", function()
    run(function()
      local q = aio.queue(1)
      q:put(0)
      local ts = {}
      for i = 1, 5 do ts[i] = aio.spawn(function() q:put(i) end) end
      aio.sleep(0)
      local got = {}
      for i = 1, 6 do got[i] = q:get() end
      assert.are.same({0, 1, 2, 3, 4, 5}, got)
    end)
  end)

  it("lets no task that did not wait take a waiter's item or slot", function()
    run(function()
      local q = aio.queue(1)
      local g = getter(q)
      aio.sleep(0)
      q:put("for g")
      -- The item went to g, not into the queue.
      assert.equal("QueueEmpty", raised(q.get_nowait, q))
      assert.equal("for g", g:await())
      q:put("x")
      local p = aio.spawn(function() q:put("from p") end)
      aio.sleep(0)
      assert.equal("x", q:get_nowait())
      -- The freed slot went to p's item.
      assert.equal("QueueFull", raised(q.put_nowait, q, "barging"))
      p:await()
      assert.equal("from p", q:get_nowait())
    end)
  end)

  it("works from inside a coroutine of the task", function()
    run(function()
      local q = aio.queue(1)
      local gen = coroutine.wrap(function()
        coroutine.yield(q:get())
        q:put("b"); q:put("c") -- the second put waits
        coroutine.yield("put")
      end)
      aio.spawn(function() aio.sleep(0) q:put("a") end)
      assert.equal("a", gen())
      local t = aio.spawn(function() return gen() end)
      aio.sleep(0)
      assert.equal("b", q:get())
      assert.equal("put", t:await())
      assert.equal("c", q:get())
    end)
  end)

  it("prints its size, bound, waiters and state", function()
    run(function()
      local q = aio.queue(10)
      for i = 1, 3 do q:put(i) end
      assert.equal("<queue 3/10>", tostring(q))
      assert.equal("<queue 0>", tostring(aio.queue()))
      local e = aio.queue()
      local g = getter(e)
      aio.sleep(0)
      assert.equal("<queue 0, 1 getter waiting>", tostring(e))
      e:shutdown()
      assert.equal("<queue 0, shut down>", tostring(e))
      pcall(g.await, g)
      assert.equal("<lifo_queue 0>", tostring(aio.lifo_queue()))
      assert.equal("<priority_queue 0/2>", tostring(aio.priority_queue(2)))
    end)
  end)

  it("raises clear errors on a wrong self and bad arguments", function()
    run(function()
      local q = aio.queue()
      for _, m in ipairs({"put", "get", "put_nowait", "get_nowait", "qsize",
                          "empty", "full", "task_done", "join", "shutdown",
                          "iter"}) do
        local ok, e = pcall(q[m], {}, 1)
        assert.is_false(ok)
        assert.matches("luaio.Queue expected, got table", e)
      end
      assert.matches("luaio.Queue expected, got FILE%*",
                     select(2, pcall(q.get, io.stdout)))
      local t = aio.spawn(function() end)
      assert.matches("luaio.Queue expected",
                     select(2, pcall(q.put, t, 1)))
      t:await()
      assert.matches("luaio.Queue expected",
                     select(2, pcall(getmetatable(q).__tostring, {})))
      assert.matches("maxsize must not be negative",
                     select(2, pcall(aio.queue, -1)))
      assert.matches("number has no integer representation",
                     select(2, pcall(aio.queue, 1.5)))
      assert.matches("value expected", select(2, pcall(q.put, q)))
      assert.matches("only a priority queue takes a priority",
                     select(2, pcall(q.put, q, "x", 1)))
      assert.equal(0, q:qsize())
      q:put("y", nil) -- a nil priority is none
      assert.equal("y", q:get("ignored"))
      assert.equal(nil, q.nosuchfield)
    end)
  end)
end)

describe("aio.lifo_queue", function()
  it("gives items back last in, first out", function()
    run(function()
      local q = aio.lifo_queue()
      for i = 1, 100 do q:put(i) end
      q:put(nil)
      assert.equal(nil, q:get())
      for i = 100, 1, -1 do assert.equal(i, q:get()) end
      assert.is_true(q:empty())
    end)
  end)

  it("moves a waiting putter's item onto the top", function()
    run(function()
      local q = aio.lifo_queue(2)
      q:put(1); q:put(2)
      local p = aio.spawn(function() q:put(3) end)
      aio.sleep(0)
      assert.equal(2, q:get())
      p:await()
      assert.equal(3, q:get())
      assert.equal(1, q:get())
    end)
  end)
  it("keeps the order through many fills and drains while bounded",
     function()
    run(function()
      for _, size in ipairs({1, 8, 100, 3000}) do
        local q, wrong = aio.lifo_queue(size), 0
        for round = 1, 3 do
          for i = 1, size do q:put(round * i) end
          for i = size, 1, -1 do
            if q:get() ~= round * i then wrong = wrong + 1 end
          end
        end
        assert.equal(0, wrong)
        assert.equal(0, q:qsize())
      end
    end)
  end)
end)

describe("aio.priority_queue", function()
  it("gives the lowest priority first, FIFO among equals", function()
    run(function()
      local q = aio.priority_queue()
      local input = {{"a", 5}, {"b", 1}, {"c", 3}, {"d", 1}, {"e", -2},
                     {"f", 3}, {"g", 1.5}, {"h", 5}}
      for _, p in ipairs(input) do q:put(p[1], p[2]) end
      assert.are.same({"e", "b", "d", "g", "c", "f", "a", "h", n = 8},
                      drain(q))
    end)
  end)

  it("sorts many items like a stable sort", function()
    run(function()
      local q = aio.priority_queue()
      local seed, items = 7, {}
      for i = 1, 3000 do
        seed = (seed * 1103515245 + 12345) % 2147483648
        items[i] = {prio = seed % 50, id = i}
        q:put(items[i], items[i].prio)
        if i % 4 == 0 then q:get() end -- interleave, with shrinking
      end
      local got = {}
      while not q:empty() do got[#got + 1] = q:get() end
      for i = 2, #got do
        local a, b = got[i - 1], got[i]
        assert.is_true(a.prio < b.prio or (a.prio == b.prio and a.id < b.id))
      end
      assert.equal(3000 - 750, #got)
    end)
  end)

  it("keeps the order through many fills and drains while bounded",
     function()
    run(function()
      for _, size in ipairs({1, 8, 100, 3000}) do
        local q, wrong = aio.priority_queue(size), 0
        for round = 1, 3 do
          for i = 1, size do q:put(i, -(i % 5)) end
          for k = 4, 0, -1 do
            for i = 1, size do
              if i % 5 == k and q:get() ~= i then wrong = wrong + 1 end
            end
          end
        end
        assert.equal(0, wrong)
        assert.equal(0, q:qsize())
      end
    end)
  end)

  it("takes nil items and priority 0 by default", function()
    run(function()
      local q = aio.priority_queue()
      q:put("late", 1)
      q:put(nil)
      q:put("early", -1)
      assert.are.same({"early", nil, "late", n = 3}, drain(q))
    end)
  end)

  it("rejects a priority that is not a number", function()
    run(function()
      local q = aio.priority_queue()
      assert.matches("priority is NaN", select(2, pcall(q.put, q, 1, 0 / 0)))
      assert.matches("number expected", select(2, pcall(q.put, q, 1, {})))
      assert.is_true(q:empty())
    end)
  end)
end)

describe("queue cancellation", function()
  it("removes a getter cancelled while it waits", function()
    run(function()
      local q = aio.queue()
      local g1, g2 = getter(q), getter(q)
      aio.sleep(0)
      g1:cancel()
      aio.sleep(0)
      assert.is_true(g1:cancelled())
      assert.matches("1 getter waiting", tostring(q))
      q:put("x")
      assert.equal("x", g2:await())
      assert.is_true(q:empty())
    end)
  end)

  -- test_get_cancel_drop_one_pending_reader; bpo-23812
  it("puts an item back at the front when its getter is cancelled after " ..
     "the hand-off", function()
    run(function()
      local q = aio.queue()
      local reader = getter(q)
      aio.sleep(0)
      q:put_nowait(1) -- handed to reader
      q:put_nowait(2)
      reader:cancel() -- same tick: reader has not run yet
      assert.equal("CancelledError", raised(reader.await, reader))
      assert.equal(2, q:qsize())
      reader = getter(q)
      assert.equal(1, reader:await()) -- 2 would mean 1 got dropped
      assert.equal(2, q:get())
      assert.is_true(q:empty())
    end)
  end)

  -- test_get_cancel_drop_many_pending_readers; bpo-23812
  it("passes the item of a cancelled getter to the next getter", function()
    run(function()
      local q = aio.queue()
      local r1, r2, r3 = getter(q), getter(q), getter(q)
      aio.sleep(0)
      q:put_nowait(1) -- to r1
      q:put_nowait(2) -- to r2
      r1:cancel() -- 1 goes to r3
      assert.equal("CancelledError", raised(r1.await, r1))
      assert.equal(2, r2:await())
      assert.equal(1, r3:await())
      assert.is_true(q:empty())
    end)
  end)

  it("gives a cancelled getter's item back to the top of a LIFO queue " ..
     "and ahead of equal priorities", function()
    run(function()
      local l = aio.lifo_queue()
      local g = getter(l)
      aio.sleep(0)
      l:put("a"); l:put("b")
      g:cancel()
      assert.equal("CancelledError", raised(g.await, g))
      assert.are.same({"a", "b", n = 2}, drain(l))

      local p = aio.priority_queue()
      g = getter(p)
      aio.sleep(0)
      p:put("first", 1)
      p:put("second", 1)
      p:put("zero", 0)
      g:cancel()
      assert.equal("CancelledError", raised(g.await, g))
      assert.are.same({"zero", "first", "second", n = 3}, drain(p))
    end)
  end)

  it("keeps a given-back item even when the queue is full again", function()
    run(function()
      local q = aio.queue(1)
      local g = getter(q)
      aio.sleep(0)
      q:put("a") -- to g
      q:put("b") -- fills the queue
      g:cancel()
      assert.equal("CancelledError", raised(g.await, g))
      assert.equal(2, q:qsize())
      assert.is_true(q:full())
      assert.are.same({"a", "b", n = 2}, drain(q))
    end)
  end)

  it("chains give-backs through several cancelled getters", function()
    run(function()
      local q = aio.queue()
      local gs = {}
      for i = 1, 4 do gs[i] = getter(q) end
      aio.sleep(0)
      q:put("x") -- to gs[1]
      gs[1]:cancel() -- to gs[2]
      gs[2]:cancel() -- to gs[3]
      gs[3]:cancel() -- to gs[4]
      for i = 1, 3 do assert.is_true(raised(gs[i].await, gs[i]) ==
                                     "CancelledError") end
      assert.equal("x", gs[4]:await())
      assert.is_true(q:empty())
    end)
  end)

  it("inserts nothing for a putter cancelled while it waits", function()
    run(function()
      local q = aio.queue(1)
      q:put("kept")
      local p = aio.spawn(function() q:put("never") end)
      aio.sleep(0)
      p:cancel()
      assert.equal("CancelledError", raised(p.await, p))
      assert.equal("<queue 1/1>", tostring(q))
      assert.equal("kept", q:get())
      aio.sleep(0)
      assert.is_true(q:empty())
    end)
  end)

  -- test_put_cancel_drop
  it("lands a retried put exactly once when cancelled after space freed",
     function()
    run(function()
      local q = aio.queue(1)
      q:put_nowait(1)
      local writer = aio.spawn(function() q:put(2) end)
      aio.sleep(0)
      assert.equal(1, q:get_nowait()) -- moves 2 in, wakes writer
      writer:cancel() -- same tick
      if raised(writer.await, writer) == "CancelledError" then
        writer = aio.spawn(function() q:put(2) end) -- try again
        writer:await()
      end
      assert.equal(2, q:get_nowait())
      assert.equal(0, q:qsize())
    end)
  end)

  it("lets a putter cancelled after its item went in see success, and " ..
     "raises at its next wait", function()
    run(function()
      local q = aio.queue(1)
      q:put(1)
      local stage = "start"
      local p = aio.spawn(function()
        q:put(2)
        stage = "put returned"
        aio.sleep(0)
        stage = "not reached"
      end)
      aio.sleep(0)
      q:get()
      p:cancel()
      assert.equal("CancelledError", raised(p.await, p))
      assert.equal("put returned", stage)
      assert.are.same({2, n = 1}, drain(q))
    end)
  end)

  it("raises CancelledError at put and get before waiting", function()
    run(function()
      local q = aio.queue(1)
      local entered = 0
      local g = aio.spawn(function()
        aio.current_task():cancel()
        entered = 1
        q:get()
        entered = 2
      end)
      assert.equal("CancelledError", raised(g.await, g))
      assert.equal(1, entered)
      q:put(1)
      local p = aio.spawn(function()
        aio.current_task():cancel()
        q:put(2)
      end)
      assert.equal("CancelledError", raised(p.await, p))
      assert.matches("^<queue 1/1>$", tostring(q))
    end)
  end)

  it("removes a joiner cancelled while it waits", function()
    run(function()
      local q = aio.queue()
      q:put(1)
      local j1 = aio.spawn(function() q:join() end)
      local j2 = aio.spawn(function() q:join() return "joined" end)
      aio.sleep(0)
      j1:cancel()
      assert.equal("CancelledError", raised(j1.await, j1))
      assert.matches("1 joiner waiting", tostring(q))
      q:get()
      q:task_done()
      assert.equal("joined", j2:await())
    end)
  end)

  -- bpo-31620, bpo-32574
  it("leaves nothing behind for 10,000 cancelled getters and putters",
     function()
    run(function()
      local q = aio.queue(1)
      local function round()
        local ts = {}
        for i = 1, MANY do ts[i] = getter(q) end
        aio.sleep(0)
        for i = 1, MANY do ts[i]:cancel() end
        for i = 1, MANY do raised(ts[i].await, ts[i]) end
        q:put("full")
        for i = 1, MANY do ts[i] = aio.spawn(function() q:put(i) end) end
        aio.sleep(0)
        for i = 1, MANY do ts[i]:cancel() end
        for i = 1, MANY do raised(ts[i].await, ts[i]) end
        assert.equal("<queue 1/1>", tostring(q))
        assert.equal("full", q:get())
        -- A put/get pair still behaves.
        local g = getter(q)
        aio.sleep(0)
        q:put("pair")
        assert.equal("pair", g:await())
        assert.equal("<queue 0/1>", tostring(q))
      end
      -- Two warm-up rounds let the core's own tables (live tasks, thread
      -- pool) reach their size; a leak grows with every round after.
      for _ = 1, 2 do round() collectgarbage() collectgarbage() end
      local before = collectgarbage("count")
      round()
      collectgarbage(); collectgarbage()
      assert.is_true(collectgarbage("count") - before < 256,
                     "memory grew by a cancelled round")
    end)
  end)
end)

describe("queue task_done and join", function()
  -- test_task_done_underflow
  it("raises ValueError on a task_done without an item", function()
    run(function()
      local q = aio.queue()
      assert.equal("ValueError", raised(q.task_done, q))
      q:put(1)
      q:get()
      q:task_done()
      assert.equal("ValueError", raised(q.task_done, q))
    end)
  end)

  -- test_join_empty_queue
  it("returns from join at once when nothing is pending", function()
    run(function()
      local q = aio.queue()
      local other_ran = false
      aio.spawn(function() other_ran = true end)
      q:join()
      assert.is_false(other_ran) -- it did not wait a turn
      q:put(1); q:get(); q:task_done()
      q:join()
      assert.is_false(other_ran)
    end)
  end)

  -- test_task_done
  it("waits in join until every item put got its task_done", function()
    run(function()
      local q = aio.queue()
      local processed = 0
      local workers = {}
      for w = 1, 3 do
        workers[w] = aio.spawn(function()
          while true do
            local item = q:get()
            aio.sleep(0)
            processed = processed + item
            q:task_done()
          end
        end)
      end
      for i = 1, 100 do q:put(i) end
      q:join()
      assert.equal(5050, processed)
      for w = 1, 3 do workers[w]:cancel() end
      -- A hand-off counts too: join waits for the item a getter took.
      local g = getter(q)
      aio.sleep(0)
      q:put("handed")
      local joined = false
      local j = aio.spawn(function() q:join() joined = true end)
      assert.equal("handed", g:await())
      aio.sleep(0)
      assert.is_false(joined)
      q:task_done()
      j:await()
      assert.is_true(joined)
    end)
  end)
end)

describe("queue shutdown", function()
  -- test_shutdown_empty, test_shutdown_nonempty (gh-96471)
  it("makes put raise and get drain, then raise", function()
    run(function()
      local q = aio.queue()
      q:put(1); q:put(2)
      q:shutdown()
      assert.equal("QueueShutDown", raised(q.put, q, 3))
      assert.equal("QueueShutDown", raised(q.put_nowait, q, 3))
      assert.equal(1, q:get())
      assert.equal(2, q:get_nowait())
      assert.equal("QueueShutDown", raised(q.get, q))
      assert.equal("QueueShutDown", raised(q.get_nowait, q))
      q:shutdown() -- twice is harmless
      assert.equal("QueueShutDown", raised(q.get, q))
    end)
  end)

  -- test_shutdown_get_waiters, test_shutdown_put_waiters
  it("wakes blocked getters and putters with QueueShutDown", function()
    run(function()
      local e = aio.queue()
      local gs = {getter(e), getter(e)}
      local f = aio.queue(1)
      f:put("in")
      local ps = {aio.spawn(function() f:put("a") end),
                  aio.spawn(function() f:put("b") end)}
      aio.sleep(0)
      e:shutdown()
      f:shutdown()
      for _, t in ipairs(gs) do
        assert.equal("QueueShutDown", raised(t.await, t))
      end
      for _, t in ipairs(ps) do
        assert.equal("QueueShutDown", raised(t.await, t))
      end
      assert.are.same({"in", n = 1}, drain(f))
    end)
  end)

  it("lets a getter woken by shutdown and cancelled see CancelledError",
     function()
    run(function()
      local q = aio.queue()
      local g = getter(q)
      aio.sleep(0)
      q:shutdown()
      g:cancel()
      assert.equal("CancelledError", raised(g.await, g))
    end)
  end)

  -- test_shutdown_immediate, test_shutdown_immediate_with_unfinished
  it("drops the items with shutdown(true) and releases join", function()
    run(function()
      local q = aio.queue()
      for i = 1, 5 do q:put(i) end
      q:get() -- taken but not done: join still waits for it
      local joined = false
      local j = aio.spawn(function() q:join() joined = true end)
      aio.sleep(0)
      q:shutdown(true)
      assert.equal(0, q:qsize())
      assert.equal("QueueShutDown", raised(q.get, q))
      assert.equal("QueueShutDown", raised(q.put, q, 9))
      aio.sleep(0)
      assert.is_false(joined)
      q:task_done()
      j:await()
      assert.is_true(joined)
      assert.equal("ValueError", raised(q.task_done, q))
    end)
  end)

  it("drops the item of a getter cancelled after shutdown(true)", function()
    run(function()
      local q = aio.queue()
      local g = getter(q)
      aio.sleep(0)
      q:put("x") -- handed to g
      q:shutdown(true)
      g:cancel()
      assert.equal("CancelledError", raised(g.await, g))
      assert.equal(0, q:qsize())
      q:join() -- the dropped item counts as done
    end)
  end)

  it("puts back the item of a getter cancelled after shutdown()", function()
    run(function()
      local q = aio.queue()
      local g = getter(q)
      aio.sleep(0)
      q:put("x")
      q:shutdown()
      g:cancel()
      assert.equal("CancelledError", raised(g.await, g))
      assert.equal("x", q:get())
      assert.equal("QueueShutDown", raised(q.get, q))
    end)
  end)
end)

describe("queue iter", function()
  it("yields items until the queue is shut down and drained", function()
    run(function()
      local q = aio.queue(2)
      local seen = {}
      local consumers = {}
      for c = 1, 3 do
        consumers[c] = aio.spawn(function()
          local n = 0
          for item in q:iter() do
            seen[#seen + 1] = item
            n = n + 1
            aio.sleep(0)
          end
          return n
        end)
      end
      for i = 1, 30 do q:put(i) end
      q:shutdown()
      local total = 0
      for c = 1, 3 do total = total + consumers[c]:await() end
      assert.equal(30, total)
      table.sort(seen)
      for i = 1, 30 do assert.equal(i, seen[i]) end
    end)
  end)

  it("ends at once on a shut down, empty queue and can be cancelled",
     function()
    run(function()
      local q = aio.queue()
      local t = aio.spawn(function() for _ in q:iter() do end end)
      aio.sleep(0)
      t:cancel()
      assert.equal("CancelledError", raised(t.await, t))
      q:shutdown()
      for _ in q:iter() do error("no items") end
    end)
  end)
end)

describe("queue with many waiters", function()
  it("wakes 100,000 getters without overflowing the C stack", function()
    run(function()
      local q = aio.queue()
      local ts = {}
      for i = 1, BIG do ts[i] = aio.spawn(q.get, q) end
      aio.sleep(0)
      for i = 1, BIG do q:put(i) end
      local sum = 0
      for i = 1, BIG do sum = sum + ts[i]:await() end
      assert.equal(BIG * (BIG + 1) // 2, sum)
      -- And 100,000 woken by one shutdown.  Each catches its error: the
      -- point is the wake-up, not 100,000 failed tasks.
      for i = 1, BIG do ts[i] = aio.spawn(raised, q.get, q) end
      aio.sleep(0)
      q:shutdown()
      for i = 1, BIG do assert.equal("QueueShutDown", ts[i]:await()) end
    end)
  end)

  it("moves the items of 10,000 waiting putters in order", function()
    run(function()
      local q = aio.queue(1)
      q:put(0)
      for i = 1, MANY do aio.spawn(q.put, q, i) end
      aio.sleep(0)
      for i = 0, MANY do assert.equal(i, q:get()) end
    end)
  end)
end)

describe("scripts/producer_consumer.lua", function()
  it("processes every item once and stops the consumers", function()
    -- Under the luaio command this spec runs as a task: run the script
    -- the same way; under lua5.4, with lua5.4 (LUA_CPATH finds luaio).
    local luaio = os.getenv("LUAIO")
    assert(luaio, "the test runner sets LUAIO")
    do
      local cmd = aio.current_task() and luaio or "lua5.4"
      local f = assert(io.popen(cmd .. " scripts/producer_consumer.lua 2>&1"))
      local out = f:read("a")
      local ok = f:close()
      assert.is_true(ok, out)
      assert.matches("every item processed once: 12 of 12", out, 1, true)
      assert.matches("consumer 1 stopped", out, 1, true)
      assert.matches("consumer 2 stopped", out, 1, true)
      assert.matches("consumer 3 stopped", out, 1, true)
      assert.matches("queue: <queue 0/4, shut down>", out, 1, true)
    end
  end)
end)

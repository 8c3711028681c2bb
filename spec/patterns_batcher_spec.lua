-- luaio.patterns.batcher: batches flushed at max_items or max_delay, the
-- flush's result or error reaching every caller of the batch.
local aio = require "luaio"
local P = require "luaio.patterns"
local S = require "support"
local run, assert_cancelled = S.run, S.assert_cancelled
local until_, named = S.wait_until, S.named_tasks

-- A flush that records its batches and returns how many items it got.
local function recorder()
  local r = {batches = {}}
  r.flush = function(batch)
    r.batches[#r.batches + 1] = table.concat(batch, ",")
    return #batch, "ok"
  end
  return r
end

local function adders(b, items)
  local ts = {}
  for i, item in ipairs(items) do
    ts[i] = aio.spawn(function() return b:add(item) end)
  end
  return ts
end

describe("batcher", function()
  it("flushes when max_items are in, and each add gets the result",
     function()
    run(function()
      local r = recorder()
      local b = P.batcher{max_items = 3, max_delay = math.huge,
                          flush = r.flush}
      local ts = adders(b, {"a", "b", "c", "d"})
      for i = 1, 3 do
        local n, word = ts[i]:await()
        assert.equal(3, n)
        assert.equal("ok", word)
      end
      assert.same({"a,b,c"}, r.batches)
      assert.equal(1, b:pending()) -- "d" waits for its batch to fill
      b:close() -- which flushes it
      assert.equal(1, ts[4]:await())
      assert.same({"a,b,c", "d"}, r.batches)
    end)
  end)

  it("flushes a batch max_delay after its first item, not before",
     function()
    run(function()
      local r = recorder()
      local flushed_at
      local t0 = aio.time()
      local b = P.batcher{max_items = math.huge, max_delay = 0.02,
                          flush = function(batch)
                            flushed_at = aio.time()
                            return r.flush(batch)
                          end}
      local ts = adders(b, {1, 2})
      assert.equal(2, ts[1]:await())
      assert.equal(2, ts[2]:await())
      assert.is_true(flushed_at - t0 >= 0.02)
      assert.same({"1,2"}, r.batches)
      assert.equal(0, named("batcher batch")) -- nothing left running
    end)
  end)

  it("a flush error reaches every caller; the next batch works", function()
    run(function()
      local calls = 0
      local b = P.batcher{max_items = 2, flush = function(batch)
        calls = calls + 1
        if calls == 1 then error({why = "db down"}) end
        return #batch
      end}
      local ts = adders(b, {1, 2})
      local e1 = select(2, pcall(ts[1].await, ts[1]))
      local e2 = select(2, pcall(ts[2].await, ts[2]))
      assert.equal("db down", e1.why)
      assert.equal(e1, e2) -- the same error value
      ts = adders(b, {3, 4})
      assert.equal(2, ts[1]:await())
      assert.equal(2, ts[2]:await())
    end)
  end)

  it("an add cancelled before its flush takes its item out", function()
    run(function()
      local gate = aio.event()
      local batches = {}
      local b = P.batcher{max_items = 3, max_delay = math.huge,
                          flush = function(batch)
                            batches[#batches + 1] = table.concat(batch, ",")
                            gate:wait()
                            return #batch
                          end}
      local first = adders(b, {"a", "b", "c"})
      until_(function() return #batches == 1 end) -- flushing, slowly
      local ts = adders(b, {"d", "e", "f"})
      until_(function() return b:pending() == 3 end)
      aio.sleep(0) -- full, and waiting for the flush before it
      ts[2]:cancel()
      assert_cancelled(ts[2])
      gate:set()
      assert.equal(3, first[1]:await())
      assert.equal(2, ts[1]:await())
      assert.equal(2, ts[3]:await())
      assert.same({"a,b,c", "d,f"}, batches)
    end)
  end)

  it("an add cancelled while its batch fills leaves the batch", function()
    run(function()
      local r = recorder()
      local b = P.batcher{max_items = 2, max_delay = math.huge,
                          flush = r.flush}
      local a = aio.spawn(function() return b:add("a") end)
      aio.sleep(0)
      a:cancel()
      assert_cancelled(a)
      assert.equal(0, b:pending())
      until_(function() return named("batcher batch") == 0 end)
      local ts = adders(b, {"b", "c"})
      assert.equal(2, ts[1]:await())
      assert.same({"b,c"}, r.batches)
    end)
  end)

  it("an add cancelled during the flush raises; the others get the result",
     function()
    run(function()
      local gate = aio.event()
      local got
      local b = P.batcher{max_items = 2, flush = function(batch)
        got = table.concat(batch, ",")
        gate:wait()
        return "done"
      end}
      local ts = adders(b, {"x", "y"})
      until_(function() return got ~= nil end)
      ts[1]:cancel()
      assert_cancelled(ts[1])
      gate:set()
      assert.equal("done", ts[2]:await())
      assert.equal("x,y", got)
    end)
  end)

  it("runs one flush at a time by default, in the order batches filled",
     function()
    run(function()
      local running, most, order = 0, 0, {}
      local function flush(batch)
        running = running + 1
        most = math.max(most, running)
        order[#order + 1] = batch[1]
        aio.sleep(0.005)
        running = running - 1
      end
      local b = P.batcher{max_items = 1, flush = flush}
      local ts = adders(b, {1, 2, 3, 4})
      for i = 1, 4 do ts[i]:await() end
      assert.equal(1, most)
      assert.same({1, 2, 3, 4}, order)
      running, most = 0, 0
      local b2 = P.batcher{max_items = 1, concurrency = 2, flush = flush}
      ts = adders(b2, {5, 6, 7, 8})
      for i = 1, 4 do ts[i]:await() end
      assert.equal(2, most)
    end)
  end)

  it("close flushes what is pending and waits; then add raises", function()
    run(function()
      local r = recorder()
      local b = P.batcher{max_items = 10, max_delay = math.huge,
                          flush = function(batch)
                            aio.sleep(0.001)
                            return r.flush(batch)
                          end}
      local ts = adders(b, {1, 2, 3})
      aio.sleep(0)
      b:close()
      assert.same({"1,2,3"}, r.batches)
      assert.equal(3, ts[1]:await())
      local ok, e = pcall(b.add, b, 4)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "InvalidStateError"))
      b:close() -- harmless
      assert.matches("closed>$", tostring(b))
    end)
  end)

  it("a close cancelled while it waits cancels the flushes", function()
    run(function()
      local b = P.batcher{max_items = 1, flush = function()
        aio.sleep(math.huge)
      end}
      local adder = aio.spawn(function() return b:add(1) end)
      aio.sleep(0)
      local closer = aio.spawn(function() b:close() end)
      aio.sleep(0)
      closer:cancel()
      assert_cancelled(closer)
      local ok, e = pcall(adder.await, adder)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "CancelledError"))
      assert.equal(0, named("batcher batch"))
    end)
  end)

  it("checks its options", function()
    run(function()
      assert.has_error(function() P.batcher() end)
      assert.has_error(function() P.batcher{} end,
        "bad argument #1 to 'luaio.patterns.batcher' " ..
        "(option 'flush' must be a function)")
      assert.has_error(function() P.batcher{flush = print, size = 1} end,
        "bad argument #1 to 'luaio.patterns.batcher' (unknown option 'size')")
      assert.has_error(function() P.batcher{flush = print, max_items = 0} end)
      assert.has_error(function() P.batcher{flush = print, max_delay = -1} end)
    end)
  end)
end)

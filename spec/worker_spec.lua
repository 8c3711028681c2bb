-- aio.worker: a thread with a host of its own, send/recv with aio.parent,
-- join, cancel, <close>, WorkerError, and groups of workers.
local aio = require "luaio"
local S = require "support"
local run = S.run

describe("aio.worker", function()
  it("runs a function with copied arguments and returns its results",
     function()
    run(function()
      local w = aio.worker(function(t, n)
        local aio = require "luaio"
        return t.a + n, aio.worker_id()
      end, {a = 40}, 2)
      local sum, id = w:join()
      assert.equal(42, sum)
      assert.equal(w:id(), id)
      assert.is_true(id > 0)
      assert.equal(0, aio.worker_id())
      assert.equal(42, (w:join())) -- again: the same outcome
    end)
  end)

  it("talks with its parent both ways", function()
    run(function()
      local w = aio.worker(function()
        local aio = require "luaio"
        local total = 0
        for v in aio.parent:iter() do
          if v == "stop" then break end
          total = total + v
          aio.parent:send(total)
        end
        return total
      end)
      for i = 1, 10 do
        w:send(i)
        assert.equal(i * (i + 1) // 2, w:recv())
      end
      w:send("stop")
      assert.equal(55, w:join())
      assert.is_nil(w:recv()) -- ended normally: nothing more
      S.assert_raises("WorkerError", w.send, w, 1)
    end)
  end)

  it("runs a file with its arguments", function()
    run(function()
      local path = os.tmpname()
      local f = assert(io.open(path, "w"))
      f:write("local aio = require 'luaio'\n",
              "local a, b = ...\n",
              "aio.sleep(0.001)\n",
              "return a .. b\n")
      f:close()
      local w = aio.worker(path, "x", "y")
      assert.equal("xy", w:join())
      os.remove(path)
      local bad = aio.worker("/nonexistent/worker.lua")
      local e = S.assert_raises("WorkerError", bad.join, bad)
      assert.matches("cannot open", tostring(e))
    end)
  end)

  it("raises a WorkerError with the error, its line and the await site",
     function()
    run(function()
      local w = aio.worker(function()
        error({code = 7})
      end)
      local e = S.assert_raises("WorkerError", w.join, w)
      assert.are.same({code = 7}, e.error)
      local w2 = aio.worker(function() local x = nil; return x.field end)
      local e2 = S.assert_raises("WorkerError", w2.join, w2)
      assert.matches("worker_spec.lua:%d+: attempt to index", e2.error)
      assert.matches("worker_spec.lua:%d+:.*awaited here.*worker_spec.lua",
                     e2.traceback)
      -- a pending recv raises it too
      local w3 = aio.worker(function()
        local aio = require "luaio"
        aio.sleep(0.01)
        error("late")
      end)
      local e3 = S.assert_raises("WorkerError", w3.recv, w3)
      assert.matches("late", e3.error)
    end)
  end)

  it("refuses arguments that cannot cross, naming the path", function()
    run(function()
      local ok, e = pcall(aio.worker, function() end, 1, {conn = io.stdout})
      assert.is_false(ok)
      assert.matches("args%[2%]%.conn: userdata cannot cross threads", e)
      local up = 1
      ok, e = pcall(aio.worker, function() return up end)
      assert.is_false(ok)
      assert.matches("fn: a function with upvalues", e)
    end)
  end)

  it("is cancelled in a pure Lua loop and while it waits #spin", function()
    run(function()
      local spin = aio.worker(function() while true do end end)
      local wait = aio.worker(function()
        local aio = require "luaio"
        aio.sleep(1000)
      end)
      aio.sleep(0.02)
      assert.is_true(spin:cancel())
      assert.is_true(wait:cancel())
      for _, w in ipairs({spin, wait}) do
        local e = S.assert_raises("WorkerError", w.join, w)
        assert.equal("CancelledError", e.error.type)
      end
      assert.is_false(spin:cancel())
    end)
  end)

  it("is cancelled when the task joining it is, and by <close> #spin", function()
    run(function()
      local w = aio.worker(function() while true do end end)
      local joiner = aio.spawn(function() return w:join() end)
      aio.sleep(0.02)
      joiner:cancel()
      S.assert_cancelled(joiner)
      assert.is_false(w:cancel()) -- it has ended
      local closed
      do
        local w2 <close> = aio.worker(function()
          local aio = require "luaio"
          aio.sleep(1000)
        end)
        closed = w2
      end
      assert.is_false(closed:cancel())
    end)
  end)

  it("starts groups that share a broadcast and join together", function()
    run(function()
      local g = aio.workers(3, function(base)
        local aio = require "luaio"
        local v = aio.parent:recv()
        return base + v + aio.worker_id() * 0
      end, 100)
      g:broadcast(5)
      local results = g:join()
      assert.equal(3, #results)
      for i = 1, 3 do assert.equal(105, results[i][1]) end
      local g2 = aio.workers(2, function()
        local aio = require "luaio"
        aio.sleep(1000)
      end)
      local joiner = aio.spawn(function() return g2:join() end)
      aio.sleep(0.02)
      joiner:cancel()
      S.assert_cancelled(joiner)
      for _, w in ipairs(g2.workers) do assert.is_false(w:cancel()) end
    end)
  end)
end)

-- aio.to_thread: jobs on the pool of worker hosts, their errors, and
-- cancellation before the start, in a pure Lua loop and in a C call.
local aio = require "luaio"
local S = require "support"
local run = S.run

-- The threads of this process (nil without /proc).
local function nthreads()
  local f = io.open("/proc/self/status")
  if not f then return nil end
  local n = f:read("a"):match("Threads:%s*(%d+)")
  f:close()
  return tonumber(n)
end


describe("aio.to_thread", function()
  it("has a pool of a size set before its first use", function()
    run(function()
      aio.set_pool({size = 2})
      assert.equal(6, aio.to_thread(function(a, b) return a * b end, 2, 3))
      assert.has_error(function() aio.set_pool({size = 3}) end)
      assert.has_error(function() aio.set_pool({sise = 3}) end)
    end)
  end)

  it("returns copies of the results, and runs module functions", function()
    run(function()
      local t = aio.to_thread(function(x)
        return {x, x * 2}, "two", nil, 4
      end, 21)
      assert.are.same({21, 42}, t)
      assert.equal("ababab", aio.to_thread("string.rep", "ab", 3))
      local r = table.pack(aio.to_thread(function() return 1, nil, 3 end))
      assert.equal(3, r.n)
      local e = S.assert_raises("WorkerError", aio.to_thread, "nomodule.f")
      assert.matches("nomodule", tostring(e.error))
    end)
  end)

  it("lets jobs wait on timers and queues", function()
    run(function()
      local r = aio.to_thread(function()
        local aio = require "luaio"
        local q = aio.queue()
        aio.spawn(function() aio.sleep(0.005); q:put("late") end)
        return q:get()
      end)
      assert.equal("late", r)
    end)
  end)

  it("raises WorkerError with the job's error and its traceback", function()
    run(function()
      local e = S.assert_raises("WorkerError", aio.to_thread, function()
        error({reason = "bad"})
      end)
      assert.are.same({reason = "bad"}, e.error)
      local e2 = S.assert_raises("WorkerError", aio.to_thread, function()
        error("plain")
      end)
      assert.matches("worker_to_thread_spec.lua:%d+: plain", e2.error)
      assert.matches("worker_to_thread_spec.lua.*awaited here", e2.traceback)
      local e3 = S.assert_raises("WorkerError", aio.to_thread, function()
        return io.stdout
      end)
      assert.matches("results%[1%]: userdata cannot cross threads",
                     tostring(e3.error))
      local ok, e4 = pcall(aio.to_thread, function() end, {f = print})
      assert.is_false(ok)
      assert.matches("args%[1%]%.f: a C function cannot cross threads", e4)
    end)
  end)

  it("never starts a job cancelled while queued", function()
    run(function()
      local path = os.tmpname()
      os.remove(path)
      local gate = aio.channel()
      local busy = {}
      for i = 1, 2 do -- the pool's two workers
        busy[i] = aio.spawn(aio.to_thread, function(g) return g:recv() end,
                            gate)
      end
      aio.sleep(0.02)
      local queued = aio.spawn(aio.to_thread, function(p)
        local f = io.open(p, "w"); f:write("ran"); f:close()
      end, path)
      aio.sleep(0.01)
      queued:cancel()
      S.assert_cancelled(queued)
      gate:send(1)
      gate:send(2)
      for i = 1, 2 do busy[i]:await() end
      -- both workers are free again and took no other job
      assert.equal("ok", aio.to_thread(function() return "ok" end))
      assert.is_nil(io.open(path))
    end)
  end)

  it("stops a pure Lua loop before the grace, and the pool still works #spin",
     function()
    run(function()
      local t = aio.spawn(aio.to_thread, function()
        local x = 0
        while true do x = x + 1 end
      end)
      aio.sleep(0.02)
      local t0 = aio.time()
      t:cancel()
      S.assert_cancelled(t)
      assert.is_true(aio.time() - t0 < 0.9) -- not abandoned at the grace
      assert.equal(3, aio.to_thread(function() return 3 end))
    end)
  end)

  it("abandons a job stuck in C, with the threads bounded", function()
    run(function()
      local before = nthreads()
      local t = aio.spawn(aio.to_thread, function()
        os.execute("sleep 2")
        return "late"
      end)
      aio.sleep(0.05)
      t:cancel()
      S.assert_cancelled(t)
      -- a fresh worker took its place
      assert.equal("fresh", aio.to_thread(function() return "fresh" end))
      assert.equal("both", aio.gather(
        function() return aio.to_thread(function() return "both" end) end,
        function() return aio.to_thread(function() return "x" end) end)[1])
      if before then assert.is_true(nthreads() <= before + 1) end
    end)
  end)

  it("is cancelled with its caller's timeout", function()
    run(function()
      local e = S.assert_raises("TimeoutError", aio.wait_for, function()
        return aio.to_thread(function()
          local aio = require "luaio"
          aio.sleep(10)
        end)
      end, 0.02)
      assert.is_true(aio.is_error(e, "TimeoutError"))
    end)
  end)
end)

-- Lifetimes at the edges of the core: objects that tasks, waiter lists and
-- scopes point at stay alive until they are unlinked, and threads inside a
-- luaio wait cannot be resumed or closed from elsewhere.  Each case names
-- the defect of the core review it pins (issue 11, item N; issue 12,
-- item 5); run under the ASan tree each one crashed or corrupted memory
-- before its fix.
local aio = require "luaio"
local S = require "support"
local run = S.run

local function collect()
  collectgarbage()
  collectgarbage()
end

describe("a task group left without <close>", function()
  it("stays anchored until its last child ended (item 1)", function()
    run(function()
      local weak = setmetatable({}, {__mode = "v"})
      local child
      local owner = aio.spawn(function()
        local tg = aio.taskgroup() -- not <close>: dropped when owner ends
        weak[1] = tg
        child = tg:spawn(function()
          aio.shield(function() aio.sleep(0.02) end)
          error("after the owner", 0)
        end)
        aio.sleep(0) -- the child starts and enters its shield
      end)
      owner:await()
      collect()
      assert.is_not_nil(weak[1]) -- the child still points into it
      local ok, err = pcall(child.await, child)
      assert.is_false(ok)
      assert.equal("after the owner", err)
      collect()
      assert.is_nil(weak[1]) -- and it goes once the child ended
    end)
  end)
end)

describe("a wait in a coroutine whose resumer cannot yield", function()
  it("is refused before it begins, so no wait is left linked (item 2)",
     function()
    run(function()
      local e = aio.event()
      local errs = {}
      local tg <close> = aio.taskgroup()
      tg:spawn(aio.sleep, 0.01)
      local ok = pcall(table.sort, {3, 2, 1}, function()
        local f = coroutine.wrap(function() e:wait() return true end)
        local fine, err = pcall(f)
        errs[#errs + 1] = err
        return fine
      end)
      assert.is_true(ok)
      assert.matches("resumer cannot yield", errs[1])
      assert.equal(0, S.waiting(e))
      e:set()
      aio.sleep(0.02) -- a stale wake-up would end this sleep early or crash
    end)
  end)

  it("leaves no shield scope behind (item 2)", function()
    run(function()
      local t = aio.spawn(function()
        pcall(table.sort, {2, 1}, function()
          local f = coroutine.wrap(function()
            aio.shield(function() aio.sleep(0.01) end)
            return true
          end)
          return f()
        end)
        collect()
        aio.sleep(10)
      end)
      aio.sleep(0.01)
      t:cancel()
      S.assert_cancelled(t) -- not shielded for good
    end)
  end)
end)

describe("a scope closed out of order", function()
  it("is unlinked before the error is raised (item 4)", function()
    run(function()
      local t = aio.spawn(function()
        local ok, err = pcall(aio.shield, function()
          local _ = aio.timeout(10) -- not <close>: still open at the end
        end)
        assert.is_false(ok)
        assert.matches("scopes closed out of order", tostring(err))
        collect()
        aio.sleep(10)
      end)
      aio.sleep(0.01)
      t:cancel()
      S.assert_cancelled(t)
    end)
  end)
end)

describe("an error whose __tostring misbehaves", function()
  local function bad_tostring(how)
    return setmetatable({}, {__tostring = function()
      if how == "fails" then error("no text for you") end
      if how == "waits" then aio.sleep(0) return "waited" end
      return 42
    end})
  end

  it("raised by a done callback is reported, not a panic (item 5)",
     function()
    run(function()
      local t = aio.spawn(aio.sleep, 0)
      t:add_done_callback(function() error(bad_tostring("fails")) end)
      t:await()
      aio.sleep(0)
    end)
  end)

  for _, how in ipairs {"fails", "waits", "returns a number"} do
    it("keeps its identity when __tostring " .. how .. " (item 14)",
       function()
      run(function()
        local e = bad_tostring(how)
        local t = aio.spawn(function() aio.sleep(0) error(e) end)
        local ok, err = pcall(t.await, t)
        assert.is_false(ok)
        assert.equal(e, err)
        assert.is_string(t:traceback())
      end)
    end)
  end
end)

describe("a thread inside a luaio wait", function()
  it("cannot be resumed by another task (item 9, issue 12 item 5)",
     function()
    run(function()
      local co
      local q = aio.queue()
      local waiter = aio.spawn(function()
        local gen = coroutine.wrap(function()
          co = coroutine.running()
          return q:get()
        end)
        return gen()
      end)
      aio.sleep(0)
      local ok, err = pcall(coroutine.resume, co, "stolen")
      assert.is_false(ok)
      assert.matches("cannot resume a coroutine that waits inside luaio",
                     err)
      assert.matches("Task%-", err) -- it names the task
      q:put("item")
      assert.equal("item", waiter:await())
    end)
  end)

  it("cannot be closed, nor can a task's own thread (item 9)", function()
    run(function()
      local inner, own
      local q = aio.queue()
      local t1 = aio.spawn(function()
        local gen = coroutine.wrap(function()
          inner = coroutine.running()
          return q:get()
        end)
        return gen()
      end)
      local t2 = aio.spawn(function()
        own = coroutine.running()
        return q:get()
      end)
      aio.sleep(0)
      for _, co in ipairs {inner, own} do
        local ok, err = pcall(coroutine.close, co)
        assert.is_false(ok)
        assert.matches("cannot close a coroutine that waits inside luaio",
                       err)
      end
      q:put(1)
      q:put(2)
      assert.equal(1, t1:await())
      assert.equal(2, t2:await())
      assert.equal(0, q:qsize())
    end)
  end)

  it("of a finished task is not reused by the next task (item 9)",
     function()
    run(function()
      local stale = aio.spawn(function() return coroutine.running() end)
          :await()
      local q = aio.queue()
      local t = aio.spawn(function()
        assert.are_not.equal(stale, coroutine.running())
        return q:get()
      end)
      aio.sleep(0)
      assert.equal("dead", coroutine.status(stale))
      q:put("safe")
      assert.equal("safe", t:await())
    end)
  end)

  it("is refused when the marker is yielded by hand", function()
    run(function()
      local ok, err = pcall(coroutine.wrap(function()
        coroutine.yield(debug.getregistry) -- any value but the marker works
        return "fine"
      end))
      assert.is_true(ok)
      assert.equal(debug.getregistry, err)
    end)
  end)
end)

describe("a coroutine.resume that luaio did not replace", function()
  it("makes a wait inside it a clear error (item 8)", function()
    -- Under stock lua5.4: the standard resume, saved before the module.
    local lua = "lua5.4"
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write([[
      local resume = coroutine.resume
      local aio = require "luaio"
      aio.run(function()
        local e, q = aio.event(), aio.queue()
        local co = coroutine.create(function() e:wait() end)
        local ok, err = resume(co)
        print(ok, err)
        aio.spawn(function() aio.sleep(0.001) q:put(1) end)
        print(q:get())
        e:set()
        aio.sleep(0.002)
        print("end")
      end)
    ]])
    f:close()
    local p = assert(io.popen("LUA_CPATH='" .. package.cpath .. "' " .. lua
                              .. " " .. script .. " 2>&1"))
    local out = p:read("a")
    p:close()
    os.remove(script)
    if out:find("ASan runtime does not come first", 1, true) then
      pending("a sanitizer build's module cannot load into stock lua5.4")
      return
    end
    assert.matches("^false\t[^\n]*did not replace[^\n]*\n1\nend\n$", out)
  end)
end)

describe("a semaphore", function()
  it("refuses a release past the largest integer (item 16)", function()
    local s = aio.semaphore(math.maxinteger)
    local ok, err = pcall(s.release, s)
    assert.is_false(ok)
    assert.is_true(aio.is_error(err, "ValueError"))
    assert.equal(math.maxinteger, s:value())
  end)
end)

describe("aio.subprocess's args", function()
  it("are counted by their raw length, whatever __len says (item 6)",
     function()
    run(function()
      for _, len in ipairs({-2, -1, -5, math.maxinteger, 2 ^ 32 + 1}) do
        local args = setmetatable({"-c", "exit 3"},
                                  {__len = function() return len end})
        local p = assert(aio.subprocess("sh", args))
        assert.equal(3, p:wait().status)
      end
    end)
  end)
end)

describe("an object after its __gc", function()
  -- Each kind: how to make one, and every method with arguments.
  local kinds = {
    {"UDP socket", function() return assert(aio.udp.bind("127.0.0.1", 0)) end,
     {send_to = {"x", "127.0.0.1", 9}, recv_from = {}, sockname = {}}},
    {"signal", function() return aio.signal("SIGUSR2") end, {wait = {}}},
    {"process", function() return assert(aio.subprocess("true")) end,
     {wait = {}, kill = {}, exited = {}}},
    {"file", function()
       return assert(aio.fs.open(os.tmpname(), "w"))
     end, {read = {}, write = {"x"}, seek = {}, lines = {}, close = {}}},
    {"stream", function()
       local p = assert(aio.subprocess("true", {}, {stdout = "pipe"}))
       return p.stdout
     end, {read = {}, write = {"x"}, read_line = {}, peername = {}}},
  }

  local function all_closed(obj, methods)
    for name, args in pairs(methods) do
      local ok, err = pcall(function()
        return obj[name](obj, table.unpack(args))
      end)
      assert.is_false(ok, name)
      assert.matches("attempt to use a closed", tostring(err), 1, true)
    end
    assert.matches("closed", tostring(obj))
  end

  for _, k in ipairs(kinds) do
    local what, make, methods = k[1], k[2], k[3]
    it("raises \"closed\" for a " .. what .. " whose __gc was called by hand"
       .. " (item 7)", function()
      run(function()
        local obj = make()
        assert.is_nil(obj.__gc) -- metamethods are not methods
        assert.is_nil(obj.__close)
        getmetatable(obj).__gc(obj)
        getmetatable(obj).__gc(obj) -- again: harmless
        all_closed(obj, methods)
        local close = getmetatable(obj).__close
        if close then close(obj) end
        collect()
      end)
    end)

    it("raises \"closed\" for a " .. what .. " a finalizer resurrected"
       .. " (item 7)", function()
      run(function()
        local saved
        do
          -- marked first, so finalized after the object it holds
          local holder = setmetatable({}, {__gc = function(self)
            saved = self.obj
          end})
          holder.obj = make()
        end
        collect()
        assert.is_not_nil(saved)
        all_closed(saved, methods)
        saved = nil
        collect()
      end)
    end)
  end

  it("wakes the tasks waiting on it, which then see it closed (item 7)",
     function()
    run(function()
      local sock = assert(aio.udp.bind("127.0.0.1", 0))
      local sig = aio.signal("SIGUSR2")
      local t1 = aio.spawn(function() return sock:recv_from() end)
      local t2 = aio.spawn(function() return pcall(sig.wait, sig) end)
      aio.sleep(0)
      getmetatable(sock).__gc(sock)
      getmetatable(sig).__gc(sig)
      local data, msg = t1:await()
      assert.is_nil(data)
      assert.matches("closed", msg)
      local ok, err = t2:await()
      assert.is_false(ok)
      assert.matches("closed", err)
      collect()
    end)
  end)
end)

describe("a read_until that gave up", function()
  -- A client stream with `data` buffered; the server keeps it open.
  local function buffered(data, opts)
    local hold = aio.event()
    local srv = assert(aio.start_server(function(s)
      assert(s:write(data))
      hold:wait()
      s:close()
    end, "127.0.0.1", 0, opts))
    local c = assert(aio.open_connection("127.0.0.1", srv.port, opts))
    return c, function() hold:set(); c:close(); srv:close() end
  end

  it("leaves no search offset for the next read_line: cancelled (item 12)",
     function()
    run(function()
      local c, done = buffered("one\ntwo\n")
      local t = aio.spawn(function() return c:read_until("XYZ") end)
      S.wait_until(function() return select(2, c:queued()) == 8 end)
      aio.sleep(0)
      t:cancel()
      S.assert_cancelled(t)
      assert.equal("one", c:read_line())
      assert.equal("two", c:read_line())
      done()
    end)
  end)

  it("leaves no search offset for the next read_line: overrun (item 12)",
     function()
    run(function()
      local c, done = buffered("one\ntwo\nthree\n", {limit = 8})
      S.wait_until(function() return select(2, c:queued()) == 14 end)
      local r, _, code = c:read_until("XYZ")
      assert.is_nil(r)
      assert.equal("ENOBUFS", code)
      assert.equal("one", c:read_line())
      assert.equal("two", c:read_line())
      assert.equal("three", c:read_line())
      done()
    end)
  end)
end)

describe("a file:read cancelled while its request runs", function()
  it("keeps the bytes the request read (item 11)", function()
    run(function()
      local path = os.tmpname()
      os.remove(path)
      assert(os.execute("mkfifo " .. path))
      -- opened for reading and writing, so the open does not block
      local f <close> = assert(aio.fs.open(path, "r+"))
      local t = aio.spawn(function() return f:read(3) end)
      aio.sleep(0.05) -- the read blocks in the thread pool
      t:cancel()
      S.assert_cancelled(t)
      local w = assert(io.open(path, "w"))
      w:write("hello\n")
      w:close()
      -- the abandoned request ends with "hel"; the file is busy until then
      while not pcall(f.seek, f) do aio.sleep(0.001) end
      assert.equal("hello\n", f:read(6))
      os.remove(path)
    end)
  end)
end)

describe("a send_to cancelled around its completion", function()
  it("leaks neither its request nor the datagram (item 13)", function()
    run(function()
      local a <close> = assert(aio.udp.bind("127.0.0.1", 0))
      local b <close> = assert(aio.udp.bind("127.0.0.1", 0))
      local _, port = b:sockname()
      local function send()
        return a:send_to(("x"):rep(100), "127.0.0.1", port)
      end
      for i = 1, 50 do
        -- both sends complete in one turn of the loop: the first one's
        -- task then cancels the second, woken but not yet resumed
        local t2
        local t1 = aio.spawn(function()
          send()
          t2:cancel()
        end)
        t2 = aio.spawn(send)
        t1:await()
        assert.is_false(pcall(t2.await, t2))
        -- and cancelled while still waiting
        local t3 = aio.spawn(send)
        for _ = 1, i % 2 do aio.sleep(0) end
        t3:cancel()
        pcall(t3.await, t3)
      end
    end)
  end)
end)

-- aio.getaddrinfo: name resolution on libuv's thread pool.
local aio = require "luaio"
local S = require "support"
local run = S.run

local function addrs(list)
  local set = {}
  for _, a in ipairs(list) do set[a.addr] = a end
  return set
end

describe("aio.getaddrinfo", function()
  it("resolves localhost to a loopback address", function()
    run(function()
      local list = assert(aio.getaddrinfo("localhost"))
      assert.is_true(#list >= 1)
      local set = addrs(list)
      assert.is_truthy(set["127.0.0.1"] or set["::1"])
      for _, a in ipairs(list) do
        assert.is_string(a.addr)
        assert.is_truthy(a.family == "inet" or a.family == "inet6")
        assert.equal(0, a.port)
      end
      if set["127.0.0.1"] then
        assert.equal("inet", set["127.0.0.1"].family)
      end
    end)
  end)

  it("passes the port through, as a number or a string", function()
    run(function()
      local list = assert(aio.getaddrinfo("127.0.0.1", 8080))
      assert.same({{addr = "127.0.0.1", family = "inet", port = 8080}}, list)
      list = assert(aio.getaddrinfo("::1", "53"))
      assert.same({{addr = "::1", family = "inet6", port = 53}}, list)
    end)
  end)

  it("returns nil, msg, code for a name that does not exist", function()
    run(function()
      local v, msg, code = aio.getaddrinfo("no-such-host.invalid")
      assert.is_nil(v)
      assert.matches("^EAI_", code)
      assert.equal(code, msg:match("^([%u_]+):"))
      assert.matches("no%-such%-host%.invalid", msg)
    end)
  end)

  it("raises on wrong arguments", function()
    run(function()
      assert.has_error(function() aio.getaddrinfo() end)
      assert.has_error(function() aio.getaddrinfo("localhost", 70000) end)
      assert.has_error(function() aio.getaddrinfo("localhost", {}) end)
    end)
  end)

  it("resolves concurrently", function()
    run(function()
      local jobs = {}
      for i = 1, 20 do
        jobs[i] = function()
          return aio.getaddrinfo("127.0.0." .. i, i)
        end
      end
      local out = aio.gather(jobs)
      for i = 1, 20 do
        assert.equal("127.0.0." .. i, out[i][1].addr)
        assert.equal(i, out[i][1].port)
      end
    end)
  end)

  it("a cancelled lookup raises CancelledError and leaks nothing",
     function()
    run(function()
      for round = 1, 20 do
        local tasks = {}
        for i = 1, 10 do
          tasks[i] = aio.spawn(aio.getaddrinfo, i % 2 == 0 and "localhost"
                               or "127.0.0.1", i)
        end
        for _ = 1, round % 3 do aio.sleep(0) end
        for _, t in ipairs(tasks) do t:cancel() end
        for _, t in ipairs(tasks) do
          local ok, e = pcall(t.await, t)
          assert.is_true(ok or aio.is_error(e, "CancelledError"))
        end
      end
      -- and a wait_for that expires while the lookup may still run
      for _ = 1, 10 do
        local ok, e = pcall(aio.wait_for, function()
          return aio.getaddrinfo("localhost")
        end, 1e-6)
        assert.is_true(ok and type(e) == "table" or
                       aio.is_error(e, "TimeoutError"))
      end
      assert.is_truthy(addrs(aio.getaddrinfo("localhost"))["127.0.0.1"] or
                       addrs(aio.getaddrinfo("localhost"))["::1"])
    end)
  end)
end)

-- The core's objects check the object a method is called on: a method of
-- one type called on another object, a table or a plain userdata raises a
-- clear "X expected, got Y", never reads the wrong memory.
local aio = require "luaio"
local S = require "support"
local run = S.run

-- The error of calling method `m` of `obj` on `other`.
local function misuse(obj, m, other)
  local ok, e = pcall(obj[m], other)
  assert.is_false(ok)
  return tostring(e)
end

describe("type checks", function()
  it("every sync object's methods refuse the other objects", function()
    run(function()
      local objs = {
        ["luaio.Lock"] = {aio.lock(), "release"},
        ["luaio.Semaphore"] = {aio.semaphore(1), "release"},
        ["luaio.Event"] = {aio.event(), "set"},
        ["luaio.Condition"] = {aio.condition(), "notify_all"},
        ["luaio.Barrier"] = {aio.barrier(2), "abort"},
        ["luaio.Queue"] = {aio.queue(), "qsize"},
      }
      for name, a in pairs(objs) do
        for other, b in pairs(objs) do
          if other ~= name then
            local e = misuse(a[1], a[2], b[1])
            assert.truthy(e:find(name .. " expected", 1, true), e)
          end
        end
        local e = misuse(a[1], a[2], {})
        assert.truthy(e:find(name .. " expected, got table", 1, true), e)
        e = misuse(a[1], a[2], io.stdout)
        assert.truthy(e:find(name .. " expected, got FILE*", 1, true), e)
      end
    end)
  end)

  it("a bounded semaphore is a semaphore, a semaphore is not bounded", function()
    run(function()
      local s, b = aio.semaphore(1), aio.bounded_semaphore(1)
      assert.equal(b, s.acquire(b))
      s.release(b)
      assert.is_true(pcall(b.acquire, s))
      b.release(s)
    end)
  end)

  it("Task methods refuse what is not a task", function()
    run(function()
      local t = aio.spawn(function() end)
      local e = misuse(t, "await", aio.lock())
      assert.truthy(e:find("luaio.Task expected", 1, true), e)
      e = misuse(t, "cancel", io.stdout)
      assert.truthy(e:find("luaio.Task expected", 1, true), e)
      t:await()
    end)
  end)
end)

-- Issue 12, item 13: errors name what went wrong.
describe("error messages", function()
  it("name the function, also when it is called through pcall", function()
    run(function()
      local q = aio.queue()
      local cases = {
        {aio.fs.read_file, {}, "'luaio.fs.read_file'"},
        {q.put, {q}, "'luaio.Queue.put'"},
        {aio.lock().acquire, {}, "'luaio.Lock.acquire'"},
        {aio.sleep, {"x"}, "'luaio.sleep'"},
      }
      for _, c in ipairs(cases) do
        local ok, err = pcall(c[1], table.unpack(c[2]))
        assert.is_false(ok)
        assert.truthy(err:find(c[3], 1, true), err)
      end
    end)
  end)

  it("name an unknown option key", function()
    run(function()
      local fns = {function() end}
      for _, c in ipairs {
        {aio.gather, {fns, {timeout = 0.1}}, "timeout"},
        {aio.gather, {fns, {return_error = true}}, "return_error"},
        {aio.wait, {{}, {timout = 1}}, "timout"},
        {aio.as_completed, {{}, {return_when = "all"}}, "return_when"},
      } do
        local ok, err = pcall(c[1], table.unpack(c[2]))
        assert.is_false(ok)
        assert.truthy(err:find("unknown option '" .. c[3] .. "'", 1, true),
                      err)
      end
    end)
  end)

  it("show a table raised as an error by its type and message fields",
     function()
    run(function()
      local t = aio.spawn(function()
        error({type = "ValidationError", message = "bad input"})
      end)
      assert.is_false(pcall(t.await, t))
      assert.matches("^ValidationError: bad input %(error object is a "
                     .. "table value%)", t:traceback())
      local u = aio.spawn(function() error({}) end)
      assert.is_false(pcall(u.await, u))
      assert.matches("^%(error object is a table value%)", u:traceback())
    end)
  end)
end)

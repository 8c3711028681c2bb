-- The copy between hosts: exact round trips of every type that crosses,
-- and an error naming the path of each one that does not.  A channel on
-- one host copies as it does between threads.
local aio = require "luaio"
local S = require "support"
local run = S.run

-- The copy of v, through a channel.
local function copy(v)
  local ch = aio.channel()
  ch:send(v)
  return ch:recv()
end

-- The message of the error that sending v raises.
local function refused(v)
  local ch = aio.channel()
  local ok, e = pcall(ch.send, ch, v)
  assert.is_false(ok)
  assert.equal(0, ch:len())
  return tostring(e)
end

describe("copies between hosts", function()
  it("keep integers, floats bit-exact, and any bytes", function()
    run(function()
      for _, n in ipairs({0, 1, -1, math.maxinteger, math.mininteger,
                          2^53 + 1}) do
        local c = copy(n)
        assert.equal(math.type(n), math.type(c))
        assert.equal(n, c)
      end
      for _, x in ipairs({0.0, -0.0, 1.5, 1e308, 5e-324, math.huge,
                          -math.huge, math.pi}) do
        local c = copy(x)
        assert.equal("float", math.type(c))
        assert.equal(string.pack("d", x), string.pack("d", c))
      end
      local nan = copy(0 / 0)
      assert.is_true(nan ~= nan)
      local bytes = {}
      for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
      local s = table.concat(bytes):rep(300)
      assert.equal(s, copy(s))
      assert.equal("", copy(""))
      assert.equal(true, copy(true))
      assert.equal(false, copy(false))
      assert.equal(aio.null, copy(aio.null))
      assert.is_nil(copy({nil})[1])
    end)
  end)

  it("copies tables: nested, keys of every kind, metatables dropped",
     function()
    run(function()
      local mt = {__index = function() return "meta" end}
      local t = setmetatable({1, 2, "three", {4, {5}}, x = {y = {z = true}},
                              [1.5] = "f", [true] = "b", [-7] = "neg"}, mt)
      local c = copy(t)
      assert.is_nil(getmetatable(c))
      assert.is_nil(c.missing)
      setmetatable(t, nil)
      assert.are.same(t, c)
      assert.are_not.equal(t, c)
      local k = copy({[{1, 2}] = "table key"})
      local key = next(k)
      assert.are.same({1, 2}, key)
    end)
  end)

  it("copies a table reached twice twice, and refuses a cycle", function()
    run(function()
      local shared = {1}
      local c = copy({a = shared, b = shared})
      assert.are.same({1}, c.a)
      assert.are_not.equal(c.a, c.b)
      local t = {inner = {}}
      t.inner.back = t
      assert.equal("value.inner.back: a table that contains itself cannot "
                   .. "cross threads", refused(t))
    end)
  end)

  it("copies 200 levels of nesting and refuses 201", function()
    run(function()
      local function nest(n)
        local t = {}
        for _ = 2, n do t = {t} end
        return t
      end
      local c, depth = copy(nest(200)), 1
      while c[1] do c, depth = c[1], depth + 1 end
      assert.equal(200, depth)
      assert.matches("^value%[1%]%[1%].*: a table nested deeper than 200 "
                     .. "levels cannot cross threads$", refused(nest(201)))
    end)
  end)

  it("copies a function whose only upvalue is _ENV, with its lines",
     function()
    run(function()
      local f = copy(function(x) return string.rep("a", x) end)
      assert.equal("aaa", f(3))
      assert.equal(7, copy(function() return 7 end)())
      local g = copy(function() error("boom") end)
      local _, e = pcall(g)
      assert.matches("worker_copy_spec.lua:%d+: boom", e)
    end)
  end)

  it("refuses what cannot cross, naming the path", function()
    run(function()
      local up = 1
      assert.equal("value.conn: userdata cannot cross threads",
                   refused({conn = io.stdout}))
      assert.equal("value[2]: a function with upvalues (a closure) cannot "
                   .. "cross threads", refused({1, function() return up end}))
      assert.equal("value.f: a C function cannot cross threads",
                   refused({f = print}))
      assert.equal("value.co: a coroutine cannot cross threads",
                   refused({co = coroutine.create(print)}))
      assert.equal('value["a key"]: userdata cannot cross threads',
                   refused({["a key"] = io.stdout}))
      assert.equal("value.t[userdata]: userdata cannot cross threads",
                   refused({t = {[io.stdout] = 1}}))
      assert.equal("value: a light userdata cannot cross threads",
                   refused(aio.getpid and debug.upvalueid(refused, 1)))
    end)
  end)

  it("copies whole after a refusal and between long and short messages",
     function()
    run(function()
      local ch, inner = aio.channel(), aio.channel()
      for _ = 1, 2 do -- the second finds what the first left
        assert.equal("value[3]: userdata cannot cross threads",
                     refused({inner, string.rep("a", 5000), io.stdout}))
      end
      local long = string.rep("y", 10000)
      ch:send({long, 1})
      ch:send({2, "z", inner})
      ch:send({long:sub(1, 100), inner})
      local a, b, c = ch:recv(), ch:recv(), ch:recv()
      assert.same({long, 1}, a)
      assert.same({2, "z"}, {b[1], b[2]})
      assert.equal(inner, b[3])
      assert.equal(long:sub(1, 100), c[1])
      assert.equal(inner, c[2])
      c[2]:send("still shared")
      assert.equal("still shared", inner:recv())
    end)
  end)

  it("refuses a message over 64 MiB", function()
    if S.SCALE < 1 then return end
    run(function()
      local big = string.rep("x", 24 * 1024 * 1024)
      assert.equal("value[3]: a message over 64 MiB cannot cross threads",
                   refused({big, big, big}))
    end)
  end)

  it("shares a channel by reference", function()
    run(function()
      local ch = aio.channel()
      local c = copy({ch = ch})
      assert.equal(ch, c.ch)
      c.ch:send("through the copy")
      assert.equal("through the copy", ch:recv())
    end)
  end)
end)

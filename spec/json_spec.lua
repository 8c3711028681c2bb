-- aio.json: lua-cjson with strict settings, an instance of luaio's own.
local aio = require "luaio"
local S = require "support"
local run = S.run
local json = aio.json

local function raises(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok)
  assert.is_string(err)
  return err
end

describe("aio.json", function()
  it("round-trips tables, strings, numbers and booleans", function()
    run(function()
      local v = {name = "luaio", list = {1, 2, 3}, nested = {ok = true,
                 no = false, pi = 3.25, neg = -17}}
      local back = json.decode(json.encode(v))
      assert.same(v, back)
      assert.equal("[1,2,3]", json.encode({1, 2, 3}))
      assert.equal('"a\\"b"', json.encode('a"b'))
      assert.equal("true", json.encode(true))
    end)
  end)

  it("decodes integral numbers as integers, others as floats", function()
    run(function()
      local v = json.decode('[1, -2, 1e3, 2.5, {"n": 40}]')
      assert.equal("integer", math.type(v[1]))
      assert.equal(-2, v[2])
      assert.equal("integer", math.type(v[3]))
      assert.equal(1000, v[3])
      assert.equal("float", math.type(v[4]))
      assert.equal("integer", math.type(v[5].n))
      assert.equal("integer", math.type(json.decode("12")))
    end)
  end)

  it("handles unicode: UTF-8 through, \\u escapes and surrogates",
     function()
    run(function()
      local s = "h\u{e9}llo \u{4e16}\u{754c} \u{1f600}"
      assert.equal(s, json.decode(json.encode(s)))
      assert.equal("\u{e9}", json.decode('"\\u00e9"'))
      assert.equal("\u{1f600}", json.decode('"\\ud83d\\ude00"'))
      assert.equal("a\nb\0c", json.decode('"a\\nb\\u0000c"'))
    end)
  end)

  it("has null, distinct from nil, both ways", function()
    run(function()
      assert.is_not_nil(json.null)
      local v = json.decode('{"a": null, "b": [null, 1]}')
      assert.equal(json.null, v.a)
      assert.equal(json.null, v.b[1])
      assert.equal(1, v.b[2])
      assert.equal("null", json.encode(json.null))
      assert.equal('{"x":null}', json.encode({x = json.null}))
      assert.equal("null", json.encode(nil))
    end)
  end)

  it("encodes an empty table as an object; [] decodes to an empty table",
     function()
    run(function()
      assert.equal("{}", json.encode({}))
      assert.same({}, json.decode("[]"))
      assert.same({}, json.decode("{}"))
      assert.equal("{}", json.encode(json.decode("[]")))
    end)
  end)

  it("raises on invalid JSON with cjson's message", function()
    run(function()
      local bad = {'{"a": 1', "[1, 2", '"abc', "[1] x", "{} {}", "",
                   "nul", "[1,]", "{'a': 1}", "[NaN]", "NaN", "Infinity",
                   "[-Infinity]", "0x10", "[0x1F]", "01x", "\"\\u12\"",
                   "{\"a\" 1}", "\1"}
      for _, s in ipairs(bad) do
        local err = raises(json.decode, s)
        assert.is_truthy(err:find("Expected") or err:find("invalid") or
                         err:find("unexpected") or err:find("found"), err)
      end
    end)
  end)

  it("refuses to encode NaN and infinities", function()
    run(function()
      raises(json.encode, 0 / 0)
      raises(json.encode, math.huge)
      raises(json.encode, {x = -math.huge})
    end)
  end)

  it("limits nesting: 10,000 levels is an error, not a crash", function()
    run(function()
      local deep = string.rep("[", 10000) .. string.rep("]", 10000)
      local err = raises(json.decode, deep)
      assert.matches("nested", err)
      raises(json.decode, string.rep('{"a":', 10000))
      local ok_depth = string.rep("[", 200) .. string.rep("]", 200)
      assert.is_table(json.decode(ok_depth))
      local t = {}
      local cur = t
      for _ = 1, 10000 do
        cur[1] = {}
        cur = cur[1]
      end
      assert.matches("nesting", raises(json.encode, t))
    end)
  end)

  it("raises on cycles, functions and other values it cannot encode",
     function()
    run(function()
      local t = {}
      t.self = t
      raises(json.encode, t)
      raises(json.encode, {f = print})
      raises(json.encode, coroutine.create(print))
      raises(json.encode, {[{}] = 1})
      raises(json.decode, nil)
    end)
  end)

  it("survives hostile input", function()
    run(function()
      -- Random bytes and truncations of a valid document: any result is
      -- fine as long as it is a value or an error string.
      local doc = json.encode({a = {1, 2, {b = "x\u{e9}"}}, c = json.null,
                               d = 1.5e300})
      for i = 0, #doc do
        local ok, err = pcall(json.decode, doc:sub(1, i))
        assert.is_true(ok or type(err) == "string")
      end
      math.randomseed(42)
      for _ = 1, 300 do
        local n = math.random(0, 40)
        local b = {}
        for i = 1, n do b[i] = string.char(math.random(0, 255)) end
        local ok, err = pcall(json.decode, table.concat(b))
        assert.is_true(ok or type(err) == "string")
      end
    end)
  end)

  it("does not change the settings of the user's own cjson", function()
    local ok, cjson = pcall(require, "cjson")
    if not ok then return end
    -- Stock cjson accepts hex numbers; luaio's instance does not.
    assert.equal(16, cjson.decode("0x10"))
    raises(json.decode, "0x10")
  end)

  it("decodes integers exactly or raises; out-of-range numbers raise",
     function()
    local json = aio.json
    assert.equal(9007199254740993, json.decode("9007199254740993"))
    assert.equal(math.maxinteger, json.decode("9223372036854775807"))
    assert.equal(math.mininteger, json.decode("-9223372036854775808"))
    local v = json.decode('[9007199254740993, {"k": -18014398509481985},'
                          .. ' "9007199254740993", 2.5, 1e3]')
    assert.equal(9007199254740993, v[1])
    assert.equal("integer", math.type(v[1]))
    assert.equal(-18014398509481985, v[2].k)
    assert.equal("9007199254740993", v[3])
    assert.equal(2.5, v[4])
    assert.equal(1000, v[5])
    assert.same({"1e400", 1}, json.decode('["1e400", 1]'))
    for _, bad in ipairs({"1e400", "[-1e400]", '{"a": 1e999}',
                          "9223372036854775808", "[" .. ("9"):rep(80) .. "]",
                          "[1" .. ("0"):rep(400) .. ".5]"}) do
      assert.has_error(function() json.decode(bad) end)
    end
  end)
end)

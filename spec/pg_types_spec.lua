-- aio.pg values both ways: every type of API.md's table, its limits, NULL.
local aio = require "luaio"
local S = require "support"
local P = require "pg_support"
local run = S.run
local describe = P.skippable(describe, pending)

local function conn() return aio.pg.connect(P.unix_dsn()) end

describe("aio.pg types", function()
  it("integers are exact to 64 bits", function()
    run(function()
      local c <close> = conn()
      for _, v in ipairs{math.maxinteger, math.mininteger, 0, -1} do
        local got = c:fetchval("select $1::int8", v)
        assert.equal(v, got)
        assert.equal("integer", math.type(got))
      end
      assert.equal(32767, c:fetchval("select $1::int2", 32767))
      assert.equal(-2147483648, c:fetchval("select $1::int4", -2147483648))
      assert.equal("integer", math.type(c:fetchval("select 1::int2")))
      local e = S.assert_raises("DatabaseError", c.fetchval, c,
                                "select $1::int2", 32768)
      assert.equal("22003", e.sqlstate)
      assert.equal(9007199254740993,
                   c:fetchval("select 9007199254740993::int8"))
    end)
  end)

  it("floats, infinities and NaN", function()
    run(function()
      local c <close> = conn()
      assert.equal(0.1, c:fetchval("select $1::float8", 0.1))
      assert.equal(1 / 3, c:fetchval("select $1::float8", 1 / 3))
      assert.equal("float", math.type(c:fetchval("select 2::float8")))
      assert.equal(math.huge, c:fetchval("select $1::float8", math.huge))
      assert.equal(-math.huge, c:fetchval("select '-Infinity'::float8"))
      local nan = c:fetchval("select $1::float8", 0 / 0)
      assert.is_true(nan ~= nan)
      assert.equal(1.5, c:fetchval("select $1::float4", 1.5))
    end)
  end)

  it("numeric stays an exact string", function()
    run(function()
      local c <close> = conn()
      local big = "123456789012345678901234567890.000000000000000001"
      assert.equal(big, c:fetchval("select $1::numeric", big))
      assert.equal("12.50", c:fetchval("select 12.50::numeric"))
      assert.equal("3", c:fetchval("select $1::numeric", 3))
    end)
  end)

  it("bool, text, and NULL as aio.null", function()
    run(function()
      local c <close> = conn()
      assert.is_true(c:fetchval("select $1::bool", true))
      assert.is_false(c:fetchval("select $1::bool", false))
      assert.equal("héllo ☃", c:fetchval("select $1::text", "héllo ☃"))
      assert.equal("", c:fetchval("select $1::text", ""))
      assert.equal(aio.null, c:fetchval("select null"))
      assert.equal(aio.null, c:fetchval("select $1::int", aio.null))
      assert.equal(aio.null, aio.json.null)
      local row = c:fetchrow("select 1 as a, null::text as b")
      assert.same({a = 1, b = aio.null}, row)
      assert.equal('{"a":1,"b":null}',
                   aio.json.encode(c:fetchrow("select 1 as a, null as b"))
                   :gsub('"b":null,"a":1', '"a":1,"b":null'))
      assert.is_true(c:fetchval("select $1::int is null", nil))
    end)
  end)

  it("bytea carries every byte value", function()
    run(function()
      local c <close> = conn()
      local all = {}
      for i = 0, 255 do all[#all + 1] = string.char(i) end
      all = table.concat(all)
      assert.equal(all, c:fetchval("select $1::bytea", all))
      assert.equal(256, c:fetchval("select length($1::bytea)", all))
      assert.equal("", c:fetchval("select $1::bytea", ""))
      c:execute("create temp table b (v bytea)")
      c:execute("insert into b values ($1)", all .. all)
      assert.equal(all .. all, c:fetchval("select v from b"))
      assert.equal("\0\1\2", c:fetchval("select '\\x000102'::bytea"))
    end)
  end)

  it("json and jsonb through aio.json, JSON null included", function()
    run(function()
      local c <close> = conn()
      local v = {a = {1, 2, 3}, b = "x", c = {d = true}}
      assert.same(v, c:fetchval("select $1::jsonb", v))
      assert.same(v, c:fetchval("select $1::json", v))
      assert.equal(aio.null, c:fetchval("select 'null'::jsonb"))
      assert.same({1, aio.null, "s"}, c:fetchval("select '[1,null,\"s\"]'::jsonb"))
      assert.equal(42, c:fetchval("select $1::jsonb -> 'n'", {n = 42}))
      -- SQL NULL and JSON null are the same value
      assert.equal(c:fetchval("select null::jsonb"),
                   c:fetchval("select 'null'::jsonb"))
      c:execute("create temp table j (v jsonb)")
      c:execute("insert into j values ($1)", {k = aio.null})
      assert.equal(aio.null, c:fetchval("select v->'k' from j"))
      assert.equal("null", c:fetchval("select jsonb_typeof(v->'k') from j"))
      assert.equal("string", type(c:fetchval("select $1::jsonb::text",
                                             {x = 1})))
    end)
  end)

  it("one-dimensional arrays are sequences, both ways", function()
    run(function()
      local c <close> = conn()
      assert.same({1, 2, 3}, c:fetchval("select $1::int[]", {1, 2, 3}))
      assert.same({}, c:fetchval("select $1::int[]", {}))
      assert.same({1, aio.null, 3},
                  c:fetchval("select array[1, null, 3]::int8[]"))
      local strs = {"a", "b c", 'q"uote', "back\\slash", "", "NULL", "{,}"}
      assert.same(strs, c:fetchval("select $1::text[]", strs))
      assert.same({true, false}, c:fetchval("select $1::bool[]",
                                            {true, false}))
      assert.same({1.5, -2.25}, c:fetchval("select $1::float8[]",
                                           {1.5, -2.25}))
      assert.same({"1.10", "2"}, c:fetchval("select '{1.10,2}'::numeric[]"))
      assert.same({"\0\255", "x"}, c:fetchval("select $1::bytea[]",
                                              {"\0\255", "x"}))
      assert.same({{a = 1}, aio.null}, c:fetchval("select $1::jsonb[]",
                                                  {{a = 1}, aio.null}))
      assert.equal(3, c:fetchval("select cardinality($1::int[])",
                                 {7, 8, 9}))
      -- more dimensions stay text
      assert.equal("{{1,2},{3,4}}",
                   c:fetchval("select '{{1,2},{3,4}}'::int[]"))
    end)
  end)

  it("other types come as their text", function()
    run(function()
      local c <close> = conn()
      assert.equal("2024-01-02", c:fetchval("select '2024-01-02'::date"))
      assert.equal("00000000-0000-0000-0000-000000000001",
        c:fetchval("select '00000000-0000-0000-0000-000000000001'::uuid"))
      assert.equal("10.0.0.1", c:fetchval("select '10.0.0.1'::inet"))
      assert.equal("1 day", c:fetchval("select $1::interval", "1 day"))
    end)
  end)

  it("a table for a text parameter is JSON; a function raises", function()
    run(function()
      local c <close> = conn()
      assert.equal('{"a":1}', c:fetchval("select $1::text", {a = 1}))
      assert.has_error(function() c:fetchval("select $1::text", print) end)
      assert.has_error(function()
        c:fetchval("select $1::int[]", {print})
      end)
      assert.equal(1, c:fetchval("select 1"))
    end)
  end)
end)

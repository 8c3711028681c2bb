-- scripts/fetch_all.lua and scripts/fetch_with_limit.lua: the guide's HTTP
-- examples, each with its own server on aio.start_server.
local LUAIO = assert(os.getenv("LUAIO"), "the test runner sets LUAIO")

local function run(script)
  local interp = rawget(_G, "aio") and LUAIO or
                 ("LUA_CPATH='" .. package.cpath .. "' lua5.4")
  local p = assert(io.popen(interp .. " scripts/" .. script .. " 2>&1"))
  local out = p:read("a")
  return out, p:close()
end

describe("HTTP scripts", function()
  it("fetch_all.lua gathers responses in the order asked for", function()
    local out, ok = run("fetch_all.lua")
    assert.is_true(ok, out)
    assert.matches("/page/5 %-> page 5\n/page/1 %-> page 1\n/page/3 %-> " ..
                   "page 3\n/page/2 %-> page 2\n/page/4 %-> page 4\n", out)
    assert.matches("missing: false true 404", out)
    assert.not_matches("never retrieved", out)
  end)

  it("fetch_with_limit.lua keeps 3 requests in flight", function()
    local out, ok = run("fetch_with_limit.lua")
    assert.is_true(ok, out)
    assert.matches("20 responses, first: done /item/1, last: done /item/20",
                   out)
    assert.matches("most at once on the server: 3\n", out)
  end)
end)

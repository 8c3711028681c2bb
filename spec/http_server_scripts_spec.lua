-- scripts/http_server.lua runs and prints what it demonstrates, under the
-- interpreter running this spec (luaio, or lua5.4 with the module).
local LUAIO = assert(os.getenv("LUAIO"), "the test runner sets LUAIO")

local function interpreter()
  if rawget(_G, "aio") then return LUAIO end
  return "LUA_CPATH='" .. package.cpath .. "' lua5.4"
end

describe("scripts/http_server.lua", function()
  it("serves routes, JSON and middleware", function()
    local p = assert(io.popen(interpreter() .. " scripts/http_server.lua 2>&1"))
    local out = p:read("a")
    assert.is_true(p:close(), out)
    assert.matches('GET /items/42%?q=lua %-> 200 {[^\n]*"item_id":42', out)
    assert.matches('GET /items/42%?q=lua %-> 200 {[^\n]*"q":"lua"', out)
    assert.matches("middleware header present: true", out)
    assert.matches('POST /items %-> 201 {[^\n]*"name":"widget"', out)
    assert.matches("GET /items/abc %-> 404", out)
    assert.matches("DELETE /items/1 %-> 405", out)
    assert.matches("shut down", out)
  end)
end)

describe("scripts/ws_echo.lua", function()
  it("echoes text and binary over a WebSocket, then closes", function()
    local p = assert(io.popen(interpreter() .. " scripts/ws_echo.lua 2>&1"))
    local out = p:read("a")
    assert.is_true(p:close(), out)
    assert.equal("echoed: hello\nechoed: luaio\n" ..
      "echoed: goodbye\nechoed 3 bytes as binary\nclosed with 1000\n", out)
  end)
end)

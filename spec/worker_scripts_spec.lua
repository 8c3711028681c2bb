-- The worker scripts run and print what they demonstrate, under the
-- interpreter running this spec (luaio, or lua5.4 with the module).
local LUAIO = assert(os.getenv("LUAIO"), "the test runner sets LUAIO")

local function run(script)
  local cmd = rawget(_G, "aio") and LUAIO
              or "LUA_CPATH='" .. package.cpath .. "' lua5.4"
  local err = os.tmpname()
  local p = assert(io.popen(cmd .. " scripts/" .. script .. " 2>" .. err))
  local out = p:read("a")
  local ok = p:close()
  local f = io.open(err)
  local stderr = f:read("a")
  f:close()
  os.remove(err)
  return out, stderr, ok
end

describe("worker scripts", function()
  it("to_thread.lua keeps the loop ticking through blocking work",
     function()
    local out, stderr, ok = run("to_thread.lua")
    assert.is_true(ok, stderr)
    assert.matches('os.execute%("sleep 0.2"%):%s+the ticker stalled', out)
    assert.matches('to_thread%(os.execute, "sleep 0.2"%):%s+the ticker kept '
                   .. "ticking", out)
    assert.matches("prime_sum%(300000%) in to_thread:%s+the ticker kept "
                   .. "ticking", out)
    assert.matches("ticks while blocked < in to_thread: true", out)
    assert.matches("same sum on and off the loop: true", out)
  end)

  it("loop_per_thread.lua runs tasks on 4 workers' own loops", function()
    local out, stderr, ok = run("loop_per_thread.lua")
    assert.is_true(ok, stderr)
    assert.matches("4 workers, each its own loop: 200 tasks done, 4 distinct "
                   .. "worker ids, main host id 0", out)
  end)
end)

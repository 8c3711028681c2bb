-- The example scripts run and print what they demonstrate.  Each runs
-- under the interpreter running this spec: luaio, or lua5.4 with the
-- module on its cpath.
local LUAIO = assert(os.getenv("LUAIO"), "the test runner sets LUAIO")

local function interpreter()
  if rawget(_G, "aio") then return LUAIO end -- under the luaio command
  return "LUA_CPATH='" .. package.cpath .. "' lua5.4"
end

local function run(script)
  local err = os.tmpname()
  local p = assert(io.popen(interpreter() .. " scripts/" .. script ..
                            " 2>" .. err))
  local out = p:read("a")
  local ok = p:close()
  local f = io.open(err)
  local stderr = f:read("a")
  f:close()
  os.remove(err)
  return out, stderr, ok
end

describe("scripts", function()
  it("demo.lua tours the primitives", function()
    local out, stderr, ok = run("demo.lua")
    assert.is_true(ok, stderr)
    assert.matches("gather: a done, b done, c done in about %d+ ms", out)
    assert.matches("timeout: false %-> TimeoutError: timed out", out)
    assert.matches("wait_for: TimeoutError", out)
    assert.matches("taskgroup: ErrorGroup with 1 error: the database is " ..
                   "down; 3 siblings cancelled", out)
    assert.matches("queue: 3 consumers took 9 items: 1 2 3 4 5 6 7 8 9", out)
    assert.matches('cancel: cleanup ran in <task %d+ "sleeper" running>', out)
    assert.matches("cancel: CancelledError: cancelled, cancelled%(%) = true",
                   out)
  end)

  it("timeouts.lua shows wait_for and a timeout scope", function()
    local out, stderr, ok = run("timeouts.lua")
    assert.is_true(ok, stderr)
    assert.equal(table.concat({
      "wait_for:\tfinished after 0.01 s",
      "slow_operation: cancelled, cleaning up",
      "wait_for:\tfalse\tTimeoutError: wait_for timed out",
      "slow_operation: cancelled, cleaning up",
      "timeout:\tfalse\tTimeoutError: timed out\texpired:\ttrue",
      "rescheduled:\tfinished after 0.03 s", ""}, "\n"), out)
  end)

  it("task_errors.lua reports the forgotten failure once, on stderr",
     function()
    local out, stderr, ok = run("task_errors.lua")
    assert.is_true(ok, stderr)
    assert.equal(table.concat({
      "the forgotten task failed; its report comes at the end",
      "await re-raised the same error:\ttrue",
      "ErrorGroup\t1 error(s):\tfetch failed",
      "sibling:\tcancelled", ""}, "\n"), out)
    local _, n = stderr:gsub("Task exception was never retrieved", "")
    assert.equal(1, n)
    assert.matches("forgotten failure", stderr)
    assert.matches("task_errors.lua:%d+", stderr)
  end)

  it("async_generator.lua pages through results while a ticker runs",
     function()
    local out, stderr, ok = run("async_generator.lua")
    assert.is_true(ok, stderr)
    assert.equal(table.concat({
      "fetched page 1", "fetched page 2", "fetched page 3",
      "items: 11 12 13 21 22 23 31 32 33",
      "the ticker ran meanwhile: true", ""}, "\n"), out)
  end)

  it("context_managers.lua closes in reverse order, waiting", function()
    local out, stderr, ok = run("context_managers.lua")
    assert.is_true(ok, stderr)
    assert.equal(table.concat({
      "open a", "open b", "using a and b", "closed b", "closed a",
      "open c", "closed c after an error",
      "error passed through:\tquery failed",
      "lock held:\ttrue", "lock released:\ttrue", ""}, "\n"), out)
  end)

  it("eager_tasks.lua shows eager start", function()
    local out, stderr, ok = run("eager_tasks.lua")
    assert.is_true(ok, stderr)
    assert.equal(table.concat({
      "default: after spawn, lazy starts, lazy ends",
      "eager:   eager starts, after spawn, eager ends",
      "a task that never waits is done at once:\ttrue\tcached", ""}, "\n"),
      out)
  end)
end)

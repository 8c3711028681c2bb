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

  it("retry_backoff.lua retries transient errors, never others", function()
    local out, stderr, ok = run("retry_backoff.lua")
    assert.is_true(ok, stderr)
    local retry = "  attempt %d failed (503 service unavailable); " ..
                  "retrying in under %d ms"
    assert.equal(table.concat({
      "a service that recovers:", retry:format(1, 10), retry:format(2, 20),
      "  200 OK after 3 calls",
      "a service that stays down:", retry:format(1, 10), retry:format(2, 20),
      "  gave up: false, 503 service unavailable after 3 attempts",
      "an error not worth retrying:", "  false, 404 not found after 1 call",
      "a deadline around the retries:", "  false TimeoutError: timed out",
      ""}, "\n"), out)
  end)

  it("token_bucket.lua paces requests after the burst", function()
    local out, stderr, ok = run("token_bucket.lua")
    assert.is_true(ok, stderr)
    assert.equal(table.concat({
      "15 requests served in order: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15",
      "the first 5 went at once: true",
      "they took at least 0.10 s: true",
      "try_acquire: true, then false", ""}, "\n"), out)
  end)

  it("connection_pool.lua shares three TCP connections", function()
    local out, stderr, ok = run("connection_pool.lua")
    assert.is_true(ok, stderr)
    assert.equal(table.concat({
      "answers: 1 4 9 16 25 36 49 64 81 100",
      "10 queries over 3 connections, at most 3 in use at once",
      "a connection broke: discarded",
      "stats: <pool 2/3 open, 2 idle, 0 borrowed, 0 waiting>",
      "after a broken one, still answers: 144",
      "closed: 3 opened, 3 closed", ""}, "\n"), out)
  end)

  it("batch_processor.lua writes in batches; a failed one fails its rows",
     function()
    local out, stderr, ok = run("batch_processor.lua")
    assert.is_true(ok, stderr)
    local lines = {"insert 4 rows: r1 r2 r3 r4"}
    local function stored(from, to, total)
      for i = from, to do
        lines[#lines + 1] = ("row r%d: stored, table has %d"):format(i, total)
      end
    end
    stored(1, 4, 4)
    lines[#lines + 1] = "insert 4 rows: r5 r6 r7 r8"
    stored(5, 8, 8)
    lines[#lines + 1] = "insert 2 rows: r9 r10"
    stored(9, 10, 10)
    for _, row in ipairs({"a", "bad", "b", "c"}) do
      lines[#lines + 1] = "row " .. row .. ": failed: constraint violated"
    end
    lines[#lines + 1] = "insert 1 row: d"
    lines[#lines + 1] = "row d: stored, table has 11"
    lines[#lines + 1] = ""
    assert.equal(table.concat(lines, "\n"), out)
  end)

  it("event_bus.lua: wait, drop_oldest, and a subscriber that falls behind",
     function()
    local out, stderr, ok = run("event_bus.lua")
    assert.is_true(ok, stderr)
    assert.equal(table.concat({
      "published 8 orders",
      "dashboard shows the latest: 6 7 8 (dropped 5)",
      "audit read 1 2 3 4, then: QueueFull",
      "subscribers left: 1",
      "mailer sent: 1 2 3 4 5 6 7 8", ""}, "\n"), out)
  end)

  it("ttl_cache.lua shares one lookup and caches no failure", function()
    local out, stderr, ok = run("ttl_cache.lua")
    assert.is_true(ok, stderr)
    assert.equal(table.concat({
      "5 concurrent requests: user7 user7 user7 user7 user7, 1 lookup",
      "again, from the cache: 1 lookup",
      "after the TTL: 2 lookups",
      "a failed lookup: false database unavailable",
      "not cached: the next caller gets user8, 4 lookups",
      "at most 2 entries: 7 cached false, 8 true, 9 true", ""}, "\n"), out)
  end)

  it("transaction.lua commits, and rolls back on error or cancel", function()
    local out, stderr, ok = run("transaction.lua")
    assert.is_true(ok, stderr)
    assert.equal(table.concat({
      "transfer 30 from alice to bob:", "  BEGIN",
      "  UPDATE accounts SET balance = 70 WHERE name = 'alice'",
      "  UPDATE accounts SET balance = 80 WHERE name = 'bob'",
      "  COMMIT", "  -> alice 70, bob 80",
      "transfer 500 from bob to alice:", "  BEGIN",
      "  UPDATE accounts SET balance = -420 WHERE name = 'bob'",
      "  ROLLBACK", "  -> false (insufficient funds): alice 70, bob 80",
      "a transfer cancelled half-way:", "  BEGIN",
      "  UPDATE accounts SET balance = 60 WHERE name = 'alice'",
      "  ROLLBACK",
      "  -> false (CancelledError: cancelled): alice 70, bob 80", ""}, "\n"),
      out)
  end)

  -- SIGTERM and SIGINT sent to a script that watches them itself
  -- (luaio.patterns.shutdown): under the luaio command too, the script
  -- owns them (issue 12, item 2).
  it("graceful_shutdown.lua: graceful, out of grace, forced", function()
    local under_luaio = rawget(_G, "aio") ~= nil
    if not under_luaio and not require("support").stock_lua_loads() then
      return pending("this build's module does not load in a stock lua5.4")
    end
    local aio = require "luaio"
    local function shutdown(args, signals)
      local p = assert(aio.subprocess(under_luaio and LUAIO or "lua5.4",
        {"scripts/graceful_shutdown.lua", table.unpack(args)},
        {stdout = "pipe", env = {LUA_CPATH = package.cpath,
                                 PATH = os.getenv("PATH")}}))
      local lines = {}
      for i, sig in ipairs(signals) do
        local want = i == 1 and "ready" or "no new jobs"
        repeat
          local line = p.stdout:read_line()
          assert.is_not_nil(line, table.concat(lines, "\n"))
          lines[#lines + 1] = line
        until line:find(want, 1, true)
        assert(p:kill(sig))
      end
      for line in p.stdout:lines() do lines[#lines + 1] = line end
      return p:wait().status, table.concat(lines, "\n")
    end
    aio.run(function()
      local status, out = shutdown({"0.05", "30"}, {"SIGTERM"})
      assert.matches("SIGTERM: no new jobs; finishing the current ones", out)
      assert.matches("shutdown: graceful, exit status 0$", out)
      assert.equal(0, status)
      status, out = shutdown({"30", "0.05"}, {"SIGINT"})
      assert.matches("worker 1: job 1 cut off", out)
      assert.matches("shutdown: timeout, exit status 124$", out)
      assert.equal(124, status)
      status, out = shutdown({"30", "30"}, {"SIGTERM", "SIGINT"})
      assert.matches("shutdown: forced, exit status 130$", out)
      assert.equal(130, status)
    end)
  end)
end)

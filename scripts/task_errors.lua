-- Errors in tasks: a failure nobody looks at is reported on stderr when
-- the run ends; a task group turns failures into one ErrorGroup at once.
local aio = require "luaio"

aio.run(function()
  -- 1. A spawned task fails and nobody awaits it: luaio prints
  --    "Task exception was never retrieved" with its traceback (stderr).
  aio.spawn(function() error("forgotten failure", 0) end)
  aio.sleep(0.01)
  print("the forgotten task failed; its report comes at the end")

  -- 2. Awaiting a task re-raises its error: same value.
  local e = {code = 42}
  local t = aio.spawn(function() error(e) end)
  local ok, got = pcall(t.await, t)
  print("await re-raised the same error:", got == e)

  -- 3. A task group: the first failure cancels the siblings, and the
  --    group raises every real error together.
  local stopped = {}
  ok, got = pcall(aio.taskgroup, function(tg)
    tg:spawn(function() aio.sleep(0.01) error("fetch failed", 0) end)
    tg:spawn(function() aio.sleep(0.02) error("parse failed", 0) end)
    tg:spawn(function()
      local ok2 = pcall(aio.sleep, 10)
      stopped[#stopped + 1] = ok2 and "finished" or "cancelled"
    end)
  end)
  print(got.type, #got.errors .. " error(s):", table.concat(got.errors, ", "))
  print("sibling:", stopped[1])
end)

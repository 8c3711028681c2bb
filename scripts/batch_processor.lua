-- A batch processor (the asyncio guide's pattern): many tasks each add one
-- row, and the rows are written in bulk, four at a time or whatever came
-- within 20 ms.  Each add waits for its batch's write and gets its result;
-- when a write fails, every row of that batch gets the error, and the
-- batcher goes on with the next batch.
--
--   luaio scripts/batch_processor.lua   or   lua5.4 scripts/batch_processor.lua
local aio = require "luaio"
local P = require "luaio.patterns"

aio.run(function()
  local table_rows = {}
  local function insert_many(rows)
    aio.sleep(0.002) -- one round trip for the whole batch
    for _, row in ipairs(rows) do
      if row == "bad" then error("constraint violated", 0) end
    end
    print(("insert %d row%s: %s"):format(#rows, #rows > 1 and "s" or "",
                                         table.concat(rows, " ")))
    for _, row in ipairs(rows) do table_rows[#table_rows + 1] = row end
    return #table_rows
  end

  local writer <close> = P.batcher{max_items = 4, max_delay = 0.02,
                                   flush = insert_many}

  local function add(row)
    local ok, total = pcall(writer.add, writer, row)
    return ok and ("stored, table has " .. total) or ("failed: " .. total)
  end

  -- Ten rows at once: two full batches, then two rows after 20 ms.
  local tasks = {}
  for i = 1, 10 do tasks[i] = aio.spawn(add, "r" .. i) end
  for i = 1, 10 do
    print(("row r%d: %s"):format(i, tasks[i]:await()))
  end

  -- A batch with a bad row fails as a whole; the next one is fine.
  tasks = {}
  for i, row in ipairs({"a", "bad", "b", "c", "d"}) do
    tasks[i] = aio.spawn(add, row)
  end
  for i, row in ipairs({"a", "bad", "b", "c", "d"}) do
    print(("row %s: %s"):format(row, tasks[i]:await()))
  end
end)

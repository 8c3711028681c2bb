-- An async generator paging through results: a coroutine that waits for
-- each page and yields its items, used by a plain for loop.
local aio = require "luaio"

-- A pretend API: pages of 3 items, each page takes a moment to arrive.
local function fetch_page(n)
  aio.sleep(0.005)
  if n > 3 then return nil end
  return {n * 10 + 1, n * 10 + 2, n * 10 + 3}
end

-- The generator waits inside a coroutine; the task waits with it.
local function items()
  return coroutine.wrap(function()
    local page = 1
    while true do
      local batch = fetch_page(page)
      if not batch then return end
      print("fetched page " .. page)
      for _, item in ipairs(batch) do coroutine.yield(item) end
      page = page + 1
    end
  end)
end

aio.run(function()
  -- Another task keeps running while the generator waits.
  local ticks = 0
  local ticker = aio.spawn(function()
    while true do aio.sleep(0.001) ticks = ticks + 1 end
  end)
  local got = {}
  for item in items() do got[#got + 1] = item end
  print("items: " .. table.concat(got, " "))
  print("the ticker ran meanwhile: " .. tostring(ticks > 0))
  ticker:cancel()
end)

-- Async context managers: <close> variables whose cleanup may wait.
local aio = require "luaio"

-- A pretend connection whose close takes a round trip.
local function connect(name)
  aio.sleep(0.001)
  print("open " .. name)
  return setmetatable({name = name}, {
    __close = function(self, err)
      aio.sleep(0.001) -- __close may wait
      print("closed " .. self.name .. (err and " after an error" or ""))
    end,
  })
end

aio.run(function()
  do
    local a <close> = connect("a")
    local b <close> = connect("b")
    print("using a and b")
  end -- closed in reverse order: b, then a

  local ok, err = pcall(function()
    local c <close> = connect("c")
    error("query failed", 0)
  end)
  print("error passed through:", err)

  -- luaio's own objects are closable: a lock held for a block.
  local lock = aio.lock()
  do
    local _ <close> = lock:acquire()
    print("lock held:", lock:locked())
  end
  print("lock released:", not lock:locked())
end)

-- binary_trees: the allocation-heavy plain-Lua benchmark (the Benchmarks
-- Game's binary-trees, depth N).  Prints "RESULT <CPU s>".
local N = tonumber(arg and arg[1]) or 15

local function bottom_up(d)
  if d == 0 then return {} end
  d = d - 1
  return {bottom_up(d), bottom_up(d)}
end

local function check(t)
  if t[1] then return 1 + check(t[1]) + check(t[2]) end
  return 1
end

local c0 = os.clock()
local maxd = math.max(6, N)
check(bottom_up(maxd + 1))
local long = bottom_up(maxd)
for d = 4, maxd, 2 do
  local iters, sum = 1 << (maxd - d + 4), 0
  for _ = 1, iters do sum = sum + check(bottom_up(d)) end
end
check(long)
print(string.format("RESULT %.3f", os.clock() - c0))

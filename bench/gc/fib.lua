-- fib: call-heavy plain Lua, fib(N).  Prints "RESULT <CPU s>".
local N = tonumber(arg and arg[1]) or 32
local function fib(n) if n < 2 then return n end return fib(n - 1) + fib(n - 2) end
local c0 = os.clock()
fib(N)
print(string.format("RESULT %.3f", os.clock() - c0))

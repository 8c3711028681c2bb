-- luaio.patterns.rate_limiter: a token bucket.  Tokens accrue at `rate`
-- per second up to `burst`; acquire(n) takes n, waiting for them in line.
--
-- The line is an aio.lock: the task at its head sleeps until its tokens
-- have accrued, the others wait for the lock.  So only the head has a
-- timer, none runs while nobody waits, and a waiter that is cancelled
-- (in the line or at its head) takes no tokens and hands the head on.
local aio = require "luaio"
local check = require "luaio.patterns.check"

local M = {}
local methods = {}
local mt = {__index = methods, __name = "luaio.RateLimiter"}

local function refill(self)
  local now = aio.time()
  local t = self.tokens + (now - self.last) * self.rate
  self.tokens = t < self.burst and t or self.burst
  self.last = now
  return self.tokens
end

local function checkburst(self, fname, n)
  if n > self.burst then
    check.argerror(fname, 2, ("%s tokens exceed the burst of %s")
                   :format(n, self.burst), 1)
  end
  return n
end

-- rl:acquire([n]) -> true: waits until n tokens are there, then takes them
function methods:acquire(n)
  check.self("rate_limiter:acquire", self, mt)
  n = check.arg_number("rate_limiter:acquire", 2, n, 1, 0, true)
  checkburst(self, "rate_limiter:acquire", n)
  if not self.line:locked() and refill(self) >= n then
    self.tokens = self.tokens - n -- no wait: no checkpoint
    return true
  end
  local _ <close> = self.line:acquire()
  while refill(self) < n do
    aio.sleep((n - self.tokens) / self.rate)
  end
  self.tokens = self.tokens - n
  return true
end

-- rl:try_acquire([n]) -> boolean: takes n tokens if they are there and
-- nobody waits ahead
function methods:try_acquire(n)
  check.self("rate_limiter:try_acquire", self, mt)
  n = check.arg_number("rate_limiter:try_acquire", 2, n, 1, 0, true)
  checkburst(self, "rate_limiter:try_acquire", n)
  if self.line:locked() or refill(self) < n then return false end
  self.tokens = self.tokens - n
  return true
end

-- rl:available() -> the tokens there now
function methods:available()
  check.self("rate_limiter:available", self, mt)
  return refill(self)
end

function mt:__tostring()
  return ("<rate_limiter %g/s, burst %g, %.3g tokens%s>"):format(
    self.rate, self.burst, refill(self),
    self.line:locked() and ", waiting" or "")
end

-- rate_limiter(rate [, burst]) -> limiter: `rate` tokens a second, at most
-- `burst` (default max(1, rate)) at once; it starts full.
function M.rate_limiter(rate, burst)
  local FN = "luaio.patterns.rate_limiter"
  rate = check.arg_number(FN, 1, rate, nil, 0, true)
  if rate == nil or rate == math.huge then
    check.argerror(FN, 1, "a finite rate above 0 expected")
  end
  burst = check.arg_number(FN, 2, burst, math.max(1, rate), 0, true)
  if burst == math.huge then check.argerror(FN, 2, "finite burst expected") end
  return setmetatable({rate = rate, burst = burst, tokens = burst,
                       last = aio.time(), line = aio.lock()}, mt)
end

return M

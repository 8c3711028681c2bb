-- luaio.patterns.retry: call a function until it returns without raising,
-- sleeping between attempts with exponential backoff and full jitter.
local aio = require "luaio"
local check = require "luaio.patterns.check"

local FN = "luaio.patterns.retry"
local KNOWN = {attempts = true, base = true, factor = true, max = true,
               jitter = true, retry_on = true, on_retry = true}

-- The sleep after failed attempt n: base * factor^(n-1), capped at max;
-- with jitter, uniform in [0, that) ("full jitter").
local function backoff(o, n)
  local d = o.base * o.factor ^ (n - 1)
  if d > o.max then d = o.max end
  if o.jitter then d = d * math.random() end
  return d
end

-- The attempt count goes on a table error; a string stays as it is.
local function record(err, n)
  if type(err) == "table" then rawset(err, "attempts", n) end
  return err
end

local M = {}

-- retry(fn [, opts]) -> fn's results | raises the last error
function M.retry(fn, opts)
  check.func(FN, 1, fn)
  opts = check.options(FN, 2, opts, KNOWN)
  local o = {
    attempts = check.count(FN, 2, opts, "attempts", 3, 1),
    base = check.number(FN, 2, opts, "base", 0.1, 0),
    factor = check.number(FN, 2, opts, "factor", 2, 0, true, true),
    max = check.number(FN, 2, opts, "max", math.huge, 0),
    retry_on = check.callback(FN, 2, opts, "retry_on"),
    on_retry = check.callback(FN, 2, opts, "on_retry"),
  }
  if opts.jitter ~= nil and type(opts.jitter) ~= "boolean" then
    check.argerror(FN, 2, "option 'jitter' must be a boolean")
  end
  o.jitter = opts.jitter ~= false
  local n = 0
  while true do
    n = n + 1
    local r = table.pack(pcall(fn, n))
    if r[1] then return table.unpack(r, 2, r.n) end
    local err = r[2]
    -- A cancellation is never retried: it belongs to a scope around us.
    if aio.is_error(err, "CancelledError") then error(err, 0) end
    if n >= o.attempts or (o.retry_on and not o.retry_on(err, n)) then
      error(record(err, n), 0)
    end
    local d = backoff(o, n)
    if o.on_retry then o.on_retry(err, n, d) end
    aio.sleep(d)
  end
end

return M

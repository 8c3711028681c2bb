-- Retry with exponential backoff (the asyncio guide's pattern): a flaky
-- call is tried again after 10 ms, 20 ms, 40 ms … (each delay drawn at
-- random below that: "full jitter", so that many clients that failed
-- together do not retry together).  Which errors are worth retrying is
-- the caller's choice; a cancellation never is.
--
--   luaio scripts/retry_backoff.lua   or   lua5.4 scripts/retry_backoff.lua
local aio = require "luaio"
local P = require "luaio.patterns"

-- A service that fails `failures` times, then answers.
local function flaky_service(failures)
  local calls = 0
  return function()
    calls = calls + 1
    aio.sleep(0.001) -- the round trip
    if calls <= failures then
      error({status = 503, message = "service unavailable"})
    end
    return "200 OK after " .. calls .. " calls"
  end
end

local function transient(err)
  return type(err) == "table" and err.status >= 500
end

local function log_retry(err, attempt, delay)
  print(("  attempt %d failed (%d %s); retrying in under %d ms")
        :format(attempt, err.status, err.message,
                math.ceil(0.01 * 2 ^ (attempt - 1) * 1000)))
  assert(delay <= 0.01 * 2 ^ (attempt - 1))
end

aio.run(function()
  print("a service that recovers:")
  print("  " .. P.retry(flaky_service(2), {
    attempts = 5, base = 0.01, retry_on = transient, on_retry = log_retry}))

  print("a service that stays down:")
  local ok, err = pcall(P.retry, flaky_service(math.huge), {
    attempts = 3, base = 0.01, retry_on = transient, on_retry = log_retry})
  print(("  gave up: %s, %d %s after %d attempts")
        :format(ok, err.status, err.message, err.attempts))

  print("an error not worth retrying:")
  local calls = 0
  ok, err = pcall(P.retry, function()
    calls = calls + 1
    error({status = 404, message = "not found"})
  end, {attempts = 5, retry_on = transient})
  print(("  %s, %d %s after %d call"):format(ok, err.status, err.message,
                                             calls))

  print("a deadline around the retries:")
  ok, err = pcall(function()
    local _ <close> = aio.timeout(0.05)
    return P.retry(flaky_service(math.huge),
                   {attempts = math.huge, base = 0.01, retry_on = transient})
  end)
  print("  " .. tostring(ok) .. " " .. tostring(err))
end)

-- luaio.redis (aio.redis): a Redis client over hiredis on the loop
-- (bindings/redis.c).
--
-- A client holds one shared connection: every task's commands go down it
-- and pipeline.  MULTI/EXEC transactions and blocking commands (BLPOP …)
-- take a connection of their own from a small pool, so they never stall
-- the shared one.  A lost connection gives its waiters ConnectionError;
-- the next call connects again.  Replies: status and bulk strings as
-- strings, integers as integers, nil as nil (aio.null inside arrays),
-- arrays as sequences; an error reply raises RedisError with `code` (its
-- first word).
local aio = require "luaio"
local db = require "luaio.db"
local C = require "luaio._redis"
local pool_mod = require "luaio.patterns.pool"
local conn_call, conn_alive = C.call, C.alive -- c:call, c:alive

local M = {}
local Client = {}
local client_mt = {__index = Client, __name = "luaio.redis.Client"}
local Tx = {}
local tx_mt = {__index = Tx, __name = "luaio.redis.Transaction"}
local Sub = {}
local sub_mt = {__index = Sub, __name = "luaio.redis.Subscription"}

local KNOWN = {host = true, port = true, path = true, reply_timeout = true,
               pool_max = true, db = true, password = true}

-- Commands that block the connection until something happens.
local BLOCKING = {BLPOP = true, BRPOP = true, BRPOPLPUSH = true,
                  BLMOVE = true, BLMPOP = true, BZPOPMIN = true,
                  BZPOPMAX = true, BZMPOP = true, WAIT = true,
                  WAITAOF = true}
-- Commands that change the connection's state: not on the shared one.
local STATEFUL = {MULTI = "r:transaction(fn)", EXEC = "r:transaction(fn)",
                  DISCARD = "r:transaction(fn)", WATCH = "r:transaction(fn)",
                  UNWATCH = "r:transaction(fn)",
                  SUBSCRIBE = "aio.redis.subscribe",
                  PSUBSCRIBE = "aio.redis.psubscribe",
                  SSUBSCRIBE = "aio.redis.subscribe",
                  UNSUBSCRIBE = "aio.redis.subscribe",
                  PUNSUBSCRIBE = "aio.redis.psubscribe",
                  MONITOR = "a connection of its own", SELECT = "opts.db",
                  QUIT = "r:close()", RESET = "r:close()"}

local function conn_error(msg, opts)
  return db.error("ConnectionError", msg, {
    host = opts.host, port = opts.port, path = opts.path})
end

local function check_opts(opts, fn)
  if type(opts) ~= "table" then
    error(("bad argument #1 to '%s' (table expected)"):format(fn), 3)
  end
  for k in pairs(opts) do
    if not KNOWN[k] then
      error(("bad argument #1 to '%s' (unknown option '%s')")
            :format(fn, tostring(k)), 3)
    end
  end
  if opts.path == nil and opts.port == nil and opts.host == nil then
    error(("bad argument #1 to '%s' (host and port, or path, expected)")
          :format(fn), 3)
  end
end

-- One connection to the server of opts, AUTH and SELECT done; raises
-- ConnectionError.
local function open(opts)
  local ms = math.floor((opts.reply_timeout or 30) * 1000 + 0.5)
  local c, msg
  if opts.path then
    c, msg = C.connect(opts.path, nil, ms)
    if not c then error(conn_error(msg .. ": " .. opts.path, opts), 0) end
  else
    local host, port = opts.host or "127.0.0.1", opts.port or 6379
    -- hiredis 0.14 resolves names itself, blocking: resolve first.
    local addrs, err = aio.getaddrinfo(host, port)
    if not addrs or #addrs == 0 then
      error(conn_error(("cannot resolve %s: %s"):format(host,
                       tostring(err or "no address")), opts), 0)
    end
    for _, a in ipairs(addrs) do
      c, msg = C.connect(a.addr, port, ms)
      if c then break end
    end
    if not c then
      error(conn_error(("%s (%s:%d)"):format(msg, host, port), opts), 0)
    end
  end
  local ok, e = pcall(function()
    if opts.password then c:call("AUTH", opts.password) end
    if opts.db then c:call("SELECT", opts.db) end
  end)
  if not ok then
    c:close()
    error(e, 0)
  end
  return c
end

-- aio.redis.connect{host, port | path [, reply_timeout = 30, pool_max = 4,
-- db, password]} -> client
function M.connect(opts)
  check_opts(opts, "connect")
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  -- closed is a field from the start: r:call's test of it then finds it
  -- in the table, not by a miss through the metatable.
  local self = setmetatable({opts = o, lock = aio.lock(), closed = false},
                            client_mt)
  self.conn = open(o)
  return self
end

local function closed_check(self)
  if self.closed then error("attempt to use a closed client", 3) end
end

-- The shared connection, connected again if it was lost.
local function shared(self)
  local c = self.conn
  if c ~= nil and c:alive() then return c end
  local lk <close> = self.lock:acquire()
  c = self.conn
  if c ~= nil and c:alive() then return c end
  if self.closed then error("attempt to use a closed client", 3) end
  if c ~= nil then c:close() end
  self.conn = nil
  c = open(self.opts)
  self.conn = c
  return c
end

local function dedicated(self)
  if self.pool == nil then
    local opts = self.opts
    self.pool = pool_mod.pool{
      create = function() return open(opts) end,
      destroy = function(c) c:close() end,
      check = function(c) return c:alive() end,
      max = opts.pool_max or 4,
    }
  end
  return self.pool:acquire()
end

local function upper(name)
  if type(name) ~= "string" then
    error("bad argument #1 to 'call' (command name expected)", 3)
  end
  return name:upper()
end

-- A blocking command on a pooled connection; a cancelled one closes it.
local function blocking(self, ...)
  local c, lease = dedicated(self)
  local ok, res = pcall(c.call, c, ...)
  if ok or aio.is_error(res, "RedisError") then
    lease:close()
  else
    c:close()
    lease:discard()
    lease:close()
  end
  if not ok then error(res, 0) end
  return res
end

-- Command names as written, known to go on the shared connection: the
-- common call skips upper-casing and the two lookups.  Bounded, so
-- made-up names cannot grow it without end.
local plain, nplain = {}, 0

-- r:call(cmd, ...) -> reply
function Client:call(...)
  local cmd, c = ..., self.conn
  if plain[cmd] and not self.closed and c ~= nil and conn_alive(c) then
    return conn_call(c, ...)
  end
  closed_check(self)
  local name = upper(cmd)
  if BLOCKING[name] then return blocking(self, ...) end
  local use = STATEFUL[name]
  if use then
    error(("%s changes the connection's state: use %s"):format(name, use), 2)
  end
  if not plain[cmd] and nplain < 256 then
    plain[cmd], nplain = true, nplain + 1
  end
  return shared(self):call(...)
end

-- tx:call(cmd, ...) -> "QUEUED"
function Tx:call(...)
  if self.done then error("the transaction is over", 2) end
  return self.c:call(...)
end

-- r:transaction(fn [, {watch = {keys}}]) -> the array of EXEC's replies
-- (error replies in place as RedisError values), or nil when a watched
-- key changed.  fn(tx) queues commands with tx:call; an error in fn
-- DISCARDs and is raised again.
function Client:transaction(fn, opts)
  closed_check(self)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'transaction' (function expected)", 2)
  end
  local c, lease = dedicated(self)
  local tx = setmetatable({c = c}, tx_mt)
  local ok, res = pcall(function()
    if opts and opts.watch then
      c:call("WATCH", table.unpack(opts.watch))
    end
    c:call("MULTI")
    fn(tx)
    tx.done = true
    return c:call("EXEC")
  end)
  tx.done = true
  if ok then
    lease:close()
    return res
  end
  -- In MULTI still, or in doubt: DISCARD when that is clean, else close.
  local clean = aio.is_error(res, "RedisError") or not aio.is_error(res)
  if clean and not aio.is_error(res, "CancelledError") then
    clean = aio.shield(pcall, c.call, c, "DISCARD")
  else
    clean = false
  end
  if not clean then
    c:close()
    lease:discard()
  end
  lease:close()
  error(res, 0)
end

-- r:close(): the shared connection, the pool
function Client:close()
  if self.closed then return end
  self.closed = true
  if self.conn then self.conn:close() end
  self.conn = nil
  if self.pool then aio.shield(self.pool.close, self.pool, 0) end
end
client_mt.__close = Client.close

function client_mt.__tostring(self)
  if self.closed then return "luaio.redis.Client (closed)" end
  return ("luaio.redis.Client (%s)"):format(tostring(self.conn))
end

-- Subscriptions.

local function subscribe(cmd, fn, opts, ...)
  check_opts(opts, fn)
  local n = select("#", ...)
  if n == 0 then
    error(("bad argument #2 to '%s' (a channel expected)"):format(fn), 3)
  end
  for i = 1, n do
    if type((select(i, ...))) ~= "string" then
      error(("bad argument #%d to '%s' (string expected)"):format(i + 1, fn),
            3)
    end
  end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.reply_timeout = 0 -- a subscriber waits for messages as long as it likes
  local c = open(o)
  local ok, e = pcall(function(...)
    c:_subscribe(cmd, ...)
    -- Wait for every confirmation: messages published after this returns
    -- are delivered.
    local seen = 0
    while seen < n do
      local kind = c:_next()
      if kind == nil then error(conn_error("connection closed", o), 0) end
      if kind == "subscribe" or kind == "psubscribe" then seen = seen + 1 end
    end
  end, ...)
  if not ok then
    c:close()
    error(e, 0)
  end
  return setmetatable({c = c, pattern = cmd == "PSUBSCRIBE"}, sub_mt)
end

-- local s <close> = aio.redis.subscribe(opts, channel, ...)
function M.subscribe(opts, ...)
  return subscribe("SUBSCRIBE", "subscribe", opts, ...)
end

-- local s <close> = aio.redis.psubscribe(opts, pattern, ...)
function M.psubscribe(opts, ...)
  return subscribe("PSUBSCRIBE", "psubscribe", opts, ...)
end

-- s:next() -> {channel, data [, pattern]} | nil once closed; raises
-- ConnectionError when the server dropped the subscription.
function Sub:next()
  local c = self.c
  if c == nil then return nil end
  while true do
    local kind, a, b, d = c:_next()
    if kind == nil then return nil end
    if kind == "message" then return {channel = a, data = b} end
    if kind == "pmessage" then return {pattern = a, channel = b, data = d} end
  end
end

-- for m in s:iter() do … end
function Sub:iter()
  return function() return self:next() end
end

function Sub:close()
  local c = self.c
  if c == nil then return end
  self.c = nil
  c:close()
end
sub_mt.__close = Sub.close

function sub_mt.__tostring(self)
  return self.c and ("luaio.redis.Subscription (%s)"):format(tostring(self.c))
         or "luaio.redis.Subscription (closed)"
end

return M

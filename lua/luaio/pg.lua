-- luaio.pg (aio.pg): a PostgreSQL client on libpq's non-blocking API
-- (bindings/pg.c, bindings/pg_values.c).
--
-- A connection is a table holding the C connection.  Every statement is
-- prepared once (PQsendPrepare and a describe, one round trip) and kept in
-- a cache of the connection's (the 100 used last), so its parameter types
-- are known: values follow them.  Failed statements raise DatabaseError
-- with the server's fields; a refused, lost or reset connection raises
-- ConnectionError.  Every query method takes its SQL as a string, or as
-- {sql, timeout = s} for a deadline of that call alone.
local aio = require "luaio"
local db = require "luaio.db"
local C = require "luaio._pg"
local pool_mod = require "luaio.patterns.pool"

local M = {null = aio.null, libpq_version = C.libpq_version}
local Conn = {}
local conn_mt = {__index = Conn, __name = "luaio.pg.Connection"}
local Listener = {}
local listener_mt = {__index = Listener, __name = "luaio.pg.Listener"}
local Pool = {}
local pool_mt = {__index = Pool, __name = "luaio.pg.Pool"}
local Pooled = {}
local pooled_mt = {__index = Pooled, __name = "luaio.pg.PooledConnection"}

local EXEC, ALL, ROW, VALUE = 0, 1, 2, 3
local CACHE = 100        -- prepared statements kept per connection
local RESET_TIMEOUT = 2  -- seconds a pool gives a returned connection
local ROLLBACK_TIMEOUT = 5

local CONNECT_KNOWN = {timeout = true, command_timeout = true,
                       statement_cache_size = true}
local POOL_KNOWN = {dsn = true, min = true, max = true,
                    acquire_timeout = true, idle_timeout = true,
                    timeout = true, command_timeout = true,
                    statement_cache_size = true}

-- Array types: a table parameter of one becomes an array literal.
local ARRAY = {[1000] = true, [1001] = "bytea", [1005] = true,
               [1007] = true, [1016] = true, [1021] = true, [1022] = true,
               [1009] = true, [1015] = true, [1014] = true, [1231] = true,
               [199] = "json", [3807] = "json", [1028] = true,
               [2951] = true, [1182] = true, [1115] = true, [1185] = true}

local function element(v, kind)
  local t = type(v)
  if v == aio.null then return "NULL" end
  if t == "boolean" then return v and "t" or "f" end
  if t == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    return ("%.17g"):format(v)
  end
  if t == "table" and kind ~= "json" then return nil end -- nested
  if t == "table" then v = aio.json.encode(v)
  elseif t ~= "string" then
    error(("%s cannot be an array element"):format(t), 0)
  elseif kind == "bytea" then
    v = "\\x" .. v:gsub(".", function(c) return ("%02x"):format(c:byte()) end)
  end
  return '"' .. v:gsub('[\\"]', "\\%0") .. '"'
end

local function array_literal(a, kind)
  local parts = {}
  for i = 1, #a do
    local e = element(a[i], kind)
    if e == nil then e = array_literal(a[i], kind) end
    parts[i] = e
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

-- A table parameter of type oid: an array literal for an array type,
-- JSON for anything else (json, jsonb, text).
local function encode_table(v, oid)
  local kind = ARRAY[oid]
  if kind then return array_literal(v, kind) end
  return aio.json.encode(v)
end

C.setup(aio.json.decode, encode_table)

local function c_of(self)
  local c = self._c
  if c == nil then error("attempt to use a closed connection", 3) end
  return c
end

local function conn_error(msg, fields)
  return db.error("ConnectionError", msg, fields)
end

local function check_options(opts, known, fn)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(("bad argument to '%s' (table expected)"):format(fn), 3)
  end
  for k in pairs(opts) do
    if not known[k] then
      error(("bad argument to '%s' (unknown option '%s')")
            :format(fn, tostring(k)), 3)
    end
  end
  for _, k in ipairs{"timeout", "command_timeout"} do
    local v = opts[k]
    if v ~= nil and (type(v) ~= "number" or v < 0) then
      error(("bad argument to '%s' (%s: seconds >= 0)"):format(fn, k), 3)
    end
  end
  return opts
end

-- The keywords and values for PQconnectStartParams, host names resolved
-- here (aio.getaddrinfo) and passed as hostaddr.
local function conninfo(dsn)
  local p, err = C.parse(dsn)
  if p == nil then
    error(("bad argument #1 to 'connect' (%s)"):format(err), 3)
  end
  p.host = p.host or os.getenv("PGHOST")
  p.hostaddr = p.hostaddr or os.getenv("PGHOSTADDR")
  if p.host == "" then p.host = nil end
  if p.hostaddr == nil and p.host ~= nil then
    -- Every address of every host, in order: libpq tries them in turn.
    local hosts, addrs, any = {}, {}, false
    local port = tonumber(p.port or os.getenv("PGPORT")) or 5432
    for h in p.host:gmatch("[^,]+") do
      if h:sub(1, 1) == "/" or h:sub(1, 1) == "@" then
        hosts[#hosts + 1], addrs[#addrs + 1] = h, ""
      else
        local a, msg = aio.getaddrinfo(h, port)
        if not a or #a == 0 then
          error(conn_error(("cannot resolve %s: %s")
                           :format(h, tostring(msg or "no address")),
                           {host = h, port = port}), 0)
        end
        for _, e in ipairs(a) do
          hosts[#hosts + 1], addrs[#addrs + 1] = h, e.addr
        end
        any = true
      end
    end
    if any then
      if p.port and p.port:find(",") then
        error("bad argument #1 to 'connect' (one port for several hosts)", 3)
      end
      p.host, p.hostaddr = table.concat(hosts, ","), table.concat(addrs, ",")
    end
  end
  p.gssencmode = p.gssencmode or "disable" -- no Kerberos lookups
  p.client_encoding = p.client_encoding or "UTF8"
  local keys, vals = {}, {}
  for k, v in pairs(p) do
    keys[#keys + 1] = k
    vals[#vals + 1] = v
  end
  return keys, vals, p
end

-- aio.pg.connect(dsn [, {timeout = 60, command_timeout,
-- statement_cache_size = 100}]) -> conn
function M.connect(dsn, opts)
  if type(dsn) ~= "string" then
    error("bad argument #1 to 'connect' (string expected)", 2)
  end
  opts = check_options(opts, CONNECT_KNOWN, "connect")
  local keys, vals, p = conninfo(dsn)
  local host = p.host and p.host:match("^[^,]*")
  local c, msg
  do
    local _ <close> = aio.timeout(opts.timeout or 60)
    c, msg = C.connect(keys, vals)
  end
  if c == nil then
    error(conn_error(msg, {host = host, port = tonumber(p.port)}), 0)
  end
  return setmetatable({
    _c = c, _stmts = {}, _nstmts = 0, _tick = 0, _seq = 0,
    _cache = opts.statement_cache_size or CACHE,
    _timeout = opts.command_timeout, _listeners = {},
    host = host, port = tonumber(p.port),
  }, conn_mt)
end

-- The least recently used statement goes (DEALLOCATE).
local function evict(self, c)
  local oldest, sql
  for s, e in pairs(self._stmts) do
    if oldest == nil or e.used < oldest.used then oldest, sql = e, s end
  end
  self._stmts[sql] = nil
  self._nstmts = self._nstmts - 1
  -- The server may have lost it already (DEALLOCATE ALL): no matter.
  local ok, e = pcall(c._script, c, "DEALLOCATE " .. oldest.name)
  if not ok and not aio.is_error(e, "DatabaseError") then error(e, 0) end
end

local function statement(self, c, sql)
  local tick = self._tick + 1
  self._tick = tick
  local e = self._stmts[sql]
  if e then
    e.used = tick
    return e
  end
  if self._nstmts >= self._cache and self._nstmts > 0 then
    evict(self, c)
  end
  self._seq = self._seq + 1
  local name = "__luaio_" .. self._seq
  local ptypes = c:_prepare(name, sql)
  e = {name = name, ptypes = ptypes, used = tick}
  if self._cache > 0 then
    self._stmts[sql] = e
    self._nstmts = self._nstmts + 1
  end
  return e
end

local function forget(self, sql)
  if self._stmts[sql] then
    self._stmts[sql] = nil
    self._nstmts = self._nstmts - 1
  end
end

-- A cached statement the server no longer has, or whose plan changed.
local function stale(err)
  return aio.is_error(err, "DatabaseError") and (err.sqlstate == "26000"
    or (err.sqlstate == "0A000" and tostring(err.message):find("cached plan")))
end

local function query(self, c, mode, sql, ...)
  local e = statement(self, c, sql)
  if self._cache == 0 then
    local ok, r = pcall(c._query, c, mode, e.name, e.ptypes, ...)
    c:_script("DEALLOCATE " .. e.name)
    if not ok then error(r, 0) end
    return r
  end
  local ok, r = pcall(c._query, c, mode, e.name, e.ptypes, ...)
  if ok then return r end
  if stale(r) then
    forget(self, sql)
    if c:_status() == "idle" then
      e = statement(self, c, sql)
      return c:_query(mode, e.name, e.ptypes, ...)
    end
  end
  error(r, 0)
end

local function sql_of(sql, fn)
  local timeout
  if type(sql) == "table" then
    timeout = sql.timeout
    sql = sql[1] or sql.sql
  end
  if type(sql) ~= "string" then
    error(("bad argument #1 to '%s' (SQL string expected)"):format(fn), 4)
  end
  if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0) then
    error(("bad argument #1 to '%s' (timeout: seconds >= 0)"):format(fn), 4)
  end
  return sql, timeout
end

local function with_timeout(timeout, f, ...)
  local _ <close> = aio.timeout(timeout)
  return f(...)
end

local function run(self, mode, fn, sql, ...)
  local c = c_of(self)
  local timeout
  sql, timeout = sql_of(sql, fn)
  timeout = timeout or self._timeout
  if timeout then
    return with_timeout(timeout, query, self, c, mode, sql, ...)
  end
  return query(self, c, mode, sql, ...)
end

-- conn:fetch(sql, ...) -> array of rows keyed by column name
function Conn:fetch(sql, ...) return run(self, ALL, "fetch", sql, ...) end

-- conn:fetchrow(sql, ...) -> the first row or nil
function Conn:fetchrow(sql, ...) return run(self, ROW, "fetchrow", sql, ...) end

-- conn:fetchval(sql, ...) -> the first column of the first row, or nil
function Conn:fetchval(sql, ...) return run(self, VALUE, "fetchval", sql, ...) end

-- conn:execute(sql, ...) -> the number of rows affected
function Conn:execute(sql, ...) return run(self, EXEC, "execute", sql, ...) end

local function many(self, c, sql, list)
  local e = statement(self, c, sql)
  return c:_many(e.name, e.ptypes, list)
end

-- conn:executemany(sql, list) -> rows affected in all: one statement per
-- array of parameters, all in one pipeline (one round trip).
function Conn:executemany(sql, list)
  local c = c_of(self)
  local timeout
  sql, timeout = sql_of(sql, "executemany")
  if type(list) ~= "table" then
    error("bad argument #2 to 'executemany' (table expected)", 2)
  end
  timeout = timeout or self._timeout
  if timeout then return with_timeout(timeout, many, self, c, sql, list) end
  return many(self, c, sql, list)
end

-- conn:execute_script(sql): several statements without parameters
-- (migrations), in one round trip.
function Conn:execute_script(sql)
  local c = c_of(self)
  local timeout
  sql, timeout = sql_of(sql, "execute_script")
  timeout = timeout or self._timeout
  if timeout then
    with_timeout(timeout, c._script, c, sql)
  else
    c:_script(sql)
  end
end

-- for row in conn:rows(sql, ...) do … end: the rows one at a time
-- (single-row mode), read from the server only as the loop takes them, so
-- memory stays flat however many there are.  Leaving the loop early
-- (break, an error, a cancellation) cancels the rest; use it only as a
-- for loop's iterator.
function Conn:rows(sql, ...)
  local c = c_of(self)
  local timeout
  sql, timeout = sql_of(sql, "rows")
  timeout = timeout or self._timeout
  -- One deadline for the whole loop: each step waits under it (a scope
  -- belongs to the function that makes it, so each step makes its own).
  local deadline = timeout and aio.time() + timeout
  local function start(...)
    local e = statement(self, c, sql)
    c:_rows_start(e.name, e.ptypes, ...)
  end
  if timeout then
    with_timeout(timeout, start, ...)
  else
    start(...)
  end
  local closer = setmetatable({}, {__close = function() c:_abandon() end})
  if not deadline then
    return function() return c:_rows_next() end, nil, nil, closer
  end
  return function()
    local _ <close> = aio.timeout_at(deadline)
    -- a row already read takes no wait, where a passed deadline would act
    if aio.time() >= deadline then aio.sleep(0) end
    return c:_rows_next()
  end, nil, nil, closer
end

-- COPY's first step; a cancelled one is abandoned (cancelled, drained).
local function copy_start(c, sql)
  local ok, kind = pcall(c._copy_start, c, sql)
  if not ok then
    c:_abandon()
    error(kind, 0)
  end
  return kind
end

local function copy_out(c, sql, sink)
  local kind = copy_start(c, sql)
  if kind ~= "out" then
    c:_abandon()
    error("copy_out: not a COPY ... TO STDOUT statement", 0)
  end
  local parts = {}
  local ok, n = pcall(function()
    while true do
      local chunk = c:_copy_get()
      if type(chunk) == "number" then return chunk end
      if sink then sink(chunk) else parts[#parts + 1] = chunk end
    end
  end)
  if not ok then
    c:_abandon()
    error(n, 0)
  end
  if sink then return n end
  return table.concat(parts), n
end

-- conn:copy_out(sql [, sink]) -> data, rows | rows: runs COPY ... TO
-- STDOUT; sink(chunk) gets the data as it arrives, else it is returned.
function Conn:copy_out(sql, sink)
  local c = c_of(self)
  local timeout
  sql, timeout = sql_of(sql, "copy_out")
  if sink ~= nil and type(sink) ~= "function" then
    error("bad argument #2 to 'copy_out' (function expected)", 2)
  end
  timeout = timeout or self._timeout
  if timeout then return with_timeout(timeout, copy_out, c, sql, sink) end
  return copy_out(c, sql, sink)
end

local function copy_in(c, sql, source)
  local kind = copy_start(c, sql)
  if kind ~= "in" then
    c:_abandon()
    error("copy_in: not a COPY ... FROM STDIN statement", 0)
  end
  local ok, e = pcall(function()
    if type(source) == "string" then
      c:_copy_put(source)
    elseif type(source) == "table" then
      for i = 1, #source do c:_copy_put(source[i]) end
    else
      while true do
        local chunk = source()
        if chunk == nil then break end
        c:_copy_put(chunk)
      end
    end
  end)
  if not ok then
    c:_abandon()
    error(e, 0)
  end
  return c:_copy_end()
end

-- conn:copy_in(sql, source) -> rows copied: runs COPY ... FROM STDIN with
-- the data of source: a string, an array of strings, or a function
-- returning chunks and then nil.  A failing source aborts the COPY (its
-- error is raised; nothing is copied).
function Conn:copy_in(sql, source)
  local c = c_of(self)
  local timeout
  sql, timeout = sql_of(sql, "copy_in")
  local t = type(source)
  if t ~= "string" and t ~= "table" and t ~= "function" then
    error("bad argument #2 to 'copy_in' (string, table or function "
          .. "expected)", 2)
  end
  timeout = timeout or self._timeout
  if timeout then return with_timeout(timeout, copy_in, c, sql, source) end
  return copy_in(c, sql, source)
end

-- The transaction guard's SQL (db.transaction), run shielded so that a
-- cancellation that leaves the block still commits or rolls back; a
-- rollback that fails or takes too long closes the connection (the server
-- then rolls back itself).
local function shielded(conn, sql)
  local ok, e = aio.shield(pcall, function()
    local c = c_of(conn)
    c:_script(sql)
  end)
  if not ok then error(e, 0) end
end

local function rollback(conn, sql)
  local c = conn._c
  if c == nil or not c:_alive() then return end
  local ok = aio.shield(pcall, function()
    local _ <close> = aio.timeout(ROLLBACK_TIMEOUT)
    c:_script(sql)
  end)
  if not ok then c:close() end
end

local ops = {}
function ops.begin(conn, depth)
  if depth == 1 then
    shielded(conn, conn._tx_begin)
  else
    shielded(conn, "SAVEPOINT luaio_" .. depth)
  end
end
function ops.commit(conn, depth)
  if depth == 1 then
    shielded(conn, "COMMIT")
  else
    shielded(conn, "RELEASE SAVEPOINT luaio_" .. depth)
  end
end
function ops.rollback(conn, depth)
  if depth == 1 then
    rollback(conn, "ROLLBACK")
  else
    rollback(conn, ("ROLLBACK TO SAVEPOINT luaio_%d; RELEASE SAVEPOINT "
                    .. "luaio_%d"):format(depth, depth))
  end
end

local ISOLATION = {serializable = "SERIALIZABLE",
                   repeatable_read = "REPEATABLE READ",
                   read_committed = "READ COMMITTED",
                   read_uncommitted = "READ UNCOMMITTED"}

-- local tx <close> = conn:transaction([{isolation, readonly, deferrable}]):
-- BEGIN; COMMIT when the block ends, ROLLBACK when an error or a
-- cancellation leaves it; nested ones are savepoints.
function Conn:transaction(opts)
  c_of(self)
  local sql = "BEGIN"
  if opts ~= nil then
    if type(opts) ~= "table" then
      error("bad argument #1 to 'transaction' (table expected)", 2)
    end
    for k in pairs(opts) do
      if k ~= "isolation" and k ~= "readonly" and k ~= "deferrable" then
        error(("bad argument #1 to 'transaction' (unknown option '%s')")
              :format(tostring(k)), 2)
      end
    end
    if opts.isolation ~= nil then
      local level = ISOLATION[opts.isolation]
      if level == nil then
        error("bad argument #1 to 'transaction' (isolation: serializable, "
              .. "repeatable_read, read_committed or read_uncommitted)", 2)
      end
      sql = sql .. " ISOLATION LEVEL " .. level
    end
    if opts.readonly then sql = sql .. " READ ONLY" end
    if opts.deferrable then sql = sql .. " DEFERRABLE" end
  end
  self._tx_begin = sql
  return db.transaction(self, ops)
end

-- conn:in_transaction() -> boolean
function Conn:in_transaction()
  local st = c_of(self):_status()
  return st == "intrans" or st == "inerror" or st == "active"
end

-- conn:pid() -> the server process serving this connection
function Conn:pid() return c_of(self):_pid() end

-- conn:alive() -> whether the connection is still open
function Conn:alive()
  local c = self._c
  return c ~= nil and c:_alive()
end

-- conn:close(): a statement running on it gets ConnectionError; closing
-- again is harmless
function Conn:close()
  local c = self._c
  if c == nil then return end
  self._c = nil
  c:close()
end
conn_mt.__close = Conn.close

function conn_mt.__tostring(self)
  local c = self._c
  return c and tostring(c) or "luaio.pg (closed)"
end

-- LISTEN.

-- local l <close> = conn:listen(channel): LISTEN on this connection;
-- l:iter() gives {channel, payload, pid}.
function Conn:listen(channel)
  local c = c_of(self)
  if type(channel) ~= "string" then
    error("bad argument #1 to 'listen' (string expected)", 2)
  end
  if self._listeners[channel] then
    error(("already listening on %q"):format(channel), 2)
  end
  local ident = c:_quote_ident(channel)
  c:_script("LISTEN " .. ident)
  local l = setmetatable({conn = self, channel = channel, ident = ident,
                          buf = {}, head = 1}, listener_mt)
  self._listeners[channel] = l
  return l
end

-- l:next() -> {channel, payload, pid} | nil once closed; raises
-- ConnectionError when the connection is lost.
function Listener:next()
  local conn = self.conn
  while true do
    if conn == nil then return nil end
    local buf = self.buf
    if buf[self.head] then
      local n = buf[self.head]
      buf[self.head] = nil
      self.head = self.head + 1
      return n
    end
    local c = conn._c
    if c == nil then return nil end
    local ch, payload, pid = c:_notify()
    local n = {channel = ch, payload = payload, pid = pid}
    if ch == self.channel then return n end
    local other = conn._listeners[ch] -- another listener's: to it
    if other then other.buf[#other.buf + 1] = n end
    conn = self.conn
  end
end

function Listener:iter()
  return function() return self:next() end
end

function Listener:close()
  local conn = self.conn
  if conn == nil then return end
  self.conn = nil
  conn._listeners[self.channel] = nil
  local c = conn._c
  if c ~= nil and c:_alive() then
    local ok = aio.shield(pcall, c._script, c, "UNLISTEN " .. self.ident)
    if not ok then c:close() end
  end
end
listener_mt.__close = Listener.close

-- Pools.

-- asyncpg's reset: whatever the borrower left open goes; within
-- RESET_TIMEOUT, else the connection is closed.
local function reset(conn)
  local c = conn._c
  if c == nil or not c:_alive() then return false end
  return (pcall(function()
    local _ <close> = aio.timeout(RESET_TIMEOUT)
    c:_drain()
    local sql = "SELECT pg_advisory_unlock_all(); CLOSE ALL; RESET ALL"
    if c:_status() ~= "idle" then sql = "ROLLBACK; " .. sql end
    if next(conn._listeners) then
      for _, l in pairs(conn._listeners) do l.conn = nil end
      conn._listeners = {}
    end
    c:_script(sql .. "; UNLISTEN *")
    conn._tx_depth = 0
  end))
end

-- aio.pg.pool{dsn, min = 1, max = 10, acquire_timeout, idle_timeout = 300,
-- timeout, command_timeout} -> pool
function M.pool(opts)
  if type(opts) ~= "table" then
    error("bad argument #1 to 'pool' (table expected)", 2)
  end
  check_options(opts, POOL_KNOWN, "pool")
  local dsn = opts.dsn or opts[1]
  if type(dsn) ~= "string" then
    error("bad argument #1 to 'pool' (dsn: string expected)", 2)
  end
  local copts = {timeout = opts.timeout, command_timeout = opts.command_timeout,
                 statement_cache_size = opts.statement_cache_size}
  local min = opts.min or 1
  if math.type(min) ~= "integer" or min < 0 or min > (opts.max or 10) then
    error("bad argument #1 to 'pool' (min: an integer from 0 to max)", 2)
  end
  local self = setmetatable({
    dsn = dsn, min = min, acquire_timeout = opts.acquire_timeout,
  }, pool_mt)
  self._p = pool_mod.pool{
    create = function() return M.connect(dsn, copts) end,
    destroy = function(conn) conn:close() end,
    check = function(conn) return conn:alive() end,
    reset = reset,
    max = opts.max or 10,
    idle_timeout = opts.idle_timeout or 300,
  }
  return self
end

-- At the first use, connections up to min are opened in the background
-- (borrowed and given back, so they wait idle).
local function warm(self)
  self._warm = true
  for _ = 2, self.min do
    local t = aio.spawn(function()
      pcall(function()
        local _, lease <close> = self._p:acquire()
      end)
    end)
    t:set_name("pg pool warm-up")
  end
end

local function acquire(self)
  local p = self._p
  if not self._warm then warm(self) end
  if self.acquire_timeout then
    local _ <close> = aio.timeout(self.acquire_timeout)
    return p:acquire()
  end
  return p:acquire()
end

-- local c <close> = pool:acquire(): a connection of the pool, returned
-- (reset) when closed.
function Pool:acquire()
  local conn, lease = acquire(self)
  return setmetatable({_conn = conn, _lease = lease}, pooled_mt)
end

local function borrowed(self)
  local conn = self._conn
  if conn == nil then error("attempt to use a released connection", 3) end
  return conn
end

for _, name in ipairs{"fetch", "fetchrow", "fetchval", "execute",
                      "executemany", "execute_script", "copy_in",
                      "copy_out", "rows", "transaction",
                      "in_transaction", "listen", "pid", "alive"} do
  local f = Conn[name]
  Pooled[name] = function(self, ...) return f(borrowed(self), ...) end
  Pool[name] = name ~= "transaction" and name ~= "listen" and
               name ~= "rows" and
               name ~= "in_transaction" and name ~= "pid" and
               name ~= "alive" and function(self, ...)
    local conn, lease <close> = acquire(self)
    local ok, r = pcall(f, conn, ...)
    if not ok then
      if not conn:alive() then lease:discard() end
      error(r, 0)
    end
    return r
  end or nil
end

-- c:close(): back to the pool
function Pooled:close()
  local lease = self._lease
  if lease == nil then return end
  self._conn, self._lease = nil, nil
  lease:close()
end
pooled_mt.__close = Pooled.close

-- pool:close([timeout]): every connection closed once given back
function Pool:close(timeout) return self._p:close(timeout) end
pool_mt.__close = function(self) self._p:close() end

-- pool:stats() -> {open, idle, borrowed, waiting, max}
function Pool:stats() return self._p:stats() end

function pool_mt.__tostring(self)
  return ("luaio.pg.Pool %s"):format(tostring(self._p))
end

return M

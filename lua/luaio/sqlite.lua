-- luaio.sqlite (aio.sqlite): SQLite connections whose statements run on a
-- thread of the connection's own (bindings/sqlite.c), one at a time.
--
-- A connection is a table holding the C connection; its methods raise
-- DatabaseError (with `code`, the extended result code's name) when a
-- statement fails.  SQL NULL is aio.null.
local aio = require "luaio"
local db = require "luaio.db"
local C = require "luaio._sqlite"

local M = {version = C.version}
local Conn = {}
local conn_mt = {__index = Conn, __name = "luaio.sqlite.Connection"}

local EXEC, ALL, ROW, VALUE, UNDO = 0, 1, 2, 3, 4
local OPEN_KNOWN = {readonly = true, busy_timeout = true}

local function c_of(self)
  local c = self._c
  if c == nil then error("attempt to use a closed connection", 3) end
  return c
end

local function check(ok, a, b, ...)
  if ok then return a, b, ... end
  db.raise("DatabaseError", a, {code = b})
end

-- aio.sqlite.blob(s): s bound as a BLOB (strings bind as TEXT).
function M.blob(s)
  if type(s) ~= "string" then
    error("bad argument #1 to 'blob' (string expected)", 2)
  end
  return {blob = s}
end

-- aio.sqlite.open(path [, {readonly, busy_timeout = 5}]) -> conn
function M.open(path, opts)
  if type(path) ~= "string" then
    error("bad argument #1 to 'open' (string expected)", 2)
  end
  opts = opts or {}
  for k in pairs(opts) do
    if not OPEN_KNOWN[k] then
      error(("bad argument #2 to 'open' (unknown option '%s')")
            :format(tostring(k)), 2)
    end
  end
  local busy = opts.busy_timeout or 5
  if type(busy) ~= "number" or busy < 0 then
    error("bad argument #2 to 'open' (busy_timeout: seconds >= 0)", 2)
  end
  local c, msg, code = C.open(path, opts.readonly,
                              math.floor(busy * 1000 + 0.5))
  if not c then
    db.raise("ConnectionError", msg .. ": " .. path,
             {code = code, path = path})
  end
  return setmetatable({_c = c, path = path}, conn_mt)
end

-- conn:fetch(sql, ...) -> array of rows keyed by column name
function Conn:fetch(sql, ...) return check(c_of(self):_query(ALL, sql, ...)) end

-- conn:fetchrow(sql, ...) -> the first row or nil
function Conn:fetchrow(sql, ...)
  return (check(c_of(self):_query(ROW, sql, ...)))
end

-- conn:fetchval(sql, ...) -> the first column of the first row, or nil
function Conn:fetchval(sql, ...)
  return (check(c_of(self):_query(VALUE, sql, ...)))
end

-- conn:execute(sql, ...) -> rows changed, last insert rowid
function Conn:execute(sql, ...)
  return check(c_of(self):_query(EXEC, sql, ...))
end

-- conn:executemany(sql, list) -> rows changed in all
function Conn:executemany(sql, list)
  if type(list) ~= "table" then
    error("bad argument #2 to 'executemany' (table expected)", 2)
  end
  return (check(c_of(self):_many(sql, list)))
end

-- The transaction guard's SQL (db.transaction).  An interrupted statement
-- inside BEGIN makes SQLite roll the whole transaction back itself: the
-- rollback checks for that (sqlite3_get_autocommit, on the connection's
-- thread, after the interrupted job) before ROLLBACK.  It
-- runs shielded, so a cancellation that leaves the block still rolls back.
local function exec(conn, mode, sql)
  return check(c_of(conn):_query(mode, sql))
end

local function run(conn, sql, mode)
  local ok, e = aio.shield(pcall, exec, conn, mode or EXEC, sql)
  if not ok then error(e, 0) end
end

local ops = {}
-- BEGIN runs shielded too: once it ran, the guard must exist to undo it
-- (a cancellation is then delivered at the block's next wait).
function ops.begin(conn, depth)
  if depth == 1 then
    run(conn, conn._tx_mode and ("BEGIN " .. conn._tx_mode) or "BEGIN")
  else
    run(conn, "SAVEPOINT luaio_" .. depth)
  end
end
function ops.commit(conn, depth)
  if depth == 1 then
    run(conn, "COMMIT")
  else
    run(conn, "RELEASE luaio_" .. depth)
  end
end
function ops.rollback(conn, depth)
  if conn._c == nil then return end -- closed: SQLite rolled back
  if depth == 1 then
    run(conn, "ROLLBACK", UNDO)
  else
    run(conn, "ROLLBACK TO luaio_" .. depth .. "; RELEASE luaio_" .. depth,
        UNDO)
  end
end

local TX_MODES = {deferred = "DEFERRED", immediate = "IMMEDIATE",
                  exclusive = "EXCLUSIVE"}

-- local tx <close> = conn:transaction([mode]): BEGIN [mode]; COMMIT when
-- the block ends, ROLLBACK when an error or a cancellation leaves it;
-- nested ones are SAVEPOINTs.
function Conn:transaction(mode)
  c_of(self)
  if mode ~= nil and TX_MODES[mode] == nil then
    error("bad argument #1 to 'transaction' (deferred, immediate or "
          .. "exclusive expected)", 2)
  end
  self._tx_mode = mode and TX_MODES[mode]
  return db.transaction(self, ops)
end

-- conn:in_transaction() -> boolean
function Conn:in_transaction() return not c_of(self):_autocommit() end

-- conn:close(): after the statements queued before it
function Conn:close()
  local c = self._c
  if c == nil then return end
  self._c = nil
  c:close()
end
conn_mt.__close = Conn.close

function conn_mt.__tostring(self)
  local c = self._c
  return c and tostring(c) or "luaio.sqlite (closed)"
end

return M

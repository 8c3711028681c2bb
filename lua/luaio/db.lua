-- luaio.db: what the database clients share (luaio.pg, luaio.sqlite,
-- luaio.redis): their errors and the transaction guard.

local aio = require "luaio"

local db = {}

-- A DatabaseError, ConnectionError or RedisError: a luaio error (so
-- aio.is_error and tostring work) with the driver's fields copied on it
-- (sqlstate, code, detail, hint, constraint, table, column ...).
function db.error(kind, message, fields)
  local e = aio.error(kind, message)
  if fields then
    for k, v in pairs(fields) do e[k] = v end
  end
  return e
end

function db.raise(kind, message, fields)
  error(db.error(kind, message, fields), 0)
end

-- local tx <close> = db.transaction(conn, ops): a guard that commits when
-- its block ends normally and rolls back when an error or a cancellation
-- leaves it (Lua 5.4 gives __close the error).  Nested guards on one
-- connection are savepoints.  ops: begin(conn, depth) and, for each of
-- commit, rollback, the same; the driver supplies its SQL through them.
local Tx = {}
Tx.__index = Tx

function db.transaction(conn, ops)
  local depth = (conn._tx_depth or 0) + 1
  ops.begin(conn, depth)
  conn._tx_depth = depth
  return setmetatable({conn = conn, depth = depth, ops = ops}, Tx)
end

local function finish(tx, how)
  if tx.done then return end
  tx.done = true
  local conn = tx.conn
  if conn._tx_depth ~= tx.depth then
    error("transactions closed out of order", 3)
  end
  conn._tx_depth = tx.depth - 1
  tx.ops[how](conn, tx.depth)
end

function Tx:commit() finish(self, "commit") end
function Tx:rollback() finish(self, "rollback") end

function Tx:__close(err)
  if err ~= nil then finish(self, "rollback") else finish(self, "commit") end
end

return db

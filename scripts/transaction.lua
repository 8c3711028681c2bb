-- Transaction context managers (the asyncio guide's pattern): scope()
-- turns a begin/finish pair into a <close> guard that knows how its block
-- ended, so the transaction commits when the block ends and rolls back
-- when an error or a cancellation leaves it.  The finish runs shielded: a
-- cancelled task still waits for its ROLLBACK.
--
--   luaio scripts/transaction.lua   or   lua5.4 scripts/transaction.lua
local aio = require "luaio"
local P = require "luaio.patterns"

-- A pretend database: accounts, and a copy of them while in a transaction.
local db = {accounts = {alice = 100, bob = 50}}

local function query(sql)
  aio.sleep(0.001) -- a round trip
  print("  " .. sql)
end

local transaction = P.scope(
  function(conn)
    query("BEGIN")
    conn.saved = {alice = conn.accounts.alice, bob = conn.accounts.bob}
    return conn
  end,
  function(conn, err)
    if err == nil then
      query("COMMIT")
    else
      query("ROLLBACK")
      conn.accounts = conn.saved
    end
    conn.saved = nil
  end)

local function transfer(from, to, amount, between)
  local conn, _ <close> = transaction(db)
  conn.accounts[from] = conn.accounts[from] - amount
  query(("UPDATE accounts SET balance = %d WHERE name = '%s'")
        :format(conn.accounts[from], from))
  if conn.accounts[from] < 0 then error("insufficient funds", 0) end
  if between then between() end
  conn.accounts[to] = conn.accounts[to] + amount
  query(("UPDATE accounts SET balance = %d WHERE name = '%s'")
        :format(conn.accounts[to], to))
end

local function balances()
  return ("alice %d, bob %d"):format(db.accounts.alice, db.accounts.bob)
end

aio.run(function()
  print("transfer 30 from alice to bob:")
  transfer("alice", "bob", 30)
  print("  -> " .. balances())

  print("transfer 500 from bob to alice:")
  local ok, err = pcall(transfer, "bob", "alice", 500)
  print(("  -> %s (%s): %s"):format(ok, err, balances()))

  print("a transfer cancelled half-way:")
  local halfway = aio.event()
  local t = aio.spawn(transfer, "alice", "bob", 10, function()
    halfway:set()
    aio.sleep(math.huge) -- stuck behind somebody else's lock
  end)
  halfway:wait()
  t:cancel()
  ok, err = pcall(t.await, t)
  print(("  -> %s (%s): %s"):format(ok, err, balances()))
end)

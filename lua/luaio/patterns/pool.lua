-- luaio.patterns.pool: a pool of resources (connections, mostly) made by
-- create() and lent out by acquire() with a lease that gives them back.
--
-- Accounting.  `open` counts the resources that exist, are being made or
-- are being destroyed, plus the slots granted to waiters; it never exceeds
-- max.  A resource is either idle (in `idle`, newest last), lent (its
-- lease is open), or held by an acquire that is checking it.  Waiters line
-- up only when nothing is idle and open == max, so while anything is idle
-- nobody waits.  A returned resource goes straight to the first waiter; a
-- freed slot too, and that waiter creates.  Whatever a cancelled waiter
-- was handed, it passes on.
local aio = require "luaio"
local check = require "luaio.patterns.check"
local fifo = require "luaio.patterns.fifo"

local M = {}
local Pool = {}
local pool_mt = {__index = Pool, __name = "luaio.Pool"}
local Lease = {}
local lease_mt = {__index = Lease, __name = "luaio.Lease"}

local FN = "luaio.patterns.pool"
local KNOWN = {create = true, destroy = true, check = true, reset = true,
               max = true, idle_timeout = true, on_error = true}

local function closed_error()
  return aio.error("InvalidStateError", "pool is closed")
end

local function is_cancel(err) return aio.is_error(err, "CancelledError") end

-- A failure nobody is waiting for (destroy, reset): to opts.on_error, or
-- to stderr.  Nothing is dropped silently.
local function report(self, err, what)
  if self.on_error then
    pcall(self.on_error, err, what)
  else
    io.stderr:write(("luaio.patterns.pool: %s failed: %s\n")
                    :format(what, tostring(err)))
  end
end

-- Destroy r; shielded, so that it completes even in a cancelled task.
local function destroy(self, r)
  if self.destroy == nil then return end
  local ok, err = aio.shield(pcall, self.destroy, r)
  if not ok then report(self, err, "destroy") end
end

-- One slot (of open) is no longer needed: the first waiter gets it.
local function free_slot(self)
  local w = self.waiters:shift()
  if w then
    w.slot = true
    w.ev:set()
  else
    self.open = self.open - 1
    self.changed:set()
  end
end

local reap

-- r comes back: to the first waiter, or to the idle list.
local function give(self, r)
  if self.closed then
    destroy(self, r)
    return free_slot(self)
  end
  local w = self.waiters:shift()
  if w then
    w.r = r
    w.ev:set()
    return
  end
  local idle = self.idle
  idle[#idle + 1] = {r = r, since = aio.time()}
  if self.idle_timeout < math.huge
     and (self.reaper == nil or self.reaper:done()) then
    self.reaper = aio.spawn(reap, self)
    self.reaper:set_name("pool reaper")
  end
end

-- The reaper runs while something is idle: it destroys what has been idle
-- for idle_timeout, oldest first, and sleeps until the next is due.
function reap(self)
  local idle = self.idle
  while not self.closed and #idle > 0 do
    local oldest = idle[1]
    local wait = oldest.since + self.idle_timeout - aio.time()
    if wait > 0 then
      if not pcall(aio.sleep, wait) then break end -- closed, or run ended
    else
      table.remove(idle, 1)
      destroy(self, oldest.r)
      free_slot(self)
    end
  end
  self.reaper = nil
end

-- Wait in line; on return hold.r is the resource handed over, or nil for
-- a slot to create with.
local function wait_turn(self, hold)
  local w = {ev = aio.event()}
  self.waiters:push(w)
  local ok, err = pcall(w.ev.wait, w.ev)
  if ok and not w.closed then
    hold.r = w.r
    return
  end
  -- Cancelled (or the pool closed): pass on what was handed over.
  if w.r ~= nil then
    give(self, w.r)
  elseif w.slot then
    free_slot(self)
  else
    self.waiters:remove(w)
  end
  error(ok and closed_error() or err, 0)
end

-- Turn what hold has (a resource or a slot) into a resource fit to lend:
-- check what was idle, destroy what fails, create with a slot.  On an
-- error the slot is freed first.
local function settle(self, hold, idle_for)
  while true do
    if hold.r ~= nil then
      if idle_for == nil or self.check == nil then break end
      local ok, good = pcall(self.check, hold.r, idle_for)
      if ok and good ~= false then break end
      -- Broken, or the check was interrupted and left it in doubt.
      local r = hold.r
      hold.r = nil
      destroy(self, r)
      if not ok and is_cancel(good) then
        free_slot(self)
        error(good, 0)
      end
    end
    if self.closed then
      free_slot(self)
      error(closed_error(), 0)
    end
    local idle = self.idle
    if #idle > 0 then -- better than a new one; our slot is not needed
      local e = table.remove(idle)
      free_slot(self)
      hold.r, idle_for = e.r, aio.time() - e.since
    else
      local ok, r = pcall(self.create)
      if not ok or r == nil then
        free_slot(self)
        error(ok and "pool: create returned no resource" or r, 0)
      end
      hold.r, idle_for = r, nil
    end
  end
  if self.closed then -- closed while we created or checked
    destroy(self, hold.r)
    free_slot(self)
    error(closed_error(), 0)
  end
end

-- p:acquire() -> resource, lease
function Pool:acquire()
  check.self("pool:acquire", self, pool_mt)
  if self.closed then error(closed_error(), 0) end
  local task = aio.current_task()
  if task == nil then error("no running event loop", 2) end
  local hold = {task = task}
  local idle, idle_for = self.idle, nil
  if self.waiters.n == 0 and #idle > 0 then
    local e = table.remove(idle)
    hold.r, idle_for = e.r, aio.time() - e.since
  elseif self.waiters.n == 0 and self.open < self.max then
    self.open = self.open + 1
  else
    wait_turn(self, hold)
  end
  self.holders[hold] = true
  local ok, err = pcall(settle, self, hold, idle_for)
  if not ok then
    self.holders[hold] = nil
    error(err, 0)
  end
  local lease = setmetatable({pool = self, hold = hold}, lease_mt)
  hold.lease = lease
  self.borrowed = self.borrowed + 1
  return hold.r, lease
end

local function lease_close(lease, err)
  local hold = lease.hold
  if hold == nil then return end
  lease.hold = nil
  local self = lease.pool
  self.holders[hold] = nil
  self.borrowed = self.borrowed - 1
  local r = hold.r
  if lease.discarded or self.closed then
    destroy(self, r)
    return free_slot(self)
  end
  if self.reset then
    local ok, good = aio.shield(pcall, self.reset, r, err)
    if not ok then report(self, good, "reset") end
    if not ok or good == false then
      destroy(self, r)
      return free_slot(self)
    end
  end
  give(self, r)
end

-- The holders whose task ended without closing its lease: close them.
local function reclaim(self)
  local dead = {}
  for hold in pairs(self.holders) do
    if hold.lease and hold.task:done() then dead[#dead + 1] = hold.lease end
    if not hold.watched then -- wake the drain when the holder ends
      hold.watched = true
      hold.task:add_done_callback(function() self.changed:set() end)
    end
  end
  for _, lease in ipairs(dead) do lease_close(lease) end
end

local function wait_drained(self)
  while true do
    reclaim(self)
    if self.open == 0 then return end
    self.changed:clear()
    self.changed:wait()
  end
end

-- p:close([timeout]) -> true | false: stops lending, destroys the idle
-- resources and waits for the lent ones; at the deadline (or when the
-- caller is cancelled) it cancels the tasks that hold them, waits for
-- them, and returns false (or raises the cancellation).
function Pool:close(timeout)
  check.self("pool:close", self, pool_mt)
  timeout = check.arg_number("pool:close", 2, timeout, nil, 0)
  local task = aio.current_task()
  for hold in pairs(self.holders) do
    if hold.task == task then
      error(aio.error("InvalidStateError",
                      "pool:close() by a task that holds one of its leases"),
            0)
    end
  end
  if not self.closed then
    self.closed = true
    while true do
      local w = self.waiters:shift()
      if w == nil then break end
      w.closed = true
      w.ev:set()
    end
    local idle = self.idle
    while #idle > 0 do
      destroy(self, table.remove(idle).r)
      free_slot(self)
    end
    if self.reaper then self.reaper:cancel() end
  end
  local ok, err = pcall(function()
    local _ <close> = aio.timeout(timeout)
    wait_drained(self)
  end)
  if ok then return true end
  for hold in pairs(self.holders) do
    if hold.task ~= task then hold.task:cancel() end
  end
  aio.shield(wait_drained, self)
  if aio.is_error(err, "TimeoutError") then return false end
  error(err, 0)
end

-- p:stats() -> {open, idle, borrowed, waiting, max}
function Pool:stats()
  check.self("pool:stats", self, pool_mt)
  return {open = self.open, idle = #self.idle, borrowed = self.borrowed,
          waiting = self.waiters.n, max = self.max}
end

function pool_mt.__tostring(self)
  return ("<pool %d/%s open, %d idle, %d borrowed, %d waiting%s>"):format(
    self.open, self.max, #self.idle, self.borrowed, self.waiters.n,
    self.closed and ", closed" or "")
end

function pool_mt.__close(self) self:close() end

-- lease:discard(): its resource is destroyed, not returned, at close
function Lease:discard()
  check.self("lease:discard", self, lease_mt)
  if self.hold == nil then
    error(aio.error("InvalidStateError", "lease is closed"), 0)
  end
  self.discarded = true
end

-- lease:close(): gives the resource back now (closing again is harmless)
function Lease:close()
  check.self("lease:close", self, lease_mt)
  lease_close(self)
end

lease_mt.__close = lease_close

function lease_mt.__tostring(self)
  return ("<lease %s>"):format(self.hold == nil and "closed" or
                               self.discarded and "discarded" or "open")
end

-- pool{create = fn [, destroy, check, reset, max, idle_timeout, on_error]}
function M.pool(opts)
  check.options(FN, 1, opts, KNOWN, true)
  local self = {
    create = opts.create,
    destroy = check.callback(FN, 1, opts, "destroy"),
    check = check.callback(FN, 1, opts, "check"),
    reset = check.callback(FN, 1, opts, "reset"),
    on_error = check.callback(FN, 1, opts, "on_error"),
    max = check.count(FN, 1, opts, "max", 10, 1),
    idle_timeout = check.number(FN, 1, opts, "idle_timeout", math.huge, 0,
                                true),
    open = 0, borrowed = 0, idle = {}, holders = {},
    waiters = fifo.new(), changed = aio.event(),
  }
  if not check.callable(self.create) then
    check.argerror(FN, 1, "option 'create' must be a function")
  end
  return setmetatable(self, pool_mt)
end

return M

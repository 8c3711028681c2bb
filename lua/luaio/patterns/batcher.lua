-- luaio.patterns.batcher: gathers the items that tasks add into batches
-- and hands each batch to flush(batch); each add waits for the flush of
-- its own batch and returns its result.
--
-- Each batch has one task: it waits until the batch is full (max_items),
-- old (max_delay) or the batcher closes, takes a flush slot (at most
-- `concurrency` flushes run at once, in the order the batches filled),
-- and calls flush.  So nothing runs while nothing is pending, and a
-- caller cancelled in add does not cancel the flush of the others.
local aio = require "luaio"
local check = require "luaio.patterns.check"

local M = {}
local Batcher = {}
local mt = {__index = Batcher, __name = "luaio.Batcher"}

local FN = "luaio.patterns.batcher"
local KNOWN = {max_items = true, max_delay = true, flush = true,
               concurrency = true}

local function closed_error()
  return aio.error("InvalidStateError", "batcher is closed")
end

-- The batch's task: wait for its end, then flush it.
local function run_batch(self, b)
  pcall(function()
    local _ <close> = aio.timeout(self.max_delay < math.huge and
                                  self.max_delay or nil)
    b.full:wait()
  end)
  if self.cur == b then self.cur = nil end -- sealed by its age
  local r
  local ok, err = pcall(function()
    local _ <close> = self.slots:acquire()
    local items, n = {}, 0
    for _, e in ipairs(b.entries) do
      if not e.gone then n = n + 1; items[n] = e.item end
    end
    b.started = true
    if n == 0 then r = {n = 0} return end
    r = table.pack(self.flush(items))
  end)
  b.ok, b.result = ok, ok and r or err
end

-- When the batch's task ends (also if it was cancelled before it ran),
-- its callers are woken.
local function batch_ended(self, b, t)
  self.batches[b] = nil
  if self.cur == b then self.cur = nil end
  if b.ok == nil then b.ok, b.result = false, t:error() end
  b.done:set()
end

-- b:add(item) -> flush's results | raises flush's error
function Batcher:add(item)
  check.self("batcher:add", self, mt)
  if self.closed then error(closed_error(), 0) end
  if aio.current_task() == nil then error("no running event loop", 2) end
  local b = self.cur
  if b == nil then
    b = {entries = {}, live = 0, full = aio.event(), done = aio.event()}
    self.cur = b
    self.batches[b] = true
    b.task = aio.spawn(run_batch, self, b)
    b.task:set_name("batcher batch")
    b.task:add_done_callback(function(t) batch_ended(self, b, t) end)
  end
  local e = {item = item}
  b.entries[#b.entries + 1] = e
  b.live = b.live + 1
  if b.live >= self.max_items then
    self.cur = nil
    b.full:set()
  end
  local ok, err = pcall(b.done.wait, b.done)
  if not ok then
    -- Cancelled: an item whose flush has not started leaves its batch.
    if not b.started then
      e.gone = true
      b.live = b.live - 1
      if b.live == 0 and self.cur == b then -- nothing left to wait for
        self.cur = nil
        b.task:cancel()
      end
    end
    error(err, 0)
  end
  if not b.ok then error(b.result, 0) end
  return table.unpack(b.result, 1, b.result.n)
end

-- b:pending() -> the number of items not yet handed to flush
function Batcher:pending()
  check.self("batcher:pending", self, mt)
  local n = 0
  for b in pairs(self.batches) do
    if not b.started then n = n + b.live end
  end
  return n
end

-- b:close(): flushes what is pending and waits for every flush; later
-- adds raise.  Closing again is harmless.  A caller cancelled while it
-- waits cancels the flushes and waits for them to end.
function Batcher:close()
  check.self("batcher:close", self, mt)
  self.closed = true
  if self.cur then
    self.cur.full:set()
    self.cur = nil
  end
  local function wait_all()
    while true do
      local b = next(self.batches)
      if b == nil then return end
      b.done:wait()
    end
  end
  local ok, err = pcall(wait_all)
  if not ok then
    for b in pairs(self.batches) do b.task:cancel() end
    aio.shield(wait_all)
    error(err, 0)
  end
end

function mt.__tostring(self)
  return ("<batcher %d pending%s>"):format(self:pending(),
                                           self.closed and ", closed" or "")
end

function mt.__close(self) self:close() end

-- batcher{flush = fn [, max_items = 100, max_delay = 0.1, concurrency = 1]}
function M.batcher(opts)
  check.options(FN, 1, opts, KNOWN, true)
  if not check.callable(opts.flush) then
    check.argerror(FN, 1, "option 'flush' must be a function")
  end
  local self = {
    flush = opts.flush,
    max_items = check.count(FN, 1, opts, "max_items", 100, 1),
    max_delay = check.number(FN, 1, opts, "max_delay", 0.1, 0),
    batches = {},
  }
  local c = check.count(FN, 1, opts, "concurrency", 1, 1)
  self.slots = aio.semaphore(c < math.huge and c or 1 << 53)
  return setmetatable(self, mt)
end

return M

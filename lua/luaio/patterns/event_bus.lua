-- luaio.patterns.event_bus: publish values under a topic to every
-- subscriber of that topic, each with its own bounded buffer.
--
-- A subscription's buffer is an aio.queue (readers wait in it, FIFO, and
-- a reader cancelled after it was handed a value puts it back); the bound
-- and the policy for a full buffer are the subscription's:
--   "wait"         publish waits until there is room (the only way a
--                  publish ever waits);
--   "drop_oldest"  the oldest buffered value makes room;
--   "error"        (the default) the subscription fails: its reader gets
--                  the values buffered so far, then a QueueFull error; the
--                  publisher is not disturbed.
-- A publish that must wait holds the topic's lock, so publishes of one
-- topic reach the subscribers in the order they were made, and delivers
-- to all subscribers at once after it waited: a publish cancelled while it
-- waits has delivered to nobody.
local aio = require "luaio"
local check = require "luaio.patterns.check"

local M = {}
local Bus = {}
local bus_mt = {__index = Bus, __name = "luaio.EventBus"}
local Sub = {}
local sub_mt = {__index = Sub, __name = "luaio.Subscription"}

local POLICIES = {"wait", "drop_oldest", "error"}
local KNOWN = {size = true, on_full = true}

local function closed_error(what)
  return aio.error("InvalidStateError", what .. " is closed")
end

-- Take sub out of its topic: no more values reach it.
local function detach(sub)
  local topic = sub.topic_state
  if topic == nil then return end
  sub.topic_state = nil
  local subs, kept = topic.subs, {}
  for _, s in ipairs(subs) do
    if s ~= sub then kept[#kept + 1] = s end
  end
  topic.subs = kept
  if #kept == 0 and sub.bus.topics[sub.topic] == topic then
    sub.bus.topics[sub.topic] = nil
  end
  sub.room:set() -- a publisher waiting for room looks again
end

local function full(sub) return sub.q:qsize() >= sub.size end

-- The first subscriber of the topic whose full buffer makes publish wait.
local function blocking(topic)
  for _, s in ipairs(topic.subs) do
    if s.on_full == "wait" and full(s) then return s end
  end
end

local function deliver(topic, value)
  local n = 0
  for _, s in ipairs(topic.subs) do
    if full(s) then
      if s.on_full == "drop_oldest" then
        s.q:get_nowait()
        s.ndropped = s.ndropped + 1
      elseif s.on_full == "error" then
        s.err = aio.error("QueueFull", ("subscriber of '%s' fell behind: " ..
                          "its buffer of %d is full"):format(
                            tostring(s.topic), s.size))
        detach(s)
        s.q:shutdown()
      end
    end
    if s.err == nil then
      s.q:put_nowait(value)
      n = n + 1
      if full(s) then s.room:clear() end
    end
  end
  return n
end

local function checkbus(self, fname)
  check.self(fname, self, bus_mt, 1)
  if self.closed then error(closed_error("event bus"), 3) end
end

-- bus:publish(topic, value) -> the number of subscribers it reached
function Bus:publish(topic, value)
  checkbus(self, "event_bus:publish")
  if topic == nil then
    check.argerror("event_bus:publish", 2, "topic expected")
  end
  if value == nil then
    check.argerror("event_bus:publish", 3, "value expected")
  end
  local t = self.topics[topic]
  if t == nil then return 0 end
  if t.lock:locked() or blocking(t) then
    local _ <close> = t.lock:acquire()
    while true do
      local s = blocking(t)
      if s == nil then break end
      s.room:clear()
      s.room:wait()
      if self.closed then error(closed_error("event bus"), 0) end
    end
  end
  return deliver(t, value)
end

-- bus:subscribe(topic [, {size = 100, on_full = "error"}]) -> subscription
function Bus:subscribe(topic, opts)
  local FN = "event_bus:subscribe"
  checkbus(self, FN)
  if topic == nil then check.argerror(FN, 2, "topic expected") end
  opts = check.options(FN, 3, opts, KNOWN)
  local sub = setmetatable({
    bus = self, topic = topic, q = aio.queue(), room = aio.event(),
    size = check.count(FN, 3, opts, "size", 100, 1),
    on_full = check.choice(FN, 3, opts, "on_full", "error", POLICIES),
    ndropped = 0,
  }, sub_mt)
  sub.room:set()
  local t = self.topics[topic]
  if t == nil then
    t = {subs = {}, lock = aio.lock()}
    self.topics[topic] = t
  end
  t.subs[#t.subs + 1] = sub
  sub.topic_state = t
  return sub
end

-- bus:subscribers(topic) -> the number of subscriptions to topic
function Bus:subscribers(topic)
  checkbus(self, "event_bus:subscribers")
  local t = self.topics[topic]
  return t and #t.subs or 0
end

-- bus:close(): ends every subscription (each reader gets what is buffered,
-- then the end) and wakes waiting publishers with an error.  Harmless
-- when closed.
function Bus:close()
  check.self("event_bus:close", self, bus_mt)
  if self.closed then return end
  self.closed = true
  local subs = {}
  for _, t in pairs(self.topics) do
    for _, s in ipairs(t.subs) do subs[#subs + 1] = s end
  end
  for _, s in ipairs(subs) do
    detach(s)
    s.q:shutdown()
  end
end

bus_mt.__close = Bus.close

function bus_mt.__tostring(self)
  local n = 0
  for _ in pairs(self.topics) do n = n + 1 end
  return ("<event_bus %d topics%s>"):format(n, self.closed and ", closed" or "")
end

local function checksub(self, fname)
  check.self(fname, self, sub_mt, 1)
  if self.closed then error(closed_error("subscription"), 3) end
end

local function next_value(self)
  local ok, v = pcall(self.q.get, self.q)
  if ok then
    self.room:set()
    return v
  end
  if not aio.is_error(v, "QueueShutDown") then error(v, 0) end
  if self.err then error(self.err, 0) end
  return nil -- unsubscribed, or the bus closed: the end
end

-- sub:next() -> the next value, or nil once the subscription has ended;
-- raises QueueFull when it overflowed (on_full = "error")
function Sub:next()
  checksub(self, "subscription:next")
  return next_value(self)
end

-- sub:iter() -> an iterator over the values, for a generic for
function Sub:iter()
  checksub(self, "subscription:iter")
  return next_value, self
end

-- sub:pending() -> values buffered; sub:dropped() -> values dropped
function Sub:pending()
  checksub(self, "subscription:pending")
  return self.q:qsize()
end

function Sub:dropped()
  checksub(self, "subscription:dropped")
  return self.ndropped
end

-- sub:close(): unsubscribes and drops what is buffered; a reader waiting
-- gets the end.  Closing again is harmless.
function Sub:close()
  check.self("subscription:close", self, sub_mt)
  if self.closed then return end
  self.closed = true
  detach(self)
  self.q:shutdown(true)
end

sub_mt.__close = Sub.close

function sub_mt.__tostring(self)
  return ("<subscription %s %d/%d%s>"):format(
    tostring(self.topic), self.q:qsize(), self.size,
    self.closed and ", closed" or self.err and ", failed" or
    self.topic_state == nil and ", ended" or "")
end

-- event_bus() -> bus
function M.event_bus()
  return setmetatable({topics = {}}, bus_mt)
end

return M

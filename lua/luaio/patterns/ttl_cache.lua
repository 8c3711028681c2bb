-- luaio.patterns.ttl_cache: a cache whose entries expire after ttl
-- seconds, bounded to max_entries (the least recently used go first),
-- whose get_or_load runs one loader per key however many tasks ask.
--
-- A load runs in its own task, so that a caller cancelled while it waits
-- does not cancel it for the others; when the last caller waiting for a
-- load is cancelled, the load is cancelled too (nobody outlives its
-- callers).  A load's value is stored only if nothing replaced or
-- invalidated the key meanwhile.
local aio = require "luaio"
local check = require "luaio.patterns.check"

local M = {}
local Cache = {}
local mt = {__index = Cache, __name = "luaio.TTLCache"}

local FN = "luaio.patterns.ttl_cache"
local KNOWN = {ttl = true, max_entries = true, error_ttl = true,
               clock = true}

-- The entries form a doubly linked list, most recently used first.
local function unlink(self, e)
  if e.prev then e.prev.next = e.next else self.head = e.next end
  if e.next then e.next.prev = e.prev else self.tail = e.prev end
  e.prev, e.next = nil, nil
end

local function link_front(self, e)
  e.next = self.head
  if self.head then self.head.prev = e else self.tail = e end
  self.head = e
end

local function remove(self, e)
  unlink(self, e)
  self.map[e.key] = nil
  self.n = self.n - 1
end

local function store(self, key, e)
  local old = self.map[key]
  if old then remove(self, old) end
  e.key = key
  self.map[key] = e
  link_front(self, e)
  self.n = self.n + 1
  while self.n > self.max_entries do remove(self, self.tail) end
end

-- The fresh entry for key, moved to the front; expired ones are dropped.
local function fresh(self, key)
  local e = self.map[key]
  if e == nil then return nil end
  if self.clock() >= e.expires then
    remove(self, e)
    return nil
  end
  if self.head ~= e then
    unlink(self, e)
    link_front(self, e)
  end
  return e
end

-- The load's task: call the loader, store what it gives, and return
-- ok, value (it never raises, so nothing is reported for it).
local function load(self, key, loader, ld)
  local ok, v = pcall(loader, key)
  if self.loading[key] == ld then
    self.loading[key] = nil
    if ok then
      store(self, key, {value = v, expires = self.clock() + self.ttl})
    elseif self.error_ttl and not aio.is_error(v, "CancelledError") then
      store(self, key, {err = v, expires = self.clock() + self.error_ttl})
    end
  end
  return ok, v
end

local function checkkey(fname, key)
  if key == nil or key ~= key then
    check.argerror(fname, 2, "key expected, got " .. tostring(key), 1)
  end
end

-- cache:get_or_load(key, loader) -> value | raises the loader's error
function Cache:get_or_load(key, loader)
  local fname = "ttl_cache:get_or_load"
  check.self(fname, self, mt)
  checkkey(fname, key)
  check.func(fname, 3, loader)
  local e = fresh(self, key)
  if e then
    if e.err ~= nil then error(e.err, 0) end
    return e.value
  end
  if aio.current_task() == nil then error("no running event loop", 2) end
  local ld = self.loading[key]
  if ld == nil then
    ld = {waiting = 0}
    self.loading[key] = ld
    ld.task = aio.spawn(load, self, key, loader, ld)
    ld.task:set_name("ttl_cache load")
  end
  ld.waiting = ld.waiting + 1
  local ok, loaded, v = pcall(aio.shield, ld.task)
  ld.waiting = ld.waiting - 1
  if not ok then -- cancelled while it waited
    if ld.waiting == 0 and not ld.task:done() then
      if self.loading[key] == ld then self.loading[key] = nil end
      ld.task:cancel()
    end
    error(loaded, 0)
  end
  if not loaded then error(v, 0) end
  return v
end

-- cache:get(key) -> value, true | nil, false
function Cache:get(key)
  check.self("ttl_cache:get", self, mt)
  checkkey("ttl_cache:get", key)
  local e = fresh(self, key)
  if e == nil or e.err ~= nil then return nil, false end
  return e.value, true
end

-- cache:set(key, value [, ttl]): stores value for ttl (the cache's by
-- default); a load of key under way no longer stores its value
function Cache:set(key, value, ttl)
  check.self("ttl_cache:set", self, mt)
  checkkey("ttl_cache:set", key)
  ttl = check.arg_number("ttl_cache:set", 4, ttl, self.ttl, 0, true)
  self.loading[key] = nil
  store(self, key, {value = value, expires = self.clock() + ttl})
end

-- cache:invalidate(key) -> whether an entry was there; a load under way
-- no longer stores its value
function Cache:invalidate(key)
  check.self("ttl_cache:invalidate", self, mt)
  checkkey("ttl_cache:invalidate", key)
  self.loading[key] = nil
  local e = self.map[key]
  if e == nil then return false end
  remove(self, e)
  return true
end

-- cache:clear(): every entry goes; loads under way store nothing
function Cache:clear()
  check.self("ttl_cache:clear", self, mt)
  self.map, self.loading, self.head, self.tail, self.n = {}, {}, nil, nil, 0
end

-- cache:size() -> the number of entries not yet expired
function Cache:size()
  check.self("ttl_cache:size", self, mt)
  local now, e = self.clock(), self.tail
  while e do
    local prev = e.prev
    if now >= e.expires then remove(self, e) end
    e = prev
  end
  return self.n
end

function mt.__tostring(self)
  return ("<ttl_cache %d entries, %gs>"):format(self.n, self.ttl)
end

-- ttl_cache{ttl = s [, max_entries = n, error_ttl = s, clock = fn]}
function M.ttl_cache(opts)
  check.options(FN, 1, opts, KNOWN, true)
  local self = {
    ttl = check.number(FN, 1, opts, "ttl", nil, 0, true),
    max_entries = check.count(FN, 1, opts, "max_entries", math.huge, 1),
    error_ttl = check.number(FN, 1, opts, "error_ttl", nil, 0, true),
    clock = check.callback(FN, 1, opts, "clock") or aio.time,
    map = {}, loading = {}, n = 0,
  }
  if self.ttl == nil then check.argerror(FN, 1, "option 'ttl' expected") end
  return setmetatable(self, mt)
end

return M

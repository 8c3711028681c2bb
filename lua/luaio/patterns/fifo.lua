-- luaio.patterns.fifo: a line of waiters, first come first served, from
-- which a waiter that gives up leaves in O(1).  A node is any table; the
-- line links it through the fields _prev and _next.
local M = {}
local methods = {}
local mt = {__index = methods, __name = "luaio.patterns.fifo"}

function M.new()
  return setmetatable({n = 0}, mt)
end

-- Add node at the back.
function methods:push(node)
  node._line = self
  node._prev = self.tail
  if self.tail then self.tail._next = node else self.head = node end
  self.tail = node
  self.n = self.n + 1
end

-- Take node out wherever it is; harmless when it is not in this line.
function methods:remove(node)
  if node._line ~= self then return false end
  local prev, next = node._prev, node._next
  if prev then prev._next = next else self.head = next end
  if next then next._prev = prev else self.tail = prev end
  node._line, node._prev, node._next = nil, nil, nil
  self.n = self.n - 1
  return true
end

-- Take the first node out and return it (nil when the line is empty).
function methods:shift()
  local node = self.head
  if node then self:remove(node) end
  return node
end

return M

-- luaio.workers: aio.workers(n, path_or_fn, ...), a group of workers that
-- run the same code (docs/workers.md).  A group stops as one: every
-- worker is asked to stop before any is waited for, so all stop
-- accepting together.
local aio = require "luaio"

local Group = {}
Group.__index = Group
Group.__name = "luaio.WorkerGroup"

-- group:broadcast(v): v to each worker's aio.parent:recv()
function Group:broadcast(v)
  for _, w in ipairs(self.workers) do w:send(v) end
end

-- group:cancel(): cancels each worker
function Group:cancel()
  for _, w in ipairs(self.workers) do w:cancel() end
end

-- group:shutdown([grace]): each worker stops gracefully (w:shutdown), all
-- at once; returns when every one has ended
function Group:shutdown(grace)
  local stops = {}
  for i, w in ipairs(self.workers) do
    stops[i] = function() w:shutdown(grace) end
  end
  aio.shield(aio.gather, stops, {return_errors = true})
end
-- <close>: a graceful stop with the default grace (the error, if one
-- closes the scope, is not a grace)
function Group:__close() self:shutdown() end

-- group:join() -> an array of each worker's results (table.pack); when
-- one fails or the joining task is cancelled, the others stop gracefully,
-- and the error is raised once all have ended
function Group:join()
  local results, joins = {}, {}
  for i, w in ipairs(self.workers) do
    joins[i] = function() results[i] = table.pack(w:join()) end
  end
  local ok, err = pcall(aio.gather, joins)
  if ok then return results end
  self:shutdown()
  error(err, 0)
end

return function(n, what, ...)
  if math.type(n) ~= "integer" or n < 1 then
    error("bad argument #1 to 'workers' (a positive integer expected)", 2)
  end
  local ws = {}
  for i = 1, n do
    local ok, w = pcall(aio.worker, what, ...)
    if not ok then
      for _, o in ipairs(ws) do o:cancel() end
      error(w, 2)
    end
    ws[i] = w
  end
  return setmetatable({workers = ws}, Group)
end

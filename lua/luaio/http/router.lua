-- luaio.http.router: aio.http.app(), the router used as a handler.
--
-- A pattern is split into segments: literal text, {name} (one segment),
-- {name:int} (digits, given as an integer) and {name:path} (the rest,
-- slashes included).  Patterns without captures are found by one table
-- lookup; the others are tried in the order they were added.
local M = {}

local App = {}
local app_mt = {__index = App, __name = "luaio.HttpApp"}

local METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}

local function compile(pattern)
  if type(pattern) ~= "string" or pattern:sub(1, 1) ~= "/" then
    error("route pattern must be a string starting with '/'", 3)
  end
  if not pattern:find("{", 1, true) then return nil end
  local segs = {}
  local rest = false
  for seg in pattern:gmatch("/([^/]*)") do
    if rest then error("{name:path} must be last in " .. pattern, 3) end
    local name, kind = seg:match("^{([%a_][%w_]*):?(%a*)}$")
    if name then
      if kind ~= "" and kind ~= "int" and kind ~= "path" and kind ~= "str" then
        error("unknown capture type '" .. kind .. "' in " .. pattern, 3)
      end
      segs[#segs + 1] = {name = name, kind = kind}
      rest = kind == "path"
    else
      if seg:find("[{}]") then error("bad route segment " .. seg, 3) end
      segs[#segs + 1] = seg
    end
  end
  return segs
end

-- The captures of path for segs, or nil.
local function match(segs, path)
  local params, pos, n = {}, 1, #segs
  for i = 1, n do
    local s = segs[i]
    if path:sub(pos, pos) ~= "/" then return nil end
    pos = pos + 1
    if type(s) == "table" and s.kind == "path" then
      params[s.name] = path:sub(pos)
      return params
    end
    local e = path:find("/", pos, true) or #path + 1
    local part = path:sub(pos, e - 1)
    if type(s) == "string" then
      if part ~= s then return nil end
    elseif s.kind == "int" then
      if not part:match("^%d+$") or #part > 18 then return nil end
      params[s.name] = math.tointeger(tonumber(part))
    else
      if part == "" then return nil end
      params[s.name] = part
    end
    pos = e
  end
  if pos <= #path then return nil end
  return params
end

-- app:route(method, pattern, fn)
function App:route(method, pattern, fn)
  if type(fn) ~= "function" then error("route handler must be a function", 2) end
  method = method:upper()
  local segs = compile(pattern)
  if segs == nil then
    local byp = self.exact[pattern] or {}
    self.exact[pattern] = byp
    byp[method] = fn
  else
    self.patterns[#self.patterns + 1] = {segs = segs, method = method,
                                         fn = fn, pattern = pattern}
  end
  return self
end

for _, m in ipairs(METHODS) do
  App[m:lower()] = function(self, pattern, fn)
    return self:route(m, pattern, fn)
  end
end

-- app:use(function(req, next) ... return next(req) end)
function App:use(mw)
  if type(mw) ~= "function" then error("middleware must be a function", 2) end
  self.middleware[#self.middleware + 1] = mw
  self.chain = nil
  return self
end

local function allow_of(methods)
  local list, seen = {}, {}
  for m in pairs(methods) do
    list[#list + 1] = m
    seen[m] = true
  end
  if seen.GET and not seen.HEAD then list[#list + 1] = "HEAD" end
  table.sort(list)
  return table.concat(list, ", ")
end

-- Find the route for req: fn, or nil and the status to answer.
local function dispatch(self, req)
  local method, path = req.method, req.path
  local byp = self.exact[path]
  local allowed
  if byp then
    local fn = byp[method] or (method == "HEAD" and byp.GET)
    if fn then return fn end -- req.params: {} on first use (server.lua)
    allowed = {}
    for m in pairs(byp) do allowed[m] = true end
  end
  for _, r in ipairs(self.patterns) do
    local params = match(r.segs, path)
    if params then
      if r.method == method or (method == "HEAD" and r.method == "GET") then
        req.params = params
        return r.fn
      end
      allowed = allowed or {}
      allowed[r.method] = true
    end
  end
  for _, s in ipairs(self.statics) do
    local fn = s(req)
    if fn then return fn end
  end
  if allowed then
    return nil, {status = 405, headers = {allow = allow_of(allowed)},
                 body = "Method Not Allowed\n"}
  end
  return nil, {status = 404, body = "Not Found\n",
               headers = {["content-type"] = "text/plain; charset=utf-8"}}
end

local function endpoint(self)
  local exact = self.exact
  return function(req)
    local byp = exact[req.path] -- an exact route of its method: at once
    local fn = byp and byp[req.method]
    if fn then return fn(req) end
    local res
    fn, res = dispatch(self, req)
    if fn == nil then return res end
    return fn(req)
  end
end

-- Build the chain of middleware around the router.
local function chain(self)
  local nxt = endpoint(self)
  for i = #self.middleware, 1, -1 do
    local mw, inner = self.middleware[i], nxt
    nxt = function(req) return mw(req, inner) end
  end
  self.chain = nxt
  return nxt
end

-- app:handle(req) -> response (the app as a handler)
function App:handle(req)
  return (self.chain or chain(self))(req)
end

-- The function app:handle(req) calls now, for the server to call it
-- without the method (app.chain is rebuilt after app:use).
function M.entry(app) return app.chain or chain(app) end
function M.is_app(t) return getmetatable(t) == app_mt end
app_mt.__call = App.handle
M.handle = App.handle

-- app:static(prefix, dir): see luaio.http.static
function App:static(prefix, dir, opts)
  self.statics[#self.statics + 1] =
    require("luaio.http.static").route(prefix, dir, opts)
  return self
end

-- app:websocket(pattern, function(ws, req) ... end [, opts]): upgrades
-- matching GET requests (opts.max_message_size, 1 MiB)
function App:websocket(pattern, fn, opts)
  if type(fn) ~= "function" then error("websocket handler must be a function", 2) end
  local ws = require "luaio.http.websocket"
  return self:route("GET", pattern, function(req)
    return ws.upgrade(req, fn, opts)
  end)
end

-- aio.http.app() -> app
function M.app()
  return setmetatable({exact = {}, patterns = {}, middleware = {},
                       statics = {}}, app_mt)
end

return M

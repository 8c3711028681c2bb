-- luaio.http.server: aio.http.serve and aio.http.app (docs/http.md).
--
-- Each connection is a task that asks the C framing (luaio._http_server)
-- for one request head at a time and runs each request as a task of its
-- own (the handler and the answer), which it awaits; answers to pipelined
-- requests go out in order because the next head is parsed only after the
-- answer is written.
local aio = require "luaio"
local core = require "luaio._http_server"
local router = require "luaio.http.router"
local upgraded = require("luaio.http.websocket").UPGRADED
local entry = router.entry

local M = {}

local Server = {}
local server_mt = {__index = Server, __name = "luaio.HttpServer"}
local Request = {}

local TEXT = {["content-type"] = "text/plain; charset=utf-8"}
local JSON = "application/json"

-- The query string as a table of decoded parameters (built on first use).
local function parse_query(qs)
  local q = {}
  for pair in qs:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    q[core.decode(k, true)] = core.decode(v, true)
  end
  return q
end

-- A request is built with method, path and its packed head _h alone; the
-- other fields are made from _h on first use (core.field) and kept in it.
local LAZY = {target = true, raw_path = true, path = true,
              query_string = true, version = true, keep_alive = true,
              upgrade = true, expect_continue = true, headers = true}
local field = core.field

local function request_index(req, k)
  local m = Request[k]
  if m ~= nil then return m end
  if LAZY[k] then return field(req, k) end
  if k == "query" then
    local q = parse_query(req.query_string)
    rawset(req, "query", q)
    return q
  end
  if k == "params" then -- no route captures (set by the router otherwise)
    local p = {}
    rawset(req, "params", p)
    return p
  end
  return nil
end

-- The requests of one connection share a metatable that knows the
-- connection: req._conn, req._stream and req._cx (cx.current: the request
-- whose handler runs; cx.reply and cx.write: the methods of the common
-- answer, looked up once) cost nothing per request.
local function request_mt(c, stream)
  local cx = {current = false, reply = c.reply, write = stream.write}
  return {__name = "luaio.HttpRequest", __index = function(req, k)
    if k == "_conn" then return c end
    if k == "_stream" then return stream end
    if k == "_cx" then return cx end
    return request_index(req, k)
  end}, cx
end

local function http_error(status, msg)
  local e = aio.error("HTTPError", msg or core.reason(status))
  e.status = status
  return e
end

-- The next piece of the body, or nil at its end; raises an HTTPError with
-- the status to answer (413, 400, 408) when the body is refused.
local function read_chunk(req)
  if rawget(req, "_done") or req._cx.current ~= req then return nil end
  if req.expect_continue and not rawget(req, "_continued") then
    rawset(req, "_continued", true)
    req._stream:write("HTTP/1.1 100 Continue\r\n\r\n")
  end
  local data, status = req._conn:chunk()
  if data == nil then
    rawset(req, "_done", true)
    if status then
      rawset(req, "_failed", status)
      error(http_error(status), 2)
    end
  end
  return data
end

-- req:chunks() -> iterator over the body as it arrives
function Request:chunks()
  return function() return read_chunk(self) end
end

-- req:body() -> the whole body
function Request:body()
  local b = rawget(self, "_body")
  if b then return b end
  local parts = {}
  for piece in self:chunks() do parts[#parts + 1] = piece end
  b = table.concat(parts)
  rawset(self, "_body", b)
  return b
end

-- req:json() -> the body decoded as JSON (raises on invalid JSON)
function Request:json() return aio.json.decode(self:body()) end

-- The error handler of the handler's call: the error and a traceback.
local function msgh(e)
  return {e, debug.traceback(tostring(e), 2)}
end

local function log_error(srv, req, tb)
  local line = ("luaio.http: %s %s failed: %s\n"):format(
    req.method, req.target, tb)
  if srv.log then pcall(srv.log, line) else io.stderr:write(line) end
end

-- Write the handler's answer res; returns false when the connection must
-- close afterwards.
local function send(srv, c, stream, req, res)
  local close = not req.keep_alive or srv.closing
  local head_only = req.method == "HEAD"
  local t = type(res)
  if t == "string" then
    return stream:write(c:response(200, TEXT, res, close, head_only)) ~= nil
      and not close
  end
  if t ~= "table" then
    return stream:write(c:response(204, nil, nil, close, head_only)) ~= nil
      and not close
  end
  local status, headers, body = res.status or 200, res.headers, res.body
  if res.json ~= nil then
    body = aio.json.encode(res.json)
    local h = {["content-type"] = JSON}
    if headers then
      for k, v in pairs(headers) do h[k] = v end
    end
    headers = h
  end
  if body == nil or type(body) == "string" then
    return stream:write(c:response(status, headers, body, close, head_only))
      ~= nil and not close
  end
  if type(body) ~= "function" then
    error("response body must be a string or a function", 0)
  end
  if math.type(res.length) == "integer" then -- a known length: no chunks
    if not stream:write(c:head(status, headers, res.length, close)) then
      return false
    end
    if head_only then return not close end
    for piece in body do
      if #piece > 0 and not stream:write(piece) then return false end
    end
    return not close
  end
  if head_only then
    return stream:write(c:head(status, headers, nil, close)) ~= nil
      and not close
  end
  if req.version == "1.0" then -- no chunks: the end of the connection ends it
    if not stream:write(c:head(status, headers, false, true)) then
      return false
    end
    for piece in body do
      if #piece > 0 and not stream:write(piece) then return false end
    end
    return false
  end
  if not stream:write(c:head(status, headers, nil, close)) then return false end
  for piece in body do
    if #piece > 0 and
       not stream:write(("%x\r\n"):format(#piece) .. piece .. "\r\n") then
      return false
    end
  end
  return stream:write("0\r\n\r\n") ~= nil and not close
end

-- A bad request: its status with Connection: close, then the input is
-- dropped for up to 2 s before the connection closes.
local function reject(c, stream, status)
  local body = core.reason(status) .. "\n"
  if not stream:write(c:response(status, TEXT, body, true, false)) then
    return
  end
  pcall(aio.wait_for, function()
    stream:shutdown()
    while stream:read() do end
  end, 2)
end

local function is_cancel(e) return aio.is_error(e, "CancelledError") end

-- Run the handler on req and answer; false: close the connection.
local function respond(srv, c, stream, req, cx)
  if srv.cancel_on_disconnect then c:watch() end -- until the next c:next()
  local app, ok, res = srv.app
  cx.current = req -- its body can be read until the handler returns
  if srv.routed then -- aio.http.app(): its chain of middleware and routes
    ok, res = xpcall(app.chain or entry(app), msgh, req)
  elseif app then
    ok, res = xpcall(srv.handle, msgh, app, req)
  else
    ok, res = xpcall(srv.handler, msgh, req)
  end
  cx.current = false
  if not ok then
    local e = res[1]
    if is_cancel(e) then error(e, 0) end
    local status = rawget(req, "_failed")
    if aio.is_error(e, "HTTPError") and status then
      reject(c, stream, status)
      return false
    end
    log_error(srv, req, res[2])
    stream:write(c:response(500, TEXT, "Internal Server Error\n", true, false))
    return false
  end
  if not srv.access_log then
    -- the common answer, a string: nothing in it raises but a cancelled
    -- write; sent is nil for any other answer
    local sent, keep = cx.reply(c, res, srv.closing) -- 200 TEXT, in C
    if sent == true then return keep end
    if sent ~= nil then
      return sent and cx.write(stream, sent) ~= nil and keep
    end
  end
  if res == upgraded then return false end -- the stream was the socket's
  local sent, keep = pcall(send, srv, c, stream, req, res)
  if srv.access_log then
    local st = type(res) == "table" and (res.status or 200) or
               (type(res) == "string" and 200 or 204)
    local line = ("%s %s HTTP/%s %d\n"):format(req.method, req.target,
                                               req.version, sent and st or 500)
    if srv.access_log == true then io.stderr:write(line)
    else pcall(srv.access_log, line) end
  end
  if not sent then
    if is_cancel(keep) then error(keep, 0) end
    log_error(srv, req, tostring(keep))
    if c:state() ~= "failed" then
      stream:write(c:response(500, TEXT, "Internal Server Error\n", true))
    end
    return false
  end
  return keep
end

local function connection(srv, stream)
  local c = core.conn(stream, srv.limits)
  local mt, cx = request_mt(c, stream)
  local next, serve = c.next, c.serve
  -- the request's task runs this (one argument: no table of them)
  local function run(req) return respond(srv, c, stream, req, cx) end
  srv.conns[c] = aio.current_task()
  local _ <close> = setmetatable({}, {__close = function()
    srv.conns[c] = nil
    c:close()
  end})
  while true do
    local req, status = next(c, mt)
    if req == nil then
      if status then reject(c, stream, status) end
      return
    end
    if not serve(c, run, req) then return end
  end
end

local KNOWN = {host = true, port = true, tls = true, max_body_size = true,
               header_timeout = true, keepalive_timeout = true,
               body_timeout = true, log = true, access_log = true,
               backlog = true, cancel_on_disconnect = true, reuse_port = true}

-- aio.http.serve(handler_or_app, opts) -> server | nil, msg, code
function M.serve(handler, opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error("bad argument #2 to 'serve' (table expected)", 2)
  end
  for k in pairs(opts) do
    if not KNOWN[k] then
      error(("bad argument #2 to 'serve' (unknown option '%s')"):format(k), 2)
    end
  end
  local fn, app = handler, nil
  if type(handler) == "table" and handler.handle then
    fn = function(req) return handler:handle(req) end
    app = handler -- called as xpcall(app.handle, msgh, app, req)
  elseif type(handler) ~= "function" then
    error("bad argument #1 to 'serve' (function or app expected)", 2)
  end
  local srv = setmetatable({
    handler = fn, app = app, handle = app and app.handle, conns = {},
    routed = app ~= nil and router.is_app(app) and app.handle == router.handle,
    closing = false, log = opts.log,
    access_log = opts.access_log or false, -- false: no lookup in Server
    cancel_on_disconnect = opts.cancel_on_disconnect and true or false,
    limits = {max_body_size = opts.max_body_size,
              header_timeout = opts.header_timeout,
              keepalive_timeout = opts.keepalive_timeout,
              body_timeout = opts.body_timeout},
  }, server_mt)
  local net, msg, code = aio.start_server(function(stream)
    connection(srv, stream)
  end, opts.host or "127.0.0.1", opts.port or 0,
    {tls = opts.tls, backlog = opts.backlog, reuse_port = opts.reuse_port})
  if not net then return nil, msg, code end
  srv.net = net
  srv.port = net.port
  -- The listener closed from outside (net:close(), a worker's shutdown):
  -- idle keep-alive connections close, requests in flight finish.
  aio.spawn(function()
    net:serve_forever()
    if not srv.closing then
      srv.closing = true
      for c in pairs(srv.conns) do c:stop() end
    end
  end)
  return srv
end

-- server:close(): stop now (connections are cancelled)
function Server:close()
  self.closing = true
  self.net:close()
  for _, t in pairs(self.conns) do t:cancel() end
end
server_mt.__close = Server.close

-- server:shutdown([grace]): stop accepting, close idle connections, let
-- requests in flight finish for up to grace seconds (30), then cancel them
function Server:shutdown(grace)
  grace = grace or 30
  self.closing = true
  self.net:close()
  for c in pairs(self.conns) do c:stop() end
  local ok = pcall(aio.wait_for, function() self.net:wait_closed() end,
                   grace)
  if not ok then
    for _, t in pairs(self.conns) do t:cancel() end
    self.net:wait_closed()
  end
end

function Server:wait_closed() return self.net:wait_closed() end
function Server:serve_forever() return self.net:serve_forever() end

M.app = router.app
M.Request = Request

return M

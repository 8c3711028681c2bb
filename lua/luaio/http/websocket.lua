-- luaio.http.websocket: WebSocket sockets on wslay's framing
-- (luaio._ws), and the server's upgrade for app:websocket.
--
-- The socket reads the stream itself and feeds wslay; whatever wslay
-- wants sent (pongs, close replies, the close codes of protocol errors:
-- 1002 framing, 1007 invalid UTF-8, 1009 too big) is written at once.
local aio = require "luaio"
local W = require "luaio._ws"

local M = {}

local Socket = {}
local socket_mt = {__index = Socket, __name = "luaio.WebSocket"}

local CLOSE_TIMEOUT = 5

-- Write what wslay produced; false when the stream failed.
local function flush(self, out)
  if out and #out > 0 and not self.stream:write(out) then
    self.done = true
    self.code = self.code or 1006
    return false
  end
  return true
end

-- After wslay ran: the connection ends when a close arrived or wslay
-- stopped reading (a protocol error: it queued and sent its close).
local function check_state(self)
  local received, sent, code_r, code_s, want_read = self.f:status()
  if received or not want_read then
    self.done = true
    if received then
      self.code = code_r
    else
      self.code = sent and code_s or 1002
    end
    self.stream:close()
  end
end

-- Read once from the stream into wslay; false at the end.
local function pump_once(self)
  local data = self.stream:read()
  if not data then
    self.done = true
    self.code = self.code or 1006
    return false
  end
  local msgs, out, pongs = self.f:feed(data)
  for i = 1, #msgs do
    self.itail = self.itail + 1
    self.inbox[self.itail] = msgs[i]
  end
  self.pongs = pongs
  flush(self, out)
  check_state(self)
  return true
end

-- With a heartbeat, two tasks may read (the user's and the heartbeat's,
-- waiting for a pong): one at a time, and a task that waited for the
-- other's read returns to look at what it brought.
local function pump(self)
  local lock = self.rlock
  if not lock then return pump_once(self) end
  local reads = self.reads
  local _ <close> = lock:acquire()
  local _w <close> = self.waker -- however this ends, the heartbeat looks
  if self.done then return false end
  if self.reads ~= reads then return true end
  self.reads = reads + 1
  return pump_once(self)
end

-- The heartbeat: a ping every `every` seconds; no pong within `within`
-- (every / 2 by default) closes with 1011 (the peer is gone: no closing
-- handshake is waited for).
local function heartbeat(self, every, within)
  while true do
    aio.sleep(every)
    if self.done then return end
    local pongs = self.pongs
    if not flush(self, self.f:ping("luaio")) then return end
    local ok, e = pcall(aio.wait_for, function()
      while self.pongs == pongs and not self.done do
        if self.rlock:locked() then -- another task reads: see what it got
          local ev = aio.event()
          self.hb_wake = ev
          ev:wait()
          self.hb_wake = nil
        else
          pump(self)
        end
      end
    end, within)
    self.hb_wake = nil
    if not ok then
      if not aio.is_error(e, "TimeoutError") then error(e, 0) end
      if self.done then return end
      self.done = true
      self.code, self.reason = 1011, "heartbeat timeout"
      -- the close frame, unless it would have to wait behind a backlog
      local out, st = self.f:close(1011, self.reason), self.stream
      if not st:closed() and st:queued() < 32768 then pcall(flush, self, out) end
      st:close()
      return
    end
    if self.done then return end
  end
end

local function new_socket(stream, framing, opts)
  local every = opts and opts.heartbeat
  local self = setmetatable({stream = stream, f = framing, inbox = {},
                             ihead = 1, itail = 0, done = false, pongs = 0},
                            socket_mt)
  if every then
    self.rlock, self.reads = aio.lock(), 0
    self.waker = setmetatable({}, {__close = function()
      if self.hb_wake then self.hb_wake:set() end
    end})
    self.hb = aio.spawn(heartbeat, self, every,
                        opts.heartbeat_timeout or every / 2)
  end
  return self
end

local function check_heartbeat(opts)
  for _, k in ipairs({"heartbeat", "heartbeat_timeout"}) do
    local v = opts and opts[k]
    if v ~= nil and (type(v) ~= "number" or not (v > 0)) then
      error(k .. " must be a positive number of seconds", 3)
    end
  end
end

-- ws:receive() -> data, "text" | "binary" | nil, code, reason
function Socket:receive()
  while true do
    local m = self.inbox[self.ihead]
    if m then
      self.inbox[self.ihead] = nil
      self.ihead = self.ihead + 1
      return m[1], m[2]
    end
    if self.done then return nil, self.code, self.reason end
    pump(self)
  end
end

-- ws:iter() -> iterator over data, kind until the connection closes
function Socket:iter()
  return function()
    local data, kind = self:receive()
    if data ~= nil then return data, kind end
  end
end

-- ws:send(data [, "binary"]) -> true | nil, msg
function Socket:send(data, kind)
  if self.done then return nil, "closed" end
  local out, err = self.f:send(data, kind == "binary")
  if not out then return nil, err end
  if not flush(self, out) then return nil, "closed" end
  return true
end

-- ws:ping([data]) -> true | nil, msg
function Socket:ping(data)
  if self.done then return nil, "closed" end
  if not flush(self, self.f:ping(data)) then return nil, "closed" end
  return true
end

-- ws:close([code [, reason]]): the closing handshake, up to 5 s
function Socket:close(code, reason)
  local hb = self.hb
  if hb and hb ~= aio.current_task() then hb:cancel() end
  if self.done then
    self.stream:close()
    return
  end
  flush(self, self.f:close(code or 1000, reason))
  pcall(aio.wait_for, function()
    while not self.done and pump(self) do end
  end, CLOSE_TIMEOUT)
  self.done = true
  self.code = self.code or code or 1000
  self.stream:close()
end
socket_mt.__close = function(self) self:close() end

local UPGRADED = {}
M.UPGRADED = UPGRADED

local function refuse(status, msg, headers)
  headers = headers or {}
  headers["content-type"] = "text/plain; charset=utf-8"
  return {status = status, headers = headers, body = msg .. "\n"}
end

-- Answer req's upgrade and run fn(ws, req) (the route of app:websocket).
function M.upgrade(req, fn, opts)
  check_heartbeat(opts)
  local h = req.headers
  local up, conn = h.upgrade, h.connection
  if req.method ~= "GET" or not up or up:lower() ~= "websocket" or
     not conn or not conn:lower():find("upgrade", 1, true) then
    return refuse(426, "WebSocket upgrade required",
                  {upgrade = "websocket", ["sec-websocket-version"] = "13"})
  end
  if h["sec-websocket-version"] ~= "13" then
    return refuse(426, "unsupported WebSocket version",
                  {["sec-websocket-version"] = "13"})
  end
  local key = h["sec-websocket-key"]
  if not key or #key ~= 24 or not key:match("^[%w+/]+==$") then
    return refuse(400, "bad Sec-WebSocket-Key")
  end
  local stream = req._stream
  local ok = stream:write("HTTP/1.1 101 Switching Protocols\r\n" ..
    "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " ..
    W.accept_key(key) .. "\r\n\r\n")
  if not ok then return UPGRADED end
  local ws = new_socket(stream, W.server(opts and opts.max_message_size),
                        opts)
  local done, err = pcall(fn, ws, req)
  if not ws.done then ws:close(done and 1000 or 1011) end
  if ws.hb then ws.hb:cancel() end
  if not done then error(err, 0) end
  return UPGRADED
end

-- The options aio.http.websocket knows: a misspelt key raises.
local CLIENT_OPTIONS = {max_message_size = true, headers = true, timeout = true,
                        verify = true, cafile = true, server_name = true,
                        heartbeat = true, heartbeat_timeout = true}

-- aio.http.websocket(url [, opts]) -> socket | nil, msg, code
-- opts: max_message_size (1 MiB), headers (extra handshake fields),
-- timeout (of the connection and handshake, 30 s), heartbeat (seconds
-- between pings) and heartbeat_timeout (for the pong, heartbeat / 2: then
-- the socket closes with 1011); for wss:// verify (true), cafile (the
-- system's store) and server_name (the URL's host).
function M.websocket(url, opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error("bad argument #2 to 'websocket' (table expected, got " .. type(opts) .. ")", 2)
  end
  for k in pairs(opts) do
    if not CLIENT_OPTIONS[k] then
      error(("bad argument #2 to 'websocket' (unknown option '%s')"):format(tostring(k)), 2)
    end
  end
  check_heartbeat(opts)
  local scheme, host, port, path = tostring(url):match(
    "^(wss?)://([^/:]+):?(%d*)(.*)$")
  if not scheme then error("bad argument #1 to 'websocket' (ws:// URL expected)", 2) end
  local secure = scheme == "wss"
  local default_port = secure and 443 or 80
  port = tonumber(port) or default_port
  if path == "" then path = "/" end
  local conn_opts
  if secure then
    conn_opts = {tls = {verify = opts.verify, cafile = opts.cafile,
                        server_name = opts.server_name or host}}
  end
  local ok, s, msg, code = pcall(aio.wait_for, function()
    local s, msg, code = aio.open_connection(host, port, conn_opts)
    if not s then return nil, msg, code end
    local key = W.new_key()
    local extra = {}
    for k, v in pairs(opts.headers or {}) do
      extra[#extra + 1] = ("%s: %s\r\n"):format(k, v)
    end
    local hostport = port == default_port and host or host .. ":" .. port
    if not s:write(("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n" ..
        "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n" ..
        "Sec-WebSocket-Version: 13\r\n%s\r\n"):format(path, hostport, key,
                                                    table.concat(extra))) then
      s:close()
      return nil, "EPROTO: the handshake could not be sent", "EPROTO"
    end
    local head = s:read_until("\r\n\r\n")
    local status = head and tonumber(head:match("^HTTP/1%.1 (%d+)"))
    local accept = head and head:lower():match("\r\nsec%-websocket%-accept:%s*([^\r]+)")
    if status ~= 101 or accept ~= W.accept_key(key):lower() then
      s:close()
      return nil, ("EPROTO: the server refused the upgrade (%s)")
                  :format(status or "no answer"), "EPROTO"
    end
    return new_socket(s, W.client(opts.max_message_size), opts)
  end, opts.timeout or 30)
  if not ok then
    if aio.is_error(s, "TimeoutError") then
      return nil, "ETIMEDOUT: the WebSocket handshake timed out", "ETIMEDOUT"
    end
    error(s, 0)
  end
  return s, msg, code
end

return M

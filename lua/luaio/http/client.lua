-- luaio.http.client: aio.http.request/get/post/... and aio.http.client
-- sessions, over libcurl's multi interface (luaio._curl, bindings/curl.c).
-- This file is the policy: URLs from `query`, JSON bodies, headers and
-- their defaults, redirects with aiohttp's method rules, the response
-- object and HTTPError.  Framing, TLS, proxies and decoding are libcurl's.

local aio = require "luaio"
local curl = require "luaio._curl"

local M = {}

local VERSION = aio._VERSION:match("[%d.]+$") or "0"

local request_keys = {
  method = true, url = true, headers = true, query = true, body = true,
  json = true, timeout = true, follow_redirects = true, max_redirects = true,
  stream = true, verify = true, cafile = true, proxy = true,
  trust_env = true, max_body_size = true,
}

local session_keys = {
  headers = true, timeout = true, base_url = true, limit = true,
  verify = true, cafile = true, proxy = true, trust_env = true,
  max_body_size = true, follow_redirects = true, max_redirects = true,
}

local function check_keys(opts, known, what, level)
  for k in pairs(opts) do
    if not known[k] then
      error(string.format("%s: unknown option '%s'", what, tostring(k)),
            level + 1)
    end
  end
end

-- URLs.

local function escape(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", c:byte())
  end))
end
M.escape = escape

-- "a=1&b=x%20y" from {a = 1, b = "x y"}; an array value repeats its key.
-- Keys are sorted, so a URL is the same on every run.
local function encode_query(q)
  local keys = {}
  for k in pairs(q) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = q[k]
    if v == nil then v = q[tonumber(k)] end
    if type(v) == "table" then
      for _, x in ipairs(v) do parts[#parts + 1] = escape(k) .. "=" .. escape(x) end
    elseif v == true then
      parts[#parts + 1] = escape(k)
    elseif v ~= false then
      parts[#parts + 1] = escape(k) .. "=" .. escape(v)
    end
  end
  return table.concat(parts, "&")
end
M.encode_query = encode_query

local function join_url(base, url)
  if base == nil or url:match("^%a[%w+.-]*://") then return url end
  if url == "" then return base end
  if url:sub(1, 1) == "/" then
    local origin = base:match("^(%a[%w+.-]*://[^/?#]*)")
    return (origin or base) .. url
  end
  if base:sub(-1) ~= "/" then base = base .. "/" end
  return base .. url
end

local function build_url(base, url, query)
  url = join_url(base, url)
  if query ~= nil and next(query) ~= nil then
    local q = encode_query(query)
    if q ~= "" then
      local frag = url:match("#.*$") or ""
      url = url:sub(1, #url - #frag)
      url = url .. (url:find("?", 1, true) and "&" or "?") .. q .. frag
    end
  end
  return url
end

-- "host:port" of a URL, for the redirect rule on Authorization.
local function authority(url)
  local scheme, rest = url:match("^(%a[%w+.-]*)://([^/?#]*)")
  if scheme == nil then return url end
  rest = rest:gsub("^.*@", ""):lower()
  if not rest:find(":%d+$") and not rest:find("^%[.*%]:%d+$") then
    rest = rest .. (scheme:lower() == "https" and ":443" or ":80")
  end
  return scheme:lower() .. "://" .. rest
end

-- Headers: a table name -> value, looked up without regard to case.

local function header_lines(defaults, headers)
  local merged, order = {}, {}
  local function add(t)
    if t == nil then return end
    for k, v in pairs(t) do
      if type(k) ~= "string" or k:find("[%c:%s]") or k == "" then
        error("bad header name " .. string.format("%q", tostring(k)), 4)
      end
      local lk = k:lower()
      if v == false then
        merged[lk] = false
      else
        v = tostring(v)
        if v:find("[\r\n%z]") then
          error("header " .. k .. ": value contains a line break", 4)
        end
        if merged[lk] == nil then order[#order + 1] = lk end
        merged[lk] = {k, v}
      end
    end
  end
  add(defaults)
  add(headers)
  local lines = {}
  for _, lk in ipairs(order) do
    local h = merged[lk]
    if h then
      -- curl: "Name:" removes a header, "Name;" sends it empty.
      lines[#lines + 1] = h[2] == "" and (h[1] .. ";") or (h[1] .. ": " .. h[2])
    end
  end
  for lk, h in pairs(merged) do
    if h == false then
      local name = lk
      lines[#lines + 1] = name .. ":"
    end
  end
  return lines, merged
end

-- Responses.

local Response = {}
Response.__index = Response
Response.__name = "luaio.http.Response"

function Response:json()
  if self.body == nil then error("response:json(): no body (stream = true?)", 2) end
  return aio.json.decode(self.body)
end

function Response:raise_for_status()
  if self.status >= 400 then
    local e = aio.error("HTTPError", string.format("%d %s for %s",
      self.status, self.reason or "", self.url))
    e.status = self.status
    e.url = self.url
    e.response = self
    error(e, 2)
  end
  return self
end

-- With stream = true: the next chunk of the body, or nil at its end, or
-- nil, msg, code when the transfer failed half-way.
function Response:read()
  local x = self._x
  if x == nil then return nil end
  while true do
    local chunk, msg, code = x:read()
    if chunk == false then -- the upload wants its next chunk
      local body = self._body
      local c
      repeat c = body() until c == nil or #c > 0
      x:feed(c)
    elseif chunk == nil then
      self._x = nil
      x:close()
      return nil, msg, code
    else
      return chunk
    end
  end
end

function Response:iter()
  return function()
    local chunk, msg = self:read()
    if chunk == nil and msg then error(msg, 2) end
    return chunk
  end
end

function Response:close()
  local x = self._x
  if x ~= nil then
    self._x = nil
    x:close()
  end
end
Response.__close = Response.close

function Response:__tostring()
  return string.format("<Response %d %s>", self.status, self.url)
end

-- Performing one transfer.

-- Wait for x to finish (or, streaming, for its head), feeding an upload.
local function drive(x, body)
  while true do
    local ev = x:wait()
    if ev ~= "body" then return ev end
    local c
    repeat c = body() until c == nil or #c > 0
    x:feed(c)
  end
end

local closer = {__close = function(g, err)
  if err ~= nil or not g.keep then g.x:close() end
end}

-- One transfer: the response, or nil, msg, code.  A plain request is one
-- call into C (start, wait, response); a stream or an upload is driven
-- from here.
local function transfer(m, t, body_fn, stream)
  if not stream and body_fn == nil then return m:fetch(t, Response) end
  local x = m:start(t)
  local guard <close> = setmetatable({x = x}, closer)
  drive(x, body_fn)
  local r, msg, code = x:response(Response)
  if r == nil then return nil, msg, code end
  if stream then
    guard.keep = true
    r._x = x
    r._body = body_fn
  end
  return r
end

local redirect_codes = {[301] = true, [302] = true, [303] = true,
                        [307] = true, [308] = true}

local function numopt(v, name)
  if v ~= nil and (type(v) ~= "number" or not (v >= 0)) then
    error("option '" .. name .. "': seconds expected", 4)
  end
  return v
end

local methods = {}
for _, m in ipairs {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD",
                    "OPTIONS"} do
  methods[m], methods[m:lower()] = m, m
end

-- The session's request: the whole policy.  method and url, when given
-- (session:get(url, opts) ...), win over opts'.
local NOOPTS = {} -- read only

local function request(s, opts, method, url)
  if opts == nil then
    opts = NOOPTS
  elseif type(opts) ~= "table" then
    error("request: options table expected", 3)
  else
    check_keys(opts, request_keys, "request", 3)
  end
  method = method or opts.method or "GET"
  if methods[method] then
    method = methods[method]
  else
    if type(method) ~= "string" then error("request: bad method", 3) end
    method = method:upper()
    if not method:match("^[%w!#$%%&'*+%-.^_`|~]+$") then
      error("request: bad method", 3)
    end
  end
  url = url or opts.url
  if type(url) ~= "string" then error("request: url expected", 3) end
  if s.base_url ~= nil or opts.query ~= nil then
    url = build_url(s.base_url, url, opts.query)
  end
  if url ~= s._checked_url then
    local scheme = url:match("^(%a[%w+.-]*)://")
    scheme = scheme and scheme:lower()
    if scheme ~= "http" and scheme ~= "https" then
      error("request: an http:// or https:// URL expected, got " ..
            string.format("%q", url), 3)
    end
    s._checked_url = url -- the next request to it skips the check
  end
  local hdrs = {}
  local body = opts.body
  if opts.json ~= nil then
    if body ~= nil then error("request: body and json are exclusive", 3) end
    body = aio.json.encode(opts.json)
    hdrs["Content-Type"] = "application/json"
  end
  local body_fn
  if type(body) == "function" then
    body_fn, body = body, nil
    hdrs["Expect"] = false
  elseif body ~= nil and type(body) ~= "string" then
    error("request: body must be a string or a function", 3)
  end
  local user = opts.headers
  local timeout = opts.timeout
  if timeout == nil then timeout = s.timeout end
  local t = {
    stream = opts.stream and true or false,
    verify = opts.verify, cafile = opts.cafile or s.cafile,
    proxy = opts.proxy or s.proxy,
    trust_env = opts.trust_env,
    max_body_size = opts.max_body_size or s.max_body_size,
  }
  if t.verify == nil then t.verify = s.verify end
  if t.trust_env == nil then t.trust_env = s.trust_env end
  if type(timeout) == "number" then
    t.timeout = numopt(timeout, "timeout")
  elseif type(timeout) == "table" then
    t.timeout = numopt(timeout.total, "timeout.total")
    t.connect_timeout = numopt(timeout.connect, "timeout.connect")
    t.read_timeout = numopt(timeout.read, "timeout.read")
  elseif timeout ~= nil then
    error("option 'timeout': seconds or a table expected", 3)
  end
  local follow = opts.follow_redirects
  if follow == nil then follow = s.follow_redirects end
  local max_redirects = opts.max_redirects or s.max_redirects or 10
  local origin = url
  local redirects = 0
  while true do
    local lines
    if redirects == 0 and user == nil and next(hdrs) == nil then
      lines = s._lines -- the session's own headers, made once
      if lines == nil then
        lines = header_lines(s.headers, nil)
        s._lines = lines
      end
    else
      local merged_hdrs = {}
      for k, v in pairs(hdrs) do merged_hdrs[k] = v end
      if user then
        for k, v in pairs(user) do merged_hdrs[k] = v end
      end
      if redirects > 0 and authority(url) ~= authority(origin) then
        -- left the host: no credentials to another one
        for _, ht in ipairs {s.headers or {}, merged_hdrs} do
          for k in pairs(ht) do
            if type(k) == "string" and k:lower() == "authorization" then
              merged_hdrs[k] = false
            end
          end
        end
      end
      lines = header_lines(s.headers, merged_hdrs)
    end
    t.url, t.method, t.headers = url, method, lines
    t.body, t.upload = body, body_fn ~= nil
    local r, msg, code = transfer(s._m, t, body_fn, t.stream)
    if r == nil then
      if code == "EINVAL" then error("request: " .. msg, 3) end
      return nil, msg, code
    end
    if follow == false or not redirect_codes[r.status] or r._redirect == nil
        or (body_fn ~= nil and (r.status == 307 or r.status == 308)) then
      return r
    end
    r:close()
    if redirects >= max_redirects then
      return nil, string.format(
        "ETOOMANYREDIRECTS: more than %d redirects, the last to %s",
        max_redirects, r._redirect), "ETOOMANYREDIRECTS"
    end
    redirects = redirects + 1
    if (r.status == 303 and method ~= "HEAD")
        or ((r.status == 301 or r.status == 302) and method == "POST") then
      method, body, body_fn = "GET", nil, nil
      hdrs["Content-Type"], hdrs["Expect"] = nil, nil
      if user then
        local u = {}
        for k, v in pairs(user) do
          local lk = type(k) == "string" and k:lower()
          if lk ~= "content-type" and lk ~= "content-length" then u[k] = v end
        end
        user = u
      end
    end
    url = r._redirect
  end
end

-- Sessions.

local Session = {}
Session.__index = Session
Session.__name = "luaio.http.Session"

function M.client(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("client: options table expected", 2) end
  check_keys(opts, session_keys, "client", 2)
  local limit = opts.limit or 100
  if math.type(limit) ~= "integer" or limit < 1 then
    error("client: limit must be a positive integer", 2)
  end
  local ua = {["User-Agent"] = "luaio/" .. VERSION}
  for k, v in pairs(opts.headers or {}) do ua[k] = v end
  return setmetatable({
    _m = curl.multi(limit),
    headers = ua, timeout = opts.timeout, base_url = opts.base_url,
    verify = opts.verify ~= false, cafile = opts.cafile, proxy = opts.proxy,
    trust_env = opts.trust_env and true or false,
    max_body_size = opts.max_body_size,
    follow_redirects = opts.follow_redirects ~= false,
    max_redirects = opts.max_redirects,
  }, Session)
end

local function checksession(s, name)
  if getmetatable(s) ~= Session then
    error(name .. ": call it as session:" .. name .. "(...)", 3)
  end
  if s._m:closed() then error("attempt to use a closed HTTP session", 3) end
end

function Session:request(opts)
  checksession(self, "request")
  return request(self, opts)
end

local function with_method(method)
  local name = method:lower()
  return function(self, url, opts)
    checksession(self, name)
    if opts ~= nil and type(opts) ~= "table" then
      error("options table expected", 2)
    end
    if type(url) ~= "string" then error(name .. ": url expected", 2) end
    return request(self, opts, method, url)
  end
end

for _, m in ipairs {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"} do
  Session[m:lower()] = with_method(m)
end

function Session:close()
  self._m:close()
end
Session.__close = Session.close

function Session:closed() return self._m:closed() end

function Session:__tostring()
  return "<luaio.http session" .. (self._m:closed() and " (closed)>" or ">")
end

-- The module functions: one default session for this Lua state (its host),
-- made again if a host closed it.
local default

local function session()
  if default == nil or default._m:closed() then default = M.client() end
  return default
end

function M.request(opts)
  return request(session(), opts)
end

for _, m in ipairs {"get", "post", "put", "patch", "delete", "head"} do
  local f = Session[m]
  M[m] = function(url, opts) return f(session(), url, opts) end
end

return M

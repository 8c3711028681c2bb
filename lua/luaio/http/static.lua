-- luaio.http.static: app:static(prefix, dir), files under dir served with
-- Content-Type, ETag / If-None-Match (304) and a single Range (206).
--
-- No path outside dir is ever served: the raw target must not hold an
-- encoded dot, slash, backslash or NUL (%2e, %2f, %5c, %00), and once
-- decoded no segment may be "." or "..", empty, or hold a backslash; every
-- component is checked with scandir, and symbolic links are not followed
-- at all (a link that stays inside dir is refused too).  All of it is 404.
local aio = require "luaio"

local M = {}

local TYPES = {
  html = "text/html; charset=utf-8", htm = "text/html; charset=utf-8",
  css = "text/css; charset=utf-8", js = "text/javascript; charset=utf-8",
  json = "application/json", txt = "text/plain; charset=utf-8",
  xml = "application/xml", svg = "image/svg+xml", png = "image/png",
  jpg = "image/jpeg", jpeg = "image/jpeg", gif = "image/gif",
  webp = "image/webp", ico = "image/x-icon", wasm = "application/wasm",
  pdf = "application/pdf", md = "text/markdown; charset=utf-8",
}

local CHUNK = 64 * 1024
local NOT_FOUND = {status = 404, body = "Not Found\n",
                   headers = {["content-type"] = "text/plain; charset=utf-8"}}

-- The segments of rest, or nil when it may leave dir.
local function segments(raw)
  local low = raw:lower()
  if low:find("%2e", 1, true) or low:find("%2f", 1, true) or
     low:find("%5c", 1, true) or low:find("%00", 1, true) then
    return nil
  end
  local rest = require("luaio._http_server").decode(raw)
  if rest == "" or rest:find("[%z\\]") or rest:sub(1, 1) == "/" then
    return nil
  end
  local segs = {}
  for seg in (rest .. "/"):gmatch("([^/]*)/") do
    if seg == "" or seg == "." or seg == ".." then return nil end
    segs[#segs + 1] = seg
  end
  return segs
end

-- Each component must exist as a plain directory (or the file at the end),
-- never as a link.
local function walk(dir, segs)
  local path = dir
  for i, seg in ipairs(segs) do
    local list = aio.fs.scandir(path)
    if not list then return nil end
    local kind
    for _, e in ipairs(list) do
      if e.name == seg then kind = e.type break end
    end
    if kind ~= (i == #segs and "file" or "directory") then return nil end
    path = path .. "/" .. seg
  end
  return path
end

local function file_body(f, first, last)
  local left = last - first + 1
  return function()
    if left <= 0 then f:close() return nil end
    local data = f:read(left < CHUNK and left or CHUNK)
    if not data or #data == 0 then f:close() left = 0 return nil end
    left = left - #data
    return data
  end
end

local function serve(path, req)
  local st = aio.fs.stat(path)
  if not st or st.type ~= "file" then return NOT_FOUND end
  local etag = ('W/"%x-%x"'):format(st.size, math.floor(st.mtime * 1000))
  local ext = path:match("%.([%w]+)$")
  local headers = {["content-type"] = TYPES[ext and ext:lower()] or
                                      "application/octet-stream",
                   etag = etag, ["accept-ranges"] = "bytes"}
  local inm = req.headers["if-none-match"]
  if inm then
    for tag in inm:gmatch("[^,%s]+") do
      if tag == etag or tag == "*" or tag == etag:sub(3) then
        return {status = 304, headers = {etag = etag}}
      end
    end
  end
  local status, first, last = 200, 0, st.size - 1
  local range = req.headers.range
  if range then
    local a, b = range:match("^bytes=(%d*)%-(%d*)$")
    if a == nil or (a == "" and b == "") then
      a = nil -- several ranges or another unit: the whole file
    elseif a == "" then
      first = math.max(st.size - tonumber(b), 0)
    else
      first = tonumber(a)
      if b ~= "" then last = math.min(tonumber(b), st.size - 1) end
    end
    if a ~= nil then
      if first > last or first >= st.size then
        return {status = 416,
                headers = {["content-range"] = "bytes */" .. st.size}}
      end
      status = 206
      headers["content-range"] = ("bytes %d-%d/%d"):format(first, last, st.size)
    end
  end
  if req.method == "HEAD" then
    return {status = status, headers = headers, length = last - first + 1,
            body = function() end}
  end
  local f = aio.fs.open(path, "r")
  if not f then return NOT_FOUND end
  if first > 0 then f:seek("set", first) end
  return {status = status, headers = headers, length = last - first + 1,
          body = file_body(f, first, last)}
end

-- The route of app:static: a function(req) -> handler or nil.
function M.route(prefix, dir)
  if type(prefix) ~= "string" or prefix:sub(1, 1) ~= "/" then
    error("static prefix must start with '/'", 3)
  end
  if type(dir) ~= "string" then error("static dir must be a string", 3) end
  if prefix:sub(-1) ~= "/" then prefix = prefix .. "/" end
  dir = dir:gsub("/+$", "")
  local n = #prefix
  return function(req)
    local raw = req.raw_path
    if raw:sub(1, n) ~= prefix then return nil end
    return function(r)
      if r.method ~= "GET" and r.method ~= "HEAD" then
        return {status = 405, headers = {allow = "GET, HEAD"}}
      end
      local segs = segments(raw:sub(n + 1))
      local path = segs and walk(dir, segs)
      if not path then return NOT_FOUND end
      return serve(path, r)
    end
  end
end

return M

-- app:static: files under a folder, ETag/304, Range/206, and no path
-- outside the folder ever served.
local aio = require "luaio"
local support = require "support"

local raw = support.raw

local function get(port, path, extra)
  return raw(port, ("GET %s HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n")
                   :format(path, extra or ""))
end

local function status_of(r) return tonumber(r:match("^HTTP/1%.1 (%d+)")) end
local function body_of(r) return r:match("\r\n\r\n(.*)$") end

describe("app:static", function()
  local root = os.tmpname()
  os.remove(root)
  local dir = root .. "/pub"
  assert(os.execute(("mkdir -p %s/sub && printf 'hello world' > %s/a.txt && " ..
    "printf '<p>x</p>' > %s/sub/i.html && printf secret > %s/secret.txt && " ..
    "ln -s %s/secret.txt %s/link.txt"):format(dir, dir, dir, root, root, dir)))
  local big = ("0123456789"):rep(20000)
  local f = assert(io.open(dir .. "/big.bin", "wb"))
  f:write(big)
  f:close()
  teardown(function() os.execute("rm -rf " .. root) end)

  local function with_app(fn)
    support.run(function()
      local app = aio.http.app()
      app:static("/static", dir)
      local srv = assert(aio.http.serve(app))
      local ok, err = pcall(fn, srv.port)
      srv:close()
      assert(ok, err)
    end)
  end

  it("serves files with their type and length", function()
    with_app(function(port)
      local r = get(port, "/static/a.txt")
      assert.equal(200, status_of(r))
      assert.equal("hello world", body_of(r))
      assert.truthy(r:find("content-type: text/plain", 1, true))
      assert.truthy(r:find("Content-Length: 11", 1, true))
      r = get(port, "/static/sub/i.html")
      assert.truthy(r:find("content-type: text/html", 1, true))
      assert.equal(big, body_of(get(port, "/static/big.bin")))
      r = raw(port, "HEAD /static/a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      assert.truthy(r:find("Content-Length: 11", 1, true))
      assert.equal("", body_of(r))
    end)
  end)

  it("answers If-None-Match with 304 and a Range with 206", function()
    with_app(function(port)
      local etag = get(port, "/static/a.txt"):match("etag: ([^\r]+)")
      assert.truthy(etag)
      local r = get(port, "/static/a.txt", "If-None-Match: " .. etag .. "\r\n")
      assert.equal(304, status_of(r))
      assert.equal("", body_of(r))
      r = get(port, "/static/a.txt", "Range: bytes=6-10\r\n")
      assert.equal(206, status_of(r))
      assert.equal("world", body_of(r))
      assert.truthy(r:find("content-range: bytes 6-10/11", 1, true))
      r = get(port, "/static/a.txt", "Range: bytes=-5\r\n")
      assert.equal("world", body_of(r))
      r = get(port, "/static/big.bin", "Range: bytes=100000-\r\n")
      assert.equal(big:sub(100001), body_of(r))
      assert.equal(416, status_of(get(port, "/static/a.txt", "Range: bytes=50-\r\n")))
    end)
  end)

  it("never serves a path outside the folder", function()
    with_app(function(port)
      for _, p in ipairs({"/static/../secret.txt", "/static/%2e%2e/secret.txt",
                          "/static/%2E%2E/secret.txt", "/static/sub%2f..%2f..%2fsecret.txt",
                          "/static/a.txt%00.html", "/static//etc/passwd",
                          "/static/" .. root .. "/secret.txt",
                          "/static/link.txt", "/static/sub/../../secret.txt",
                          "/static/..%5csecret.txt", "/static/sub",
                          "/static/nope.txt", "/static/"}) do
        local r = get(port, p)
        assert.equal(404, status_of(r), p)
        assert.falsy(r:find("secret\0", 1, true))
        assert.falsy(body_of(r) == "secret", p)
      end
    end)
  end)
end)

-- Unix sockets: aio.open_unix_connection and aio.start_unix_server.
local aio = require "luaio"
local S = require "support"
local run = S.run

-- A fresh path for a socket in a temporary folder.
local function sockpath()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir))
  return dir .. "/s.sock", dir
end

local function exists(path)
  return os.execute("test -e " .. path) == true
end

local function echo(s)
  for line in s:lines() do s:write(line .. "\n") end
end

describe("unix sockets", function()
  it("serve and connect; names are paths", function()
    run(function()
      local path, dir = sockpath()
      local srv = assert(aio.start_unix_server(echo, path))
      assert.equal(path, srv.path)
      assert.is_nil(srv.port)
      assert.is_true(exists(path))
      local c = assert(aio.open_unix_connection(path))
      c:write("over unix\n")
      assert.equal("over unix", c:read_line())
      assert.equal(path, c:peername())
      c:close()
      srv:close()
      srv:wait_closed()
      assert.is_false(exists(path)) -- removed at close
      os.remove(dir)
    end)
  end)

  it("serves many concurrent clients", function()
    run(function()
      local path, dir = sockpath()
      local srv = assert(aio.start_unix_server(echo, path))
      local fns = {}
      for i = 1, 100 do
        fns[i] = function()
          local c <close> = assert(aio.open_unix_connection(path))
          c:write(i .. "\n")
          return tonumber(c:read_line())
        end
      end
      local r = aio.gather(fns)
      for i = 1, 100 do assert.equal(i, r[i]) end
      srv:close()
      os.remove(dir)
    end)
  end)

  it("fails with nil, msg, code for a missing or refusing path", function()
    run(function()
      local path, dir = sockpath()
      local r, msg, code = aio.open_unix_connection(path)
      assert.is_nil(r)
      assert.equal("ENOENT", code)
      assert.matches("^ENOENT: ", msg)
      -- a socket file nobody listens on
      local srv = assert(aio.start_unix_server(echo, path))
      srv:close()
      local f = assert(io.open(path, "w"))
      f:close()
      r, msg, code = aio.open_unix_connection(path)
      assert.is_nil(r)
      assert.equal("ECONNREFUSED", code)
      os.remove(path)
      os.remove(dir)
    end)
  end)

  it("replaces a socket left behind, not other files", function()
    run(function()
      local path, dir = sockpath()
      -- a socket file whose server is gone (as after a crash)
      assert(os.execute(("%s -e %q"):format(os.getenv("LUAIO") or "luaio",
        ('local aio = require "luaio"; ' ..
         'local s = aio.start_unix_server(function() end, %q); ' ..
         'os.exit(0)'):format(path))))
      assert.is_true(exists(path))
      local srv = assert(aio.start_unix_server(echo, path))
      local c = assert(aio.open_unix_connection(path))
      c:write("again\n")
      assert.equal("again", c:read_line())
      c:close()
      srv:close()
      local f = assert(io.open(path, "w"))
      f:write("data")
      f:close()
      local r, _, code = aio.start_unix_server(echo, path)
      assert.is_nil(r)
      assert.equal("EADDRINUSE", code)
      os.remove(path)
      os.remove(dir)
    end)
  end)

  it("can be cancelled while connecting", function()
    run(function()
      local path, dir = sockpath()
      local srv = assert(aio.start_unix_server(echo, path))
      local t = aio.spawn(aio.open_unix_connection, path)
      aio.sleep(0)
      t:cancel()
      assert.is_false(pcall(t.await, t))
      assert.is_true(t:cancelled())
      srv:close()
      os.remove(dir)
    end)
  end)
end)

-- aio.fs: files through libuv's thread pool, never blocking the loop.
local aio = require "luaio"
local S = require "support"
local run = S.run
local fs = aio.fs

-- A fresh temporary folder, removed with everything in it by the caller.
local function tempdir()
  local base = os.tmpname()
  os.remove(base)
  assert(os.execute("mkdir " .. base))
  return base
end

local function rmtree(dir)
  os.execute("rm -rf '" .. dir .. "'")
end

local function all_bytes()
  local t = {}
  for i = 0, 255 do t[#t + 1] = string.char(i) end
  return table.concat(t)
end

local function assert_fail(code, ...)
  local v, msg, c = ...
  assert.is_nil(v)
  assert.equal(code, c)
  assert.is_string(msg)
  assert.equal(code, msg:match("^(%u+):"))
  return msg
end

describe("aio.fs", function()
  local dir
  before_each(function() dir = tempdir() end)
  after_each(function() rmtree(dir) end)

  it("writes and reads whole files, binary-safe", function()
    run(function()
      local data = all_bytes() .. "\0\0" .. all_bytes():reverse() .. "\0"
      assert.is_true(fs.write_file(dir .. "/bin", data))
      assert.equal(data, fs.read_file(dir .. "/bin"))
      assert.is_true(fs.write_file(dir .. "/empty", ""))
      assert.equal("", fs.read_file(dir .. "/empty"))
      -- write_file truncates
      assert.is_true(fs.write_file(dir .. "/bin", "short"))
      assert.equal("short", fs.read_file(dir .. "/bin"))
      -- the real file, as io sees it
      local f = io.open(dir .. "/bin", "rb")
      assert.equal("short", f:read("a"))
      f:close()
    end)
  end)

  it("reads a 10 MB file in chunks while other tasks keep running",
     function()
    run(function()
      local parts = {}
      for i = 1, 10 * 1024 do
        parts[i] = string.char(i % 256):rep(1023) .. "\n"
      end
      local data = table.concat(parts)
      assert.equal(10 * 1024 * 1024, #data)
      assert.is_true(fs.write_file(dir .. "/big", data))
      local ticks, reading = 0, true
      local ticker = aio.spawn(function()
        while reading do
          ticks = ticks + 1
          aio.sleep(0)
        end
      end)
      local back = fs.read_file(dir .. "/big")
      reading = false
      ticker:await()
      assert.equal(#data, #back)
      assert.is_true(data == back)
      assert.is_true(ticks > 1) -- the loop turned during the read
      assert.equal(#data, fs.stat(dir .. "/big").size)
    end)
  end)

  it("reads /proc files whose size says 0", function()
    local f = io.open("/proc/self/status")
    if not f then return end
    f:close()
    run(function()
      local s = fs.read_file("/proc/self/status")
      assert.is_truthy(s:find("Name:"))
    end)
  end)

  it("returns nil, msg, code for missing paths and other failures",
     function()
    run(function()
      local missing = dir .. "/nope/file"
      local msg = assert_fail("ENOENT", fs.read_file(missing))
      assert.equal("ENOENT: no such file or directory: " .. missing, msg)
      assert_fail("ENOENT", fs.write_file(missing, "x"))
      assert_fail("ENOENT", fs.open(missing))
      assert_fail("ENOENT", fs.open(missing, "w"))
      assert_fail("ENOENT", fs.stat(missing))
      assert_fail("ENOENT", fs.scandir(missing))
      assert_fail("ENOENT", fs.mkdir(missing))
      assert_fail("ENOENT", fs.remove(missing))
      assert_fail("ENOENT", fs.rename(missing, dir .. "/x"))
      assert_fail("EISDIR", fs.read_file(dir))
      assert.is_true(fs.mkdir(dir .. "/sub"))
      assert_fail("EEXIST", fs.mkdir(dir .. "/sub"))
      fs.write_file(dir .. "/sub/f", "x")
      assert_fail("ENOTEMPTY", fs.remove(dir .. "/sub"))
      assert_fail("ENOTDIR", fs.scandir(dir .. "/sub/f"))
    end)
  end)

  it("raises on wrong arguments", function()
    run(function()
      assert.has_error(function() fs.read_file() end)
      assert.has_error(function() fs.write_file(dir .. "/x") end)
      assert.has_error(function() fs.open(dir .. "/x", "rw") end)
      assert.has_error(function() fs.open(dir .. "/x", "x") end)
      assert.has_error(function() fs.open(dir .. "/x", "r+q") end)
    end)
  end)

  it("stat gives size, mtime, type and mode", function()
    run(function()
      local before = os.time()
      fs.write_file(dir .. "/f", "12345")
      local st = fs.stat(dir .. "/f")
      assert.equal(5, st.size)
      assert.equal("file", st.type)
      assert.equal("integer", math.type(st.mode))
      assert.is_true(st.mode & 0x180 == 0x180) -- rw for the owner
      assert.is_true(st.mtime >= before - 2)
      assert.equal("directory", fs.stat(dir).type)
    end)
  end)

  it("scandir lists names and types, sorted", function()
    run(function()
      for _, n in ipairs {"b", "a", "c.txt", "Z"} do
        fs.write_file(dir .. "/" .. n, n)
      end
      fs.mkdir(dir .. "/m")
      os.execute("ln -s a '" .. dir .. "/l'")
      local list = fs.scandir(dir)
      local names, types = {}, {}
      for i, e in ipairs(list) do
        names[i] = e.name
        types[e.name] = e.type
      end
      assert.same({"Z", "a", "b", "c.txt", "l", "m"}, names)
      assert.equal("file", types.a)
      assert.equal("directory", types.m)
      assert.equal("link", types.l)
      assert.same({}, fs.scandir(dir .. "/m"))
    end)
  end)

  it("mkdir, rename and remove files and empty folders", function()
    run(function()
      assert.is_true(fs.mkdir(dir .. "/d"))
      assert.is_true(fs.write_file(dir .. "/d/f", "data"))
      assert.is_true(fs.rename(dir .. "/d/f", dir .. "/g"))
      assert_fail("ENOENT", fs.stat(dir .. "/d/f"))
      assert.equal("data", fs.read_file(dir .. "/g"))
      assert.is_true(fs.rename(dir .. "/d", dir .. "/e"))
      assert.is_true(fs.remove(dir .. "/e"))
      assert.is_true(fs.remove(dir .. "/g"))
      assert.same({}, fs.scandir(dir))
    end)
  end)

  it("runs many file operations concurrently", function()
    run(function()
      local jobs = {}
      for i = 1, 40 do
        jobs[i] = function()
          local p = dir .. "/f" .. i
          assert(fs.write_file(p, ("%d "):format(i):rep(i * 100)))
          return fs.read_file(p)
        end
      end
      local out = aio.gather(jobs)
      for i = 1, 40 do
        assert.equal(("%d "):format(i):rep(i * 100), out[i])
      end
      assert.equal(40, #fs.scandir(dir))
    end)
  end)
end)

describe("aio.fs files", function()
  local dir
  before_each(function() dir = tempdir() end)
  after_each(function() rmtree(dir) end)

  it("read(n), read() and nil at the end of file", function()
    run(function()
      local data = all_bytes()
      fs.write_file(dir .. "/f", data)
      local f = assert(fs.open(dir .. "/f", "rb"))
      assert.equal(data:sub(1, 10), f:read(10))
      assert.equal("", f:read(0))
      assert.equal(data:sub(11, 11), f:read(1))
      assert.equal(data:sub(12), f:read())
      assert.is_nil(f:read())
      assert.is_nil(f:read(5))
      assert.is_true(f:close())
    end)
  end)

  it("read(n) with n larger than a chunk, and larger than the file",
     function()
    run(function()
      local data = ("0123456789"):rep(100000)
      fs.write_file(dir .. "/f", data)
      local f <close> = assert(fs.open(dir .. "/f"))
      assert.equal(data:sub(1, 700000), f:read(700000))
      assert.equal(data:sub(700001), f:read(10000000))
      assert.is_nil(f:read(1))
    end)
  end)

  it("lines() iterates lines, keeps the last one without a newline",
     function()
    run(function()
      fs.write_file(dir .. "/f", "one\ntwo\n\nfour\0x\n" ..
                    ("long"):rep(100000) .. "\nlast")
      local f <close> = assert(fs.open(dir .. "/f"))
      local lines = {}
      for l in f:lines() do lines[#lines + 1] = l end
      assert.same({"one", "two", "", "four\0x", ("long"):rep(100000),
                   "last"}, lines)
    end)
  end)

  it("write and seek like Lua's files; modes w, a, r+, w+, a+", function()
    run(function()
      local p = dir .. "/f"
      local f = assert(fs.open(p, "w"))
      assert.equal(f, f:write("hello", " ", 42))
      assert.equal(8, f:seek())
      assert.equal(0, f:seek("set"))
      assert.equal(f, f:write("J"))
      assert.equal(8, f:seek("end"))
      assert.equal(6, f:seek("cur", -2))
      f:close()
      assert.equal("Jello 42", fs.read_file(p))
      assert_fail("EBADF", assert(fs.open(p, "w")):read(1))

      f = assert(fs.open(p, "a"))
      f:write("!")
      f:close()
      assert.equal("!", fs.read_file(p)) -- "w" above truncated it

      fs.write_file(p, "abcdef")
      f = assert(fs.open(p, "r+"))
      assert.equal("ab", f:read(2))
      f:write("XY") -- at the reader's position, not after the read-ahead
      assert.equal("ef", f:read())
      assert.equal(2, f:seek("set", 2))
      assert.equal("XYef", f:read())
      f:close()
      assert.equal("abXYef", fs.read_file(p))

      f = assert(fs.open(p, "w+"))
      assert.is_nil(f:read())
      f:write("new")
      f:seek("set")
      assert.equal("new", f:read())
      f:close()

      f = assert(fs.open(p, "a+"))
      assert.equal("new", f:read())
      f:write("er")
      f:seek("set")
      assert.equal("newer", f:read())
      f:close()
      assert_fail("EINVAL", (function()
        local g <close> = assert(fs.open(p))
        return g:seek("set", -5)
      end)())
    end)
  end)

  it("a closed file raises when used; close, __close and __gc", function()
    run(function()
      local p = dir .. "/f"
      fs.write_file(p, "x")
      local f = assert(fs.open(p))
      assert.is_true(f:close())
      assert.has_error(function() f:read() end, "attempt to use a closed file")
      assert.has_error(function() f:close() end)
      assert.has_error(function() f:write("x") end)
      assert.has_error(function() f:seek() end)
      assert.has_error(function() f:lines() end)
      assert.matches("closed", tostring(f))
      do
        local g <close> = assert(fs.open(p))
        assert.equal("x", g:read())
      end
      -- dropped without closing: the collector closes it
      for _ = 1, 50 do assert(fs.open(p)) end
      collectgarbage()
      collectgarbage()
    end)
  end)

  it("one operation at a time on a file", function()
    run(function()
      local p = dir .. "/f"
      fs.write_file(p, ("x"):rep(1000000))
      local f <close> = assert(fs.open(p))
      local t = aio.spawn(function() return f:read() end)
      aio.sleep(0) -- t is reading now
      assert.has_error(function() f:read(1) end,
                       "file is in use by another task")
      assert.equal(1000000, #t:await())
    end)
  end)

  it("several files read concurrently", function()
    run(function()
      local jobs = {}
      for i = 1, 10 do
        fs.write_file(dir .. "/f" .. i, ("line %d\n"):format(i):rep(i))
        jobs[i] = function()
          local f <close> = assert(fs.open(dir .. "/f" .. i))
          local n = 0
          for l in f:lines() do
            assert.equal(("line %d"):format(i), l)
            n = n + 1
          end
          return n
        end
      end
      local counts = aio.gather(jobs)
      for i = 1, 10 do assert.equal(i, counts[i]) end
    end)
  end)
end)

describe("aio.fs cancellation", function()
  local dir
  before_each(function() dir = tempdir() end)
  after_each(function() rmtree(dir) end)

  local function assert_cancelled(t)
    local ok, e = pcall(t.await, t)
    assert.is_false(ok)
    assert.is_true(aio.is_error(e, "CancelledError"))
  end

  it("cancelling read_file, write_file, stat and scandir is safe",
     function()
    run(function()
      local data = ("z"):rep(1024 * 1024)
      assert(fs.write_file(dir .. "/big", data))
      for round = 1, 20 do
        local tasks = {
          aio.spawn(fs.read_file, dir .. "/big"),
          aio.spawn(fs.write_file, dir .. "/w" .. round, data),
          aio.spawn(fs.stat, dir .. "/big"),
          aio.spawn(fs.scandir, dir),
          aio.spawn(fs.open, dir .. "/big"),
          aio.spawn(fs.mkdir, dir .. "/d" .. round),
        }
        -- Cancel at different points: before start, queued, running.
        for _ = 1, round % 4 do aio.sleep(0) end
        for _, t in ipairs(tasks) do t:cancel() end
        for _, t in ipairs(tasks) do
          local ok, e = pcall(t.await, t)
          assert.is_true(ok or aio.is_error(e, "CancelledError"))
        end
      end
      -- Everything still works, and the file is intact.
      assert.equal(#data, #fs.read_file(dir .. "/big"))
    end)
  end)

  it("a cancelled read keeps the file usable and loses no data",
     function()
    run(function()
      local parts = {}
      for i = 1, 200000 do parts[i] = ("%d\n"):format(i) end
      local data = table.concat(parts)
      fs.write_file(dir .. "/f", data)
      local f <close> = assert(fs.open(dir .. "/f"))
      assert.equal("1", f:lines()())
      local t = aio.spawn(function() return f:read() end)
      aio.sleep(0)
      t:cancel()
      assert_cancelled(t)
      -- The abandoned request may still run: the file is busy until then.
      while not pcall(f.seek, f) do aio.sleep(0.001) end
      assert.equal(2, f:seek("set", 2))
      assert.equal(data:sub(3), f:read())
    end)
  end)

  it("a task cancelled while waiting in a timeout gets TimeoutError",
     function()
    run(function()
      fs.write_file(dir .. "/big", ("q"):rep(8 * 1024 * 1024))
      local ok, e = pcall(function()
        local _ <close> = aio.timeout(0)
        return fs.read_file(dir .. "/big")
      end)
      assert.is_false(ok)
      assert.is_true(aio.is_error(e, "TimeoutError"))
    end)
  end)
end)

describe("scripts/read_files.lua", function()
  it("reads files concurrently and prints their names and sizes", function()
    local luaio = os.getenv("LUAIO")
    if not luaio then return end
    local p = assert(io.popen(luaio .. " scripts/read_files.lua 2>&1"))
    local out = p:read("a")
    local ok = p:close()
    assert.is_true(ok)
    assert.equal(table.concat({
      "alpha.txt    1000 bytes",
      "beta.txt    20000 bytes",
      "delta.txt       0 bytes",
      "gamma.bin     256 bytes",
      "4 files, 21256 bytes",
      "missing.txt:\tnil\tENOENT",
      "cleaned up: true",
      ""}, "\n"), out)
  end)
end)

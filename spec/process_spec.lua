-- Processes: aio.subprocess, aio.exec, aio.getpid.
local aio = require "luaio"
local S = require "support"
local run = S.run

local function sh(script, opts)
  return aio.exec("sh", {"-c", script}, opts)
end

-- Wait until no process has this pid (a killed child is reaped by the
-- loop shortly after).
local function gone(pid)
  for _ = 1, 1000 do
    if sh("kill -0 " .. pid .. " 2>/dev/null").status ~= 0 then
      return true
    end
    aio.sleep(0.01)
  end
  return false
end

describe("aio.subprocess", function()
  it("runs a program and reports its exit status", function()
    run(function()
      local p = assert(aio.subprocess("sh", {"-c", "exit 7"}))
      assert.is_true(p.pid > 0)
      local r = p:wait()
      assert.equal(7, r.status)
      assert.equal(0, r.signal)
      assert.same(r, p:wait()) -- again, at once
      assert.is_true(p:exited())
    end)
  end)

  it("reports the signal that ended it; kill takes names and numbers",
     function()
    run(function()
      local p = assert(aio.subprocess("sleep", {"30"}))
      assert.is_true(p:kill("SIGTERM"))
      assert.equal(15, p:wait().signal)
      local r, msg, code = p:kill()
      assert.is_nil(r)
      assert.equal("ESRCH", code)
      p = assert(aio.subprocess("sleep", {"30"}))
      assert.is_true(p:kill(9))
      assert.equal(9, p:wait().signal)
      p = assert(aio.subprocess("sleep", {"30"}))
      assert.is_true(p:kill("KILL"))
      assert.equal(9, p:wait().signal)
      assert.is_false(pcall(p.kill, p, "SIGNOPE"))
    end)
  end)

  it("pipes stdin, stdout and stderr", function()
    run(function()
      local p = assert(aio.subprocess("sh", {"-c", "cat; echo oops >&2"},
                                      {stdin = "pipe", stdout = "pipe",
                                       stderr = "pipe"}))
      for i = 1, 3 do p.stdin:write("line " .. i .. "\n") end
      p.stdin:close()
      local got = {}
      for line in p.stdout:lines() do got[#got + 1] = line end
      assert.same({"line 1", "line 2", "line 3"}, got)
      assert.equal("oops\n", p.stderr:read_all())
      assert.equal(0, p:wait().status)
      assert.is_false(pcall(p.stdin.read, p.stdin))
    end)
  end)

  it("streams a large output through a slow reader", function()
    run(function()
      local p = assert(aio.subprocess("sh", {"-c",
        "head -c 4000000 /dev/zero"}, {stdout = "pipe"}))
      local n, maxbuf = 0, 0
      while true do
        local d = p.stdout:read(4096)
        if not d then break end
        n = n + #d
        local _, buffered = p.stdout:queued()
        if buffered > maxbuf then maxbuf = buffered end
        if n % 65536 < 4096 then aio.sleep(0) end
      end
      assert.equal(4000000, n)
      assert.is_true(maxbuf <= 2 * 64 * 1024, tostring(maxbuf))
      assert.equal(0, p:wait().status)
    end)
  end)

  it("runs processes concurrently", function()
    run(function()
      -- Each child leaves a mark, then waits (at most 20 s) for all eight
      -- marks: run one after the other, the first would wait alone.
      local dir = os.tmpname()
      os.remove(dir)
      assert(aio.fs.mkdir(dir))
      local fns = {}
      for i = 1, 8 do
        fns[i] = function()
          return sh(string.format(
            "touch %s/%d; for k in $(seq 1 400); do " ..
            "[ $(ls %s | wc -l) -ge 8 ] && { echo together %d; exit 0; }; " ..
            "sleep 0.05; done; echo alone %d", dir, i, dir, i, i)).stdout
        end
      end
      local r = aio.gather(fns)
      for i = 1, 8 do assert.equal("together " .. i .. "\n", r[i]) end
      os.execute("rm -rf " .. dir)
    end)
  end)

  it("returns nil, msg, ENOENT for a missing program", function()
    run(function()
      local p, msg, code = aio.subprocess("luaio-no-such-program", {},
                                          {stdout = "pipe"})
      assert.is_nil(p)
      assert.equal("ENOENT", code)
      assert.equal("ENOENT: no such program: luaio-no-such-program", msg)
      local r
      r, msg, code = aio.exec("luaio-no-such-program")
      assert.is_nil(r)
      assert.equal("ENOENT", code)
      assert.equal("ENOENT: no such program: luaio-no-such-program", msg)
    end)
  end)

  it("rejects unknown option keys, naming them", function()
    run(function()
      local ok, err = pcall(aio.subprocess, "true", {}, {stdot = "pipe"})
      assert.is_false(ok)
      assert.matches("unknown option 'stdot'", err)
      ok, err = pcall(aio.exec, "true", {}, {inptu = "x"})
      assert.is_false(ok)
      assert.matches("unknown option 'inptu'", err)
      ok, err = pcall(aio.subprocess, "true", {}, {input = "x"})
      assert.is_false(ok)
      assert.matches("unknown option 'input'", err)
    end)
  end)

  it("sets cwd and env", function()
    run(function()
      local r = sh("pwd; echo $FOO-$BAR", {cwd = "/tmp",
                   env = {FOO = "foo", BAR = 42, PATH = os.getenv("PATH")}})
      local dir = r.stdout:match("^(.-)\n")
      assert.is_true(dir == "/tmp" or dir:match("/tmp$") ~= nil, dir)
      assert.matches("\nfoo%-42\n$", r.stdout)
      r = sh("echo ${HOME:-unset}", {env = {}})
      assert.equal("unset\n", r.stdout)
      local p, msg, code = aio.subprocess("true", {}, {cwd = "/nonexistent"})
      assert.is_nil(p)
      assert.equal("ENOENT", code)
      assert.equal("ENOENT: no such directory (cwd): /nonexistent", msg)
      p, msg = aio.subprocess("luaio-no-such-program", {}, {cwd = "/tmp"})
      assert.is_nil(p)
      assert.equal("ENOENT: no such program: luaio-no-such-program", msg)
    end)
  end)

  it("treats null and inherit stdio", function()
    run(function()
      local p = assert(aio.subprocess("sh", {"-c", "cat; echo done"},
                                      {stdin = "null", stdout = "pipe"}))
      assert.is_nil(p.stdin)
      assert.equal("done\n", p.stdout:read_all())
      p:wait()
      assert.is_false(pcall(aio.subprocess, "true", {}, {stdout = "file"}))
    end)
  end)

  it("has the pid of the child; aio.getpid is ours", function()
    run(function()
      local p = assert(aio.subprocess("sh", {"-c", "echo $$ $PPID"},
                                      {stdout = "pipe"}))
      local pid, ppid = p.stdout:read_line():match("(%d+) (%d+)")
      assert.equal(p.pid, tonumber(pid))
      assert.equal(aio.getpid(), tonumber(ppid))
      p:wait()
    end)
  end)

  it("a cancelled wait leaves the process running", function()
    run(function()
      local p = assert(aio.subprocess("sleep", {"30"}))
      local t = aio.spawn(p.wait, p)
      aio.sleep(0)
      t:cancel()
      assert.is_false(pcall(t.await, t))
      assert.is_false(p:exited())
      p:kill()
      assert.equal(15, p:wait().signal)
    end)
  end)
end)

describe("aio.exec", function()
  it("collects stdout and stderr and the status", function()
    run(function()
      local r = sh("echo out; echo err >&2; exit 3")
      assert.equal(3, r.status)
      assert.equal(0, r.signal)
      assert.equal("out\n", r.stdout)
      assert.equal("err\n", r.stderr)
    end)
  end)

  it("reads both outputs at once: no deadlock on large stderr", function()
    run(function()
      local r = sh("head -c 300000 /dev/zero >&2; head -c 200000 /dev/zero")
      assert.equal(0, r.status)
      assert.equal(200000, #r.stdout)
      assert.equal(300000, #r.stderr)
    end)
  end)

  it("feeds opts.input to stdin", function()
    run(function()
      local input = string.rep("0123456789", 100000)
      local r = aio.exec("wc", {"-c"}, {input = input})
      assert.equal(#input, tonumber(r.stdout))
    end)
  end)

  it("kills the child when the caller is cancelled", function()
    run(function()
      local pidfile = os.tmpname()
      local t = aio.spawn(sh, "echo $$ > " .. pidfile .. ".new; mv " ..
                          pidfile .. ".new " .. pidfile .. "; exec sleep 30")
      local pid
      repeat -- until the child has written its pid
        aio.sleep(0.01)
        local f = assert(io.open(pidfile))
        pid = f:read("n")
        f:close()
      until pid
      os.remove(pidfile)
      assert.is_false(t:done())
      t:cancel()
      assert.is_false(pcall(t.await, t))
      assert.is_true(t:cancelled())
      assert.is_true(gone(pid))
    end)
  end)
end)

describe("scripts/dont_block_the_loop.lua", function()
  it("shows a blocking call stalling the ticker, aio.exec not", function()
    local p = assert(io.popen(("%q scripts/dont_block_the_loop.lua 2>&1")
      :format(os.getenv("LUAIO") or "luaio")))
    local out = p:read("a")
    assert.is_true(p:close(), out)
    assert.matches('os.execute%("sleep 0.2"%): +the ticker stalled %(0 ticks%)',
                   out)
    assert.matches('aio.exec%("sleep", {"0.2"}%): +the ticker kept ticking',
                   out)
    assert.matches("aio.sleep%(0.2%): +the ticker kept ticking", out)
    assert.matches("while waiting in aio.exec: true", out)
    assert.matches("while waiting in aio.sleep: true", out)
  end)
end)

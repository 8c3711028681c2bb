-- How a run ends: signals, the tasks left over, exit.  Each case runs a
-- script in a child process, under the luaio command and under a stock
-- lua5.4 that loads the module, and waits only for text the script itself
-- prints before it signals it.  Issue 11 items 17-18, issue 12 items 1-3.
local aio = require "luaio"
local S = require "support"
local LUAIO = assert(os.getenv("LUAIO"), "the test runner sets LUAIO")

local interpreters = {
  {"the luaio command", LUAIO},
  {"a stock lua5.4", "lua5.4", {LUA_CPATH = package.cpath}},
}

-- A sanitizer build's module cannot load into a stock lua5.4.
local function loads_module(interp)
  if interp[2] == LUAIO then return true end
  local p = io.popen("LUA_CPATH='" .. package.cpath .. "' lua5.4 -e "
                     .. "'require \"luaio\"' 2>&1")
  local out = p:read("a")
  p:close()
  return not out:find("ASan runtime", 1, true)
end

local function tmpfile(text)
  local name = os.tmpname()
  local f = assert(io.open(name, "w"))
  f:write(text)
  f:close()
  return name
end

-- Start `cmd args...` with stdout piped; a reader of its lines.
local function start(interp, args)
  local env = {PATH = os.getenv("PATH")}
  for k, v in pairs(interp[3] or {}) do env[k] = v end
  local p = assert(aio.subprocess(interp[2], args,
                                  {stdout = "pipe", stderr = "pipe",
                                   env = env}))
  return p
end

-- Read lines from the child until one matches `pattern`; every line read.
local function expect(p, pattern, seen)
  seen = seen or {}
  while true do
    local line = p.stdout:read_line()
    if line == nil then
      error("no line matching '" .. pattern .. "' in: "
            .. table.concat(seen, "\n") .. "\n" .. (p.stderr:read() or ""))
    end
    seen[#seen + 1] = line
    if line:match(pattern) then return line, seen end
  end
end

-- Whether the child has taken signal `signo` (it is no longer pending);
-- nil when /proc cannot tell.
local function delivered(pid, signo)
  local f = io.open("/proc/" .. math.tointeger(pid) .. "/status")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  local shd = text:match("ShdPnd:%s*(%x+)")
  local own = text:match("SigPnd:%s*(%x+)")
  if not shd or not own then return nil end
  local bit = 1 << (signo - 1)
  return (tonumber(shd, 16) | tonumber(own, 16)) & bit == 0
end


for _, interp in ipairs(interpreters) do
  if not loads_module(interp) then
    describe("under " .. interp[1], function()
      pending("a sanitizer build's module cannot load into lua5.4")
    end)
    goto next
  end
  describe("under " .. interp[1], function()
    it("graceful_server.lua finishes the request in flight on SIGTERM "
       .. "and exits 0 (issue 12, items 1-2)", function()
      S.run(function()
        local p = start(interp, {"scripts/graceful_server.lua"})
        local line = expect(p, "^listening %d+$")
        local port = tonumber(line:match("%d+"))
        local c = assert(aio.open_connection("127.0.0.1", port))
        c:write("job-1\n")
        expect(p, "^handling job%-1$") -- the request is in flight
        p:kill("TERM")
        assert.equal("done: job-1", c:read_line())
        local _, seen = expect(p, "^drained$")
        assert.equal("shutting down on SIGTERM", seen[#seen - 1])
        assert.same({status = 0, signal = 0}, p:wait())
      end)
    end)

    it("a cancelled awaiter waits for the awaited task's cleanup "
       .. "(issue 12, item 1)", function()
      S.run(function()
        local script = tmpfile([[
          local aio = require "luaio"
          aio.run(function()
            local worker = aio.spawn(function()
              local ok, err = pcall(aio.sleep, 30)
              aio.shield(function() aio.sleep(0.05) end)
              print("worker cleaned up")
              error(err, 0)
            end)
            aio.sleep(0)
            print("ready")
            io.stdout:flush()
            worker:await()
          end)
        ]])
        local p = start(interp, {script})
        expect(p, "^ready$")
        p:kill("INT")
        expect(p, "^worker cleaned up$")
        local st = p:wait()
        os.remove(script)
        -- the command: 130; lua5.4: the CancelledError escapes aio.run
        assert.is_true(st.status == 130 or st.status == 1)
      end)
    end)

    for _, where in ipairs {"the main task", "another task"} do
      it("stops a loop that never waits, in " .. where .. ", on SIGINT "
         .. "(issue 12, item 3)", function()
        if interp[2] ~= LUAIO then return end -- lua.c's own answer, there
        S.run(function()
          -- "spinning" is printed by the task that then loops: whenever
          -- the signal comes after it, that task is the one running.
          local spin = [[
            print("spinning")
            io.stdout:flush()
            while true do end
          ]]
          local script = tmpfile(where == "the main task" and spin or
                                 "aio.spawn(function() " .. spin .. " end)\n"
                                 .. "aio.sleep(30)\n")
          local p = start(interp, {script})
          expect(p, "^spinning$")
          p:kill("INT")
          local st = p:wait()
          os.remove(script)
          assert.same({status = 130, signal = 0}, st)
        end)
      end)
    end

    it("cancels tasks spawned while the leftovers cancel (issue 11, "
       .. "item 17)", function()
      S.run(function()
        local script = tmpfile([[
          local aio = require "luaio"
          aio.run(function()
            aio.spawn(function()
              local ok = pcall(aio.sleep, 30)
              -- spawned during the end of the run: cancelled too
              aio.spawn(function()
                local again = pcall(aio.sleep, 30)
                print("late task cancelled", not again)
              end)
              aio.shield(function() aio.sleep(0.01) end)
            end)
            aio.sleep(0)
            print("main ends")
          end)
          print("exited")
        ]])
        local p = start(interp, {script})
        expect(p, "^main ends$")
        expect(p, "^late task cancelled\ttrue$")
        expect(p, "^exited$")
        assert.same({status = 0, signal = 0}, p:wait())
        os.remove(script)
      end)
    end)

    it("two signals while the run ends exit, whatever the tasks left do "
       .. "(issue 11, item 17)", function()
      if interp[2] ~= LUAIO then return end
      S.run(function()
        local script = tmpfile([[
          aio.spawn(function()
            pcall(aio.sleep, 30) -- cancelled when the main task has ended
            aio.shield(function()
              print("cleaning up")
              io.stdout:flush()
              aio.sleep(30) -- longer than anyone waits
            end)
          end)
          aio.sleep(0)
        ]])
        local p = start(interp, {script})
        expect(p, "^cleaning up$")
        p:kill("TERM")
        -- Two pending TERMs are one: send the second once the first has
        -- reached the child's handler (no longer pending for the process).
        while delivered(p.pid, 15) == false do aio.sleep(0.001) end
        p:kill("TERM")
        local st = p:wait()
        os.remove(script)
        assert.same({status = 143, signal = 0}, st)
      end)
    end)
  end)
  ::next::
end

describe("the luaio command at exit", function()
  it("does not wait for a FIFO read whose writer the script holds "
     .. "(issue 11, item 18)", function()
    S.run(function()
      local dir = os.tmpname()
      os.remove(dir)
      assert(aio.fs.mkdir(dir))
      local fifo = dir .. "/fifo"
      assert(aio.exec("mkfifo", {fifo}).status == 0)
      local script = tmpfile(([[
        local held = io.open(%q, "r+") -- the writer end, held open
        local f = assert(aio.fs.open(%q, "r"))
        aio.spawn(function() f:read(10) end)
        aio.sleep(0.01)
        print("main ends")
      ]]):format(fifo, fifo))
      local p = start(interpreters[1], {script})
      expect(p, "^main ends$")
      local st = p:wait() -- before the fix: forever (ctest's timeout)
      os.remove(script)
      os.remove(fifo)
      os.remove(dir)
      assert.same({status = 0, signal = 0}, st)
    end)
  end)
end)

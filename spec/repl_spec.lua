-- The REPL of the luaio command, driven in a real terminal: tmux runs
-- `luaio`, send-keys types, capture-pane reads the screen.  Every wait
-- polls the screen until the text is there, with a generous timeout.
-- The screen also shows what was typed: a wait is for text only the
-- program prints (built by concatenation, or on a line of its own), never
-- for text the typed line already contains.
local LUAIO = assert(os.getenv("LUAIO"), "LUAIO: the luaio binary")

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  p:close()
  return out
end

local function tempdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p " .. q(d)))
  return d
end

local TIMEOUT = 20 -- seconds; the machine is shared

local Term = {}
Term.__index = Term

-- A terminal running `luaio args`; when luaio exits, "[exited N]" shows.
local function term(opts)
  opts = opts or {}
  local self = setmetatable({dir = tempdir()}, Term)
  self.home = opts.home or self.dir
  self.sock = self.dir .. "/tmux.sock"
  local cmd = LUAIO .. " " .. (opts.args or "") ..
    '; echo "[exited $?]"; sleep 600'
  self:tmux("new-session -d -x 100 -y 40 -s repl " ..
    q("env HOME=" .. q(self.home) .. " sh -c " .. q(cmd)))
  return self
end

function Term:tmux(args)
  return sh("tmux -S " .. q(self.sock) .. " -f /dev/null " .. args)
end

function Term:type(text) self:tmux("send-keys -t repl -l " .. q(text)) end
function Term:key(k) self:tmux("send-keys -t repl " .. k) end
function Term:line(text) self:type(text) self:key("Enter") end
function Term:screen() return self:tmux("capture-pane -p -t repl") end

-- Wait until the screen shows the (plain) text `n` times or more.
function Term:wait_for(text, n)
  local deadline = os.time() + TIMEOUT
  n = n or 1
  while true do
    local s, count = self:screen(), 0
    for _ in s:gmatch(text:gsub("%p", "%%%0")) do count = count + 1 end
    if count >= n then return s end
    if os.time() > deadline then
      error(("timed out waiting for %q; the screen:\n%s"):format(text, s), 2)
    end
    os.execute("sleep 0.05")
  end
end

-- Wait until pred(screen) holds.
function Term:wait_until(what, pred)
  local deadline = os.time() + TIMEOUT
  while true do
    local s = self:screen()
    if pred(s) then return s end
    if os.time() > deadline then
      error(("timed out waiting for %s; the screen:\n%s"):format(what, s), 2)
    end
    os.execute("sleep 0.05")
  end
end

-- The lines of the screen that are not empty.
function Term:lines()
  local t = {}
  for l in self:screen():gmatch("[^\n]+") do
    if l:find("%S") then t[#t + 1] = l end
  end
  return t
end

function Term:close()
  self:tmux("kill-server")
  os.execute("rm -rf " .. q(self.dir))
end

describe("the REPL on a terminal", function()
  local t
  before_each(function()
    t = term()
    t:wait_for(">") -- capture-pane drops trailing spaces
  end)
  after_each(function() t:close() end)

  it("prints the value of an expression", function()
    t:line("1 + 1")
    t:wait_for("\n2\n")
    t:line("x = 6 * 7")
    t:line("x")
    t:wait_for("\n42\n")
  end)

  it("prints every result of a multi-value expression", function()
    t:line('1, "two", nil, true')
    t:wait_for(">", 2) -- the next prompt: the results are above it
    assert.matches("\n1%s+two%s+nil%s+true\n", t:screen())
  end)

  it("pretty-prints tables, keys sorted, cycles marked", function()
    t:line('{3, 2, 1, b = {c = true}, a = "x", [10] = 0}')
    t:wait_for('{3, 2, 1, [10] = 0, a = "x", b = {c = true}}')
    t:line("c = {name = 'loop'} c.self = c")
    t:line("c")
    t:wait_for('{name = "loop", self = <cycle>}')
  end)

  it("prints luaio objects through their __tostring", function()
    t:line('aio.spawn(function() aio.sleep(0.01) end, "x")')
    t:wait_for('<task ')
  end)

  it("runs a line that waits", function()
    t:line('aio.sleep(0.2) print("woke " .. "up")')
    t:wait_for("woke up")
    t:line('"after"')
    t:wait_for("\nafter\n")
  end)

  it("lets spawned tasks print between prompts without garbling the line",
    function()
    t:line('aio.spawn(function() for i = 1, 4 do aio.sleep(0.15) ' ..
      'print("tick " .. i) end end)')
    t:wait_for("<task") -- the prompt is back: what is typed now is edited
    t:type('half = "typed')
    t:wait_for("tick 4")
    t:wait_until("the line redrawn below the ticks", function(s)
      return s:find('tick 4\n> half = "typed\n*$')
    end)
    local lines = t:lines()
    assert.equals('> half = "typed', lines[#lines])
    for _, l in ipairs(lines) do
      assert.is_falsy(l:find("tick") and l:find("half"), l)
    end
    t:type('"')
    t:key("Enter")
    t:line("half")
    t:wait_for("\ntyped\n")
  end)

  it("continues an incomplete chunk with >>", function()
    t:line("function double(n)")
    t:wait_for(">>")
    t:line("  return 2 * n")
    t:line("end")
    t:line("double(21)")
    t:wait_for("\n42\n")
  end)

  it("cancels the running line on Ctrl-C and runs its cleanup", function()
    t:line('print("start" .. "ed") local ok, e = pcall(aio.sleep, 30) ' ..
      'print("cleanup " .. "ran", e) aio.sleep(30)')
    t:wait_for("started")
    t:key("C-c")
    t:wait_for("cleanup ran")
    t:wait_for("CancelledError: interrupted", 2)
    t:line("40 + 2")
    t:wait_for("\n42\n")
  end)

  it("clears the line on Ctrl-C at the prompt", function()
    t:type("this is abandoned")
    t:wait_for("abandoned")
    t:key("C-c")
    t:wait_for("^C")
    t:line("3 * 3")
    t:wait_for("\n9\n>") -- the result and the prompt after it
    local lines = t:lines()
    assert.equals("> 3 * 3", lines[#lines - 2])
  end)

  it("interrupts a line that never waits, once, on Ctrl-C", function()
    t:line('print("spin" .. "ning") while true do end')
    t:wait_for("spinning")
    t:key("C-c")
    t:wait_for("CancelledError: interrupted")
    t:line('aio.spawn(function() print("bg " .. "spins") ' ..
      'while true do end end)')
    t:wait_for("bg spins")
    t:key("C-c") -- the task spinning at the prompt is the one cancelled
    t:wait_for("cancelled>")
    t:line("6 * 7")
    t:wait_for("\n42\n>")
    -- one ^C each: the loop did not act on a signal the hook handled
    local _, n = t:screen():gsub("%^C", "")
    assert.equals(2, n)
  end)

  it("abandons a Ctrl-R search on Ctrl-C (issue 12, item 10)", function()
    t:line('print("first" .. " line")')
    t:wait_for("first line")
    t:key("C-r")
    t:type("pri")
    t:wait_for("bck:") -- libedit's search prompt
    t:key("C-c")
    t:wait_for("^C")
    t:line("3 * 3")
    t:wait_for("\n9\n>") -- the typed keys went to a fresh prompt
  end)

  it("hands the terminal to aio.stdin only while it reads (issue 12, " ..
     "item 10)", function()
    t:line('print("rea" .. "ding") x = aio.stdin:read_line() ' ..
      'print("go" .. "t")')
    t:wait_for("reading")
    t:line("hello there")
    t:wait_for("got")
    t:wait_until("the prompt", function()
      local lines = t:lines()
      return lines[#lines] == ">"
    end)
    t:line('print(("k"):rep(3), x)') -- the REPL reads this, not aio.stdin
    t:wait_for("kkk")
    t:wait_for("hello there", 2) -- typed, then printed beside kkk
  end)

  it("completes globals, fields and methods with TAB", function()
    t:type("aio.sl")
    t:key("Tab")
    t:wait_for("> aio.sleep")
    t:key("C-u")
    t:line("task = aio.spawn(function() end)")
    t:type("task:aw")
    t:key("Tab")
    t:wait_for("> task:await(") -- a method opens its arguments
    t:key("C-u")
    t:type("coll")
    t:key("Tab")
    t:wait_for("> collectgarbage")
  end)

  it("prints an error with its traceback and goes on", function()
    t:line('error("boom")')
    t:wait_for("stdin:1: boom")
    t:wait_for("stack traceback")
    t:line("2 + 3")
    t:wait_for("\n5\n")
  end)

  it("shows _PROMPT and _PROMPT2 when they are set (issue 12, item 7)",
    function()
    t:line('_PROMPT = "my" .. "prompt> "')
    t:wait_for("\nmyprompt>")
    t:line('_PROMPT2 = "more" .. "... "')
    t:line("function f()")
    t:wait_for("\nmore...")
    t:line("end")
    t:line("_PROMPT = nil")
    t:line('"back to" .. " the default"')
    t:wait_for("back to the default\n>")
  end)

  it("cancels the tasks still running at Ctrl-D, saying how many", function()
    t:line('for i = 1, 2 do aio.spawn(function() ' ..
      'local ok = pcall(aio.sleep, 30) print("bye " .. i) end) end')
    t:line('"spawned"')
    t:wait_for("\nspawned\n")
    t:key("C-d")
    t:wait_for("cancelling 2 tasks")
    t:wait_for("bye 2")
    t:wait_for("[exited 0]")
  end)
end)

describe("the REPL's history", function()
  it("is kept in $HOME/.luaio_history across sessions", function()
    local home = tempdir()
    local t = term({home = home})
    t:wait_for(">")
    t:line("remembered = 123")
    t:wait_for(">", 2)
    t:key("C-d")
    t:wait_for("[exited 0]")
    t:close()
    local f = assert(io.open(home .. "/.luaio_history"))
    assert.truthy(f:read("a"):find("remembered"))
    f:close()
    t = term({home = home})
    t:wait_for(">")
    t:key("Up")
    t:wait_for("> remembered = 123")
    t:close()
    os.execute("rm -rf " .. q(home))
  end)
end)

describe("luaio -i after a script", function()
  it("runs the script, whose tasks go on at the prompt", function()
    local dir = tempdir()
    local f = assert(io.open(dir .. "/s.lua", "w"))
    f:write('from_script = "yes"\n',
      'aio.spawn(function() aio.sleep(0.3) print("script task") end)\n')
    f:close()
    local t = term({args = "-i " .. q(dir .. "/s.lua")})
    t:wait_for(">")
    t:line("from_script")
    t:wait_for("\nyes\n")
    t:wait_for("script task")
    t:close()
    os.execute("rm -rf " .. q(dir))
  end)
end)

describe("the REPL on a pipe", function()
  local function pipe(input, args)
    local dir = tempdir()
    local f = assert(io.open(dir .. "/in", "w"))
    f:write(input)
    f:close()
    local cmd = "cat " .. q(dir .. "/in") .. " | " .. LUAIO .. " " ..
      (args or "-i")
    local out = sh(cmd)
    os.execute("rm -rf " .. q(dir))
    return out
  end

  it("runs statements as they arrive, without prompts", function()
    assert.equals("1\n", pipe("x = 1\nprint(x)\n"))
  end)

  it("prints expressions and runs multi-line chunks", function()
    assert.equals("3\n8\n", pipe("1 + 2\nfunction f(n)\n  return n * 2\n" ..
      "end\nf(4)\n"))
  end)

  it("lets a line wait and keeps spawned tasks running", function()
    local out = pipe('t = aio.spawn(function() aio.sleep(0.05) ' ..
      'return "late" end)\naio.sleep(0.01) print("first")\nt:await()\n')
    assert.equals("first\nlate\n", out)
  end)

  it("reports an error and goes on", function()
    local out = pipe('error("bad")\nprint("next")\n')
    assert.matches("stdin:1: bad", out)
    assert.matches("next\n$", out)
  end)

  it("cancels what is left at the end of input", function()
    local out = pipe('aio.spawn(function() pcall(aio.sleep, 30) ' ..
      'print("cleaned") end)\n')
    assert.matches("cancelling 1 task", out)
    assert.matches("cleaned", out)
  end)

  it("prints results with the global print, as lua.c (issue 12, item 7)",
    function()
    assert.equals("mine 2 x\n", pipe("print = function(...) " ..
      "io.write('mine ', select('#', ...), ' ', (...), '\\n') end\n" ..
      "'x', 2\n"))
    local out = pipe("print = nil\n1\n'still here'\n")
    assert.matches("error calling 'print'", out)
  end)

  it("takes =expr on a first line (issue 12, item 7)", function()
    assert.equals("2\n", pipe("=1 + 1\n"))
  end)

  it("starts an error message with the program's name (issue 12, item 7)",
    function()
    local out = pipe('error("bad")\nx = = 1\n')
    assert.truthy(out:find(LUAIO .. ": stdin:1: bad", 1, true), out)
    assert.truthy(out:find(LUAIO .. ": stdin:1: unexpected symbol", 1, true),
      out)
  end)

  it("runs stdin as a script without -i", function()
    assert.equals("2\n", pipe("print(1 + 1)\n", ""))
  end)
end)

-- luaio.patterns.shutdown: a graceful shutdown on a signal.  The first
-- signal (or sd:trigger()) runs the hooks registered with on_shutdown
-- (servers stop accepting), lets the tracked work finish for up to
-- `grace` seconds, then cancels what is left; a second one cancels at
-- once.  The outcome is a reason and an exit status:
--   "done"      0    the work ended and no shutdown was asked for
--   "graceful"  0    asked for, and the work ended within the grace
--   "timeout"   124  the grace ran out; the rest was cancelled
--   "forced"    128 + the signal's number (1 for sd:trigger()): a second
--                    signal cancelled the rest at once
--
-- Each signal is watched by a task waiting in aio.signal(name):wait(), so
-- a script that waits for its shutdown keeps the loop alive; the shutdown
-- itself runs in a task of its own, started by the first signal.  close()
-- ends them all.
local aio = require "luaio"
local check = require "luaio.patterns.check"

local M = {}
local Shutdown = {}
local mt = {__index = Shutdown, __name = "luaio.Shutdown"}

local FN = "luaio.patterns.shutdown"
local KNOWN = {signals = true, grace = true, on_error = true}

-- Signal numbers on Linux (the generic ones, as on x86 and arm), for the
-- exit status 128 + n.
local SIGNO = {SIGHUP = 1, SIGINT = 2, SIGQUIT = 3, SIGTRAP = 5,
               SIGABRT = 6, SIGUSR1 = 10, SIGUSR2 = 12, SIGPIPE = 13,
               SIGALRM = 14, SIGTERM = 15, SIGCHLD = 17, SIGCONT = 18,
               SIGTSTP = 20, SIGTTIN = 21, SIGTTOU = 22, SIGURG = 23,
               SIGXCPU = 24, SIGXFSZ = 25, SIGVTALRM = 26, SIGPROF = 27,
               SIGWINCH = 28, SIGSYS = 31}

local function invalid(msg) return aio.error("InvalidStateError", msg) end

local function report(self, err)
  if self.on_error then
    pcall(self.on_error, err)
  else
    io.stderr:write(("luaio.patterns.shutdown: hook failed: %s\n")
                    :format(tostring(err)))
  end
end

-- The work's count went down, or the shutdown was forced: look again.
local function poke(self) self.changed:set() end

local function untrack(self, t)
  if self.work[t] then
    self.work[t] = nil
    self.count = self.count - 1
    poke(self)
  end
end

local function wait_work(self)
  while self.count > 0 and not self.forced do
    self.changed:clear()
    self.changed:wait()
  end
end

local function cancel_work(self)
  for t in pairs(self.work) do t:cancel("shutting down") end
end

local function wait_all(self)
  while self.count > 0 do
    self.changed:clear()
    self.changed:wait()
  end
end

local function finish(self, reason)
  local status = 0
  if reason == "timeout" then
    status = 124
  elseif reason == "forced" then
    status = SIGNO[self.forced] and 128 + SIGNO[self.forced] or 1
  end
  self._reason, self._status = reason, status
  self.done:set()
end

-- The shutdown's own task: hooks, then the grace, then cancellation.  It
-- always ends by setting the outcome, even when it is cancelled itself
-- (by close, or because the run ends).
local function carry_out(self, name)
  local ok, err = pcall(function()
    local scope <close> = aio.timeout(self.grace)
    self.scope = scope
    for _, hook in ipairs(self.hooks) do
      local hok, herr = pcall(hook, name)
      if not hok then
        if aio.is_error(herr, "CancelledError") then error(herr, 0) end
        report(self, herr)
      end
    end
    wait_work(self)
  end)
  self.scope = nil
  local reason = "graceful"
  if self.forced then
    reason = "forced"
  elseif not ok then
    reason = aio.is_error(err, "TimeoutError") and "timeout" or "forced"
  end
  if self.count > 0 then
    cancel_work(self)
    pcall(wait_all, self)
  end
  finish(self, reason)
end

local function checkself(self, fname)
  check.self(fname, self, mt, 1)
  if self.closed then error(invalid("shutdown handler is closed"), 3) end
end

-- sd:trigger([name]): what a signal does: the first call starts the
-- shutdown, the second forces it; name (a signal name, "trigger" by
-- default) is passed to the hooks and decides the forced status
function Shutdown:trigger(name)
  checkself(self, "shutdown:trigger")
  name = name or "trigger"
  if self._status ~= nil then return end
  if self.controller == nil then
    self.controller = aio.spawn(carry_out, self, name)
  elseif not self.forced then
    self.forced = name
    poke(self)
    if self.scope then pcall(self.scope.reschedule, self.scope, 0) end
  end
end

-- sd:on_shutdown(fn): fn(name) runs when the shutdown starts, after the
-- hooks registered before it
function Shutdown:on_shutdown(fn)
  checkself(self, "shutdown:on_shutdown")
  check.func("shutdown:on_shutdown", 2, fn)
  if self.controller then error(invalid("shutdown already started"), 2) end
  self.hooks[#self.hooks + 1] = fn
end

-- sd:track(task) -> task: the task is work the shutdown waits for
function Shutdown:track(t)
  checkself(self, "shutdown:track")
  if type(t) ~= "userdata" or not pcall(t.done, t) then
    check.argerror("shutdown:track", 2, "task expected")
  end
  if self._status ~= nil then error(invalid("shutdown is over"), 2) end
  if self.work[t] or t:done() then return t end
  self.work[t] = true
  self.count = self.count + 1
  t:add_done_callback(function() untrack(self, t) end)
  return t
end

-- sd:spawn(fn, ...) -> task: spawns fn(...) as tracked work
function Shutdown:spawn(fn, ...)
  checkself(self, "shutdown:spawn")
  check.func("shutdown:spawn", 2, fn)
  if self._status ~= nil then error(invalid("shutdown is over"), 2) end
  return self:track(aio.spawn(fn, ...))
end

-- sd:wait() -> status, reason: waits until a shutdown has been carried out
function Shutdown:wait()
  checkself(self, "shutdown:wait")
  local current = aio.current_task()
  if current and self.work[current] then
    error(invalid("shutdown:wait() in tracked work would wait for itself"), 2)
  end
  self.done:wait()
  return self._status, self._reason
end

-- sd:run(fn, ...) -> status, reason: runs fn(...) as tracked work and
-- waits until no work is left (and a shutdown under way is over).  An
-- error of fn (other than the shutdown's cancellation) is raised then.
-- If the caller is cancelled, the work is cancelled and waited for.
function Shutdown:run(fn, ...)
  checkself(self, "shutdown:run")
  local main = self:spawn(fn, ...)
  local ok, err = pcall(function()
    wait_all(self)
    if self.controller then self.done:wait() end
  end)
  if not ok then
    cancel_work(self)
    aio.shield(wait_all, self)
    error(err, 0)
  end
  local merr = main:error()
  if merr ~= nil and not main:cancelled() then error(merr, 0) end
  return self._status or 0, self._reason or "done"
end

-- sd:stopping() -> whether a shutdown has started
function Shutdown:stopping()
  checkself(self, "shutdown:stopping")
  return self.controller ~= nil
end

-- sd:status() -> status, reason once the shutdown is over, else nil
function Shutdown:status()
  checkself(self, "shutdown:status")
  return self._status, self._reason
end

-- sd:close(): stops watching the signals, cancels the work left and the
-- shutdown under way, and waits for them.  Closing again is harmless.
function Shutdown:close()
  check.self("shutdown:close", self, mt)
  if self.closed then return end
  self.closed = true
  for _, w in ipairs(self.watchers) do
    w.task:cancel()
    w.sig:close()
  end
  local current = aio.current_task()
  if current then untrack(self, current) end -- it cannot wait for itself
  cancel_work(self)
  local c = self.controller
  if c and not c:done() and c ~= current then c:cancel() end
  aio.shield(function()
    wait_all(self)
    if c and c ~= current then pcall(c.await, c) end
  end)
end

mt.__close = Shutdown.close

function mt.__tostring(self)
  local state = self.closed and "closed" or self._reason or
                self.controller and "stopping" or "armed"
  return ("<shutdown %s, %d tasks>"):format(state, self.count)
end

-- shutdown{signals = {"SIGINT", "SIGTERM"}, grace = 10, on_error = fn}
function M.shutdown(opts)
  opts = check.options(FN, 1, opts, KNOWN)
  if aio.current_task() == nil then error("no running event loop", 2) end
  local signals = opts.signals or {"SIGINT", "SIGTERM"}
  if type(signals) ~= "table" then
    check.argerror(FN, 1, "option 'signals' must be an array of names")
  end
  local self = setmetatable({
    grace = check.number(FN, 1, opts, "grace", 10, 0),
    on_error = check.callback(FN, 1, opts, "on_error"),
    hooks = {}, work = {}, count = 0, watchers = {},
    changed = aio.event(), done = aio.event(),
  }, mt)
  if self.grace == math.huge then self.grace = nil end
  local watchers = self.watchers
  for i, name in ipairs(signals) do
    local ok, sig = pcall(aio.signal, name)
    if not ok then
      for _, w in ipairs(watchers) do w.task:cancel(); w.sig:close() end
      check.argerror(FN, 1, ("option 'signals' [%d]: %s"):format(i, sig))
    end
    local full = name:sub(1, 3) == "SIG" and name or "SIG" .. name
    watchers[i] = {sig = sig, task = aio.spawn(function()
      while true do
        local wok = pcall(sig.wait, sig)
        if not wok or self.closed then return end
        self:trigger(full)
      end
    end)}
  end
  return self
end

return M

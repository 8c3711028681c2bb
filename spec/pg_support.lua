-- What the PostgreSQL specs share: the fixture's server (spec/pg.cmake,
-- spec/pg_server.sh), its DSNs, and a skip when there is no server.
local M = {}

M.dir = os.getenv("LUAIO_PG_DIR")

local function read(name)
  local f = M.dir and io.open(M.dir .. "/" .. name)
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- Why the specs cannot run, or nil.
function M.skip_reason()
  if M.dir == nil then return "LUAIO_PG_DIR is not set (run through ctest)" end
  return read("skip")
end

function M.port() return tonumber(read("port")) end

-- A DSN over TCP (a host name, resolved by aio.getaddrinfo).
function M.dsn(extra)
  return ("host=localhost port=%d user=postgres dbname=postgres%s")
         :format(M.port(), extra and (" " .. extra) or "")
end

-- A DSN over the Unix socket in the fixture's directory.
function M.unix_dsn()
  return ("postgresql://postgres@/postgres?host=%s&port=%d")
         :format(M.dir, M.port())
end

-- spec/pg_server.sh cmd: kill (the server dies) or restart.
function M.server(cmd)
  local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "spec"
  local ok = os.execute(("%s/pg_server.sh %s %s >/dev/null 2>&1")
                        :format(here, cmd, M.dir))
  assert(ok, "pg_server.sh " .. cmd .. " failed")
end

-- local describe = P.skippable(describe, pending): a describe that reports
-- its specs pending when there is no server.
function M.skippable(describe, pending)
  return function(name, body)
    local why = M.skip_reason()
    if why then
      return describe(name, function()
        pending("skipped: " .. why:gsub("%s+$", ""))
      end)
    end
    return describe(name, body)
  end
end

return M

-- Multi-core servers: workers listening on one port with reuse_port, the
-- kernel spreading the connections among them.
local aio = require "luaio"
local S = require "support"
local run = S.run

local function serve(port, ready)
  local aio = require "luaio"
  local served = 0
  local server = assert(aio.start_server(function(s)
    s:read_line()
    served = served + 1
    s:write(aio.worker_id() .. "\n")
    s:close()
  end, "127.0.0.1", port, {reuse_port = true}))
  ready:send(aio.worker_id())
  assert(aio.parent:recv() == "stop")
  server:close()
  return served
end

describe("reuse_port", function()
  it("lets 2 workers serve one port, each a fair share", function()
    run(function()
      -- The port: learnt from a listener of our own, kept open until the
      -- workers listen on it too, and closed before any client connects.
      local first = assert(aio.start_server(function(s) s:close() end,
                                            "127.0.0.1", 0,
                                            {reuse_port = true}))
      local port, ready = first.port, aio.channel()
      local g = aio.workers(2, serve, port, ready)
      local ids = {ready:recv(), ready:recv()}
      first:close()
      local per = {}
      local total = 400
      local jobs = {}
      for c = 1, 8 do
        jobs[c] = function()
          for _ = 1, total // 8 do
            local s = assert(aio.open_connection("127.0.0.1", port))
            s:write("hi\n")
            local id = tonumber(s:read_line())
            per[id] = (per[id] or 0) + 1
            s:close()
          end
        end
      end
      aio.gather(jobs)
      g:broadcast("stop")
      local results = g:join()
      local served = results[1][1] + results[2][1]
      assert.equal(total, served)
      for _, id in ipairs(ids) do
        assert.is_true((per[id] or 0) >= total // 4,
                       ("worker %d served %d of %d"):format(id, per[id] or 0,
                                                           total))
      end
    end)
  end)

  it("is refused without the option while the port is taken", function()
    run(function()
      local a = assert(aio.start_server(function(s) s:close() end,
                                        "127.0.0.1", 0, {reuse_port = true}))
      local b, _, code = aio.start_server(function(s) s:close() end,
                                          "127.0.0.1", a.port)
      assert.is_nil(b)
      assert.equal("EADDRINUSE", code)
      local c = assert(aio.start_server(function(s) s:close() end,
                                        "127.0.0.1", a.port,
                                        {reuse_port = true}))
      c:close()
      a:close()
    end)
  end)
end)

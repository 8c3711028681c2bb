-- Concurrent fetches with aio.gather.
--
-- There is no network here: each "fetch" waits with aio.sleep as a real
-- request would wait for its response.  gather starts them all at once,
-- waits for every one and hands back the bodies in the order asked for,
-- whatever order they finished in.
local aio = require "luaio"

local pages = {
  ["https://example.org/a"] = {delay = 0.12, size = 1200},
  ["https://example.org/b"] = {delay = 0.04, size = 800},
  ["https://example.org/c"] = {delay = 0.08, size = 3000},
}

-- A pretend GET: waits for "the network", then returns status and size.
local function fetch(url)
  local page = pages[url]
  aio.sleep(page and page.delay or 0.02)
  if not page then error({status = 404, url = url}) end
  return {status = 200, url = url, size = page.size}
end

aio.run(function()
  local urls = {"https://example.org/a", "https://example.org/b",
                "https://example.org/c"}
  local jobs, finished = {}, {}
  for i, url in ipairs(urls) do
    jobs[i] = function()
      local r = fetch(url)
      finished[#finished + 1] = url
      return r
    end
  end

  local started = aio.time()
  local responses = aio.gather(jobs)
  local took = aio.time() - started

  for i, url in ipairs(urls) do
    local r = responses[i]
    print(("%s -> %d (%d bytes)"):format(url, r.status, r.size))
  end
  print("finished first: " .. finished[1])
  print("order kept: " .. tostring(responses[1].url == urls[1] and
                                   responses[3].url == urls[3]))
  -- 0.12 s for the slowest, 0.24 s one after another.
  print("concurrent: " .. tostring(took < 0.24))

  -- One failing fetch does not lose the others with return_errors.
  local results, errors = aio.gather({
    function() return fetch("https://example.org/b") end,
    function() return fetch("https://example.org/missing") end,
  }, {return_errors = true})
  print(("%s -> %d"):format(results[1].url, results[1].status))
  print(("%s -> failed: %d"):format(errors[2].url, errors[2].status))
end)

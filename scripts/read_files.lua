-- Reading files concurrently with aio.gather.
--
-- Writes a few files into a temporary folder, then reads them all at once:
-- each read runs on libuv's thread pool, so the reads overlap and the loop
-- stays free for other tasks.  gather hands the contents back in the order
-- asked for, whatever order they finished in.
local aio = require "luaio"
local fs = aio.fs

aio.run(function()
  local dir = os.tmpname()
  os.remove(dir) -- tmpname made a file; we want a folder of that name
  assert(fs.mkdir(dir))

  local names = {"alpha.txt", "beta.txt", "gamma.bin", "delta.txt"}
  local sizes = {alpha = 1000, beta = 20000, gamma = 256, delta = 0}
  local writes = {}
  for i, name in ipairs(names) do
    local size = sizes[name:match("^%a+")]
    writes[i] = function()
      local bytes = {}
      for j = 1, size do bytes[j] = string.char((j - 1) % 256) end
      return assert(fs.write_file(dir .. "/" .. name, table.concat(bytes)))
    end
  end
  aio.gather(writes)

  -- The listing comes back sorted by name.
  local reads = {}
  for i, entry in ipairs(assert(fs.scandir(dir))) do
    reads[i] = function()
      local data = assert(fs.read_file(dir .. "/" .. entry.name))
      return {name = entry.name, size = #data}
    end
  end
  local files = aio.gather(reads)

  local total = 0
  for _, f in ipairs(files) do
    print(("%-10s %6d bytes"):format(f.name, f.size))
    total = total + f.size
  end
  print(("%d files, %d bytes"):format(#files, total))

  -- A missing file is an ordinary result, not an error.
  local data, msg, code = fs.read_file(dir .. "/missing.txt")
  print("missing.txt:", data, code)

  for _, name in ipairs(names) do assert(fs.remove(dir .. "/" .. name)) end
  assert(fs.remove(dir))
  print("cleaned up: " .. tostring(fs.stat(dir) == nil))
end)

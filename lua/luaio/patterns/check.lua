-- luaio.patterns.check: the argument and option checks the patterns share.
-- Errors name the function and the option, as luaio's C functions do:
--   bad argument #1 to 'luaio.patterns.pool' (unknown option 'maxx')
-- Each check is called straight from the public function, so the error's
-- position is the public function's caller.
local M = {}

local LEVEL = 3 -- the check, the public function, its caller

local function argerror(fname, i, msg, depth)
  error(("bad argument #%d to '%s' (%s)"):format(i, fname, msg),
        LEVEL + 1 + (depth or 0))
end

local function callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and mt.__call ~= nil
end
M.callable = callable

-- A function (or a value with __call) at argument i.
function M.func(fname, i, v)
  if not callable(v) then
    argerror(fname, i, "function expected, got " .. type(v))
  end
  return v
end

-- Argument 1 of a method: an object of metatable mt (whose __name says
-- what); `depth` counts the helpers between the method and this call.
function M.self(fname, v, mt, depth)
  if getmetatable(v) ~= mt then
    argerror(fname, 1, mt.__name .. " expected", depth)
  end
  return v
end

-- The options table at argument i (nil: none, unless `required`), checked
-- against the set of names known; returns it, or an empty table.
function M.options(fname, i, opts, known, required)
  if opts == nil and not required then return {} end
  if type(opts) ~= "table" then
    argerror(fname, i, "table expected, got " .. type(opts))
  end
  for k in pairs(opts) do
    if not known[k] then
      argerror(fname, i, ("unknown option '%s'"):format(tostring(k)))
    end
  end
  return opts
end

-- Option `key` of opts: a number >= min (> min when `open`), or the
-- default when absent.  math.huge passes unless `finite`.
function M.number(fname, i, opts, key, default, min, open, finite)
  local v = opts[key]
  if v == nil then return default end
  local bad = type(v) ~= "number" or v ~= v or v < min or (open and v == min)
              or (finite and v == math.huge)
  if bad then
    local what = open and "greater than " or "at least "
    argerror(fname, i, ("option '%s' must be a number %s%s, got %s")
             :format(key, what, min, tostring(v)))
  end
  return v
end

-- Option `key`: an integer >= min, or math.huge, or the default.
function M.count(fname, i, opts, key, default, min)
  local v = opts[key]
  if v == nil then return default end
  local whole = type(v) == "number" and (v == math.huge or v == math.floor(v))
  if not whole or v < min then
    argerror(fname, i, ("option '%s' must be an integer of at least %d, " ..
                        "got %s"):format(key, min, tostring(v)))
  end
  return math.tointeger(v) or v
end

-- Option `key`: a function, or nil.
function M.callback(fname, i, opts, key)
  local v = opts[key]
  if v ~= nil and not callable(v) then
    argerror(fname, i, ("option '%s' must be a function, got %s")
             :format(key, type(v)))
  end
  return v
end

-- Option `key`: one of the strings in `choices` (an array), or the default.
function M.choice(fname, i, opts, key, default, choices)
  local v = opts[key]
  if v == nil then return default end
  for _, c in ipairs(choices) do
    if v == c then return v end
  end
  argerror(fname, i, ("option '%s' must be one of '%s', got %s")
           :format(key, table.concat(choices, "', '"), tostring(v)))
end

-- A plain argument i that must be a number >= min (> min when `open`),
-- or the default when nil.
function M.arg_number(fname, i, v, default, min, open)
  if v == nil then return default end
  if type(v) ~= "number" or v ~= v or v < min or (open and v == min) then
    argerror(fname, i, ("number %s%s expected, got %s")
             :format(open and "greater than " or "of at least ", min,
                     tostring(v)))
  end
  return v
end

-- Raise a bad-argument error for the caller of the public function;
-- `depth` counts the helpers between it and this call (0 by default).
function M.argerror(fname, i, msg, depth)
  error(("bad argument #%d to '%s' (%s)"):format(i, fname, msg),
        3 + (depth or 0))
end

return M

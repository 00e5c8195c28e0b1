-- What the writers' scripts (apply.lua, masses.lua) share, read before them.

-- The generations a writer's call writes to, from its ARGV[2]: 'live' (the
-- current generation and the one being rebuilt, if any) or a generation
-- number.  Empty when 'live' finds no generation (NO_GENERATION for the caller).
local function target_generations(prefix, target)
  if target ~= 'live' then return {target} end
  local gens = {}
  local current = redis.call('GET', prefix .. GEN_KEY)
  local building = redis.call('GET', prefix .. BUILDING_KEY)
  if current then gens[#gens + 1] = current end
  if building and building ~= current then gens[#gens + 1] = building end
  return gens
end

-- Arguments per command call: well under Lua's unpack limit (~8000), and even,
-- so that member/value pairs never split.
local CALL_ARGS = 4000

-- One command on key with many arguments, in slices of CALL_ARGS.
local function call_many(command, key, args)
  for first = 1, #args, CALL_ARGS do
    redis.call(command, key, unpack(args, first, math.min(first + CALL_ARGS - 1, #args)))
  end
end

-- Gather one or two arguments for a command on key (pending: key -> arguments).
local function gather(pending, key, a, b)
  local args = pending[key]
  if not args then
    args = {}
    pending[key] = args
  end
  args[#args + 1] = a
  if b then args[#args + 1] = b end
end


-- The terms of a text entry (after its second TEXT_END).
local function terms_of(text)
  local at = string.find(text, TEXT_END, 1, true)
  at = at and string.find(text, TEXT_END, at + 1, true)
  local terms = {}
  if at then
    for term in string.gmatch(string.sub(text, at + 1), ITEM) do terms[#terms + 1] = term end
  end
  return terms
end

-- A member's mini-app ('' for none), and its position when a GEO set can hold it
-- (its branches sets: BRANCHES and the mini-app, in each of its groups).
local function app_of(member)
  if not member then return '' end
  local length = struct.unpack('<H', member, ID_LENGTH_AT)
  local _, _, _, app = string.match(member, REST, ID_AT + length)
  return app or ''
end
local function geo_of(member)
  local lat, lng = struct.unpack('<dd', member, 1)
  if lat < -GEO_LAT_MAX or lat > GEO_LAT_MAX then return nil end
  return lng, lat
end

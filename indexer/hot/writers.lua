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

-- A change of the branches: in group (its key base), the mini-app slug's ids that
-- join it and those that leave it (changes: group -> slug -> {join, leave}).
local function branch_change(changes, group, slug)
  local apps = changes[group]
  if not apps then apps = {}; changes[group] = apps end
  local change = apps[slug]
  if not change then change = {join = {}, leave = {}}; apps[slug] = change end
  return change
end

-- The ids into a mini-app's GEO set at their positions, read from the group's members
-- (those nearer a pole than a GEO set holds are left out).
local function into_geo(group, key, ids)
  for first = 1, #ids, CALL_ARGS do
    local last = math.min(first + CALL_ARGS - 1, #ids)
    local members = redis.call('HMGET', group .. MEMBERS, unpack(ids, first, last))
    local args = {}
    for k = 1, #members do
      local lng, lat = nil, nil
      if members[k] then lng, lat = geo_of(members[k]) end
      if lng then
        args[#args + 1] = string.format('%.17g', lng)
        args[#args + 1] = string.format('%.17g', lat)
        args[#args + 1] = ids[first + k - 1]
      end
    end
    if #args > 0 then redis.call('GEOADD', key, unpack(args)) end
  end
end

-- Write the branches changes (after the members they name are in their groups): a
-- mini-app with a GEO set keeps it; one without has its ids in the group's hash
-- while they are at most SMALL_BRANCHES, else they move into a GEO set.
local function write_branches(changes)
  for group, apps in pairs(changes) do
    for slug, change in pairs(apps) do
      local key = group .. BRANCHES .. slug
      if redis.call('EXISTS', key) == 1 then
        if #change.leave > 0 then call_many('ZREM', key, change.leave) end
        into_geo(group, key, change.join)
      else
        local held = redis.call('HGET', group .. BRANCH_HASH, slug)
        local ids, list = {}, {}
        for id in string.gmatch(held or '', ITEM) do ids[id] = true end
        for _, id in ipairs(change.leave) do ids[id] = nil end
        for _, id in ipairs(change.join) do ids[id] = true end
        for id in pairs(ids) do list[#list + 1] = id end
        if #list > SMALL_BRANCHES then
          into_geo(group, key, list)
          redis.call('HDEL', group .. BRANCH_HASH, slug)
        elseif #list > 0 then
          table.sort(list)
          redis.call('HSET', group .. BRANCH_HASH, slug, table.concat(list, SEP))
        elseif held then
          redis.call('HDEL', group .. BRANCH_HASH, slug)
        end
      end
    end
  end
end

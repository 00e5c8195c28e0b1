-- Apply a batch of entity changes to the hot index, atomically.
--
-- ARGV[1]  key prefix
-- ARGV[2]  'live' (the current generation and the one being rebuilt, if any)
--          or a generation number (a rebuild filling that generation only)
-- then one record per entity, 7 fields:
--          op ('u' upsert | 'd' delete), id, rev,
--          place ("tag_1 cell_1 .. tag_n cell_n", as loc holds it; '' for a delete),
--          popularity, rank payload, display JSON ('' for a delete)
--
-- A record applies only when its rev is newer than what the generation holds
-- for that id, so late, replayed or reordered writes never undo newer ones.
-- A deleted id keeps a tombstone ("rev") in loc for the same reason.
-- An entity's payloads are kept in every group (tag) one of its cells is in.
-- A change touches only what differs: a cell it stays in is not left and
-- re-entered (ZADD alone updates the popularity), a group it stays in is not
-- cleared, so that the common move (one or two cells change) stays cheap.
--
-- The writes of a batch are gathered per key and sent as one command with many
-- members (one HMGET reads every id's loc), instead of some seven commands per
-- entity. Within one flush the ids are distinct, so the order of the gathered
-- commands cannot matter: an entity never leaves a cell or group it enters.
-- An id that comes again in the same batch flushes what was gathered first,
-- so that its second record sees the first one applied.
-- Returns the number of records applied to the first generation, or -1 when
-- there is no generation to write to (the hot index must be rebuilt).

local prefix, target = ARGV[1], ARGV[2]
local gens = {}
if target == 'live' then
  local current = redis.call('GET', prefix .. ':gen')
  local building = redis.call('GET', prefix .. ':building')
  if current then gens[#gens + 1] = current end
  if building and building ~= current then gens[#gens + 1] = building end
else
  gens[1] = target
end
if #gens == 0 then return -1 end

-- Arguments per command call: well under Lua's unpack limit (~8000).
local CALL_ARGS = 4000

local function words(text, from)
  local parts = {}
  for part in string.gmatch(text, '%S+') do parts[#parts + 1] = part end
  if from > 1 then table.remove(parts, 1) end
  return parts
end

-- One command on key with many arguments, in slices of CALL_ARGS (kept even,
-- so that member/value pairs never split).
local function call_many(command, key, args)
  for first = 1, #args, CALL_ARGS do
    redis.call(command, key, unpack(args, first, math.min(first + CALL_ARGS - 1, #args)))
  end
end

local function gather(pending, key, a, b)
  local args = pending[key]
  if not args then
    args = {}
    pending[key] = args
  end
  args[#args + 1] = a
  if b then args[#args + 1] = b end
end

local function new_batch()
  return {zrem = {}, hdel = {}, zadd = {}, hset = {}, loc = {}, ids = {}, names = {}}
end

local function flush(base, batch)
  for key, args in pairs(batch.zrem) do call_many('ZREM', key, args) end
  for key, args in pairs(batch.hdel) do call_many('HDEL', key, args) end
  for key, args in pairs(batch.zadd) do call_many('ZADD', key, args) end
  for key, args in pairs(batch.hset) do call_many('HSET', key, args) end
  if #batch.loc > 0 then call_many('HSET', base .. 'loc', batch.loc) end
end

-- old, new = {tag_1, cell_1, .., tag_n, cell_n}, pairs in the same resolution
-- order; new is empty for a delete.
local function leave(base, batch, id, old, new)
  local staying = {}
  for c = 1, #new, 2 do staying[new[c]] = true end
  local cleared = {}
  for c = 1, #old, 2 do
    local tag, cell = old[c], old[c + 1]
    if tag ~= new[c] or cell ~= new[c + 1] then
      gather(batch.zrem, base .. '{' .. tag .. '}:z:' .. cell, id)
    end
    if not staying[tag] and not cleared[tag] then
      local group = base .. '{' .. tag .. '}:'
      gather(batch.hdel, group .. 'r', id)
      gather(batch.hdel, group .. 'd', id)
      cleared[tag] = true
    end
  end
end

-- Group key prefixes ("base{tag}:") and cell set keys, built once per batch.
local function group_of(names, base, tag)
  local group = names[tag]
  if not group then
    group = base .. '{' .. tag .. '}:'
    names[tag] = group
  end
  return group
end

local function enter(base, batch, id, new, popularity, rank, display)
  local names, zadd, hset = batch.names, batch.zadd, batch.hset
  for c = 1, #new, 2 do
    local tag = new[c]
    local group = group_of(names, base, tag)
    local zkey = names[new[c + 1]]
    if not zkey then
      zkey = group .. 'z:' .. new[c + 1]
      names[new[c + 1]] = zkey
    end
    gather(zadd, zkey, popularity, id)
    -- Payloads once per group: a tag seen at a coarser resolution has them.
    local seen = false
    for p = 1, c - 2, 2 do
      if new[p] == tag then seen = true end
    end
    if not seen then
      gather(hset, group .. 'r', id, rank)
      gather(hset, group .. 'd', id, display)
    end
  end
end

-- What loc holds for every id of the batch, read with one HMGET per slice.
local function held_locs(base)
  local ids = {}
  for i = 3, #ARGV, 7 do ids[#ids + 1] = ARGV[i + 1] end
  local held = {}
  for first = 1, #ids, CALL_ARGS do
    local last = math.min(first + CALL_ARGS - 1, #ids)
    local values = redis.call('HMGET', base .. 'loc', unpack(ids, first, last))
    for k = 1, #values do held[first + k - 1] = values[k] end
  end
  return held
end

-- Apply every record to one generation; return how many were newer than it held.
local function apply_to(gen)
  local base = prefix .. ':' .. gen .. ':'
  local read = held_locs(base)
  local latest = {}
  local batch = new_batch()
  local applied = 0
  for i = 3, #ARGV, 7 do
    local op, id, rev, place = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
    if batch.ids[id] then
      flush(base, batch)
      batch = new_batch()
    end
    local held = latest[id]
    if held == nil then held = read[(i - 3) / 7 + 1] end
    local held_rev = held and tonumber(string.match(held, '^%S+'))
    if not held_rev or held_rev < tonumber(rev) then
      local new = op == 'u' and words(place, 1) or {}
      if held then leave(base, batch, id, words(held, 2), new) end
      local value = rev
      if op == 'u' then
        enter(base, batch, id, new, ARGV[i + 4], ARGV[i + 5], ARGV[i + 6])
        value = rev .. ' ' .. place
      end
      batch.loc[#batch.loc + 1] = id
      batch.loc[#batch.loc + 1] = value
      batch.ids[id] = true
      latest[id] = value
      applied = applied + 1
    end
  end
  flush(base, batch)
  return applied
end

local applied = 0
for g, gen in ipairs(gens) do
  local count = apply_to(gen)
  if g == 1 then applied = count end
end
return applied

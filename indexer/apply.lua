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

local function words(text, from)
  local parts = {}
  for part in string.gmatch(text, '%S+') do parts[#parts + 1] = part end
  if from > 1 then table.remove(parts, 1) end
  return parts
end

-- old, new = {tag_1, cell_1, .., tag_n, cell_n}, pairs in the same resolution
-- order; new is empty for a delete.
local function leave(base, id, old, new)
  local staying = {}
  for c = 1, #new, 2 do staying[new[c]] = true end
  local cleared = {}
  for c = 1, #old, 2 do
    local tag, cell = old[c], old[c + 1]
    if tag ~= new[c] or cell ~= new[c + 1] then
      redis.call('ZREM', base .. '{' .. tag .. '}:z:' .. cell, id)
    end
    if not staying[tag] and not cleared[tag] then
      local group = base .. '{' .. tag .. '}:'
      redis.call('HDEL', group .. 'r', id)
      redis.call('HDEL', group .. 'd', id)
      cleared[tag] = true
    end
  end
end

local function enter(base, id, new, popularity, rank, display)
  local written = {}
  for c = 1, #new, 2 do
    local group = base .. '{' .. new[c] .. '}:'
    redis.call('ZADD', group .. 'z:' .. new[c + 1], popularity, id)
    if not written[group] then
      redis.call('HSET', group .. 'r', id, rank)
      redis.call('HSET', group .. 'd', id, display)
      written[group] = true
    end
  end
end

local applied = 0
for i = 3, #ARGV, 7 do
  local op, id, rev, place = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local new = op == 'u' and words(place, 1) or {}
  for g, gen in ipairs(gens) do
    local base = prefix .. ':' .. gen .. ':'
    local held = redis.call('HGET', base .. 'loc', id)
    local held_rev = held and tonumber(string.match(held, '^%S+'))
    if not held_rev or held_rev < tonumber(rev) then
      if held then leave(base, id, words(held, 2), new) end
      if op == 'u' then
        enter(base, id, new, ARGV[i + 4], ARGV[i + 5], ARGV[i + 6])
        redis.call('HSET', base .. 'loc', id, rev .. ' ' .. place)
      else
        redis.call('HSET', base .. 'loc', id, rev)
      end
      if g == 1 then applied = applied + 1 end
    end
  end
end
return applied

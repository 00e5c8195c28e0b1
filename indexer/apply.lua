-- Apply a batch of entity changes to the hot index, atomically.
--
-- ARGV[1]  key prefix
-- ARGV[2]  'live' (the current generation and the one being rebuilt, if any)
--          or a generation number (a rebuild filling that generation only)
-- ARGV[3]  number of index cells per entity (n)
-- then one record per entity, 6 + 2n fields:
--          op ('u' upsert | 'd' delete), id, rev, tag_1, cell_1 .. tag_n, cell_n,
--          popularity, rank payload, display JSON ('' for a delete)
--
-- A record applies only when its rev is newer than what the generation holds
-- for that id, so late, replayed or reordered writes never undo newer ones.
-- A deleted id keeps a tombstone ("rev") in loc for the same reason.
-- An entity's payloads are kept in every group (tag) one of its cells is in.
-- Returns the number of records applied to the first generation, or -1 when
-- there is no generation to write to (the hot index must be rebuilt).

local prefix, target, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
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

local function split(text)
  local parts = {}
  for part in string.gmatch(text, '%S+') do parts[#parts + 1] = part end
  return parts
end

-- where = {rev, tag_1, cell_1, .., tag_n, cell_n}
local function remove(base, id, where)
  local groups = {}
  for c = 2, #where, 2 do
    local group = base .. '{' .. where[c] .. '}:'
    redis.call('ZREM', group .. 'z:' .. where[c + 1], id)
    groups[group] = true
  end
  for group in pairs(groups) do
    redis.call('HDEL', group .. 'r', id)
    redis.call('HDEL', group .. 'd', id)
  end
end

local function add(base, id, rev, i)
  local popularity = ARGV[i + 3 + 2 * n]
  local loc = {rev}
  local groups = {}
  for c = 1, n do
    local tag, cell = ARGV[i + 1 + 2 * c], ARGV[i + 2 + 2 * c]
    local group = base .. '{' .. tag .. '}:'
    redis.call('ZADD', group .. 'z:' .. cell, popularity, id)
    loc[#loc + 1] = tag
    loc[#loc + 1] = cell
    groups[group] = true
  end
  for group in pairs(groups) do
    redis.call('HSET', group .. 'r', id, ARGV[i + 4 + 2 * n])
    redis.call('HSET', group .. 'd', id, ARGV[i + 5 + 2 * n])
  end
  return table.concat(loc, ' ')
end

local width = 6 + 2 * n
local applied = 0
for i = 4, #ARGV, width do
  local op, id, rev = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  for g, gen in ipairs(gens) do
    local base = prefix .. ':' .. gen .. ':'
    local held = redis.call('HGET', base .. 'loc', id)
    local where = held and split(held) or nil
    if not where or tonumber(where[1]) < tonumber(rev) then
      if where and #where > 1 then remove(base, id, where) end
      if op == 'u' then
        redis.call('HSET', base .. 'loc', id, add(base, id, rev, i))
      else
        redis.call('HSET', base .. 'loc', id, rev)
      end
      if g == 1 then applied = applied + 1 end
    end
  end
end
return applied

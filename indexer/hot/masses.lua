-- New usage masses of entities, written into the members the hot index holds.
--
-- ARGV[1]  key prefix
-- ARGV[2]  'live' (the current generation and the one being rebuilt, if any)
--          or a generation number
-- then one record per entity, 4 fields: id, the revision the change was made
-- on (old rev), the revision it made (rev), the new mass (as Python's repr
-- writes a double).  The ids of one call are distinct.
--
-- An event changes an entity's mass and revision, nothing else: its member in
-- each cell set differs from the held one in those two doubles of its head
-- only, and its display document and cells do not change.  So when a
-- generation holds the id at exactly the old revision, the held member is the
-- old row's, and patching the two doubles makes the new row's member, bit for
-- bit as indexer.hot.encoding.member writes it: the member leaves and
-- re-enters its sets with its new bound (indexer/hot/layout.py: bound_of),
-- the member hashes and loc take the new member and revision, the sets of its
-- name's terms its new bound, and nothing of the row travels.  A mass only grows (weights are positive), so a cell's top
-- and its group's bound field are only raised.
--
-- A generation that holds the id at the new revision or a newer one keeps what
-- it has.  One that holds it at another revision (an earlier write still on
-- its way, a rebuild that has not reached the id), or not at all, cannot be
-- patched: the id is returned, and the caller sends the entity's whole row
-- (apply.lua, whose revision check orders it with every other write).
--
-- Returns the ids to send whole (a table), or NO_GENERATION when there is no
-- generation to write to.  Names and offsets come from the header
-- (indexer/hot/lua.py).

local call, tonumber, unpack = redis.call, tonumber, unpack
local match, format, sub = string.match, string.format, string.sub
local pack, unpack_double = struct.pack, struct.unpack
local min = math.min

local prefix, target = ARGV[1], ARGV[2]
local gens = target_generations(prefix, target)
if #gens == 0 then return NO_GENERATION end

local FIELDS = 4

local function hmget(key, fields)
  local values = {}
  for first = 1, #fields, CALL_ARGS do
    local last = min(first + CALL_ARGS - 1, #fields)
    local got = call('HMGET', key, unpack(fields, first, last))
    for k = 1, last - first + 1 do values[first + k - 1] = got[k] end
  end
  return values
end

local function bound_of(member, factor)
  local listed = unpack_double('<d', member, POPULARITY_AT)
  local mass = unpack_double('<d', member, USAGE_AT)
  if mass == 0 then return listed end
  return listed + mass * factor
end

-- The member with a new revision and mass (the two doubles are side by side in
-- the head: REV_AT, then USAGE_AT).
local function patched(member, rev, mass)
  return sub(member, 1, REV_AT - 1) .. pack('<dd', rev, mass) .. sub(member, USAGE_AT + 8)
end

-- Each touched cell's top and its t hash's bound field raised to what entered.
local function raise_tops(tops)
  for tkey, by_cell in pairs(tops) do
    local cells, values = {}, {}
    for cell, value in pairs(by_cell) do
      cells[#cells + 1] = cell
      values[#values + 1] = value
    end
    local held, set, most = hmget(tkey, cells), {}, nil
    for k = 1, #cells do
      local value = values[k]
      local top = held[k] and tonumber(held[k])
      if not top or value > top then
        set[#set + 1] = cells[k]
        set[#set + 1] = format('%.17g', value)
      end
      if not most or value > most then most = value end
    end
    call_many('HSET', tkey, set)
    local bound = call('HGET', tkey, BOUND_FIELD)
    if not bound or tonumber(bound) < most then
      call('HSET', tkey, BOUND_FIELD, format('%.17g', most))
    end
  end
end

-- The records' ids whose entry in loc is at the old revision, with their places;
-- the others that hold neither the new revision nor a newer one go to whole.
local function patchable(base, whole, sent)
  local ids = {}
  for i = 3, #ARGV, FIELDS do ids[#ids + 1] = ARGV[i] end
  local locs = hmget(base .. LOC, ids)
  local found = {}
  for k = 1, #ids do
    local i = 3 + FIELDS * (k - 1)
    local id, old_rev, rev = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
    local held, place = nil, nil
    if locs[k] then held, place = match(locs[k], '^(%S+) ?(.*)$') end
    held = held and tonumber(held)
    if held == old_rev and place ~= '' then
      found[#found + 1] = {i = i, place = place, first = match(place, '^(%S+)')}
    elseif (not held or held < rev) and not sent[id] then
      whole[#whole + 1] = id
      sent[id] = true
    end
  end
  return found
end

-- The entity's new bound into the sets of its name's terms in group (those its
-- text entry there names; carrier terms' sets hold no bound).
local function rescore(zadd, group, id, score)
  local text = call('HGET', group .. TEXT, id)
  if not text then return end
  for _, term in ipairs(terms_of(text)) do
    if sub(term, 1, 1) ~= CARRIER then gather(zadd, group .. POSTINGS .. term, score, id) end
  end
end

local function patch_gen(gen, whole, sent)
  local base = prefix .. ':' .. gen .. ':'
  local factor = tonumber(call('GET', base .. USAGE_BOUND) or '1')
  local found = patchable(base, whole, sent)
  local by_group = {}
  for _, record in ipairs(found) do gather(by_group, record.first, record) end
  local zrem, zadd, members, tops, loc = {}, {}, {}, {}, {}
  for first_tag, records in pairs(by_group) do
    local ids = {}
    for j = 1, #records do ids[j] = ARGV[records[j].i] end
    local held = hmget(base .. '{' .. first_tag .. '}:' .. MEMBERS, ids)
    for j = 1, #records do
      local record, old = records[j], held[j]
      local i = record.i
      local id, rev, mass = ARGV[i], ARGV[i + 2], tonumber(ARGV[i + 3])
      if not old or mass < unpack_double('<d', old, USAGE_AT) then
        -- Not what loc says (or a mass that fell): the whole row sets it right.
        if not sent[id] then
          whole[#whole + 1] = id
          sent[id] = true
        end
      else
        local new = patched(old, tonumber(rev), mass)
        local value = bound_of(new, factor)
        local score = format('%.17g', value)
        local c, stored = 0, {}
        for tag, cell in string.gmatch(record.place, '(%S+) (%S+)') do
          c = c + 1
          local group = base .. '{' .. tag .. '}:'
          local z = group .. CELL_SET .. cell
          gather(zrem, z, old)
          gather(zadd, z, score, new)
          if not stored[tag] then
            gather(members, group .. MEMBERS, id, new)
            rescore(zadd, group, id, score)
            stored[tag] = true
          end
          local tkey = group .. TOPS[c]
          local by_cell = tops[tkey]
          if not by_cell then
            by_cell = {}
            tops[tkey] = by_cell
          end
          if not by_cell[cell] or value > by_cell[cell] then by_cell[cell] = value end
        end
        loc[#loc + 1] = id
        loc[#loc + 1] = rev .. ' ' .. record.place
      end
    end
  end
  for key, args in pairs(zrem) do call_many('ZREM', key, args) end
  for key, args in pairs(zadd) do call_many('ZADD', key, args) end
  for key, args in pairs(members) do call_many('HSET', key, args) end
  if #loc > 0 then call_many('HSET', base .. LOC, loc) end
  raise_tops(tops)
end

local whole, sent = {}, {}
for _, gen in ipairs(gens) do patch_gen(gen, whole, sent) end
return whole

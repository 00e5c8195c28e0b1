-- Apply a batch of entity changes to the hot index, atomically.
--
-- ARGV[1]  key prefix
-- ARGV[2]  'live' (the current generation and the one being rebuilt, if any)
--          or a generation number (a rebuild filling that generation only)
-- then one record per entity, 7 fields:
--          op ('u' upsert | 'd' delete), id, rev,
--          place ("tag_1 cell_1 .. tag_n cell_n", as loc holds it; '' for a delete),
--          text (as indexer.hot.encoding.text_entry writes it: the entity's
--          words, its name, its index terms; '' for a delete), member (as
--          indexer.hot.encoding.member writes it), display JSON ('' for a delete)
--
-- A record applies only when its rev is newer than what the generation holds
-- for that id, so late, replayed or reordered writes never undo newer ones.
-- A deleted id keeps a tombstone ("rev") in loc for the same reason.
-- An entity's member, document and text are kept in every group (tag) one of
-- its cells is in, its id among the group's branches of its mini-app (in its
-- hash, or at its position in its GEO set: writers.lua; none nearer a pole than
-- GEO_LAT_MAX), and its id in the group's posting set of each of its index
-- terms (a carrier term for its category and its catalog mini-app, whose key and
-- words the group's carriers hash holds while an entity carries it); its old
-- member and text, read from the group's hashes, are what leave the cell sets and
-- the posting sets.  A change touches only what differs: a set that keeps
-- the same member is not left and re-entered, a group it stays in is not
-- cleared.
--
-- A member's score in its sets is its popularity bound (indexer/hot/layout.py:
-- bound_of, with the generation's usage bound factor from its ub key).
-- Each group keeps the top score of each of its cell sets (the t hashes):
-- raised when a member enters with more, read again from the set when a member
-- that could have been the top leaves (and removed when the set is empty).
-- Field '*' of a t hash is never lowered: it bounds every top of the hash.
--
-- The writes of a batch are gathered per key and sent as one command with many
-- members (one HMGET reads every id's loc), instead of several commands per
-- entity. Within one flush the ids are distinct, so the order of the gathered
-- commands cannot matter: an entity never leaves a cell or group it enters.
-- An id that comes again in the same batch flushes what was gathered first,
-- so that its second record sees the first one applied.
-- Returns the number of records applied to the first generation, or
-- NO_GENERATION when there is no generation to write to (the hot index must be
-- rebuilt).  Names and offsets come from the header (indexer/hot/lua.py).

-- Library functions as locals (a global is a table lookup at each use).
local call, tonumber, unpack = redis.call, tonumber, unpack
local gmatch, match, format = string.gmatch, string.match, string.format
local unpack_double = struct.unpack
local min = math.min

local prefix, target = ARGV[1], ARGV[2]
local gens = target_generations(prefix, target)
if #gens == 0 then return NO_GENERATION end

local function words(text, from)
  local parts, n = {}, 0
  for part in gmatch(text, '%S+') do
    n = n + 1
    if n >= from then parts[n - from + 1] = part end
  end
  return parts
end

local function new_batch()
  -- tops: per t hash, per cell: {z = set key, left = highest popularity that
  -- left, entered = highest that entered}
  -- carried: per group, its carrier keys' words entered; emptied: per carrier
  -- term's set left, its carriers hash and key
  -- branches: the mini-apps' branches that change (writers.lua: branch_change)
  return {zrem = {}, hdel = {}, zadd = {}, hset = {}, srem = {}, sadd = {}, loc = {},
          ids = {}, names = {}, tops = {}, carried = {}, emptied = {}, branches = {}}
end

local function group_of(base, tag) return base .. '{' .. tag .. '}:' end

-- Names of a cell, made once per batch: its set key and its t hash.  c: the
-- cell's position in a place (tag, cell pairs in INDEX_RESOLUTIONS order).
local function names_of(batch, base, tag, cell, c)
  local names = batch.names[cell]
  if not names then
    local group = group_of(base, tag)
    names = {z = group .. CELL_SET .. cell, t = group .. TOPS[(c + 1) / 2], group = group}
    batch.names[cell] = names
  end
  return names
end

local function top_of(batch, names, cell)
  local by_cell = batch.tops[names.t]
  if not by_cell then
    by_cell = {}
    batch.tops[names.t] = by_cell
  end
  local top = by_cell[cell]
  if not top then
    top = {z = names.z}
    by_cell[cell] = top
  end
  return top
end

-- A popularity as Redis writes a score (ZREVRANGE ... WITHSCORES), so that a
-- top reads the same whichever wrote it; made only for what is written.
local function score_text(value) return format('%.17g', value) end

-- The generation's usage bound factor (1 when unset), and a member's bound:
-- layout.bound_of of the listed popularity and usage mass in its head.
local bound_factor = 1
local function bound_of(member)
  local listed = unpack_double('<d', member, POPULARITY_AT)
  local mass = unpack_double('<d', member, USAGE_AT)
  if mass == 0 then return listed end
  return listed + mass * bound_factor
end

-- After the sets changed: each touched cell's top made exact again, from the
-- top held before the batch (one HMGET per t hash).  Every member that left
-- had at most top.left; one that entered had at most top.entered, and is still
-- there (ids are distinct within a flush).  When what entered reaches the held
-- top, it is the new top, whatever left (a bike leaving and another entering a
-- cell at the same popularity).  Otherwise, when less left than the held top,
-- the member holding it is still there and the top stands.  Otherwise the top
-- may have left (or none was held), and the set is read again.  A field is
-- written only when its value changes.
local function fix_tops(batch)
  for tkey, by_cell in pairs(batch.tops) do
    local cells, tops = {}, {}
    for cell, top in pairs(by_cell) do
      cells[#cells + 1] = cell
      tops[#tops + 1] = top
    end
    local set, most = {}, nil
    for first = 1, #cells, CALL_ARGS do
      local last = min(first + CALL_ARGS - 1, #cells)
      local held = call('HMGET', tkey, unpack(cells, first, last))
      for k = 1, last - first + 1 do
        local cell, top, text = cells[first + k - 1], tops[first + k - 1], held[k]
        local value = text and tonumber(text)
        if top.entered and (not value or top.entered >= value) then
          if value ~= top.entered then
            set[#set + 1] = cell
            set[#set + 1] = score_text(top.entered)
          end
        elseif top.left and (not value or top.left >= value) then
          local got = call('ZREVRANGE', top.z, 0, 0, 'WITHSCORES')
          if not got[2] then
            if text then call('HDEL', tkey, cell) end
          elseif tonumber(got[2]) ~= value then
            set[#set + 1] = cell
            set[#set + 1] = got[2]
          end
        end
        if top.entered and (not most or top.entered > most.entered) then most = top end
      end
    end
    for first = 1, #set, CALL_ARGS do
      call('HSET', tkey, unpack(set, first, min(first + CALL_ARGS - 1, #set)))
    end
    if most then
      local bound = call('HGET', tkey, BOUND_FIELD)
      if not bound or tonumber(bound) < most.entered then
        call('HSET', tkey, BOUND_FIELD, score_text(most.entered))
      end
    end
  end
end

local function flush(base, batch)
  for key, args in pairs(batch.zrem) do call_many('ZREM', key, args) end
  for key, args in pairs(batch.hdel) do call_many('HDEL', key, args) end
  for key, args in pairs(batch.srem) do call_many('SREM', key, args) end
  for key, args in pairs(batch.zadd) do call_many('ZADD', key, args) end
  for key, args in pairs(batch.hset) do call_many('HSET', key, args) end
  for key, args in pairs(batch.sadd) do call_many('SADD', key, args) end
  write_branches(batch.branches)
  for group, carried in pairs(batch.carried) do
    local args = {}
    for key, words in pairs(carried) do args[#args + 1] = key; args[#args + 1] = words end
    call_many('HSET', group .. CARRIERS, args)
  end
  for key, field in pairs(batch.emptied) do
    if call('SCARD', key) == 0 then call('HDEL', field[1], field[2]) end
  end
  if #batch.loc > 0 then call_many('HSET', base .. LOC, batch.loc) end
  fix_tops(batch)
end

-- The words of a carrier term's part of a text entry (the category's: the second
-- part; the mini-app's: the third), as the part holds them.
local function carried_words(text, term)
  local from = string.find(text, TEXT_PART, 1, true) + 1
  if string.sub(term, 2, 2) == 'a' then from = string.find(text, TEXT_PART, from, true) + 1 end
  return string.sub(text, from, string.find(text, TEXT_PART, from, true) - 1)
end

-- The id into (adding, with its popularity bound `score`) or out of the posting
-- set of each term of text, in group (a name's term's set is sorted by that
-- bound); a carrier term's key and words into the group's carriers hash, or its
-- set to be checked for emptiness when the batch is flushed (its key then
-- leaves the hash).
local function post(batch, adding, group, id, text, score)
  for _, term in ipairs(terms_of(text)) do
    local key = group .. POSTINGS .. term
    if string.sub(term, 1, 1) ~= CARRIER then
      if adding then gather(batch.zadd, key, score, id) else gather(batch.zrem, key, id) end
    elseif adding then
      gather(batch.sadd, key, id)
      local carried = batch.carried[group]
      if not carried then carried = {}; batch.carried[group] = carried end
      carried[string.sub(term, 2)] = carried_words(text, term)
    else
      gather(batch.srem, key, id)
      batch.emptied[key] = {group .. CARRIERS, string.sub(term, 2)}
    end
  end
end

-- old, new = {tag_1, cell_1, .., tag_n, cell_n}, pairs in the same resolution
-- order; new is empty for a delete.  A set is left when the cell changes or
-- the member does (its fields or popularity); a group's posting sets when the
-- group is left or the text changes.
local function leave(base, batch, id, old, new, old_member, member, old_text, text)
  local staying = {}
  for c = 1, #new, 2 do staying[new[c]] = true end
  local popularity = old_member and bound_of(old_member)
  local old_app, new_app = app_of(old_member), app_of(member)
  -- A branches set kept: the same mini-app in a group still held, at a position it takes.
  local kept_branch = old_app == new_app and member and geo_of(member)
  local cleared = {}
  for c = 1, #old, 2 do
    local tag, cell = old[c], old[c + 1]
    if old_member and (tag ~= new[c] or cell ~= new[c + 1] or old_member ~= member) then
      local names = names_of(batch, base, tag, cell, c)
      gather(batch.zrem, names.z, old_member)
      local top = top_of(batch, names, cell)
      if not top.left or popularity > top.left then top.left = popularity end
    end
    if not cleared[tag] then
      local group = group_of(base, tag)
      if not staying[tag] then
        gather(batch.hdel, group .. MEMBERS, id)
        gather(batch.hdel, group .. DOCUMENTS, id)
        gather(batch.hdel, group .. TEXT, id)
      end
      if old_text and (not staying[tag] or old_text ~= text) then
        post(batch, false, group, id, old_text)
      end
      if old_app ~= '' and not (staying[tag] and kept_branch) then
        local leave = branch_change(batch.branches, group, old_app).leave
        leave[#leave + 1] = id
      end
      cleared[tag] = true
    end
  end
end

-- old_tags: the groups the entity was in with the same text (nil: none);
-- rescored: whether its popularity bound changed (its names' terms then take it).
local function enter(base, batch, id, new, member, display, text, old_tags, rescored)
  local value = bound_of(member)
  local score = score_text(value)
  local app = app_of(member)
  local placed = app ~= '' and geo_of(member)
  for c = 1, #new, 2 do
    local tag, cell = new[c], new[c + 1]
    local names = names_of(batch, base, tag, cell, c)
    gather(batch.zadd, names.z, score, member)
    local top = top_of(batch, names, cell)
    if not top.entered or value > top.entered then top.entered = value end
    -- Member, document and text once per group: a tag seen at a coarser resolution has them.
    local seen = false
    for p = 1, c - 2, 2 do
      if new[p] == tag then seen = true end
    end
    if not seen then
      gather(batch.hset, names.group .. MEMBERS, id, member)
      gather(batch.hset, names.group .. DOCUMENTS, id, display)
      gather(batch.hset, names.group .. TEXT, id, text)
      if rescored or not (old_tags and old_tags[tag]) then
        post(batch, true, names.group, id, text, score)
      end
      if placed then
        local join = branch_change(batch.branches, names.group, app).join
        join[#join + 1] = id
      end
    end
  end
end

-- What loc holds for every id of the batch, read with one HMGET per slice.
local function held_locs(base)
  local ids = {}
  for i = 3, #ARGV, 7 do ids[#ids + 1] = ARGV[i + 1] end
  local held = {}
  for first = 1, #ids, CALL_ARGS do
    local last = min(first + CALL_ARGS - 1, #ids)
    local values = call('HMGET', base .. LOC, unpack(ids, first, last))
    for k = 1, #values do held[first + k - 1] = values[k] end
  end
  return held
end

-- The member and the text each id had (from the hashes of its first cell's
-- group), by record number; nil where loc holds nothing or a tombstone.
local function held_members(base, locs)
  local by_tag = {}
  for k, held in pairs(locs) do
    if held then
      local tag = match(held, '^%S+ (%S+)')
      if tag then gather(by_tag, tag, k) end
    end
  end
  local members, texts = {}, {}
  for tag, records in pairs(by_tag) do
    local ids = {}
    for j = 1, #records do ids[j] = ARGV[3 + 7 * (records[j] - 1) + 1] end
    local group = group_of(base, tag)
    for first = 1, #ids, CALL_ARGS do
      local last = min(first + CALL_ARGS - 1, #ids)
      local values = call('HMGET', group .. MEMBERS, unpack(ids, first, last))
      local held_texts = call('HMGET', group .. TEXT, unpack(ids, first, last))
      for j = 1, #values do
        local k = records[first + j - 1]
        if values[j] then members[k] = values[j] end
        if held_texts[j] then texts[k] = held_texts[j] end
      end
    end
  end
  return members, texts
end

-- The groups of an old place (tag, cell pairs) as a set.
local function tags_of(old)
  local tags = {}
  for c = 1, #old, 2 do tags[old[c]] = true end
  return tags
end

-- Apply every record to one generation; return how many were newer than it held.
local function apply_to(gen)
  local base = prefix .. ':' .. gen .. ':'
  bound_factor = tonumber(call('GET', base .. USAGE_BOUND) or '1')
  local read = held_locs(base)
  local read_members, read_texts = held_members(base, read)
  local latest, latest_member, latest_text = {}, {}, {}
  local batch = new_batch()
  local applied = 0
  for i = 3, #ARGV, 7 do
    local op, id, rev, place = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
    if batch.ids[id] then
      flush(base, batch)
      batch = new_batch()
    end
    local k = (i - 3) / 7 + 1
    local held, old_member, old_text = latest[id], latest_member[id], latest_text[id]
    if held == nil then held, old_member, old_text = read[k], read_members[k], read_texts[k] end
    local held_rev = held and tonumber(match(held, '^%S+'))
    if not held_rev or held_rev < tonumber(rev) then
      local new = op == 'u' and words(place, 1) or {}
      local member = op == 'u' and ARGV[i + 5] or nil
      local text = op == 'u' and ARGV[i + 4] or nil
      local old = held and words(held, 2) or {}
      leave(base, batch, id, old, new, old_member, member, old_text, text)
      local value = rev
      if op == 'u' then
        enter(base, batch, id, new, member, ARGV[i + 6], text,
          old_text == text and tags_of(old) or nil,
          not old_member or bound_of(old_member) ~= bound_of(member))
        value = rev .. ' ' .. place
      end
      batch.loc[#batch.loc + 1] = id
      batch.loc[#batch.loc + 1] = value
      batch.ids[id] = true
      latest[id] = value
      latest_member[id] = member or false
      latest_text[id] = text or false
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

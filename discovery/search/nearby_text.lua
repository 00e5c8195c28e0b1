-- The text of nearby.lua's searches (loaded right after it, before
-- nearby_modes.lua, in the same chunk): the hits offered, an entity or each part
-- of it that completes q, and how q's candidates are found.

-- -- a hit offered: the entity, or (completing) each part of it that matches q --

-- Whether every word of q lies within the part of a text entry from `from` to the
-- part's end `to` (its TEXT_PART).
local function part_matches(entry, from, to)
  for k = 1, #texts do
    local term = texts[k]
    local at = find(entry, term, from, true)
    if not at or at + #term > to then return false end
  end
  return true
end

-- The parts of a text entry in order (name, category, mini-app): their keys'
-- letters and their ranks (mini-app before category before name), and those
-- the call completes now (ARGV[29]: 'n' names, 'ca' categories and mini-apps,
-- 'nca' names, then the others).
local PART_LETTERS = {'n', 'c', 'a', ranks = {2, 1, 0}}
local completes = {parts ~= 'ca', parts == 'ca', parts == 'ca'}
-- The completions' keys that may be offered (nil: any), as the carriers' route sets it.
local allowed = nil

-- Whether a hit of lead `lead`, distance d, id and rank k would beat `held`
-- (better's order, without making the hit).
local function beats(lead, d, id, k, held)
  local lh = held[lead_key]
  if by_lead and lead ~= lh then return lead > lh end
  if d ~= held.d then return d < held.d end
  if id ~= held.id then return bytes_less(id, held.id) end
  return k < (held.k or 0)
end

-- The completion key of the part k of the entity visited (its text entry, its
-- category, its mini-app), '' when it completes nothing.
local function part_key(entry, k, to, app)
  if k == 1 then
    local stop = find(entry, TEXT_END, to, true)
    return 'n' .. string.sub(entry, stop + 1, find(entry, TEXT_END, stop + 1, true) - 1)
  end
  local value = k == 2 and last_cat or app
  return value ~= '' and PART_LETTERS[k] .. value or ''
end

-- Offer each part of the entity visited (its text entry last_entry, its category
-- last_cat) that the call completes and that matches q alone, unless its
-- completion already has a better hit.
local function offer_parts(id, d, s, p, rev, app, tag)
  local entry = last_entry
  local lead = lead_key == 'p' and p or s
  local from = 1
  for k = 1, 3 do
    local to = find(entry, TEXT_PART, from, true)
    if completes[k] and part_matches(entry, from, to) then
      local key = part_key(entry, k, to, app)
      if #key > 1 and (not allowed or allowed[key]) then
        local rank = PART_LETTERS.ranks[k]
        local i = slot_of[key]
        if not i or beats(lead, d, id, rank, top[i]) then
          offer({id = id, d = d, s = s, p = p, rev = rev, tag = tag, count = 0, app = key,
                 k = rank})
        end
      end
    end
    from = to + 1
  end
end

local function offer_after(id, d, s, p, rev, app, tag)
  if after_cursor(s, p, d, id) then
    if completing then
      offer_parts(id, d, s, p, rev, app, tag)
    else
      offer({id = id, d = d, s = s, p = p, rev = rev, tag = tag, count = 0, app = app})
    end
  end
end

-- -- q: the ids under its rarest term, or the cells with each text checked --
--
-- Each group of the covering keeps the ids of its entities under each index
-- term of their names, and under a carrier term for their category and for
-- their catalog mini-app (every entity within the radius has a cell of the
-- covering, and its ids are in that cell's group); its carriers hash names
-- the categories and mini-apps, with their words.  An entity that matches q
-- has, for each lookup term, a word of its name with that term, or a category
-- or mini-app whose words hold it: it is in that term's sets (term_sets).  When
-- the rarest lookup term's sets hold few ids, against what reading the cells
-- would read, every match is found by reading those ids' members alone (each
-- id once, as an entity whose cells span groups is in each); the searches are
-- then exact over those candidates in any order.  Otherwise the cells are read
-- as without q, and consider checks each candidate's text entry.

-- FLOOR: ids under a term read in any case (few enough to read whatever the
-- radius).  Otherwise the ids are read when their count squared is at most RATIO
-- times the page size times the groups' entities (reading the cells in order, a
-- page takes about page / share candidates, share = ids / entities).  PER_CALL:
-- members read with one HMGET at most.  SLICE: the most ids a sorted set is read
-- by at a time; by group number, its carriers hash once read.  (One table: the
-- script's chunk is near Lua's limit of 200 locals.)
local ROUTE = {FLOOR = 2000, RATIO = 4, PER_CALL = 1000, SLICE = 64}

local text_route = ARGV[28] or ''

-- Each group's carriers hash, read once: key, words, key, words ...
local function carriers_of(g)
  local held = ROUTE[g]
  if not held then
    held = redis.call('HGETALL', groups[g] .. CARRIERS)
    ROUTE[g] = held
  end
  return held
end

-- The posting sets under a lookup term ({group number, key, sorted} each) and the
-- ids they hold: each group's set of the names' term (unless the call completes
-- categories and mini-apps alone), and, unless it completes, its sets of the
-- carriers whose words hold the term anywhere.
local function term_sets(term)
  local sets, total = {}, 0
  local function add(g, key, sorted)
    local count = redis.call(sorted and 'ZCARD' or 'SCARD', key)
    if count > 0 then
      sets[#sets + 1] = {g, key, sorted}
      total = total + count
    end
  end
  for g = 1, #groups do
    local group = groups[g]
    if parts ~= 'ca' then add(g, group .. POSTINGS .. term, true) end
    if parts == '' then
      local held = carriers_of(g)
      for k = 1, #held, 2 do
        if find(held[k + 1], term, 1, true) then
          add(g, group .. POSTINGS .. CARRIER .. held[k], false)
        end
      end
    end
  end
  return sets, total
end

-- Whether `total` ids are few enough to read rather than the cells.
local function few(total)
  if text_route ~= '' then return text_route == 'ids' end
  if total <= ROUTE.FLOOR then return true end
  if mode == 'g' or mode == 'a' then return false end
  if not ROUTE.entities then
    ROUTE.entities = 0
    for g = 1, #groups do
      ROUTE.entities = ROUTE.entities + redis.call('HLEN', groups[g] .. MEMBERS)
    end
  end
  return total * total <= ROUTE.RATIO * limit * ROUTE.entities
end

-- The sets of q's ids route, nil when its candidates come from the cells.
local function posting_route()
  if not (texts and lookups) or text_route == 'cells' or parts == 'ca' then return nil end
  local best, best_total = nil, nil
  for _, term in ipairs(lookups) do
    local sets, total = term_sets(term)
    if not best_total or total < best_total then best, best_total = sets, total end
  end
  return few(best_total) and best or nil
end
local posting_sets = posting_route()

-- visit(...) (as each_cell's) for the entities of group g with the ids `ids` from
-- `first` to `last` (those of `seen` left out, the others put in it).
local function read_ids(g, ids, first, last, seen, visit)
  local fresh = {}
  for k = first, last do
    local id = ids[k]
    if not seen[id] then
      seen[id] = true
      fresh[#fresh + 1] = id
    end
  end
  for from = 1, #fresh, ROUTE.PER_CALL do
    local to = math.min(from + ROUTE.PER_CALL - 1, #fresh)
    local got = redis.call('HMGET', groups[g] .. MEMBERS, unpack(fresh, from, to))
    local members = {}
    for k = 1, #got do
      if got[k] then members[#members + 1] = got[k] end
    end
    evaluate(g, members, visit)
  end
end

-- visit(...) for every entity of `sets` in the radius that passes the filters and q
-- (but those of `seen`).
local function read_sets(sets, visit, seen)
  seen = seen or {}
  local by_group = {}
  for _, set in ipairs(sets) do
    local key = set[2]
    local ids = set[3] and redis.call('ZRANGE', key, 0, -1) or redis.call('SMEMBERS', key)
    cells_read = cells_read + 1
    local held = by_group[set[1]]
    if not held then
      by_group[set[1]] = ids
    else
      for k = 1, #ids do held[#held + 1] = ids[k] end
    end
  end
  for g, ids in pairs(by_group) do read_ids(g, ids, 1, #ids, seen, visit) end
end

-- Whether a member of popularity (bound) p, at least dmin away, can still enter
-- the top by popularity.
local function p_reachable(p, dmin)
  if n < limit then return true end
  local last = top[n]
  if p ~= last.p then return p > last.p end
  return dmin <= last.d * (1 + SLACK)
end

-- A top by popularity: each set of a name's term read best first (its ids sorted
-- by their popularity bounds), in slices, as far as an id can still enter the
-- top (the top only gets better: a set left early stays left); a carrier's set
-- (no bounds) whole.
local function sets_by_popularity(sets, visit)
  local seen = {}
  for _, set in ipairs(sets) do
    local off, step = 0, ROUTE.SLICE / 2
    cells_read = cells_read + 1
    while set[3] do
      local got = redis.call('ZREVRANGE', set[2], off, off + step - 1, 'WITHSCORES')
      local count, reach = #got / 2, 0
      for k = 1, count do
        if not p_reachable(tonumber(got[2 * k]), 0) then break end
        got[k], reach = got[2 * k - 1], k
      end
      read_ids(set[1], got, 1, reach, seen, visit)
      if reach < count or count < step then break end
      off, step = off + count, math.min(step * 2, ROUTE.SLICE)
    end
    if not set[3] then read_sets({set}, visit, seen) end
  end
end

local function each_posting(visit)
  if order == 'popularity' then
    sets_by_popularity(posting_sets, visit)
  else
    read_sets(posting_sets, visit)
  end
end

-- -- completing categories and mini-apps: the carriers that match q --------
--
-- The groups' carriers hashes name every category and mini-app that can
-- complete q.  The sets of those that few entities carry are read whole (each
-- one's best carrier is then known); the others are found through the cells,
-- read by popularity, and the top then holds no more completions than those
-- found and those others: the read ends when each of them has a carrier that
-- no member left can beat.  Returns how many of them there are.
local function carried_completions()
  local counts, sets_of, keys = {}, {}, {}
  for g = 1, #groups do
    local held = carriers_of(g)
    for k = 1, #held, 2 do
      local words = held[k + 1]
      if part_matches(words, 1, #words + 1) then
        local key = held[k]
        local set = groups[g] .. POSTINGS .. CARRIER .. key
        if not counts[key] then
          counts[key], sets_of[key] = 0, {}
          keys[#keys + 1] = key
        end
        counts[key] = counts[key] + redis.call('SCARD', set)
        sets_of[key][#sets_of[key] + 1] = {g, set}
      end
    end
  end
  local small, sets, big, others = {}, {}, {}, 0
  for _, key in ipairs(keys) do
    if few(counts[key]) then
      small[key] = true
      for _, set in ipairs(sets_of[key]) do sets[#sets + 1] = set end
    else
      big[key] = true
      others = others + 1
    end
  end
  allowed = small
  read_sets(sets, offer_after)
  allowed = big
  limit = math.min(limit, n + others)
  return others
end

-- One nearby query over the hot index, in one call (one round trip, atomic).
--
-- ARGV[1]  key prefix
-- ARGV[2]  mode: 's' top by score (threshold search), 'd' top by distance,
--          'p' top by popularity, 'g' one best per mini-app with counts,
--          'a' every candidate (the modes are nearby_modes.lua's, after this);
--          a mode followed by 'b' (as 'sb') keeps the best of each mini-app
--          only, without counts or a cursor: the top mini-apps, read as that
--          mode reads (best first, as far as the top needs)
-- ARGV[3]  order: 'score' | 'distance' | 'popularity' (modes g and a rank groups by it)
-- ARGV[4..8]  lat, lng, radius (m), scale (m), popularity weight
-- ARGV[9]  how many results to return at most
-- ARGV[10..12]  kinds, categories, mini-apps: sets joined by \31 ('' = any)
-- ARGV[13] '1' when only entities with something available are wanted
-- ARGV[14] staleness cutoffs per live kind: kind \31 epoch \31 kind \31 epoch ...
-- ARGV[15] per-source cutoffs (they override the kind's): source \31 epoch ...
-- ARGV[16..18] the cursor: lead (score or popularity), distance, id ('' = no cursor)
-- ARGV[19] the last word of the cells' t hash (indexer.hot.layout.tops_field)
-- ARGV[20] the hash tags the cells use, joined by \31
-- ARGV[21] per cell, nearest first, the number of its tag in ARGV[20]: one byte each
-- ARGV[22] per cell a lower bound of its distance (m): little-endian doubles
-- ARGV[23] the cells' hex ids, nearest first, 15 characters each, unseparated
-- ARGV[24] the query's usage factor (indexer.rules.usage_factor at the time the
--          popularity is computed at)
-- ARGV[25] (mode d) the tags of the groups that must hold no popularity ('' = none)
-- ARGV[26] q's words as a text entry is searched for: each prefix term after a
--          space, each substring term as it is, joined by \31 ('' = no q)
-- ARGV[27] q's lookup terms (indexer.text.lookup_terms), joined by \31
-- ARGV[28] how q's candidates are found: '' as nearby_modes.lua judges, 'ids'
--          from the ids under a lookup term whenever q has one, 'cells' never
-- ARGV[29] completions (with a distinct mode and q): 'n' names, 'ca' categories and
--          mini-apps, '' none: a hit is one part of an entity (its name, its
--          category, its mini-app) of those kinds that matches q alone, and the
--          best hit of each part's kind and text is kept (its key: the kind's
--          letter n, c or a, then the name, the category or the mini-app's slug)
-- ARGV[30] '1' when a top by distance over the mini-apps ARGV[12] names may read
--          their branches sets instead of the cells (nearby_branches.lua)
-- (Cells come packed so that the script reads them in bulk, 16 at a time, and
-- only as far as it needs them: no pattern match, no argument per cell.)
--
-- A cell set's members are the entities themselves (indexer/hot/layout.py),
-- scored by their popularity bound (the listed popularity plus the usage mass
-- times the generation's factor ub); a member's popularity at the query's time
-- is the listed one plus its mass times ARGV[24], at most its bound as long as
-- ARGV[24] <= ub (else the script answers {EARLY}: PostGIS answers).  Each
-- group's t hash holds the top bound of each of its sets (its BOUND_FIELD: at
-- least all of them).  The header before this script
-- (indexer/hot/lua.py, then helpers.lua) names keys, offsets and formats.
--
-- Returns {NO_GENERATION} when there is no index generation, {EARLY} when the
-- query's usage factor is above the generation's bound factor, else
-- {'ok', cells read, members read, the generation, then per result: its id;
--  its distance, score, popularity and revision (four little-endian doubles,
--  exact) and the number of its group's tag in ARGV[20] (an unsigned short:
--  FIGURES);
--  its count (mode g) or 0}.  Display documents are the caller's to read (and
--  keep: a revision's document never changes).
--
-- Distance and score use the operations of discovery/search/ranking.py in the same
-- order, so the doubles equal Python's bit for bit.

local prefix, mode, order = ARGV[1], string.sub(ARGV[2], 1, 1), ARGV[3]
local distinct = string.sub(ARGV[2], 2) == 'b'
local qlat, qlng = tonumber(ARGV[4]), tonumber(ARGV[5])
local radius, scale, w = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local limit = tonumber(ARGV[9])
local asked = limit
local gen = redis.call('GET', prefix .. GEN_KEY)
if not gen then return {NO_GENERATION} end
local base = prefix .. ':' .. gen .. ':'
local tkey = ARGV[19]
local uq = tonumber(ARGV[24])
local ub = tonumber(redis.call('GET', base .. USAGE_BOUND) or '1')
if uq > ub then return {EARLY} end

local sin, cos, atan2, sqrt, log = math.sin, math.cos, math.atan2, math.sqrt, math.log
local unpack_head = struct.unpack
local rad = math.pi / 180
local qlatr, qlngr = qlat * rad, qlng * rad
local qcos = cos(qlatr)
-- A bound may come out an ulp high or low of the exact value: compare with slack.
local SLACK = 1e-9

local kinds, cats, apps = set_of(ARGV[10]), set_of(ARGV[11]), set_of(ARGV[12])
local texts, lookups = list_of(ARGV[26] or ''), list_of(ARGV[27] or '')
-- What the call completes ('' nothing, 'n' names, 'ca' categories and mini-apps).
local parts = texts and ARGV[29] or ''
local completing = parts ~= ''
local need_available = ARGV[13] == '1'
local kind_cut, source_cut = cutoffs_of(ARGV[14]), cutoffs_of(ARGV[15])
local has_cursor = ARGV[16] ~= ''
local cs, cd, cid = tonumber(ARGV[16]), tonumber(ARGV[17]), ARGV[18]
-- Whether a member's text fields must be read to keep it (or its mini-app to group it).
local filtered = kinds or cats or apps or need_available or next(kind_cut) ~= nil
  or mode == 'g' or distinct or texts

-- The haversine of discovery/search/ranking.py; cos_lat is cos(lat * rad), as the
-- member's head holds it.
local function distance(lat, lng, cos_lat)
  local sl = sin((lat * rad - qlatr) * 0.5)
  local sg = sin((lng * rad - qlngr) * 0.5)
  local a = sl * sl + qcos * cos_lat * sg * sg
  return 2 * atan2(sqrt(a), sqrt(1 - a)) * 6371.007180918475 * 1000
end

local function boost(popularity) return 1 + w * log(1 + popularity) end

-- A member's popularity at the query's time, from its head's listed popularity
-- and usage mass (indexer.rules.popularity_now), and its bound
-- (indexer.hot.layout.bound_of): the readers test mass == 0 first, inline (most
-- members have no usage, and a call per member costs), then call these.
local function used_now(listed, mass) return listed + mass * uq end
local function used_bound(listed, mass) return listed + mass * ub end
local function decay(d) return 0.5 ^ ((d / scale) ^ 2) end

-- The order's lead of a hit (its score, its popularity; none by distance).
local by_lead = order ~= 'distance'
local lead_key = order == 'popularity' and 'p' or 's'

local function better(a, b)
  local la, lb = a[lead_key], b[lead_key]
  if by_lead and la ~= lb then return la > lb end
  if a.d ~= b.d then return a.d < b.d end
  if a.id ~= b.id then return bytes_less(a.id, b.id) end
  return (a.k or 0) < (b.k or 0)
end

local function after_cursor(s, p, d, id)
  if not has_cursor then return true end
  local lead = order == 'popularity' and p or s
  if by_lead and lead ~= cs then return lead < cs end
  if d ~= cd then return d > cd end
  return bytes_less(cid, id)
end

-- A member: its head (lat, lng, listed popularity, ln(1 + it), cos(lat), rev,
-- usage mass, kind code, id length: HEAD_FORMAT), its id from ID_AT, then its text fields
-- (REST captures them), kinds by code in KIND: all from the header.
-- Whether a kind's members need their fields read (a filter on them, staleness,
-- or grouping by mini-app).
-- (Completing names needs neither an entity's mini-app nor its category.)
local read_fields = cats or apps or need_available or mode == 'g'
  or (distinct and parts ~= 'n' and parts ~= 'nca')

local find = string.find
-- The covering's groups, by number (the key base of each; filled below).
local tags, groups = {}, {}

-- Whether a text entry holds every word of q where the rule asks: a prefix term
-- after a space (a word's start), a substring term anywhere, both before
-- TEXT_END (indexer.hot.encoding.text_entry).
local function words_in(entry)
  local stop = find(entry, TEXT_END, 1, true)
  for k = 1, #texts do
    local at = find(entry, texts[k], 1, true)
    if not at or at > stop then return false end
  end
  return true
end

-- The member's id and, unless a filter refuses it, its mini-app (its text, with
-- q, is checked when its candidate is considered).
-- The category of the last member admit let through (for completions).
local last_cat = nil
local function admit(member, code, length)
  local last = ID_AT + length - 1
  local id = string.sub(member, ID_AT, last)
  if not filtered then return id, nil end
  local kind = KIND[code]
  if kinds and not kinds[kind] then return nil end
  local app = nil
  if read_fields or kind_cut[kind] then
    local available, seen, source, its_app, cat = string.match(member, REST, last + 1)
    if cats and not cats[cat] then return nil end
    if apps and not apps[its_app] then return nil end
    if need_available and (available == '' or tonumber(available) < 1) then return nil end
    local cut = kind_cut[kind]
    if cut and seen ~= '' then
      cut = source_cut[source] or cut
      if tonumber(seen) < cut then return nil end
    end
    app = its_app
    last_cat = cat
  end
  return id, app
end

-- With q, the candidates that passed the rest wait for their text entries, read
-- with one HMGET for up to PENDING_MOST of one group (flush), then those whose
-- text matches are visited; without q, a candidate is visited at once.  (The
-- order visits come in never changes an answer; pruning by the top only reads
-- more while the top waits.)  last_entry: the text entry of the one visited.
local PENDING_MOST = 500
local pend_id, pend_d, pend_s, pend_p, pend_rev, pend_app, pend_cat = {}, {}, {}, {}, {}, {}, {}
local pending, last_entry = 0, nil
local function flush(visit, tag)
  if pending == 0 then return end
  local count = pending
  pending = 0
  local entries = redis.call('HMGET', groups[tag] .. TEXT, unpack(pend_id, 1, count))
  for k = 1, count do
    local entry = entries[k]
    if entry and words_in(entry) then
      last_entry, last_cat = entry, pend_cat[k]
      visit(pend_id[k], pend_d[k], pend_s[k], pend_p[k], pend_rev[k], pend_app[k], tag)
    end
  end
end
local function consider(visit, id, d, s, p, rev, app, tag)
  if not texts then return visit(id, d, s, p, rev, app, tag) end
  local k = pending + 1
  pending = k
  pend_id[k], pend_d[k], pend_s[k], pend_p[k] = id, d, s, p
  pend_rev[k], pend_app[k], pend_cat[k] = rev, app, last_cat
  if k == PENDING_MOST then flush(visit, tag) end
end

-- The best `limit` so far, best first.
local top, n = {}, 0
local function offer_any(hit)
  if n == limit and not better(hit, top[n]) then return end
  local i = n + 1
  if n < limit then n = n + 1 else i = n end
  while i > 1 and better(hit, top[i - 1]) do
    top[i] = top[i - 1]
    i = i - 1
  end
  top[i] = hit
end

-- With distinct: the best `limit` mini-apps so far (each by its best hit), best
-- first; slot_of[app] is the app's place in top.  An app pushed out may come
-- back only with a hit better than those left, hence better than its old ones.
local slot_of = {}
local function offer_distinct(hit)
  local app = hit.app
  if app == '' then return end
  local i = slot_of[app]
  if i then
    if not better(hit, top[i]) then return end
  elseif n < limit then
    n = n + 1
    i = n
  elseif better(hit, top[n]) then
    slot_of[top[n].app] = nil
    i = n
  else
    return
  end
  while i > 1 and better(hit, top[i - 1]) do
    top[i] = top[i - 1]
    slot_of[top[i].app] = i
    i = i - 1
  end
  top[i] = hit
  slot_of[app] = i
end
local offer = distinct and offer_distinct or offer_any

local cells_read, members_read = 0, 0

-- -- the cells: parsed in chunks, nearest first, each with its set's top ----

for tag in string.gmatch(ARGV[20], '[^\31]+') do
  tags[#tags + 1] = tag
  groups[#groups + 1] = base .. '{' .. tag .. '}:'
end

-- Per cell number i (1.. nearest first): its hex id, group, distance bound,
-- top popularity, decay bound, members read so far, next read size and heap
-- bound live in arrays (no table per cell).
local numbers, dmins, hexes = ARGV[21], ARGV[22], ARGV[23]
local ncells = #numbers
local c_hex, c_group, c_tag, c_dmin, c_top, c_dec = {}, {}, {}, {}, {}, {}
local c_off, c_step, c_bound, c_key = {}, {}, {}, {}
local parsed = 0
-- The distance bound of the next cell not parsed yet (nil: none left).
local next_dmin = ncells > 0 and struct.unpack('<d', dmins, 1) or nil

-- Parse the next CHUNK cells; return the numbers of those whose sets hold
-- members (their tops read with one HMGET per group), nearest first.
local CHUNK = 16
local function next_cells()
  local a = parsed + 1
  local b = math.min(parsed + CHUNK, ncells)
  parsed = b
  local count = b - a + 1
  local tag_numbers = {string.byte(numbers, a, b)}
  local bounds = {struct.unpack('<' .. string.rep('d', count), dmins, 8 * (a - 1) + 1)}
  next_dmin = b < ncells and struct.unpack('<d', dmins, 8 * b + 1) or nil
  local one = true
  for k = 2, count do
    if tag_numbers[k] ~= tag_numbers[1] then one = false; break end
  end
  local cells = {}
  for k = 1, count do
    local at = (a + k - 2) * CELL_HEX
    cells[k] = string.sub(hexes, at + 1, at + CELL_HEX)
  end
  local got = {}
  if one then
    got = redis.call('HMGET', groups[tag_numbers[1]] .. tkey, unpack(cells))
  else
    for number, group in ipairs(groups) do
      local asked, at = {}, {}
      for k = 1, count do
        if tag_numbers[k] == number then
          asked[#asked + 1] = cells[k]
          at[#asked] = k
        end
      end
      if #asked > 0 then
        local tops = redis.call('HMGET', group .. tkey, unpack(asked))
        for j = 1, #asked do got[at[j]] = tops[j] end
      end
    end
  end
  local list = {}
  for k = 1, count do
    if got[k] then
      local i = a + k - 1
      c_hex[i] = cells[k]
      c_group[i] = groups[tag_numbers[k]]
      c_tag[i] = tag_numbers[k]
      c_dmin[i] = bounds[k]
      c_top[i] = tonumber(got[k])
      c_off[i] = 0
      list[#list + 1] = i
    end
  end
  return list
end

-- The key of cell i's set.
local function set_key(i)
  local key = c_key[i]
  if not key then
    key = c_group[i] .. CELL_SET .. c_hex[i]
    c_key[i] = key
  end
  return key
end

-- Calls visit(id, distance, score, popularity, rev, mini_app, tag number) for each
-- member of `members`
-- within the radius that passes the filters; in mode d, only those that can
-- still enter the top by distance.
local by_distance_only = mode == 'd'
local function evaluate(tag, members, visit)
  members_read = members_read + #members
  for k = 1, #members do
    local member = members[k]
    local lat, lng, listed, log_listed, cos_lat, rev, mass, code, length =
      unpack_head(HEAD_FORMAT, member)
    local d = distance(lat, lng, cos_lat)
    if d <= radius and not (by_distance_only and n == limit and d > top[n].d) then
      local id, app = admit(member, code, length)
      if id then
        local popularity, log_boost = listed, log_listed
        if mass ~= 0 then
          popularity = used_now(listed, mass)
          log_boost = log(1 + popularity)
        end
        consider(visit, id, d, decay(d) * (1 + w * log_boost), popularity, rev, app, tag)
      end
    end
  end
  flush(visit, tag)
end

-- Every member of cell i.
local function read_all(i, visit)
  cells_read = cells_read + 1
  evaluate(c_tag[i], redis.call('ZRANGE', set_key(i), 0, -1), visit)
end

-- Every cell in order, until stop(i) says the rest cannot matter.
local function each_cell(stop, visit)
  while next_dmin do
    for _, i in ipairs(next_cells()) do
      if stop(i) then return end
      read_all(i, visit)
    end
  end
end

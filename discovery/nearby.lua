-- One nearby query over the hot index, in one call (one round trip, atomic).
--
-- ARGV[1]  key prefix
-- ARGV[2]  mode: 's' top by score (threshold search), 'd' top by distance,
--          'g' one best per mini-app with counts, 'a' every candidate
-- ARGV[3]  order: 'score' | 'distance' (modes g and a rank groups by it)
-- ARGV[4..8]  lat, lng, radius (m), scale (m), popularity weight
-- ARGV[9]  how many results to return at most
-- ARGV[10..12]  kinds, categories, mini-apps: sets joined by \31 ('' = any)
-- ARGV[13] '1' when only entities with something available are wanted
-- ARGV[14] staleness cutoffs per live kind: kind \31 epoch \31 kind \31 epoch ...
-- ARGV[15] per-source cutoffs (they override the kind's): source \31 epoch ...
-- ARGV[16..18] the cursor: score, distance, id ('' score = no cursor)
-- ARGV[19] the cells, nearest first: per cell its tag, hex id, bounding sets and a
--          lower bound of its distance (m), fields joined by \31, cells by \30 (one
--          argument: a couple of hundred arguments cost more to send and unpack
--          than to split).  The bounding sets are the cells at the next coarser
--          index resolution whose sets can hold the cell's members (its H3 parent,
--          and the parent's neighbours it overhangs): tag \29 hex, joined by \28;
--          '' at the coarsest resolution, where a cell is bounded by its own set.
-- ARGV[20] every bounding set of those cells once: tag \31 hex, joined by \30
--
-- Returns {'nogen'} when there is no index generation, else
-- {'ok', cells read, members read, then per result: id, distance, score,
--  display JSON, count (mode g) or 0}; numbers as '%.17g' text so they read back exactly.
--
-- Distance and score use the operations of discovery/ranking.py in the same
-- order, so the doubles equal Python's bit for bit.

local prefix, mode, order = ARGV[1], ARGV[2], ARGV[3]
local qlat, qlng = tonumber(ARGV[4]), tonumber(ARGV[5])
local radius, scale, w = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local limit = tonumber(ARGV[9])
local gen = redis.call('GET', prefix .. ':gen')
if not gen then return {'nogen'} end
local base = prefix .. ':' .. gen .. ':{'

local sin, cos, atan2, sqrt, log = math.sin, math.cos, math.atan2, math.sqrt, math.log
local rad = math.pi / 180
local qlatr, qlngr = qlat * rad, qlng * rad
local qcos = cos(qlatr)
-- A bound may come out an ulp high or low of the exact value: compare with slack.
local SLACK = 1e-9

local function set_of(text)
  if text == '' then return nil end
  local set = {}
  for part in string.gmatch(text, '[^\31]+') do set[part] = true end
  return set
end

local function cutoffs_of(text)
  local map, key = {}, nil
  for part in string.gmatch(text, '[^\31]+') do
    if key then map[key] = tonumber(part); key = nil else key = part end
  end
  return map
end

local kinds, cats, apps = set_of(ARGV[10]), set_of(ARGV[11]), set_of(ARGV[12])
local need_available = ARGV[13] == '1'
local kind_cut, source_cut = cutoffs_of(ARGV[14]), cutoffs_of(ARGV[15])
local has_cursor = ARGV[16] ~= ''
local cs, cd, cid = tonumber(ARGV[16]), tonumber(ARGV[17]), ARGV[18]

local function distance(lat, lng)
  local la = lat * rad
  local sl = sin((la - qlatr) * 0.5)
  local sg = sin((lng * rad - qlngr) * 0.5)
  local a = sl * sl + qcos * cos(la) * sg * sg
  return 2 * atan2(sqrt(a), sqrt(1 - a)) * 6371.007180918475 * 1000
end

local function boost(popularity) return 1 + w * log(1 + popularity) end
local function decay(d) return 0.5 ^ ((d / scale) ^ 2) end

-- Ids compare as bytes, whatever the server's locale.
local function bytes_less(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

local function better(a, b)
  if order == 'score' and a.s ~= b.s then return a.s > b.s end
  if a.d ~= b.d then return a.d < b.d end
  return bytes_less(a.id, b.id)
end

local function after_cursor(s, d, id)
  if not has_cursor then return true end
  if order == 'score' and s ~= cs then return s < cs end
  if d ~= cd then return d > cd end
  return bytes_less(cid, id)
end

local function keep(kind, available, seen, source, app, cat)
  if kinds and not kinds[kind] then return false end
  if cats and not cats[cat] then return false end
  if apps and not apps[app] then return false end
  if need_available and (available == '' or tonumber(available) < 1) then return false end
  local cut = kind_cut[kind]
  if cut and seen ~= '' then
    cut = source_cut[source] or cut
    if tonumber(seen) < cut then return false end
  end
  return true
end

-- The best `limit` so far, best first.
local top, n = {}, 0
local function offer(hit)
  if n == limit and not better(hit, top[n]) then return end
  local i = n + 1
  if n < limit then n = n + 1 else i = n end
  while i > 1 and better(hit, top[i - 1]) do
    top[i] = top[i - 1]
    i = i - 1
  end
  top[i] = hit
end

local PAYLOAD = '^([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31'
  .. '([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)$'
local POINT = '^([^\31]*)\31([^\31]*)\31'
-- In mode d a member farther than the limit-th distance so far cannot rank.
local by_distance_only = mode == 'd'
local cells_read, members_read = 0, 0

-- Calls visit(id, distance, score, mini_app, tag) for each of `ids` within the
-- radius that passes the filters.
local function evaluate(rkey, tag, ids, first, last, visit)
  local chunk = {}
  for i = first, last do chunk[#chunk + 1] = ids[i] end
  if #chunk == 0 then return end
  local payloads = redis.call('HMGET', rkey, unpack(chunk))
  members_read = members_read + #chunk
  for i = 1, #chunk do
    local payload = payloads[i]
    if payload then
      -- The point first: most members of a cell read whole never rank.
      local lat, lng = string.match(payload, POINT)
      local d = distance(tonumber(lat), tonumber(lng))
      if d <= radius and not (by_distance_only and n == limit and d > top[n].d) then
        local _, _, kind, available, seen, source, app, cat, pop = string.match(payload, PAYLOAD)
        if keep(kind, available, seen, source, app, cat) then
          visit(chunk[i], d, decay(d) * boost(tonumber(pop)), app, tag)
        end
      end
    end
  end
end

local function offer_after(id, d, s, app, tag)
  if after_cursor(s, d, id) then offer({id = id, d = d, s = s, tag = tag, count = 0}) end
end

-- Key names are built once per group and per bounding set, a cell's own when
-- it is read: most cells of a covering are never read.
local groups = {}
local function group_of(tag)
  local group = groups[tag]
  if not group then
    group = base .. tag .. '}:'
    groups[tag] = group
  end
  return group
end
local parent_keys = {}
local function parent_key(tag, parent)
  local key = parent_keys[parent]
  if not key then
    key = group_of(tag) .. 'z:' .. parent
    parent_keys[parent] = key
  end
  return key
end

-- The keys of a cell's bounding sets (nil at the coarsest); cells share them.
local bounding_keys = {}
local function bounds_of(field)
  if field == '' then return nil end
  local keys = bounding_keys[field]
  if not keys then
    keys = {}
    for tag, hex in string.gmatch(field, '([^\28\29]+)\29([^\28]+)') do
      keys[#keys + 1] = parent_key(tag, hex)
    end
    bounding_keys[field] = keys
  end
  return keys
end

local function cell_of(tag, hex, bounds, dmin_text)
  local dmin = tonumber(dmin_text)
  return {hex = hex, tag = tag, bounds = bounds_of(bounds),
          dmin = dmin, dec = decay(dmin), off = 0}
end

-- The cell's set and its group's rank hash.
local function keys_of(cell)
  if not cell.z then
    local group = group_of(cell.tag)
    cell.z, cell.r = group .. 'z:' .. cell.hex, group .. 'r'
  end
  return cell
end

local CELL = '([^\30\31]*)\31([^\30\31]*)\31([^\30\31]*)\31([^\30\31]*)'
-- The query's cells, nearest first.
local function cells()
  local list = {}
  for tag, hex, parent, dmin in string.gmatch(ARGV[19], CELL) do
    list[#list + 1] = cell_of(tag, hex, parent, dmin)
  end
  return list
end

-- Every member of a cell, in chunks.
local function read_all(cell, visit)
  keys_of(cell)
  local ids = redis.call('ZRANGE', cell.z, 0, -1)
  cells_read = cells_read + 1
  for first = 1, #ids, 1000 do
    evaluate(cell.r, cell.tag, ids, first, math.min(first + 999, #ids), visit)
  end
end

-- -- top by score: best-first over cells, members in popularity order -------

local heap = {}
local function push(cell, value)
  cell.bound = value
  heap[#heap + 1] = cell
  local i = #heap
  while i > 1 do
    local up = math.floor(i / 2)
    if heap[up].bound >= heap[i].bound then break end
    heap[up], heap[i] = heap[i], heap[up]
    i = up
  end
end
local function pop()
  local first = heap[1]
  local last = table.remove(heap)
  if #heap > 0 then
    heap[1] = last
    local i = 1
    while true do
      local l, r, m = 2 * i, 2 * i + 1, i
      if l <= #heap and heap[l].bound > heap[m].bound then m = l end
      if r <= #heap and heap[r].bound > heap[m].bound then m = r end
      if m == i then break end
      heap[m], heap[i] = heap[i], heap[m]
      i = m
    end
  end
  return first
end

local function reachable(value)
  return n < limit or value * (1 + SLACK) >= top[n].s
end

-- The lowest popularity that can still reach the top in a cell whose members
-- decay by at most `dec`, lowered a little (reading more is always exact);
-- nil while the top is not full, or when popularity cannot narrow the read.
local function floor_for(dec)
  if n < limit or w <= 0 or top[n].s <= 0 then return nil end
  local p = math.exp((top[n].s / (dec * (1 + SLACK)) - 1) / w) - 1
  if p ~= p or p <= 0 then return nil end
  return p - 1e-9 * (1 + p)
end

-- The next members of a cell after those read (popularity descending): every
-- one that can still reach the top, at most READ; or, while the top is not
-- full, the next `step`.  Returns ids, popularities, and how many were asked.
local READ = 64
local function fetch(cell)
  keys_of(cell)
  local floor = floor_for(cell.dec)
  local got, asked
  if floor then
    asked = READ
    got = redis.call('ZREVRANGEBYSCORE', cell.z, '+inf', string.format('%.17g', floor),
      'WITHSCORES', 'LIMIT', cell.off, asked)
  else
    asked = cell.step or 8
    cell.step = math.min(asked * 2, READ)
    got = redis.call('ZREVRANGE', cell.z, cell.off, cell.off + asked - 1, 'WITHSCORES')
  end
  if cell.off == 0 then cells_read = cells_read + 1 end
  local ids, pops = {}, {}
  for i = 1, #got, 2 do
    ids[#ids + 1] = got[i]
    pops[#pops + 1] = tonumber(got[i + 1])
  end
  cell.off = cell.off + #ids
  return ids, pops, asked
end

-- Evaluate members whose popularity is known (from the cell's set): a member
-- whose score cannot enter the top is never parsed further.
local function evaluate_scored(cell, ids, pops, last)
  local payloads = redis.call('HMGET', cell.r, unpack(ids, 1, last))
  members_read = members_read + last
  for i = 1, last do
    local payload = payloads[i]
    if payload then
      local lat, lng = string.match(payload, POINT)
      local d = distance(tonumber(lat), tonumber(lng))
      if d <= radius then
        local s = decay(d) * boost(pops[i])
        if n < limit or s >= top[n].s then
          local _, _, kind, available, seen, source, app, cat = string.match(payload, PAYLOAD)
          if keep(kind, available, seen, source, app, cat) then
            offer_after(ids[i], d, s, app, cell.tag)
          end
        end
      end
    end
  end
end

-- Read a cell's next members that can reach the top; back on the heap when
-- more may follow.
local function read_cell(cell)
  local ids, pops, asked = fetch(cell)
  local last = 0
  while last < #ids and reachable(cell.dec * boost(pops[last + 1])) do last = last + 1 end
  if last > 0 then evaluate_scored(cell, ids, pops, last) end
  if last == asked then push(cell, cell.dec * boost(pops[last])) end
end

-- The top popularity of a set; cached, as cells share their bounding sets.
local set_top = {}
local function top_of(zkey)
  local value = set_top[zkey]
  if value == nil then
    local got = redis.call('ZREVRANGE', zkey, 0, 0, 'WITHSCORES')
    value = got[2] and tonumber(got[2]) or false
    set_top[zkey] = value
  end
  return value
end

-- The top popularity of a cell's bounding sets bounds every member of it (an
-- H3 child overhangs its parent: a member near the edge may sit in the
-- parent's neighbour at the coarser resolution, whose set then bounds it).  A
-- cell is read only once that bound can reach the top.  A cell at the
-- coarsest resolution is bounded by its own top.
local function top_bound(cell)
  if not cell.bounds then return top_of(keys_of(cell).z) end
  local best = false
  for _, key in ipairs(cell.bounds) do
    local value = top_of(key)
    if value and (not best or value > best) then best = value end
  end
  return best
end

-- Cells come nearest first, so an upper bound for every cell not parsed yet
-- is the next one's decay times the best boost of all bounding sets (ARGV[20]
-- lists them): cells are parsed and put on the heap only while that bound
-- could still beat the heap's best or reach the top.  Far cells are never
-- parsed.
local PARENT = '([^\30\31]*)\31([^\30\31]*)'
local function best_boost()
  if ARGV[20] == '' then return math.huge end
  local best = nil
  for tag, parent in string.gmatch(ARGV[20], PARENT) do
    local value = top_of(parent_key(tag, parent))
    if value and (not best or value > best) then best = value end
  end
  return best and boost(best)
end

local NEXT_CELL = '^([^\30\31]*)\31([^\30\31]*)\31([^\30\31]*)\31([^\30\31]*)\30?'
local function by_score()
  local text, pos = ARGV[19], 1
  local most = best_boost()
  if not most then return end
  local peeked, peek_bound = nil, nil
  local function peek()
    if peeked or pos > #text then return end
    local _, last, tag, hex, parent, dmin = string.find(text, NEXT_CELL, pos)
    pos = last + 1
    peeked = cell_of(tag, hex, parent, dmin)
    peek_bound = peeked.dec > 0 and peeked.dec * most or 0
  end
  while true do
    peek()
    while peeked and reachable(peek_bound) and (#heap == 0 or peek_bound > heap[1].bound) do
      local cell = peeked
      peeked = nil
      local top_popularity = top_bound(cell)
      if top_popularity then push(cell, cell.dec * boost(top_popularity)) end
      peek()
    end
    if #heap == 0 or not reachable(heap[1].bound) then return end
    read_cell(pop())
  end
end

-- -- top by distance: cells nearest first, stop past the limit-th distance --

local function by_distance()
  for _, cell in ipairs(cells()) do
    if n == limit and cell.dmin > top[n].d * (1 + SLACK) then break end
    read_all(cell, offer_after)
  end
end

-- -- one per mini-app: every candidate counts ----------------------------

local function by_group()
  local groups = {}
  local function tally(id, d, s, app, tag)
    if app == '' then return end
    local hit = {id = id, d = d, s = s, tag = tag, count = 0}
    local held = groups[app]
    if not held then
      groups[app] = {best = hit, count = 1}
    else
      held.count = held.count + 1
      if better(hit, held.best) then held.best = hit end
    end
  end
  for _, cell in ipairs(cells()) do read_all(cell, tally) end
  for _, held in pairs(groups) do
    local best = held.best
    best.count = held.count
    if after_cursor(best.s, best.d, best.id) then offer(best) end
  end
end

local function everything()
  limit = math.huge
  local function take(id, d, s, app, tag)
    n = n + 1
    top[n] = {id = id, d = d, s = s, tag = tag, count = 0}
  end
  for _, cell in ipairs(cells()) do read_all(cell, take) end
end

if mode == 's' then by_score()
elseif mode == 'd' then by_distance()
elseif mode == 'g' then by_group()
else everything() end

-- Display documents: one HMGET per group (in chunks).
local by_tag, docs = {}, {}
for i = 1, n do
  local ids = by_tag[top[i].tag] or {}
  ids[#ids + 1] = top[i].id
  by_tag[top[i].tag] = ids
end
for tag, ids in pairs(by_tag) do
  for first = 1, #ids, 1000 do
    local chunk = {unpack(ids, first, math.min(first + 999, #ids))}
    local got = redis.call('HMGET', base .. tag .. '}:d', unpack(chunk))
    for j = 1, #chunk do docs[chunk[j]] = got[j] or '' end
  end
end

local out = {'ok', cells_read, members_read}
for i = 1, n do
  local hit = top[i]
  out[#out + 1] = hit.id
  out[#out + 1] = string.format('%.17g', hit.d)
  out[#out + 1] = string.format('%.17g', hit.s)
  out[#out + 1] = docs[hit.id]
  out[#out + 1] = hit.count
end
return out

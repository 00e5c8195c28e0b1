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
-- ARGV[19] the cells' resolution, as its hex digit (the t hash they are in)
-- ARGV[20] the hash tags the cells use, joined by \31
-- ARGV[21] the cells, nearest first: per cell the number of its tag in ARGV[20],
--          its hex id and a lower bound of its distance (m), fields joined by
--          \31, cells by \30 (one argument: a couple of hundred cost more to
--          send and unpack than to split)
--
-- A cell set's members are the entities themselves (indexer/layout.py): lat,
-- lng and popularity as little-endian doubles, then id \31 kind \31 available
-- \31 seen \31 source \31 mini-app \31 category.  Each group's t hash holds
-- the top popularity of each of its sets (field '*': at least all of them).
--
-- Returns {'nogen'} when there is no index generation, else
-- {'ok', cells read, members read, then per result: id, distance and score
--  (two little-endian doubles, exact), display JSON, count (mode g) or 0}.
--
-- Distance and score use the operations of discovery/ranking.py in the same
-- order, so the doubles equal Python's bit for bit.

local prefix, mode, order = ARGV[1], ARGV[2], ARGV[3]
local qlat, qlng = tonumber(ARGV[4]), tonumber(ARGV[5])
local radius, scale, w = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local limit = tonumber(ARGV[9])
local gen = redis.call('GET', prefix .. ':gen')
if not gen then return {'nogen'} end
local base = prefix .. ':' .. gen .. ':'
local tkey = 't' .. ARGV[19]

local sin, cos, atan2, sqrt, log = math.sin, math.cos, math.atan2, math.sqrt, math.log
local unpack_head = struct.unpack
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
-- Whether a member's text fields must be read to keep it (or its mini-app to group it).
local filtered = kinds or cats or apps or need_available or next(kind_cut) ~= nil
  or mode == 'g'

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

-- A member's text after its head: id, then the fields filters read.
local HEAD = 25
local TAIL = '^([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31(.*)$'
local ID = '^[^\31]*'

-- The member's id and, unless a filter refuses it, its mini-app.
local function admit(member)
  if not filtered then return string.match(member, ID, HEAD), nil end
  local id, kind, available, seen, source, app, cat = string.match(member, TAIL, HEAD)
  if kinds and not kinds[kind] then return nil end
  if cats and not cats[cat] then return nil end
  if apps and not apps[app] then return nil end
  if need_available and (available == '' or tonumber(available) < 1) then return nil end
  local cut = kind_cut[kind]
  if cut and seen ~= '' then
    cut = source_cut[source] or cut
    if tonumber(seen) < cut then return nil end
  end
  return id, app
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

local cells_read, members_read = 0, 0

-- -- the cells: parsed in chunks, nearest first, each with its set's top ----

local tags, groups = {}, {}
for tag in string.gmatch(ARGV[20], '[^\31]+') do
  tags[#tags + 1] = tag
  groups[#groups + 1] = base .. '{' .. tag .. '}:'
end

local text, pos = ARGV[21], 1
local CELL = '^(%d+)\31([^\30\31]*)\31([^\30\31]*)\30?'
-- The next cell not parsed yet (nil dmin: none left).
local next_group, next_hex, next_dmin
local function peek()
  if pos > #text then next_dmin = nil; return end
  local _, last, ti, hex, dmin = string.find(text, CELL, pos)
  pos = last + 1
  next_group, next_hex, next_dmin = groups[tonumber(ti)], hex, tonumber(dmin)
end
peek()

-- The next CHUNK cells that hold members, with their tops (one HMGET per group),
-- nearest first.
local CHUNK = 16
local function next_cells()
  local by_group, order_of, list = {}, {}, {}
  for k = 1, CHUNK do
    if not next_dmin then break end
    local cells = by_group[next_group]
    if not cells then
      cells = {}
      by_group[next_group] = cells
    end
    local cell = {group = next_group, hex = next_hex, dmin = next_dmin, off = 0}
    cells[#cells + 1] = cell
    order_of[cell] = k
    peek()
  end
  for group, cells in pairs(by_group) do
    local hexes = {}
    for i = 1, #cells do hexes[i] = cells[i].hex end
    local got = redis.call('HMGET', group .. tkey, unpack(hexes))
    for i = 1, #cells do
      if got[i] then
        local cell = cells[i]
        cell.top = tonumber(got[i])
        cell.z = group .. 'z:' .. cell.hex
        list[#list + 1] = cell
      end
    end
  end
  table.sort(list, function(a, b) return order_of[a] < order_of[b] end)
  return list
end

-- Calls visit(id, distance, score, mini_app, group) for each member of `members`
-- within the radius that passes the filters; in mode d, only those that can
-- still enter the top by distance.
local by_distance_only = mode == 'd'
local function evaluate(cell, members, visit)
  members_read = members_read + #members
  for i = 1, #members do
    local member = members[i]
    local lat, lng, popularity = unpack_head('<ddd', member)
    local d = distance(lat, lng)
    if d <= radius and not (by_distance_only and n == limit and d > top[n].d) then
      local id, app = admit(member)
      if id then visit(id, d, decay(d) * boost(popularity), app, cell.group) end
    end
  end
end

-- Every member of a cell.
local function read_all(cell, visit)
  cells_read = cells_read + 1
  evaluate(cell, redis.call('ZRANGE', cell.z, 0, -1), visit)
end

-- Every cell in order, until stop(cell) says the rest cannot matter.
local function each_cell(stop, visit)
  while next_dmin do
    for _, cell in ipairs(next_cells()) do
      if stop(cell) then return end
      read_all(cell, visit)
    end
  end
end

local function offer_after(id, d, s, app, group)
  if after_cursor(s, d, id) then offer({id = id, d = d, s = s, group = group, count = 0}) end
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
-- full, the next `step`.  Returns them and how many were asked.
local READ = 64
local function fetch(cell)
  local floor = floor_for(cell.dec)
  local got, asked
  if floor then
    asked = READ
    got = redis.call('ZREVRANGEBYSCORE', cell.z, '+inf', string.format('%.17g', floor),
      'LIMIT', cell.off, asked)
  else
    asked = cell.step or 8
    cell.step = math.min(asked * 2, READ)
    got = redis.call('ZREVRANGE', cell.z, cell.off, cell.off + asked - 1)
  end
  if cell.off == 0 then cells_read = cells_read + 1 end
  cell.off = cell.off + #got
  return got, asked
end

-- Read a cell's next members that can reach the top; back on the heap when
-- more may follow.  A member whose bound cannot reach the top ends the read:
-- the rest have less popularity.
local function read_cell(cell)
  local got, asked = fetch(cell)
  for i = 1, #got do
    local member = got[i]
    local lat, lng, popularity = unpack_head('<ddd', member)
    local bound = cell.dec * boost(popularity)
    if not reachable(bound) then return end
    members_read = members_read + 1
    local d = distance(lat, lng)
    if d <= radius then
      local s = decay(d) * boost(popularity)
      if n < limit or s >= top[n].s then
        local id, app = admit(member)
        if id then offer_after(id, d, s, app, cell.group) end
      end
    end
    if i == asked then push(cell, bound) end
  end
end

-- The top popularity of every set of the cells' groups bounds every cell not
-- parsed yet (they come nearest first): cells are parsed and put on the heap
-- only while that bound could still beat the heap's best or reach the top.
local function best_boost()
  local best = nil
  for i = 1, #groups do
    local value = redis.call('HGET', groups[i] .. tkey, '*')
    if value then
      value = tonumber(value)
      if not best or value > best then best = value end
    end
  end
  return best and boost(best)
end

local function by_score()
  local most = best_boost()
  if not most then return end
  while true do
    while next_dmin do
      local unparsed = decay(next_dmin) * most
      if not reachable(unparsed) or (#heap > 0 and unparsed <= heap[1].bound) then break end
      for _, cell in ipairs(next_cells()) do
        cell.dec = decay(cell.dmin)
        push(cell, cell.dec * boost(cell.top))
      end
    end
    if #heap == 0 or not reachable(heap[1].bound) then return end
    read_cell(pop())
  end
end

-- -- top by distance: cells nearest first, stop past the limit-th distance --

local function by_distance()
  each_cell(function(cell) return n == limit and cell.dmin > top[n].d * (1 + SLACK) end,
    offer_after)
end

-- -- one per mini-app: every candidate counts ----------------------------

local function by_group()
  local best_of = {}
  local function tally(id, d, s, app, group)
    if app == '' then return end
    local hit = {id = id, d = d, s = s, group = group, count = 0}
    local held = best_of[app]
    if not held then
      best_of[app] = {best = hit, count = 1}
    else
      held.count = held.count + 1
      if better(hit, held.best) then held.best = hit end
    end
  end
  each_cell(function() return false end, tally)
  for _, held in pairs(best_of) do
    local best = held.best
    best.count = held.count
    if after_cursor(best.s, best.d, best.id) then offer(best) end
  end
end

local function everything()
  limit = math.huge
  local function take(id, d, s, app, group)
    n = n + 1
    top[n] = {id = id, d = d, s = s, group = group, count = 0}
  end
  each_cell(function() return false end, take)
end

if mode == 's' then by_score()
elseif mode == 'd' then by_distance()
elseif mode == 'g' then by_group()
else everything() end

-- Display documents: one HMGET per group (in chunks).
local by_group_ids, docs = {}, {}
for i = 1, n do
  local ids = by_group_ids[top[i].group]
  if not ids then
    ids = {}
    by_group_ids[top[i].group] = ids
  end
  ids[#ids + 1] = top[i].id
end
for group, ids in pairs(by_group_ids) do
  for first = 1, #ids, 1000 do
    local chunk = {unpack(ids, first, math.min(first + 999, #ids))}
    local got = redis.call('HMGET', group .. 'd', unpack(chunk))
    for j = 1, #chunk do docs[chunk[j]] = got[j] or '' end
  end
end

local out = {'ok', cells_read, members_read}
for i = 1, n do
  local hit = top[i]
  out[#out + 1] = hit.id
  out[#out + 1] = struct.pack('<dd', hit.d, hit.s)
  out[#out + 1] = docs[hit.id]
  out[#out + 1] = hit.count
end
return out

-- The searches of nearby.lua (loaded after it and nearby_text.lua, in the same chunk), and
-- the dispatch to the one ARGV[2] names, and the reply.

-- -- top by score: best-first over cells, members in popularity order -------

local heap = {}
local function higher(i, j) return c_bound[i] > c_bound[j] end
local function push(i, value)
  c_bound[i] = value
  heap_push(heap, higher, i)
end
local function pop() return heap_pop(heap, higher) end

local function reachable(value)
  return n < limit or value * (1 + SLACK) >= top[n].s
end

-- The next members of cell i after those read (popularity descending): 4 at
-- first, twice as many each time after, at most READ.  (Reading by rank costs
-- Redis less than by score from a floor, and a cell's first few members are
-- usually all it takes: measured.)  Returns them and how many were asked.
local READ = 64
local function fetch(i)
  local off = c_off[i]
  local asked = c_step[i] or 4
  c_step[i] = math.min(asked * 2, READ)
  local got = redis.call('ZREVRANGE', set_key(i), off, off + asked - 1)
  if off == 0 then cells_read = cells_read + 1 end
  c_off[i] = off + #got
  return got, asked
end

-- Read cell i's next members that can reach the top; back on the heap when
-- more may follow.  A member whose bound cannot reach the top ends the read:
-- the rest have less popularity.
local function read_cell(i)
  local got, asked = fetch(i)
  local dec, tag = c_dec[i], c_tag[i]
  for k = 1, #got do
    local member = got[k]
    local lat, lng, listed, log_listed, cos_lat, rev, mass, code, length =
      unpack_head(HEAD_FORMAT, member)
    local popularity, log_boost, most = listed, log_listed, 1 + w * log_listed
    if mass ~= 0 then
      popularity = used_now(listed, mass)
      log_boost = log(1 + popularity)
      most = 1 + w * log(1 + used_bound(listed, mass))
    end
    -- reachable(dec * most), inline: this runs for every member read.  The
    -- members after this one have at most its bound.
    if n == limit and dec * most * (1 + SLACK) < top[n].s then break end
    members_read = members_read + 1
    local d = distance(lat, lng, cos_lat)
    if d <= radius then
      local s = decay(d) * (1 + w * log_boost)
      if n < limit or s >= top[n].s then
        local id, app = admit(member, code, length)
        if id then consider(offer_after, id, d, s, popularity, rev, app, tag) end
      end
    end
    if k == asked then push(i, dec * most) end
  end
  flush(offer_after, tag)
end

-- The top popularity of every set of the cells' groups bounds every cell not
-- parsed yet (they come nearest first): cells are parsed and put on the heap
-- only while that bound could still beat the heap's best or reach the top.
local function best_bound(of_groups)
  local best = nil
  for k = 1, #of_groups do
    local value = redis.call('HGET', of_groups[k] .. tkey, BOUND_FIELD)
    if value then
      value = tonumber(value)
      if not best or value > best then best = value end
    end
  end
  return best
end

-- The cells' own groups' bound, read once (the flat check below reads it first).
local groups_bound = false
local function cells_bound()
  if groups_bound == false then groups_bound = best_bound(groups) end
  return groups_bound
end

local function best_boost()
  local best = cells_bound()
  return best and boost(best)
end

local function by_score()
  local most = best_boost()
  if not most then return end
  while true do
    while next_dmin do
      local unparsed = decay(next_dmin) * most
      if not reachable(unparsed) or (#heap > 0 and unparsed <= c_bound[heap[1]]) then break end
      for _, i in ipairs(next_cells()) do
        local dec = decay(c_dmin[i])
        c_dec[i] = dec
        push(i, dec * boost(c_top[i]))
      end
    end
    if #heap == 0 or not reachable(c_bound[heap[1]]) then return end
    read_cell(pop())
  end
end

-- -- top by distance: cells nearest first, stop past the limit-th distance --

local function by_distance()
  each_cell(function(i) return n == limit and c_dmin[i] > top[n].d * (1 + SLACK) end,
    offer_after)
end

-- -- one per mini-app: every candidate counts ----------------------------

-- Every candidate: the posting path's, or every cell's.
local function each_candidate(visit)
  if posting_sets then
    each_posting(visit)
  else
    each_cell(function() return false end, visit)
  end
end

local function by_group()
  local best_of = {}
  local function tally(id, d, s, p, rev, app, tag)
    if app == '' then return end
    local hit = {id = id, d = d, s = s, p = p, rev = rev, tag = tag, count = 0}
    local held = best_of[app]
    if not held then
      best_of[app] = {best = hit, count = 1}
    else
      held.count = held.count + 1
      if better(hit, held.best) then held.best = hit end
    end
  end
  each_candidate(tally)
  for _, held in pairs(best_of) do
    local best = held.best
    best.count = held.count
    if after_cursor(best.s, best.p, best.d, best.id) then offer(best) end
  end
end

-- -- top by popularity: cells best-first by top popularity, then nearness --
--
-- A far cell may hold the most popular entity: every cell's top is read. The
-- cells wait on a heap by their bound (the popularity of the next member to
-- read) and, among equal bounds, by their distance bound, so that ties in
-- popularity (every listing without a figure has 0) are read nearest first.

local function p_higher(i, j)
  local a, b = c_bound[i], c_bound[j]
  if a ~= b then return a > b end
  return c_dmin[i] < c_dmin[j]
end


-- Read cell i's next members that can reach the top (popularity descending);
-- back on the heap when more may follow.
local function read_cell_p(i)
  local got, asked = fetch(i)
  local dmin, tag = c_dmin[i], c_tag[i]
  for k = 1, #got do
    local member = got[k]
    local lat, lng, listed, log_listed, cos_lat, rev, mass, code, length =
      unpack_head(HEAD_FORMAT, member)
    local popularity, log_boost, bound = listed, log_listed, listed
    if mass ~= 0 then
      popularity, bound = used_now(listed, mass), used_bound(listed, mass)
      log_boost = log(1 + popularity)
    end
    -- The members after this one have at most its bound.
    if not p_reachable(bound, dmin) then break end
    members_read = members_read + 1
    local d = distance(lat, lng, cos_lat)
    if d <= radius then
      local id, app = admit(member, code, length)
      if id then
        consider(offer_after, id, d, decay(d) * (1 + w * log_boost), popularity, rev, app, tag)
      end
    end
    if k == asked then
      c_bound[i] = bound
      heap_push(heap, p_higher, i)
    end
  end
  flush(offer_after, tag)
end

local function by_popularity()
  while next_dmin do
    for _, i in ipairs(next_cells()) do
      c_bound[i] = c_top[i]
      heap_push(heap, p_higher, i)
    end
  end
  while #heap > 0 and p_reachable(c_bound[heap[1]], c_dmin[heap[1]]) do
    read_cell_p(heap_pop(heap, p_higher))
  end
end

local function everything()
  limit = math.huge
  local function take(id, d, s, p, rev, app, tag)
    n = n + 1
    top[n] = {id = id, d = d, s = s, p = p, rev = rev, tag = tag, count = 0}
  end
  each_candidate(take)
end

-- -- every popularity 0 ---------------------------------------------------
--
-- When no member of the cells' groups has any popularity (every bound 0), the
-- score decreases with the distance alone and sort=popularity ties everywhere:
-- both orders are the distance's, and a top by distance (nearest cells first,
-- staged from small radii by the caller) is theirs, where reading by
-- popularity would read whole cells.  Modes s and p then answer {FLAT}; the
-- caller asks mode d with the query's order and, in ARGV[25], the tags of the
-- whole radius's groups, which that call finds still flat or answers {NOT_FLAT}.

local function groups_of(text)
  local found = {}
  for tag in string.gmatch(text, '[^\31]+') do found[#found + 1] = base .. '{' .. tag .. '}:' end
  return found
end

local flat_tags = ARGV[25] or ''
local names_top = nil
if parts == 'nca' then
  -- The best names from their sets (or each kind apart), kept aside; then the best
  -- categories and mini-apps, in a top of their own (merged below).
  if not posting_sets then return {SPLIT, gen} end
  each_posting(offer_after)
  names_top, top, n, slot_of = top, {}, 0, {}
  completes, read_fields = {false, true, true}, true
  if carried_completions() == 0 then mode = 'x' end
elseif parts == 'ca' then
  if carried_completions() == 0 then mode = 'x' end  -- else the cells find the rest
elseif posting_sets and mode ~= 'g' and mode ~= 'a' then
  each_posting(offer_after)
  mode = 'x'  -- answered
end
if (mode == 's' or mode == 'p') and cells_bound() == 0 then return {FLAT, gen} end
if mode == 'd' and flat_tags ~= '' and (best_bound(groups_of(flat_tags)) or 0) ~= 0 then
  return {NOT_FLAT, gen}
end

if mode == 's' then by_score()
elseif mode == 'd' then
  if ARGV[30] == '1' and apps and not texts then ROUTE.branches() else by_distance() end
elseif mode == 'p' then by_popularity()
elseif mode == 'g' then by_group()
elseif mode == 'a' then everything() end

if names_top then
  for _, hit in ipairs(top) do names_top[#names_top + 1] = hit end
  table.sort(names_top, better)
  top, n = names_top, math.min(#names_top, asked)
end

local out = {'ok', cells_read, members_read, gen}
for i = 1, n do
  local hit = top[i]
  out[#out + 1] = hit.id
  out[#out + 1] = struct.pack(FIGURES, hit.d, hit.s, hit.p, hit.rev, hit.tag)
  out[#out + 1] = completing and hit.app or hit.count
end
return out

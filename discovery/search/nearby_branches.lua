-- The nearest branches of the mini-apps a top by distance names (loaded after
-- nearby_text.lua, before nearby_modes.lua, in the same chunk; ARGV[30] '1' asks
-- for it: the caller judged that the circle stays where GEO sets reach).
--
-- Each group keeps the ids of each mini-app's entities there: a few in a field of
-- its BRANCH_HASH, read whole; more in a GEO set at their positions (BRANCHES).  A
-- mini-app whose GEO sets in the covering's groups hold few ids has them read
-- whole.  Otherwise each of its sets is read nearest first (GEOSEARCH ... ASC
-- COUNT, WITHDIST) in growing circles and counts, each id read once (its member,
-- as the cells' are), until what is left of every set lies
-- beyond the mini-app's nearest hit (distinct: one per mini-app) or the top's
-- last, or the radius is read.  Redis measures a GEO set's distances on a sphere
-- 0.03 % larger than ours, from the centre of each position's 52-bit cell (off by
-- less than a metre): an entity within the radius by our distance is within
-- radius * RATIO + SLIP by Redis's, and one Redis puts at least r away is at
-- least (r - SLIP) / RATIO away by ours.  So the answer is the cells' exactly.
--
-- FIRST, GROWTH: the first circle (m) and how much wider each next one is; COUNT:
-- the nearest ids asked of a set at first (four times as many each time a circle
-- holds more); WHOLE: the ids a mini-app's sets hold at most to be read whole.

ROUTE.GEO = {RATIO = 1.0003, SLIP = 2, FIRST = 100, GROWTH = 4, COUNT = 8, WHOLE = 32}

-- Read the next ids of a set (its group number g, key, circle r, count c) into
-- the top; set.covered: how near (by our distance) an id it has not given can be.
function ROUTE.branch_step(set, full, seen)
  local geo = ROUTE.GEO
  local got = redis.call('GEOSEARCH', set.key, 'FROMLONLAT', ARGV[5], ARGV[4], 'BYRADIUS',
    string.format('%.17g', set.r), 'm', 'ASC', 'COUNT', set.c, 'WITHDIST')
  cells_read = cells_read + 1
  local ids = {}
  for k = 1, #got do ids[k] = got[k][1] end
  read_ids(set.g, ids, 1, #ids, seen, offer_after)
  if #got == set.c then
    set.covered = (tonumber(got[#got][2]) - geo.SLIP) / geo.RATIO
    set.c = set.c * geo.GROWTH
  else
    set.covered = (set.r - geo.SLIP) / geo.RATIO
    set.done = set.r >= full
    set.r = math.min(set.r * geo.GROWTH, full)
  end
end

function ROUTE.branches()
  local geo = ROUTE.GEO
  local full = radius * geo.RATIO + geo.SLIP
  local seen = {}
  for app in pairs(apps) do
    local sets, total = {}, 0
    for g = 1, #groups do
      local few = redis.call('HGET', groups[g] .. BRANCH_HASH, app)
      if few then
        local ids = {}
        for id in string.gmatch(few, ITEM) do ids[#ids + 1] = id end
        read_ids(g, ids, 1, #ids, seen, offer_after)
      else
        local key = groups[g] .. BRANCHES .. app
        local count = redis.call('ZCARD', key)
        if count > 0 then
          sets[#sets + 1] = {g = g, key = key, r = math.min(geo.FIRST, full), c = geo.COUNT}
          total = total + count
        end
      end
    end
    if total <= geo.WHOLE then
      for _, set in ipairs(sets) do
        local ids = redis.call('ZRANGE', set.key, 0, -1)
        cells_read = cells_read + 1
        read_ids(set.g, ids, 1, #ids, seen, offer_after)
      end
      sets = {}
    end
    while #sets > 0 do
      local covered, open = math.huge, {}
      for _, set in ipairs(sets) do
        ROUTE.branch_step(set, full, seen)
        if not set.done then
          open[#open + 1] = set
          covered = math.min(covered, set.covered)
        end
      end
      local i = distinct and slot_of[app]
      if (i and top[i].d < covered) or (n == limit and top[n].d < covered) then break end
      sets = open
    end
  end
end

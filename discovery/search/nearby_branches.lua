-- The nearest branches of the mini-apps a top by distance names (loaded after
-- nearby_text.lua, before nearby_modes.lua, in the same chunk; ARGV[30] '1' asks
-- for it: the caller judged that the circle stays where GEO sets reach).
--
-- Each group keeps, per mini-app, a GEO set of its entities' ids at their
-- positions (BRANCHES).  For each mini-app named, its sets in the covering's
-- groups are searched in growing circles around the query's point (GEOSEARCH),
-- each id found read once (its member, as the cells' are), until the circle's
-- reach holds the mini-app's nearest hit (distinct: one per mini-app) or the
-- top's last, or the radius.  Redis measures a GEO set's distances on a sphere
-- 0.03 % larger than ours, from the centre of each position's 52-bit cell (off
-- by less than a metre): an entity within the radius by our distance is within
-- radius * RATIO + SLIP by Redis's, and one Redis puts beyond a circle of reach
-- r is beyond (r - SLIP) / RATIO by ours.  So the answer is the cells' exactly.

ROUTE.GEO = {RATIO = 1.0003, SLIP = 2, FIRST = 500, GROWTH = 4}

function ROUTE.branches()
  local geo = ROUTE.GEO
  local full = radius * geo.RATIO + geo.SLIP
  local seen = {}
  for app in pairs(apps) do
    local sets = {}
    for g = 1, #groups do
      local key = groups[g] .. BRANCHES .. app
      if redis.call('EXISTS', key) == 1 then sets[#sets + 1] = {g, key} end
    end
    local reach = math.min(geo.FIRST, full)
    while #sets > 0 do
      local circle = string.format('%.17g', reach)
      for _, set in ipairs(sets) do
        local ids = redis.call('GEOSEARCH', set[2], 'FROMLONLAT', ARGV[5], ARGV[4],
          'BYRADIUS', circle, 'm')
        cells_read = cells_read + 1
        read_ids(set[1], ids, 1, #ids, seen, offer_after)
      end
      -- Every branch of the app within `covered` by our distance has been read.
      local covered = (reach - geo.SLIP) / geo.RATIO
      local i = distinct and slot_of[app]
      if reach >= full or (i and top[i].d <= covered) or (n == limit and top[n].d <= covered) then
        break
      end
      reach = math.min(reach * geo.GROWTH, full)
    end
  end
end

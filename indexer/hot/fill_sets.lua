-- Add members to many cell sets in one call, and set each set's top in its t
-- hash (raising the hash's bound field).  A bulk fill's batch writes to
-- hundreds of small cell sets: one reply instead of one each.
--
-- ARGV: per set, its key, its t hash, its cell, n, then n score/member pairs.
local i = 1
local most = {}
while i <= #ARGV do
  local zkey, tkey, cell = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local last = i + 3 + 2 * tonumber(ARGV[i + 3])
  for first = i + 4, last, 4000 do
    redis.call('ZADD', zkey, unpack(ARGV, first, math.min(first + 3999, last)))
  end
  local top = redis.call('ZREVRANGE', zkey, 0, 0, 'WITHSCORES')[2]
  redis.call('HSET', tkey, cell, top)
  local value = tonumber(top)
  if not most[tkey] or value > most[tkey][1] then most[tkey] = {value, top} end
  i = last + 1
end
for tkey, top in pairs(most) do
  local bound = redis.call('HGET', tkey, BOUND_FIELD)
  if not bound or tonumber(bound) < top[1] then redis.call('HSET', tkey, BOUND_FIELD, top[2]) end
end
return 0

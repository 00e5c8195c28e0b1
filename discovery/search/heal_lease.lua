-- Take the healing lease of discovery/search/healing.py.
-- KEYS: the current generation's key, the building mark's key, the lease's key.
-- ARGV: the taker's token, the lease in ms, 'missing' (only when no generation is
-- current or building) or 'any'.
-- Returns 1 when the lease was taken, else 0.
if ARGV[3] == 'missing' and redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return 0 end
if redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0

-- Make generation ARGV[1] current if it is still the one building.
--
-- KEYS[1]  the current generation's key, KEYS[2]  the building generation's key
-- Returns the generation it replaces ('' when none), or nil when another build
-- took its place.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return nil end
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return old or ''

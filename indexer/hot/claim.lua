-- Mark a new generation (the counter's next number) building for ARGV[1] ms and
-- return it; nil when not marked.
--
-- KEYS[1]  the current generation's key, KEYS[2]  the building generation's key,
-- KEYS[3]  the counter of generations
-- ARGV[2]  'over' (in place of any build running), 'alone' (unless one runs) or
--          'missing' (unless one runs or a generation is current: the check and
--          the mark in one step, so that of the processes that find the index
--          missing at once, one builds)
-- ARGV[3]  the key prefix, ARGV[4] the new generation's usage bound factor (set
--          with the mark, before any write can reach the generation)
if ARGV[2] ~= 'over' and redis.call('EXISTS', KEYS[2]) == 1 then return false end
if ARGV[2] == 'missing' and redis.call('EXISTS', KEYS[1]) == 1 then return false end
local new = redis.call('INCR', KEYS[3])
redis.call('SET', ARGV[3] .. ':' .. new .. ':' .. USAGE_BOUND, ARGV[4])
redis.call('SET', KEYS[2], new, 'PX', ARGV[1])
return tostring(new)

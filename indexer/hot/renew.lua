-- Renew the building mark (KEYS[1]) of generation ARGV[1] for ARGV[2] ms, if it
-- is still its own.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0

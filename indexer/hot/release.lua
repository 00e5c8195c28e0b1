-- Stop marking generation ARGV[1] as building (KEYS[1]), unless another build
-- has taken its place.
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0

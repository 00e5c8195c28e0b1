-- The display document of one entity from the current generation, atomically.
--
-- ARGV[1]  key prefix, ARGV[2]  entity id
-- Returns {NO_GENERATION} without a generation, {'missing'} for an unknown or
-- deleted id, else {'ok', display JSON}.
local prefix, id = ARGV[1], ARGV[2]
local gen = redis.call('GET', prefix .. GEN_KEY)
if not gen then return {NO_GENERATION} end
local base = prefix .. ':' .. gen .. ':'
local held = redis.call('HGET', base .. LOC, id)
if not held then return {'missing'} end
local rev, tag = string.match(held, '^(%S+) (%S+)')
if not tag then return {'missing'} end
local doc = redis.call('HGET', base .. '{' .. tag .. '}:' .. DOCUMENTS, id)
if not doc then return {'missing'} end
return {'ok', doc}

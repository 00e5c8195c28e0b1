-- Count a batch of one cell set's members by kind and source.
--
-- KEYS[1]  a cell set of the coarsest indexed resolution (each entity of a
--          generation is in exactly one of them)
-- ARGV[1], ARGV[2]  the first and last rank to read (ZRANGE by rank)
--
-- A member's head is 51 bytes (six doubles, the kind's code at byte 49, the
-- id's length at bytes 50-51, little-endian), then the id and the text fields
-- available, seen_at, source, ... each after a \31 (indexer/hot/layout.py).
-- Returns {members read, kind code .. "\31" .. source, count, ...}.
local byte, match, sub = string.byte, string.match, string.sub
local members = redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[2])
local counts, order = {}, {}
for i = 1, #members do
  local member = members[i]
  local id_length = byte(member, 50) + 256 * byte(member, 51)
  local source = match(member, '^\31[^\31]*\31[^\31]*\31([^\31]*)', 52 + id_length) or ''
  local key = sub(member, 49, 49) .. '\31' .. source
  local n = counts[key]
  if not n then
    order[#order + 1] = key
    n = 0
  end
  counts[key] = n + 1
end
local out = {#members}
for _, key in ipairs(order) do
  out[#out + 1] = key
  out[#out + 1] = counts[key]
end
return out

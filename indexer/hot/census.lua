-- Count a batch of one cell set's members by kind and source.
--
-- KEYS[1]  a cell set of the coarsest indexed resolution (each entity of a
--          generation is in exactly one of them)
-- ARGV[1], ARGV[2]  the first and last rank to read (ZRANGE by rank)
--
-- A member's head holds the kind's code at KIND_AT and the id's length at
-- ID_LENGTH_AT (two bytes, little-endian); the id starts at ID_AT, the text
-- fields follow it (the header's names: indexer/hot/lua.py).
-- Returns {members read, kind code .. SEP .. source, count, ...}.
local byte, match, sub = string.byte, string.match, string.sub
local members = redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[2])
local counts, order = {}, {}
for i = 1, #members do
  local member = members[i]
  local id_length = byte(member, ID_LENGTH_AT) + 256 * byte(member, ID_LENGTH_AT + 1)
  local source = match(member, SOURCE_FIELD, ID_AT + id_length) or ''
  local key = sub(member, KIND_AT, KIND_AT) .. SEP .. source
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

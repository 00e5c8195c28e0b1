-- Count one batch of a generation's entities by kind and source.
--
-- ARGV[1]  the generation's loc key
-- ARGV[2]  the start of its group keys ("{prefix}:{gen}:")
-- ARGV[3]  HSCAN cursor, ARGV[4] HSCAN count
--
-- Reads one HSCAN batch of loc. A live entity's loc value is "rev tag5 cell5
-- ..." (a tombstone holds the rev alone); its member is read from the group of
-- its first cell, so that an entity kept in several groups counts once. A
-- member's head is 51 bytes (six doubles, the kind's code at byte 49, the id's
-- length at bytes 50-51, little-endian), then the id and the text fields
-- available, seen_at, source, ... each after a \31 (indexer/layout.py).
-- Like apply.lua it names its keys from ARGV: an operator's tool for one node.
-- Returns {next cursor, kind code .. "\31" .. source, count, ...}.
local call, byte, match, sub = redis.call, string.byte, string.match, string.sub
local loc, base = ARGV[1], ARGV[2]
local reply = call('HSCAN', loc, ARGV[3], 'COUNT', ARGV[4])
local fields = reply[2]
local counts, order = {}, {}
for i = 1, #fields, 2 do
  local tag = match(fields[i + 1], '^%S+ (%S+)')
  if tag then
    local member = call('HGET', base .. '{' .. tag .. '}:m', fields[i])
    if member then
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
  end
end
local out = {reply[1]}
for _, key in ipairs(order) do
  out[#out + 1] = key
  out[#out + 1] = counts[key]
end
return out

-- The display documents of a page's hits, each at the revision the search ranked it.
--
-- ARGV[1]  key prefix, ARGV[2]  the generation the search read,
-- ARGV[3]  the hash tags of the search's groups (SEP between them),
-- then 3 fields per document: id, revision, the number of its tag in ARGV[3]
-- (from 1).  The ids are distinct.
-- Returns the documents in order, or false when an id is no longer at the
-- revision asked (or its document is gone): the search runs again.

local call, tonumber, unpack = redis.call, tonumber, unpack
local match, gmatch = string.match, string.gmatch

local base = ARGV[1] .. ':' .. ARGV[2] .. ':'
local tags = {}
for tag in gmatch(ARGV[3], ITEM) do tags[#tags + 1] = tag end

local ids, revs, by_tag, order = {}, {}, {}, {}
for i = 4, #ARGV, 3 do
  local n = #ids + 1
  ids[n], revs[n] = ARGV[i], tonumber(ARGV[i + 1])
  local t = tonumber(ARGV[i + 2])
  local positions = by_tag[t]
  if not positions then
    positions = {}
    by_tag[t] = positions
    order[#order + 1] = t
  end
  positions[#positions + 1] = n
end
if #ids == 0 then return {} end

local locs = call('HMGET', base .. LOC, unpack(ids))
for n = 1, #ids do
  local held = locs[n]
  if not held or tonumber(match(held, '^(%S+)')) ~= revs[n] then return false end
end

local docs = {}
for _, t in ipairs(order) do
  local positions, names = by_tag[t], {}
  for k = 1, #positions do names[k] = ids[positions[k]] end
  local found = call('HMGET', base .. '{' .. tags[t] .. '}:' .. DOCUMENTS, unpack(names))
  for k = 1, #positions do
    if not found[k] then return false end
    docs[positions[k]] = found[k]
  end
end
return docs

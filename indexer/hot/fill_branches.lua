-- A bulk fill's branches (indexer/hot/fill_batch.py), after its members: per
-- group and mini-app, the ids that join it (writers.lua's write_branches).
--
-- ARGV: per mini-app of a group, the group's key base, the slug, n, then n ids.
local changes, i = {}, 1
while i <= #ARGV do
  local change = branch_change(changes, ARGV[i], ARGV[i + 1])
  local last = i + 2 + tonumber(ARGV[i + 2])
  for k = i + 3, last do change.join[#change.join + 1] = ARGV[k] end
  i = last + 1
end
write_branches(changes)
return 0

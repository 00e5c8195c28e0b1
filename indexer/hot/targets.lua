-- The generations a writer's call writes to, from its ARGV[2]: 'live' (the
-- current generation and the one being rebuilt, if any) or a generation
-- number.  Empty when 'live' finds no generation (NO_GENERATION for the caller).
local function target_generations(prefix, target)
  if target ~= 'live' then return {target} end
  local gens = {}
  local current = redis.call('GET', prefix .. GEN_KEY)
  local building = redis.call('GET', prefix .. BUILDING_KEY)
  if current then gens[#gens + 1] = current end
  if building and building ~= current then gens[#gens + 1] = building end
  return gens
end


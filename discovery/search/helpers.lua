-- Helpers of nearby.lua, put before it when it is loaded (after the header of
-- indexer/hot/lua.py, whose names they use).

-- The set of a list argument's items (items joined by SEP), nil when empty.
local function set_of(text)
  if text == '' then return nil end
  local set = {}
  for part in string.gmatch(text, ITEM) do set[part] = true end
  return set
end

-- A list argument's items, in order, nil when empty.
local function list_of(text)
  if text == '' then return nil end
  local list = {}
  for part in string.gmatch(text, ITEM) do list[#list + 1] = part end
  return list
end

-- A list argument of name, number, name, number ... as a map.
local function cutoffs_of(text)
  local map, key = {}, nil
  for part in string.gmatch(text, ITEM) do
    if key then map[key] = tonumber(part); key = nil else key = part end
  end
  return map
end

-- Ids compare as bytes, whatever the server's locale.
local function bytes_less(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- A heap of numbers i in `heap`, the first the one that `higher(i, j)` puts
-- before all others: push i.
local function heap_push(heap, higher, i)
  heap[#heap + 1] = i
  local at = #heap
  while at > 1 do
    local up = math.floor(at / 2)
    if not higher(i, heap[up]) then break end
    heap[up], heap[at] = heap[at], heap[up]
    at = up
  end
end

-- Take the first number off such a heap.
local function heap_pop(heap, higher)
  local first = heap[1]
  local last = table.remove(heap)
  local size = #heap
  if size > 0 then
    heap[1] = last
    local at = 1
    while true do
      local l, r, m = 2 * at, 2 * at + 1, at
      if l <= size and higher(heap[l], heap[m]) then m = l end
      if r <= size and higher(heap[r], heap[m]) then m = r end
      if m == at then break end
      heap[m], heap[at] = heap[at], heap[m]
      at = m
    end
  end
  return first
end

-- paging.lua - cursor positions of the read scripts page and scan.
--
-- Paging positions. Index scores are not unique (two batches stored in the
-- same millisecond can share one), so a page ends at a (score, id) pair and
-- the next page starts right after that pair: members of equal score sort by
-- id (bytewise), newest first means descending. after(key, s, id) is the
-- offset, counted from the first member at score <= s (BYSCORE REV), of the
-- first member past (s, id): from the cursor's own rank while it is still in
-- the set, else by counting the ties at s above id (at most TIES looked at).
local TIES = 10000
local function above(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x > y end
  end
  return #a > #b
end
local function after(key, s, id)
  local cur = id ~= '' and redis.call('ZSCORE', key, id)
  if cur and tonumber(cur) == tonumber(s) then
    return redis.call('ZREVRANK', key, id) + 1 - redis.call('ZCOUNT', key, '(' .. s, '+inf')
  end
  local skip = 0
  for _, m in ipairs(redis.call('ZRANGE', key, s, s, 'BYSCORE', 'REV', 'LIMIT', 0, TIES)) do
    if above(m, id) then skip = skip + 1 end
  end
  return skip
end

-- scan.lua - one page of the jobs in a state, by a bounded scan (redis_read_list).
--
-- KEYS: common. ARGV: score id (the cursor, as in lua_page) state limit budget.
-- Reads all newest first past the cursor, at most budget jobs, for the ones
-- in state. Returns {{id, score, ...}, next_id, next_score}: at most limit of
-- them, and the position to go on from (next_id false at the end of all).
-- Writes nothing.

--@include lib/prelude.lua
--@include lib/paging.lua

local s, cid, want, limit, budget = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]),
  tonumber(ARGV[5])
local from, skip = '+inf', 0
if s ~= '' then from = s; skip = after(ALL, s, cid) end
local out, left, last_id, last_s = {}, budget, false, false
while left > 0 do
  local ask = math.min(SLICE, left)
  local chunk = redis.call('ZRANGE', ALL, from, '-inf', 'BYSCORE', 'REV', 'LIMIT', skip, ask,
                           'WITHSCORES')
  local ids = {}
  for i = 1, #chunk, 2 do ids[#ids + 1] = chunk[i] end
  local st = mget('HMGET', COL.s, ids)
  for j, id in ipairs(ids) do
    if st[j] == want then
      if #out == 2 * limit then return {out, out[#out - 1], out[#out]} end
      out[#out + 1] = id; out[#out + 1] = chunk[2 * j]
    end
    last_id, last_s = id, chunk[2 * j]
  end
  if #ids < ask then return {out, false} end
  skip = skip + #ids
  left = left - #ids
end
return {out, last_id, last_s}

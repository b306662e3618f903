-- trim.lua - retention of finished and dead jobs (redis_write_trim).
--
-- KEYS: common, zset st:<state of zset's jobs> trimmed (zset is finished or dead).
-- ARGV: age_ms scale max_count batch.
-- Deletes the jobs of zset scored <= (now - age) * scale, then the oldest
-- beyond max_count, at most batch in all. Returns how many.

--@include lib/prelude.lua

local zset, st_z, trimmed = unpack(KEYS, NC + 1, NC + 3)
local batch = tonumber(ARGV[4])
local cutoff = (now_ms() - tonumber(ARGV[1])) * tonumber(ARGV[2])
local ids = redis.call('ZRANGE', zset, '-inf', cutoff, 'BYSCORE', 'LIMIT', 0, batch)
local excess = redis.call('ZCARD', zset) - #ids - tonumber(ARGV[3])
if excess > 0 and #ids < batch then
  -- the members by age are the lowest ranks: the next oldest follow them
  local more = redis.call('ZRANGE', zset, #ids, #ids + math.min(excess, batch - #ids) - 1)
  for _, id in ipairs(more) do ids[#ids + 1] = id end
end
if #ids == 0 then return 0 end
for c = 1, NCOL do bulk('HDEL', KEYS[c], ids) end
bulk('ZREM', zset, ids); bulk('ZREM', ALL, ids); bulk('ZREM', st_z, ids)
redis.call('INCRBY', trimmed, #ids)
return #ids

-- bury.lua - makes unreadable leased jobs dead (redis_write_fetch).
--
-- KEYS: common, plist st:dead failed seq running. ARGV: why, then the ids.
-- The running jobs among ids that plist holds become dead at once, their
-- attempt counted and why as their error (their stored record cannot be
-- read: running them again would fail the same way). Returns how many.

--@include lib/prelude.lua

local plist, st_dead, failed, seqk, n_run = unpack(KEYS, NC + 1, NC + 5)
local ids = {}
for i = 2, #ARGV do ids[i - 1] = ARGV[i] end
local held, st = mget('HMGET', plist, ids), mget('HMGET', COL.s, ids)
local take, seen = {}, {}
for i, id in ipairs(ids) do
  if held[i] and st[i] == 'running' and not seen[id] then take[#take + 1] = id end
  seen[id] = true
end
local n = #take
if n == 0 then return 0 end
local as, cs = mget('HMGET', COL.a, take), mget('ZMSCORE', ALL, take)
local now = now_ms()
local seq = redis.call('INCRBY', seqk, n) - n
local sts, aset, es, zstdead, zdead = {}, {}, {}, {}, {}
for i, id in ipairs(take) do
  local j = 2 * i
  sts[j - 1] = id; sts[j] = 'dead'
  aset[j - 1] = id; aset[j] = FMT('%d', (tonumber(as[i]) or 0) + 1)
  es[j - 1] = id; es[j] = ARGV[1]
  zstdead[j - 1] = cs[i] or 0; zstdead[j] = id
  zdead[j - 1] = FMT('%d', now * 1000 + (seq + i) % 1000); zdead[j] = id
end
bulk('HDEL', plist, take); bulk('HSET', COL.s, sts); bulk('HSET', COL.a, aset)
bulk('HSET', COL.e, es); bulk('ZADD', st_dead, zstdead); bulk('ZADD', DEAD, zdead)
redis.call('DECRBY', n_run, n)
redis.call('INCRBY', failed, n)
return n

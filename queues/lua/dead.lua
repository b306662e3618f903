-- dead.lua - retries or deletes one dead job (redis_write_dead_op).
--
-- KEYS: common, st:dead ready enqueued. ARGV: mode(retry|delete) id.
-- Returns {0} unknown, {2, state} not dead, {1, record} retried, {1} deleted.

--@include lib/prelude.lua

local st_dead, ready, n_enq = unpack(KEYS, NC + 1, NC + 3)
local id = ARGV[2]
local st = redis.call('HGET', COL.s, id)
if not st then return {0} end
if st ~= 'dead' then return {2, st} end
redis.call('ZREM', DEAD, id)
redis.call('ZREM', st_dead, id)
if ARGV[1] == 'delete' then
  for c = 1, NCOL do redis.call('HDEL', KEYS[c], id) end
  redis.call('ZREM', ALL, id)
  return {1}
end
redis.call('HSET', COL.s, id, 'enqueued')
redis.call('HDEL', COL.a, id)
redis.call('HDEL', COL.r, id)
redis.call('LPUSH', ready, id)
redis.call('INCR', n_enq)
return {1, records({id})[1]}

-- cancel.lua - cancels one job (redis_write_cancel).
--
-- KEYS: common, sched st:scheduled st:retrying st:cancelled enqueued. ARGV: id.
-- Returns {0} unknown, {2, state} not cancellable, {1, record} cancelled.
-- An enqueued id stays in ready: fetching it (or gauges.lua) finds it cancelled and drops it.

--@include lib/prelude.lua

local sched, st_sched, st_retry, st_cancel, n_enq = unpack(KEYS, NC + 1, NC + 5)
local id = ARGV[1]
local st = redis.call('HGET', COL.s, id)
if not st then return {0} end
if st ~= 'scheduled' and st ~= 'enqueued' and st ~= 'retrying' then return {2, st} end
local score = redis.call('ZSCORE', ALL, id) or 0
redis.call('HSET', COL.s, id, 'cancelled')
if st == 'enqueued' then
  redis.call('DECR', n_enq)
else
  redis.call('ZREM', st == 'scheduled' and st_sched or st_retry, id)
  redis.call('ZREM', sched, id)
end
redis.call('ZADD', st_cancel, score, id)
redis.call('ZADD', FIN, now_ms(), id)
return {1, records({id})[1]}

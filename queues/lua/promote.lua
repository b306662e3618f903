-- promote.lua - moves due scheduled and retrying jobs to ready (redis_write_promote).
--
-- KEYS: common, sched ready st:scheduled st:retrying enqueued. ARGV: batch.
-- Moves at most batch ids that are due now to ready. Returns how many.

--@include lib/prelude.lua

local sched, ready, st_sched, st_retry, n_enq = unpack(KEYS, NC + 1, NC + 5)
local ids = redis.call('ZRANGE', sched, '-inf', now_ms(), 'BYSCORE', 'LIMIT', 0,
                       tonumber(ARGV[1]))
if #ids == 0 then return 0 end
local st = mget('HMGET', COL.s, ids)
local from_s, from_r, sts, push = {}, {}, {}, {}
for i, id in ipairs(ids) do
  if st[i] == 'scheduled' or st[i] == 'retrying' then
    local from = st[i] == 'scheduled' and from_s or from_r
    from[#from + 1] = id
    sts[#sts + 1] = id; sts[#sts + 1] = 'enqueued'; push[#push + 1] = id
  end
end
bulk('ZREM', sched, ids); bulk('ZREM', st_sched, from_s); bulk('ZREM', st_retry, from_r)
bulk('HSET', COL.s, sts); bulk('LPUSH', ready, push)
if #push > 0 then redis.call('INCRBY', n_enq, #push) end
return #push

-- requeue.lua - gives leases back to ready (redis_write_give_back, _release_strays).
--
-- KEYS: common, plist ready st:dead failed seq orphans enqueued running.
-- ARGV: mode(release|abandon) default_max pid why, then the ids.
-- Takes the ids out of plist; the running ones go back to ready (or dead).
-- Returns {how many jobs went back to ready or dead, how many of them went dead}:
-- the process that ran it counts them in its metrics.

--@include lib/prelude.lua

local plist, ready, st_dead, failed, seqk, orphans, n_enq, n_run = unpack(KEYS, NC + 1, NC + 8)
local NA = 4
local abandon, dmax, pid, why = ARGV[1] == 'abandon', tonumber(ARGV[2]), ARGV[3], ARGV[4]
local ids = {}
for i = NA + 1, #ARGV do ids[i - NA] = ARGV[i] end
local held = mget('HMGET', plist, ids)
local st, as, ms = mget('HMGET', COL.s, ids), mget('HMGET', COL.a, ids), mget('HMGET', COL.m, ids)
local fate, seen, dying = {}, {}, {}
for i, id in ipairs(ids) do
  if held[i] and not seen[id] then
    seen[id] = true
    fate[i] = 'gone'
    if st[i] == 'running' then
      fate[i] = 'back'
      local max = tonumber(ms[i]) or 0
      if max <= 0 then max = dmax end
      if abandon and (tonumber(as[i]) or 0) + 1 >= max then
        fate[i] = 'dead'; dying[#dying + 1] = id
      end
    end
  end
end
local cs = mget('ZMSCORE', ALL, dying)
local now = now_ms()
local seq = #dying > 0 and redis.call('INCRBY', seqk, #dying) - #dying or 0
local gone, back, sts, aset, es, zstdead, zdead, nrun, nd = {}, {}, {}, {}, {}, {}, {}, 0, 0
for i, id in ipairs(ids) do
  if fate[i] then gone[#gone + 1] = id end
  if fate[i] == 'back' or fate[i] == 'dead' then
    nrun = nrun + 1
    if abandon then
      aset[#aset + 1] = id; aset[#aset + 1] = (tonumber(as[i]) or 0) + 1
      es[#es + 1] = id; es[#es + 1] = why
    end
    if fate[i] == 'dead' then
      seq = seq + 1; nd = nd + 1
      sts[#sts + 1] = id; sts[#sts + 1] = 'dead'
      zstdead[#zstdead + 1] = cs[nd] or 0; zstdead[#zstdead + 1] = id
      zdead[#zdead + 1] = now * 1000 + seq % 1000; zdead[#zdead + 1] = id
    else
      sts[#sts + 1] = id; sts[#sts + 1] = 'enqueued'; back[#back + 1] = id
    end
  end
end
bulk('HDEL', plist, gone); bulk('HSET', COL.s, sts); bulk('HSET', COL.a, aset)
bulk('HSET', COL.e, es); bulk('ZADD', st_dead, zstdead); bulk('ZADD', DEAD, zdead)
bulk('RPUSH', ready, back)
if #back > 0 then redis.call('INCRBY', n_enq, #back) end
if nrun > 0 then redis.call('DECRBY', n_run, nrun) end
if abandon and nrun > 0 then redis.call('INCRBY', failed, nrun) end
if redis.call('HLEN', plist) == 0 then redis.call('SREM', orphans, pid) end
return {nrun, nd}

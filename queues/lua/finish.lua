-- finish.lua - writes the outcomes of a batch of runs (redis_write_finish_batch).
--
-- KEYS: common, plist running st:retrying st:dead sched processed failed seq.
-- ARGV: per run: id token next attempts delay_ms error.
-- Returns per run 1, or 0 when the token is not the job's lease in plist
-- (stale: nothing written for it).

--@include lib/prelude.lua

local plist, n_run, st_retry, st_dead, sched, processed, failed, seqk =
  unpack(KEYS, NC + 1, NC + 8)
local W = 6
local n = #ARGV / W
local ids = {}
for i = 1, n do ids[i] = ARGV[1 + (i - 1) * W] end
local held = mget('HMGET', plist, ids)
local out, gone, rare, seen, ng, nr, ndead = {}, {}, {}, {}, 0, 0, 0
for i = 1, n do
  local a, id = (i - 1) * W, ids[i]
  if held[i] == ARGV[a + 2] and not seen[id] then
    seen[id] = true
    out[i] = 1; ng = ng + 1; gone[ng] = i
    local nxt = ARGV[a + 3]
    if nxt ~= 'succeeded' then nr = nr + 1; rare[nr] = id end
    if nxt == 'dead' then ndead = ndead + 1 end
  else
    out[i] = 0
  end
end
if ng == 0 then return out end
local score = {}
if nr > 0 then
  local cs = mget('ZMSCORE', ALL, rare)
  for j = 1, nr do score[rare[j]] = cs[j] or 0 end
end
local now = now_ms()
local nows = FMT('%d', now)
local seq = ndead > 0 and redis.call('INCRBY', seqk, ndead) - ndead or 0
local hd, sts, as, es, rs, zfin, zretry, zsched, zstdead, zdead = {}, {}, {}, {}, {}, {}, {}, {}, {}, {}
local ke, kf, kr, kd, nok = 0, 0, 0, 0, 0
for g = 1, ng do
  local i = gone[g]
  local a, id, j = (i - 1) * W, ids[i], 2 * g
  local nxt = ARGV[a + 3]
  hd[g] = id; sts[j - 1] = id; sts[j] = nxt; as[j - 1] = id; as[j] = ARGV[a + 4]
  if ARGV[a + 6] ~= '' then es[ke + 1] = id; es[ke + 2] = ARGV[a + 6]; ke = ke + 2 end
  if nxt == 'succeeded' then
    zfin[kf + 1] = nows; zfin[kf + 2] = id; kf = kf + 2; nok = nok + 1
  elseif nxt == 'retrying' then
    local due = FMT('%d', now + tonumber(ARGV[a + 5]))
    rs[kr + 1] = id; rs[kr + 2] = due; zretry[kr + 1] = score[id]; zretry[kr + 2] = id
    zsched[kr + 1] = due; zsched[kr + 2] = id; kr = kr + 2
  else
    seq = seq + 1
    zstdead[kd + 1] = score[id]; zstdead[kd + 2] = id
    zdead[kd + 1] = FMT('%d', now * 1000 + seq % 1000); zdead[kd + 2] = id; kd = kd + 2
  end
end
bulk('HDEL', plist, hd); bulk('HSET', COL.s, sts); bulk('HSET', COL.a, as)
bulk('HSET', COL.e, es); bulk('HSET', COL.r, rs); bulk('ZADD', FIN, zfin)
bulk('ZADD', st_retry, zretry); bulk('ZADD', sched, zsched); bulk('ZADD', st_dead, zstdead)
bulk('ZADD', DEAD, zdead)
redis.call('DECRBY', n_run, ng)
if nok > 0 then redis.call('INCRBY', processed, nok) end
if nok < ng then redis.call('INCRBY', failed, ng - nok) end
return out

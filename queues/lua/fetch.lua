-- fetch.lua - leases the next jobs of ready (redis_write_fetch).
--
-- KEYS: common, ready plist paused fence enqueued running. ARGV: n.
-- Takes up to n ids off the right of ready (oldest first) and leases the
-- enqueued ones, all under one new fencing token. Returns -1 (paused:
-- nothing taken), or {token, now, then per lease: id view attempts}: what a
-- run needs (its last error and run_at do not matter to it).

--@include lib/prelude.lua

local ready, plist, paused, fence, n_enq, n_run = unpack(KEYS, NC + 1, NC + 6)
if redis.call('EXISTS', paused) == 1 then return -1 end
local got = redis.call('LRANGE', ready, -tonumber(ARGV[1]), -1)
local k = #got
if k == 0 then return {} end
local ids = {}
for i = 1, k do ids[i] = got[k + 1 - i] end
local st = mget('HMGET', COL.s, ids)
local take, seen, nt = {}, {}, 0
for i = 1, k do
  local id = ids[i]
  -- cancelled, deleted, or a second entry of a job already taken
  if st[i] == 'enqueued' and not seen[id] then nt = nt + 1; take[nt] = id end
  seen[id] = true
end
redis.call('LTRIM', ready, 0, -k - 1)
if nt == 0 then return {} end
local now = now_ms()
local tok = redis.call('INCR', fence)
local toks, nows = FMT('%d', tok), FMT('%d', now)
local ss, ts, bs = {}, {}, {}
for i = 1, nt do
  local id, j = take[i], 2 * i
  ss[j - 1] = id; ss[j] = 'running'; ts[j - 1] = id; ts[j] = toks; bs[j - 1] = id; bs[j] = nows
end
bulk('HSET', COL.s, ss); bulk('HSET', plist, ts); bulk('HSET', COL.b, bs)
redis.call('DECRBY', n_enq, nt)
redis.call('INCRBY', n_run, nt)
local v, a = mget('HMGET', COL.v, take), mget('HMGET', COL.a, take)
local out = {tok, now}
for i = 1, nt do
  out[3 * i] = take[i]; out[3 * i + 1] = v[i]; out[3 * i + 2] = a[i]
end
return out

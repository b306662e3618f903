-- enqueue.lua - stores a batch of submitted jobs (redis_write_enqueue).
--
-- KEYS: common, ready sched st:scheduled enqueued seq, and with max_depth
-- st:retrying drain.
-- ARGV: not_after (Redis ms, 0 = none); with max_depth (only with its two
-- keys) max_depth, the number of parts P and P part sizes; then per job: id
-- view state run_at created_ms max_attempts. A negative run_at -N is a
-- delay: N ms from Redis's now. (Without max_depth none of its keys and
-- arguments are sent: each argument costs the caller to format, and this
-- script runs once per submission batch.)
-- Parts are the submissions a batch is made of, in order: under max_depth
-- each part is admitted or refused whole, by whether its new jobs (replays
-- do not count) still fit under max_depth after the parts admitted before it.
-- Returns per job 0 (stored), the existing record (replayed) or -S (refused
-- for max_depth: retry in S seconds, 1..60, from the recent drain rate); an
-- error when it runs after not_after: the caller has answered 503 by then (a
-- Redis that was frozen), and a 503 must mean "not stored".

--@include lib/prelude.lua

local ready, sched, st_sched, n_enq, seqk, st_retry, drain = unpack(KEYS, NC + 1, NC + 7)
local W, A, max_depth, P = 6, 2, 0, 0
if st_retry then max_depth, P = tonumber(ARGV[2]), tonumber(ARGV[3]); A = 4 + P end
local n = (#ARGV - A + 1) / W
local not_after, now = tonumber(ARGV[1]), now_ms()
if not_after > 0 and now > not_after then
  return redis.error_reply('LATE the submission reached Redis after its deadline')
end
local ids = {}
for i = 1, n do ids[i] = ARGV[A + (i - 1) * W] end
local known = mget('HMGET', COL.s, ids)
local refused, admitted = {}, {}
if max_depth > 0 then
  local depth = (tonumber(redis.call('GET', n_enq)) or 0) + redis.call('ZCARD', st_sched) +
    redis.call('ZCARD', st_retry)
  local rate = false
  local first = 1
  for p = 1, P do
    local last = first + tonumber(ARGV[3 + p]) - 1
    local fresh, mine = 0, {}
    for i = first, last do
      local id = ids[i]
      if not known[i] and not admitted[id] and not mine[id] then
        fresh = fresh + 1; mine[id] = true
      end
    end
    if fresh > 0 and depth + fresh > max_depth then
      -- Retry-After: the time the recent drain rate (starts counted by
      -- fetch in two windows of 5 s) takes to make room, 1..60 s.
      if not rate then
        local d = redis.call('HMGET', drain, 't', 'c', 'p')
        local dt = tonumber(d[1])
        rate = 0
        if dt and now - dt < 10000 then
          rate = ((tonumber(d[2]) or 0) + (tonumber(d[3]) or 0)) * 1000 / (now - dt + 5000)
        end
      end
      local wait = 60
      if rate > 0 then
        wait = math.min(60, math.max(1, math.ceil((depth + fresh - max_depth) / rate)))
      end
      for i = first, last do refused[i] = -wait end
    else
      depth = depth + fresh
      for id in pairs(mine) do admitted[id] = true end
    end
    first = last + 1
  end
end
local seq = redis.call('INCRBY', seqk, n) - n
local vs, ss, ms, rs, zall, zst, zsch, push, out, old, seen = {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}
local kv, km, kr, ks, kp, ko = 0, 0, 0, 0, 0, 0
for i = 1, n do
  local a, id = A + (i - 1) * W, ids[i]
  if refused[i] then
    out[i] = refused[i]
  elseif known[i] or seen[id] then
    ko = ko + 1; old[ko] = i; out[i] = false
  else
    seen[id] = true
    local st, run_at = ARGV[a + 2], ARGV[a + 3]
    if string.byte(run_at, 1) == 45 then
      run_at = FMT('%d', now - tonumber(run_at)); st = 'scheduled'
    end
    local score = FMT('%d', tonumber(ARGV[a + 4]) * 1000 + (seq + i) % 1000)
    vs[kv + 1] = id; vs[kv + 2] = ARGV[a + 1]; ss[kv + 1] = id; ss[kv + 2] = st
    zall[kv + 1] = score; zall[kv + 2] = id; kv = kv + 2
    if ARGV[a + 5] ~= '0' then ms[km + 1] = id; ms[km + 2] = ARGV[a + 5]; km = km + 2 end
    if run_at ~= '0' then rs[kr + 1] = id; rs[kr + 2] = run_at; kr = kr + 2 end
    if st == 'scheduled' then
      zst[ks + 1] = score; zst[ks + 2] = id; zsch[ks + 1] = run_at; zsch[ks + 2] = id
      ks = ks + 2
    else
      kp = kp + 1; push[kp] = id
    end
    out[i] = 0
  end
end
bulk('HSET', COL.v, vs); bulk('HSET', COL.s, ss); bulk('HSET', COL.m, ms)
bulk('HSET', COL.r, rs); bulk('ZADD', ALL, zall); bulk('ZADD', st_sched, zst)
bulk('ZADD', sched, zsch); bulk('LPUSH', ready, push)
if kp > 0 then redis.call('INCRBY', n_enq, kp) end
if ko > 0 then
  local oids = {}
  for j = 1, ko do oids[j] = ids[old[j]] end
  local recs = records(oids)
  for j = 1, ko do out[old[j]] = recs[j] end
end
return out

-- fetch.lua - leases the next jobs of ready (redis_write_fetch).
--
-- KEYS: common, ready plist paused fence enqueued running; with any limit
-- also rate drain procs orphans, then (with max_running) the lease sets of
-- the processes named in ARGV. ARGV: n; with any limit also rate_t rate_tau
-- (microseconds: the interval between two starts and the burst tolerance,
-- GCRA; 0 0 = no rate limit), max_running (0 = none), drain (1: count the
-- starts for max_depth's Retry-After), then (with max_running) the ids of
-- every live or orphaned process. Without limits none of these is sent:
-- each argument costs formatting on every fetch.
-- Takes up to n ids off the right of ready (oldest first), fewer when the
-- rate or max_running allows fewer, and leases the enqueued ones, all under
-- one new fencing token. Returns -1 (paused: nothing taken); -2 (the
-- processes given are not those of procs and orphans: nothing taken, ask
-- again with the right ones); {'WAIT', ms, 'rate'|'running'} (the rate or
-- max_running allows no start now: nothing taken, ms until one may be; for
-- max_running a polling interval, since no one knows when a run ends); or
-- {token, now, then
-- per lease: id view attempts}: what a run needs (its last error and run_at
-- do not matter to it).

--@include lib/prelude.lua

local ready, plist, paused, fence, n_enq, n_run, ratek, drain, procs, orphans =
  unpack(KEYS, NC + 1, NC + 10)
local rate_t, rate_tau, max_run, count_drain = 0, 0, 0, false
if #ARGV > 1 then
  rate_t, rate_tau = tonumber(ARGV[2]), tonumber(ARGV[3])
  max_run, count_drain = tonumber(ARGV[4]), ARGV[5] == '1'
end
local FIRST_PID, RUN_WAIT_MS = 6, 50
if redis.call('EXISTS', paused) == 1 then return -1 end
local want = tonumber(ARGV[1])
if max_run > 0 then
  -- Running jobs are the leases of every process, live or orphaned (a dead
  -- process's slots come back when a reaper takes its leases back).
  local known, nk = {}, 0
  for _, p in ipairs(redis.call('SUNION', procs, orphans)) do known[p] = true; nk = nk + 1 end
  if nk ~= #ARGV - FIRST_PID + 1 then return -2 end
  local running = 0
  for i = FIRST_PID, #ARGV do
    if not known[ARGV[i]] then return -2 end
    running = running + redis.call('HLEN', KEYS[NC + 11 + i - FIRST_PID])
  end
  if running >= max_run then return {'WAIT', RUN_WAIT_MS, 'running'} end
  want = math.min(want, max_run - running)
end
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = now_us
if rate_t > 0 then
  -- GCRA: a start is allowed while the theoretical arrival time stays within
  -- the burst tolerance of now.
  tat = math.max(tonumber(redis.call('GET', ratek) or 0), now_us)
  local allowed = math.floor((now_us + rate_tau + rate_t - tat) / rate_t)
  if allowed < 1 then
    return {'WAIT', math.ceil((tat - rate_tau - now_us) / 1000), 'rate'}
  end
  want = math.min(want, allowed)
end
local got = redis.call('LRANGE', ready, -want, -1)
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
local now = math.floor(now_us / 1000)
if rate_t > 0 then
  tat = tat + nt * rate_t
  redis.call('SET', ratek, FMT('%d', tat), 'PX', math.ceil((tat - now_us) / 1000) + 1000)
end
if count_drain then
  -- Two windows of DRAIN_MS: c starts since t, p in the window before.
  local DRAIN_MS = 5000
  local d = redis.call('HMGET', drain, 't', 'c')
  local dt, dc = tonumber(d[1]), tonumber(d[2]) or 0
  if not dt or now - dt >= 2 * DRAIN_MS then
    redis.call('HSET', drain, 't', now, 'c', nt, 'p', 0)
  elseif now - dt >= DRAIN_MS then
    redis.call('HSET', drain, 't', now, 'c', nt, 'p', dc)
  else
    redis.call('HINCRBY', drain, 'c', nt)
  end
  redis.call('PEXPIRE', drain, 4 * DRAIN_MS)
end
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

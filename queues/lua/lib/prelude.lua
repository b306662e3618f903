-- prelude.lua - the common head of every script but beat and orphan
-- (a script takes it with "--@include lib/prelude.lua"; queues/lua/embed.sh).
--
-- Rules every script follows: all keys it touches come in KEYS (the common
-- keys first: the job columns, all, finished, dead); it reads and checks
-- everything before its first write (a script that fails half-way keeps its
-- writes); it never decodes a job's JSON (the view is an opaque string); it
-- loops only over what it was given or read with a bound, and unpacks at
-- most SLICE arguments into one redis.call (Lua's stack is small).
--
-- Speed: starting a script and each redis.call cost about a microsecond, so
-- a script handles its whole batch with one call per column or key
-- (HMGET/HSET of many fields, ZADD/LPUSH of many members), never one call
-- per job; the per-job Lua is table stores with counters (t[#t + 1] and
-- helper calls cost several times more). A number given to redis.call is
-- formatted by Redis with %.17g (exact for the integers here, scores being
-- about 1.8e15, but about 0.8 us each): a value shared by a batch (a time,
-- a token) is formatted once with FMT, a per-job number with FMT too
-- (cheaper); tostring() and .. keep only 14 digits and are slower still.
--
-- KEYS[1..NC] are the common keys: the columns in enum redis_column order,
-- then all, finished, dead; a script's own keys follow. bulk() and mget()
-- cut long argument lists into slices; records() reads whole records
-- {v, s, a, r, b, f, e}, f (finished_at) being the score in finished, or
-- the death time in dead.
local COL = {v = KEYS[1], s = KEYS[2], a = KEYS[3], m = KEYS[4], r = KEYS[5],
             b = KEYS[6], e = KEYS[7]}
local NCOL, ALL, FIN, DEAD, NC = 7, KEYS[8], KEYS[9], KEYS[10], 10
local SLICE, FMT = 500, string.format
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function bulk(cmd, key, list)
  local n = #list
  for i = 1, n, SLICE do
    redis.call(cmd, key, unpack(list, i, math.min(n, i + SLICE - 1)))
  end
end
local function mget(cmd, key, ids)
  local out, k, n = {}, 0, #ids
  for i = 1, n, SLICE do
    local part = redis.call(cmd, key, unpack(ids, i, math.min(n, i + SLICE - 1)))
    for j = 1, #part do k = k + 1; out[k] = part[j] end
  end
  return out
end
local function records(ids)
  local v, s, a = mget('HMGET', COL.v, ids), mget('HMGET', COL.s, ids), mget('HMGET', COL.a, ids)
  local r, b, e = mget('HMGET', COL.r, ids), mget('HMGET', COL.b, ids), mget('HMGET', COL.e, ids)
  local fin, dead = mget('ZMSCORE', FIN, ids), mget('ZMSCORE', DEAD, ids)
  local out = {}
  for i = 1, #ids do
    local f = fin[i] or (dead[i] and math.floor(tonumber(dead[i]) / 1000))
    out[i] = {v[i], s[i], a[i], r[i], b[i], f, e[i]}
  end
  return out
end

-- gauges.lua - the store gauges of GET /metrics for many queues in one call
-- (redis_gauges_read).
--
-- KEYS: per queue, G keys: paused st:scheduled enqueued running st:retrying
-- st:dead ready jobs:s jobs:r all. ARGV: none.
-- Returns per queue 7 integers: paused (0/1), the counts of scheduled,
-- enqueued, running, retrying and dead jobs, and the age in ms (Redis TIME)
-- of the oldest enqueued job, 0 when none. Its due time is its run_at (a
-- schedule or a retry), else its creation (the index score in all). No
-- prelude: it takes no common keys.
-- Ready may hold, at its right end (the next to run), ids that are no longer
-- enqueued (cancelled: cancel leaves them there) that fetch would drop. They
-- are dropped here too, as they are met, in chunks of LOOK, so the oldest
-- entry looked at is a job that waits: each stale entry costs one look once,
-- whichever of fetch and this script meets it first. Fewer than DROP_MAX +
-- LOOK are dropped per queue and call (the call stays bounded); behind more
-- than that the age reads 0 until later calls have dropped the rest. Nothing is looked
-- at while the queue's enqueued counter is 0.
local G, LOOK, DROP_MAX = 10, 16, 1024
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out, k = {}, 0
for b = 0, #KEYS - G, G do
  local age, enq = 0, tonumber(redis.call('GET', KEYS[b + 3]) or '0')
  local ready, dropped, live = KEYS[b + 7], 0, nil
  while enq > 0 and not live and dropped < DROP_MAX do
    local ids = redis.call('LRANGE', ready, -LOOK, -1)
    if #ids == 0 then break end
    local states, stale = redis.call('HMGET', KEYS[b + 8], unpack(ids)), 0
    for i = #ids, 1, -1 do
      if states[i] == 'enqueued' then live = ids[i]; break end
      stale = stale + 1
    end
    if stale > 0 then redis.call('LTRIM', ready, 0, -stale - 1) end
    dropped = dropped + stale
  end
  if live then
    local due = tonumber(redis.call('HGET', KEYS[b + 9], live) or '0')
    if due <= 0 then
      local score = redis.call('ZSCORE', KEYS[b + 10], live)
      due = score and math.floor(tonumber(score) / 1000) or now
    end
    if now > due then age = now - due end
  end
  out[k + 1] = redis.call('EXISTS', KEYS[b + 1])
  out[k + 2] = redis.call('ZCARD', KEYS[b + 2])
  out[k + 3] = enq
  out[k + 4] = tonumber(redis.call('GET', KEYS[b + 4]) or '0')
  out[k + 5] = redis.call('ZCARD', KEYS[b + 5])
  out[k + 6] = redis.call('ZCARD', KEYS[b + 6])
  out[k + 7] = age
  k = k + 7
end
return out

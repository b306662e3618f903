-- gauges.lua - the store gauges of GET /metrics for many queues in one call
-- (redis_gauges_read). Reads only; no prelude: it takes no common keys.
--
-- KEYS: per queue, G keys: paused st:scheduled enqueued running st:retrying
-- st:dead ready jobs:s jobs:r all. ARGV: none.
-- Returns per queue 7 integers: paused (0/1), the counts of scheduled,
-- enqueued, running, retrying and dead jobs, and the age in ms (Redis TIME)
-- of the oldest enqueued job, 0 when none. Its due time is its run_at (a
-- schedule or a retry), else its creation (the index score in all). Ready
-- may hold ids of cancelled jobs (fetch drops them): only the LOOK oldest
-- entries are looked at, so the call stays bounded per queue, and none
-- while the queue's enqueued counter is 0.
local G, LOOK = 10, 8
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out, k = {}, 0
for b = 0, #KEYS - G, G do
  local age, enq = 0, tonumber(redis.call('GET', KEYS[b + 3]) or '0')
  local ids = enq > 0 and redis.call('LRANGE', KEYS[b + 7], -LOOK, -1) or {}
  if #ids > 0 then
    local states = redis.call('HMGET', KEYS[b + 8], unpack(ids))
    for i = #ids, 1, -1 do
      if states[i] == 'enqueued' then
        local due = tonumber(redis.call('HGET', KEYS[b + 9], ids[i]) or '0')
        if due <= 0 then
          local score = redis.call('ZSCORE', KEYS[b + 10], ids[i])
          due = score and math.floor(tonumber(score) / 1000) or now
        end
        if now > due then age = now - due end
        break
      end
    end
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

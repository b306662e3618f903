-- orphan.lua - declares a process without heartbeat dead (redis_write_reap).
--
-- KEYS: procs hb orphans. ARGV: pid.
-- A registered process without heartbeat becomes an orphan: 1, else 0.

if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 or redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
return 1

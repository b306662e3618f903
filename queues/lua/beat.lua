-- beat.lua - registers, renews or removes a process (redis_write_beat).
--
-- KEYS: procs hb. ARGV: mode(register|beat|leave) pid ttl_ms.
-- Returns 1, or 0 for a beat of a process that was declared dead.

local mode, pid = ARGV[1], ARGV[2]
if mode == 'leave' then
  redis.call('SREM', KEYS[1], pid)
  redis.call('DEL', KEYS[2])
  return 1
end
if mode == 'beat' and redis.call('SISMEMBER', KEYS[1], pid) == 0 then return 0 end
redis.call('SADD', KEYS[1], pid)
redis.call('SET', KEYS[2], pid, 'PX', ARGV[3])
return 1

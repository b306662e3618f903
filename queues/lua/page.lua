-- page.lua - one page of a zset, newest first (redis_read_list).
--
-- KEYS: common, zset. ARGV: score id (the cursor; score '' = from the top) want.
-- Returns up to want members of zset past the cursor, newest first, WITHSCORES.
-- Writes nothing.

--@include lib/prelude.lua
--@include lib/paging.lua

local key, s, id, want = KEYS[NC + 1], ARGV[1], ARGV[2], tonumber(ARGV[3])
local from, skip = '+inf', 0
if s ~= '' then from = s; skip = after(key, s, id) end
return redis.call('ZRANGE', key, from, '-inf', 'BYSCORE', 'REV', 'LIMIT', skip, want,
                  'WITHSCORES')

/* redis_scripts.c - the Lua scripts of a Redis queue and their C callers.
 *
 * Rules every script follows (design.md): all keys it touches come in KEYS
 * (the common keys first: the job columns, all, finished, dead); it reads
 * and checks everything before its first write (a script that fails
 * half-way keeps its writes); it never decodes a job's JSON (the view is an
 * opaque string); it loops only over what it was given or read with a
 * bound, and unpacks at most SLICE arguments into one redis.call (Lua's
 * stack is small).
 *
 * Speed: starting a script and each redis.call cost about a microsecond,
 * so a script handles its whole batch with one call per column or key
 * (HMGET/HSET of many fields, ZADD/LPUSH of many members), never one call
 * per job; the per-job Lua is table stores with counters (t[#t + 1] and
 * helper calls cost several times more). A number given to redis.call is
 * formatted by Redis with %.17g (exact for the integers here, scores being
 * about 1.8e15, but about 0.8 us each): a value shared by a batch (a time,
 * a token) is formatted once with FMT, a per-job number with FMT too
 * (cheaper); tostring() and .. keep only 14 digits and are slower still. */
#include "redis_scripts.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../server/log.h"
#include "job.h"

#define RS_GIVE_BACK_BATCH 100
#define RS_GIVE_BACK_ROUNDS 1000
#define RS_SCAN_BUDGET 1000   /* jobs a filtered list request looks at, at most */
#define RS_RUNNING_MAX 100000 /* running jobs a list of running ones looks at, at most */

/* --- the scripts --- */

/* The Lua reads best one line of script per line: */
/* clang-format off */

/* KEYS[1..NC] are the common keys: the columns in enum redis_column order,
 * then all, finished, dead; a script's own keys follow. bulk() and mget()
 * cut long argument lists into slices; records() reads whole records
 * {v, s, a, r, b, f, e}, f (finished_at) being the score in finished, or
 * the death time in dead. */
#define LUA_PRELUDE                                                                     \
    "local COL = {v = KEYS[1], s = KEYS[2], a = KEYS[3], m = KEYS[4], r = KEYS[5],\n"   \
    "             b = KEYS[6], e = KEYS[7]}\n"                                          \
    "local NCOL, ALL, FIN, DEAD, NC = 7, KEYS[8], KEYS[9], KEYS[10], 10\n"              \
    "local SLICE, FMT = 500, string.format\n"                                            \
    "local function now_ms()\n"                                                         \
    "  local t = redis.call('TIME')\n"                                                  \
    "  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"              \
    "end\n"                                                                             \
    "local function bulk(cmd, key, list)\n"                                             \
    "  local n = #list\n"                                                               \
    "  for i = 1, n, SLICE do\n"                                                        \
    "    redis.call(cmd, key, unpack(list, i, math.min(n, i + SLICE - 1)))\n"           \
    "  end\n"                                                                           \
    "end\n"                                                                             \
    "local function mget(cmd, key, ids)\n"                                              \
    "  local out, k, n = {}, 0, #ids\n"                                                 \
    "  for i = 1, n, SLICE do\n"                                                        \
    "    local part = redis.call(cmd, key, unpack(ids, i, math.min(n, i + SLICE - 1)))\n" \
    "    for j = 1, #part do k = k + 1; out[k] = part[j] end\n"                         \
    "  end\n"                                                                           \
    "  return out\n"                                                                    \
    "end\n"                                                                             \
    "local function records(ids)\n"                                                     \
    "  local v, s, a = mget('HMGET', COL.v, ids), mget('HMGET', COL.s, ids), mget('HMGET', COL.a, ids)\n" \
    "  local r, b, e = mget('HMGET', COL.r, ids), mget('HMGET', COL.b, ids), mget('HMGET', COL.e, ids)\n" \
    "  local fin, dead = mget('ZMSCORE', FIN, ids), mget('ZMSCORE', DEAD, ids)\n"       \
    "  local out = {}\n"                                                                \
    "  for i = 1, #ids do\n"                                                            \
    "    local f = fin[i] or (dead[i] and math.floor(tonumber(dead[i]) / 1000))\n"      \
    "    out[i] = {v[i], s[i], a[i], r[i], b[i], f, e[i]}\n"                            \
    "  end\n"                                                                           \
    "  return out\n"                                                                    \
    "end\n"

/* KEYS: common, ready sched st:scheduled enqueued seq.
 * ARGV: not_after (Redis ms, 0 = none), then per job: id view state run_at
 * created_ms max_attempts. A negative run_at -N is a delay: N ms from Redis's now.
 * Returns per job 0 (stored) or the existing record (replayed); an error when
 * it runs after not_after: the caller has answered 503 by then (a Redis that
 * was frozen), and a 503 must mean "not stored". */
static const char lua_enqueue[] = LUA_PRELUDE
    "local ready, sched, st_sched, n_enq, seqk = unpack(KEYS, NC + 1, NC + 5)\n"
    "local W = 6\n"
    "local n = (#ARGV - 1) / W\n"
    "local not_after, now = tonumber(ARGV[1]), now_ms()\n"
    "if not_after > 0 and now > not_after then\n"
    "  return redis.error_reply('LATE the submission reached Redis after its deadline')\n"
    "end\n"
    "local ids = {}\n"
    "for i = 1, n do ids[i] = ARGV[2 + (i - 1) * W] end\n"
    "local known = mget('HMGET', COL.s, ids)\n"
    "local seq = redis.call('INCRBY', seqk, n) - n\n"
    "local vs, ss, ms, rs, zall, zst, zsch, push, out, old, seen = {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}\n"
    "local kv, km, kr, ks, kp, ko = 0, 0, 0, 0, 0, 0\n"
    "for i = 1, n do\n"
    "  local a, id = 2 + (i - 1) * W, ids[i]\n"
    "  if known[i] or seen[id] then\n"
    "    ko = ko + 1; old[ko] = i; out[i] = false\n"
    "  else\n"
    "    seen[id] = true\n"
    "    local st, run_at = ARGV[a + 2], ARGV[a + 3]\n"
    "    if string.byte(run_at, 1) == 45 then\n"
    "      run_at = FMT('%d', now - tonumber(run_at)); st = 'scheduled'\n"
    "    end\n"
    "    local score = FMT('%d', tonumber(ARGV[a + 4]) * 1000 + (seq + i) % 1000)\n"
    "    vs[kv + 1] = id; vs[kv + 2] = ARGV[a + 1]; ss[kv + 1] = id; ss[kv + 2] = st\n"
    "    zall[kv + 1] = score; zall[kv + 2] = id; kv = kv + 2\n"
    "    if ARGV[a + 5] ~= '0' then ms[km + 1] = id; ms[km + 2] = ARGV[a + 5]; km = km + 2 end\n"
    "    if run_at ~= '0' then rs[kr + 1] = id; rs[kr + 2] = run_at; kr = kr + 2 end\n"
    "    if st == 'scheduled' then\n"
    "      zst[ks + 1] = score; zst[ks + 2] = id; zsch[ks + 1] = run_at; zsch[ks + 2] = id\n"
    "      ks = ks + 2\n"
    "    else\n"
    "      kp = kp + 1; push[kp] = id\n"
    "    end\n"
    "    out[i] = 0\n"
    "  end\n"
    "end\n"
    "bulk('HSET', COL.v, vs); bulk('HSET', COL.s, ss); bulk('HSET', COL.m, ms)\n"
    "bulk('HSET', COL.r, rs); bulk('ZADD', ALL, zall); bulk('ZADD', st_sched, zst)\n"
    "bulk('ZADD', sched, zsch); bulk('LPUSH', ready, push)\n"
    "if kp > 0 then redis.call('INCRBY', n_enq, kp) end\n"
    "if ko > 0 then\n"
    "  local oids = {}\n"
    "  for j = 1, ko do oids[j] = ids[old[j]] end\n"
    "  local recs = records(oids)\n"
    "  for j = 1, ko do out[old[j]] = recs[j] end\n"
    "end\n"
    "return out\n";

/* KEYS: common, ready plist paused fence enqueued running. ARGV: n.
 * Takes up to n ids off the right of ready (oldest first) and leases the
 * enqueued ones, all under one new fencing token. Returns -1 (paused:
 * nothing taken), or {token, now, then per lease: id view attempts}: what a
 * run needs (its last error and run_at do not matter to it). */
static const char lua_fetch[] = LUA_PRELUDE
    "local ready, plist, paused, fence, n_enq, n_run = unpack(KEYS, NC + 1, NC + 6)\n"
    "if redis.call('EXISTS', paused) == 1 then return -1 end\n"
    "local got = redis.call('LRANGE', ready, -tonumber(ARGV[1]), -1)\n"
    "local k = #got\n"
    "if k == 0 then return {} end\n"
    "local ids = {}\n"
    "for i = 1, k do ids[i] = got[k + 1 - i] end\n"
    "local st = mget('HMGET', COL.s, ids)\n"
    "local take, seen, nt = {}, {}, 0\n"
    "for i = 1, k do\n"
    "  local id = ids[i]\n"
    /* cancelled, deleted, or a second entry of a job already taken */
    "  if st[i] == 'enqueued' and not seen[id] then nt = nt + 1; take[nt] = id end\n"
    "  seen[id] = true\n"
    "end\n"
    "redis.call('LTRIM', ready, 0, -k - 1)\n"
    "if nt == 0 then return {} end\n"
    "local now = now_ms()\n"
    "local tok = redis.call('INCR', fence)\n"
    "local toks, nows = FMT('%d', tok), FMT('%d', now)\n"
    "local ss, ts, bs = {}, {}, {}\n"
    "for i = 1, nt do\n"
    "  local id, j = take[i], 2 * i\n"
    "  ss[j - 1] = id; ss[j] = 'running'; ts[j - 1] = id; ts[j] = toks; bs[j - 1] = id; bs[j] = nows\n"
    "end\n"
    "bulk('HSET', COL.s, ss); bulk('HSET', plist, ts); bulk('HSET', COL.b, bs)\n"
    "redis.call('DECRBY', n_enq, nt)\n"
    "redis.call('INCRBY', n_run, nt)\n"
    "local v, a = mget('HMGET', COL.v, take), mget('HMGET', COL.a, take)\n"
    "local out = {tok, now}\n"
    "for i = 1, nt do\n"
    "  out[3 * i] = take[i]; out[3 * i + 1] = v[i]; out[3 * i + 2] = a[i]\n"
    "end\n"
    "return out\n";

/* KEYS: common, plist running st:retrying st:dead sched processed failed seq.
 * ARGV: per run: id token next attempts delay_ms error.
 * Returns per run 1, or 0 when the token is not the job's lease in plist
 * (stale: nothing written for it). */
static const char lua_finish[] = LUA_PRELUDE
    "local plist, n_run, st_retry, st_dead, sched, processed, failed, seqk =\n"
    "  unpack(KEYS, NC + 1, NC + 8)\n"
    "local W = 6\n"
    "local n = #ARGV / W\n"
    "local ids = {}\n"
    "for i = 1, n do ids[i] = ARGV[1 + (i - 1) * W] end\n"
    "local held = mget('HMGET', plist, ids)\n"
    "local out, gone, rare, seen, ng, nr, ndead = {}, {}, {}, {}, 0, 0, 0\n"
    "for i = 1, n do\n"
    "  local a, id = (i - 1) * W, ids[i]\n"
    "  if held[i] == ARGV[a + 2] and not seen[id] then\n"
    "    seen[id] = true\n"
    "    out[i] = 1; ng = ng + 1; gone[ng] = i\n"
    "    local nxt = ARGV[a + 3]\n"
    "    if nxt ~= 'succeeded' then nr = nr + 1; rare[nr] = id end\n"
    "    if nxt == 'dead' then ndead = ndead + 1 end\n"
    "  else\n"
    "    out[i] = 0\n"
    "  end\n"
    "end\n"
    "if ng == 0 then return out end\n"
    "local score = {}\n"
    "if nr > 0 then\n"
    "  local cs = mget('ZMSCORE', ALL, rare)\n"
    "  for j = 1, nr do score[rare[j]] = cs[j] or 0 end\n"
    "end\n"
    "local now = now_ms()\n"
    "local nows = FMT('%d', now)\n"
    "local seq = ndead > 0 and redis.call('INCRBY', seqk, ndead) - ndead or 0\n"
    "local hd, sts, as, es, rs, zfin, zretry, zsched, zstdead, zdead = {}, {}, {}, {}, {}, {}, {}, {}, {}, {}\n"
    "local ke, kf, kr, kd, nok = 0, 0, 0, 0, 0\n"
    "for g = 1, ng do\n"
    "  local i = gone[g]\n"
    "  local a, id, j = (i - 1) * W, ids[i], 2 * g\n"
    "  local nxt = ARGV[a + 3]\n"
    "  hd[g] = id; sts[j - 1] = id; sts[j] = nxt; as[j - 1] = id; as[j] = ARGV[a + 4]\n"
    "  if ARGV[a + 6] ~= '' then es[ke + 1] = id; es[ke + 2] = ARGV[a + 6]; ke = ke + 2 end\n"
    "  if nxt == 'succeeded' then\n"
    "    zfin[kf + 1] = nows; zfin[kf + 2] = id; kf = kf + 2; nok = nok + 1\n"
    "  elseif nxt == 'retrying' then\n"
    "    local due = FMT('%d', now + tonumber(ARGV[a + 5]))\n"
    "    rs[kr + 1] = id; rs[kr + 2] = due; zretry[kr + 1] = score[id]; zretry[kr + 2] = id\n"
    "    zsched[kr + 1] = due; zsched[kr + 2] = id; kr = kr + 2\n"
    "  else\n"
    "    seq = seq + 1\n"
    "    zstdead[kd + 1] = score[id]; zstdead[kd + 2] = id\n"
    "    zdead[kd + 1] = FMT('%d', now * 1000 + seq % 1000); zdead[kd + 2] = id; kd = kd + 2\n"
    "  end\n"
    "end\n"
    "bulk('HDEL', plist, hd); bulk('HSET', COL.s, sts); bulk('HSET', COL.a, as)\n"
    "bulk('HSET', COL.e, es); bulk('HSET', COL.r, rs); bulk('ZADD', FIN, zfin)\n"
    "bulk('ZADD', st_retry, zretry); bulk('ZADD', sched, zsched); bulk('ZADD', st_dead, zstdead)\n"
    "bulk('ZADD', DEAD, zdead)\n"
    "redis.call('DECRBY', n_run, ng)\n"
    "if nok > 0 then redis.call('INCRBY', processed, nok) end\n"
    "if nok < ng then redis.call('INCRBY', failed, ng - nok) end\n"
    "return out\n";

/* KEYS: common, plist ready st:dead failed seq orphans enqueued running.
 * ARGV: mode(release|abandon) default_max pid why, then the ids.
 * Takes the ids out of plist; the running ones go back to ready (or dead).
 * Returns how many jobs went back to ready or dead. */
static const char lua_requeue[] = LUA_PRELUDE
    "local plist, ready, st_dead, failed, seqk, orphans, n_enq, n_run = unpack(KEYS, NC + 1, NC + 8)\n"
    "local NA = 4\n"
    "local abandon, dmax, pid, why = ARGV[1] == 'abandon', tonumber(ARGV[2]), ARGV[3], ARGV[4]\n"
    "local ids = {}\n"
    "for i = NA + 1, #ARGV do ids[i - NA] = ARGV[i] end\n"
    "local held = mget('HMGET', plist, ids)\n"
    "local st, as, ms = mget('HMGET', COL.s, ids), mget('HMGET', COL.a, ids), mget('HMGET', COL.m, ids)\n"
    "local fate, seen, dying = {}, {}, {}\n"
    "for i, id in ipairs(ids) do\n"
    "  if held[i] and not seen[id] then\n"
    "    seen[id] = true\n"
    "    fate[i] = 'gone'\n"
    "    if st[i] == 'running' then\n"
    "      fate[i] = 'back'\n"
    "      local max = tonumber(ms[i]) or 0\n"
    "      if max <= 0 then max = dmax end\n"
    "      if abandon and (tonumber(as[i]) or 0) + 1 >= max then\n"
    "        fate[i] = 'dead'; dying[#dying + 1] = id\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local cs = mget('ZMSCORE', ALL, dying)\n"
    "local now = now_ms()\n"
    "local seq = #dying > 0 and redis.call('INCRBY', seqk, #dying) - #dying or 0\n"
    "local gone, back, sts, aset, es, zstdead, zdead, nrun, nd = {}, {}, {}, {}, {}, {}, {}, 0, 0\n"
    "for i, id in ipairs(ids) do\n"
    "  if fate[i] then gone[#gone + 1] = id end\n"
    "  if fate[i] == 'back' or fate[i] == 'dead' then\n"
    "    nrun = nrun + 1\n"
    "    if abandon then\n"
    "      aset[#aset + 1] = id; aset[#aset + 1] = (tonumber(as[i]) or 0) + 1\n"
    "      es[#es + 1] = id; es[#es + 1] = why\n"
    "    end\n"
    "    if fate[i] == 'dead' then\n"
    "      seq = seq + 1; nd = nd + 1\n"
    "      sts[#sts + 1] = id; sts[#sts + 1] = 'dead'\n"
    "      zstdead[#zstdead + 1] = cs[nd] or 0; zstdead[#zstdead + 1] = id\n"
    "      zdead[#zdead + 1] = now * 1000 + seq % 1000; zdead[#zdead + 1] = id\n"
    "    else\n"
    "      sts[#sts + 1] = id; sts[#sts + 1] = 'enqueued'; back[#back + 1] = id\n"
    "    end\n"
    "  end\n"
    "end\n"
    "bulk('HDEL', plist, gone); bulk('HSET', COL.s, sts); bulk('HSET', COL.a, aset)\n"
    "bulk('HSET', COL.e, es); bulk('ZADD', st_dead, zstdead); bulk('ZADD', DEAD, zdead)\n"
    "bulk('RPUSH', ready, back)\n"
    "if #back > 0 then redis.call('INCRBY', n_enq, #back) end\n"
    "if nrun > 0 then redis.call('DECRBY', n_run, nrun) end\n"
    "if abandon and nrun > 0 then redis.call('INCRBY', failed, nrun) end\n"
    "if redis.call('HLEN', plist) == 0 then redis.call('SREM', orphans, pid) end\n"
    "return nrun\n";

/* KEYS: common, plist st:dead failed seq running. ARGV: why, then the ids.
 * The running jobs among ids that plist holds become dead at once, their
 * attempt counted and why as their error (their stored record cannot be
 * read: running them again would fail the same way). Returns how many. */
static const char lua_bury[] = LUA_PRELUDE
    "local plist, st_dead, failed, seqk, n_run = unpack(KEYS, NC + 1, NC + 5)\n"
    "local ids = {}\n"
    "for i = 2, #ARGV do ids[i - 1] = ARGV[i] end\n"
    "local held, st = mget('HMGET', plist, ids), mget('HMGET', COL.s, ids)\n"
    "local take, seen = {}, {}\n"
    "for i, id in ipairs(ids) do\n"
    "  if held[i] and st[i] == 'running' and not seen[id] then take[#take + 1] = id end\n"
    "  seen[id] = true\n"
    "end\n"
    "local n = #take\n"
    "if n == 0 then return 0 end\n"
    "local as, cs = mget('HMGET', COL.a, take), mget('ZMSCORE', ALL, take)\n"
    "local now = now_ms()\n"
    "local seq = redis.call('INCRBY', seqk, n) - n\n"
    "local sts, aset, es, zstdead, zdead = {}, {}, {}, {}, {}\n"
    "for i, id in ipairs(take) do\n"
    "  local j = 2 * i\n"
    "  sts[j - 1] = id; sts[j] = 'dead'\n"
    "  aset[j - 1] = id; aset[j] = FMT('%d', (tonumber(as[i]) or 0) + 1)\n"
    "  es[j - 1] = id; es[j] = ARGV[1]\n"
    "  zstdead[j - 1] = cs[i] or 0; zstdead[j] = id\n"
    "  zdead[j - 1] = FMT('%d', now * 1000 + (seq + i) % 1000); zdead[j] = id\n"
    "end\n"
    "bulk('HDEL', plist, take); bulk('HSET', COL.s, sts); bulk('HSET', COL.a, aset)\n"
    "bulk('HSET', COL.e, es); bulk('ZADD', st_dead, zstdead); bulk('ZADD', DEAD, zdead)\n"
    "redis.call('DECRBY', n_run, n)\n"
    "redis.call('INCRBY', failed, n)\n"
    "return n\n";

/* KEYS: procs hb. ARGV: mode(register|beat|leave) pid ttl_ms.
 * Returns 1, or 0 for a beat of a process that was declared dead. */
static const char lua_beat[] =
    "local mode, pid = ARGV[1], ARGV[2]\n"
    "if mode == 'leave' then\n"
    "  redis.call('SREM', KEYS[1], pid)\n"
    "  redis.call('DEL', KEYS[2])\n"
    "  return 1\n"
    "end\n"
    "if mode == 'beat' and redis.call('SISMEMBER', KEYS[1], pid) == 0 then return 0 end\n"
    "redis.call('SADD', KEYS[1], pid)\n"
    "redis.call('SET', KEYS[2], pid, 'PX', ARGV[3])\n"
    "return 1\n";

/* KEYS: procs hb orphans. ARGV: pid.
 * A registered process without heartbeat becomes an orphan: 1, else 0. */
static const char lua_orphan[] =
    "if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 or redis.call('EXISTS', KEYS[2]) == 1 then\n"
    "  return 0\n"
    "end\n"
    "redis.call('SREM', KEYS[1], ARGV[1])\n"
    "redis.call('SADD', KEYS[3], ARGV[1])\n"
    "return 1\n";

/* KEYS: common, sched ready st:scheduled st:retrying enqueued. ARGV: batch.
 * Moves at most batch ids that are due now to ready. Returns how many. */
static const char lua_promote[] = LUA_PRELUDE
    "local sched, ready, st_sched, st_retry, n_enq = unpack(KEYS, NC + 1, NC + 5)\n"
    "local ids = redis.call('ZRANGE', sched, '-inf', now_ms(), 'BYSCORE', 'LIMIT', 0,\n"
    "                       tonumber(ARGV[1]))\n"
    "if #ids == 0 then return 0 end\n"
    "local st = mget('HMGET', COL.s, ids)\n"
    "local from_s, from_r, sts, push = {}, {}, {}, {}\n"
    "for i, id in ipairs(ids) do\n"
    "  if st[i] == 'scheduled' or st[i] == 'retrying' then\n"
    "    local from = st[i] == 'scheduled' and from_s or from_r\n"
    "    from[#from + 1] = id\n"
    "    sts[#sts + 1] = id; sts[#sts + 1] = 'enqueued'; push[#push + 1] = id\n"
    "  end\n"
    "end\n"
    "bulk('ZREM', sched, ids); bulk('ZREM', st_sched, from_s); bulk('ZREM', st_retry, from_r)\n"
    "bulk('HSET', COL.s, sts); bulk('LPUSH', ready, push)\n"
    "if #push > 0 then redis.call('INCRBY', n_enq, #push) end\n"
    "return #push\n";

/* KEYS: common, sched st:scheduled st:retrying st:cancelled enqueued. ARGV: id.
 * Returns {0} unknown, {2, state} not cancellable, {1, record} cancelled.
 * An enqueued id stays in ready: fetching it finds it cancelled and drops it. */
static const char lua_cancel[] = LUA_PRELUDE
    "local sched, st_sched, st_retry, st_cancel, n_enq = unpack(KEYS, NC + 1, NC + 5)\n"
    "local id = ARGV[1]\n"
    "local st = redis.call('HGET', COL.s, id)\n"
    "if not st then return {0} end\n"
    "if st ~= 'scheduled' and st ~= 'enqueued' and st ~= 'retrying' then return {2, st} end\n"
    "local score = redis.call('ZSCORE', ALL, id) or 0\n"
    "redis.call('HSET', COL.s, id, 'cancelled')\n"
    "if st == 'enqueued' then\n"
    "  redis.call('DECR', n_enq)\n"
    "else\n"
    "  redis.call('ZREM', st == 'scheduled' and st_sched or st_retry, id)\n"
    "  redis.call('ZREM', sched, id)\n"
    "end\n"
    "redis.call('ZADD', st_cancel, score, id)\n"
    "redis.call('ZADD', FIN, now_ms(), id)\n"
    "return {1, records({id})[1]}\n";

/* KEYS: common, st:dead ready enqueued. ARGV: mode(retry|delete) id.
 * Returns {0} unknown, {2, state} not dead, {1, record} retried, {1} deleted. */
static const char lua_dead[] = LUA_PRELUDE
    "local st_dead, ready, n_enq = unpack(KEYS, NC + 1, NC + 3)\n"
    "local id = ARGV[2]\n"
    "local st = redis.call('HGET', COL.s, id)\n"
    "if not st then return {0} end\n"
    "if st ~= 'dead' then return {2, st} end\n"
    "redis.call('ZREM', DEAD, id)\n"
    "redis.call('ZREM', st_dead, id)\n"
    "if ARGV[1] == 'delete' then\n"
    "  for c = 1, NCOL do redis.call('HDEL', KEYS[c], id) end\n"
    "  redis.call('ZREM', ALL, id)\n"
    "  return {1}\n"
    "end\n"
    "redis.call('HSET', COL.s, id, 'enqueued')\n"
    "redis.call('HDEL', COL.a, id)\n"
    "redis.call('HDEL', COL.r, id)\n"
    "redis.call('LPUSH', ready, id)\n"
    "redis.call('INCR', n_enq)\n"
    "return {1, records({id})[1]}\n";

/* KEYS: common, zset st:<state of zset's jobs> trimmed (zset is finished or dead).
 * ARGV: age_ms scale max_count batch.
 * Deletes the jobs of zset scored <= (now - age) * scale, then the oldest
 * beyond max_count, at most batch in all. Returns how many. */
static const char lua_trim[] = LUA_PRELUDE
    "local zset, st_z, trimmed = unpack(KEYS, NC + 1, NC + 3)\n"
    "local batch = tonumber(ARGV[4])\n"
    "local cutoff = (now_ms() - tonumber(ARGV[1])) * tonumber(ARGV[2])\n"
    "local ids = redis.call('ZRANGE', zset, '-inf', cutoff, 'BYSCORE', 'LIMIT', 0, batch)\n"
    "local excess = redis.call('ZCARD', zset) - #ids - tonumber(ARGV[3])\n"
    "if excess > 0 and #ids < batch then\n"
    /* the members by age are the lowest ranks: the next oldest follow them */
    "  local more = redis.call('ZRANGE', zset, #ids, #ids + math.min(excess, batch - #ids) - 1)\n"
    "  for _, id in ipairs(more) do ids[#ids + 1] = id end\n"
    "end\n"
    "if #ids == 0 then return 0 end\n"
    "for c = 1, NCOL do bulk('HDEL', KEYS[c], ids) end\n"
    "bulk('ZREM', zset, ids); bulk('ZREM', ALL, ids); bulk('ZREM', st_z, ids)\n"
    "redis.call('INCRBY', trimmed, #ids)\n"
    "return #ids\n";

/* Paging positions. Index scores are not unique (two batches stored in the
 * same millisecond can share one), so a page ends at a (score, id) pair and
 * the next page starts right after that pair: members of equal score sort by
 * id (bytewise), newest first means descending. after(key, s, id) is the
 * offset, counted from the first member at score <= s (BYSCORE REV), of the
 * first member past (s, id): from the cursor's own rank while it is still in
 * the set, else by counting the ties at s above id (at most TIES looked at). */
#define LUA_AFTER                                                                       \
    "local TIES = 10000\n"                                                              \
    "local function above(a, b)\n"                                                      \
    "  local n = math.min(#a, #b)\n"                                                    \
    "  for i = 1, n do\n"                                                               \
    "    local x, y = string.byte(a, i), string.byte(b, i)\n"                           \
    "    if x ~= y then return x > y end\n"                                             \
    "  end\n"                                                                           \
    "  return #a > #b\n"                                                                \
    "end\n"                                                                             \
    "local function after(key, s, id)\n"                                                \
    "  local cur = id ~= '' and redis.call('ZSCORE', key, id)\n"                        \
    "  if cur and tonumber(cur) == tonumber(s) then\n"                                  \
    "    return redis.call('ZREVRANK', key, id) + 1 - redis.call('ZCOUNT', key, '(' .. s, '+inf')\n" \
    "  end\n"                                                                           \
    "  local skip = 0\n"                                                                \
    "  for _, m in ipairs(redis.call('ZRANGE', key, s, s, 'BYSCORE', 'REV', 'LIMIT', 0, TIES)) do\n" \
    "    if above(m, id) then skip = skip + 1 end\n"                                    \
    "  end\n"                                                                           \
    "  return skip\n"                                                                   \
    "end\n"

/* KEYS: common, zset. ARGV: score id (the cursor; score '' = from the top) want.
 * Returns up to want members of zset past the cursor, newest first, WITHSCORES.
 * Writes nothing. */
static const char lua_page[] = LUA_PRELUDE LUA_AFTER
    "local key, s, id, want = KEYS[NC + 1], ARGV[1], ARGV[2], tonumber(ARGV[3])\n"
    "local from, skip = '+inf', 0\n"
    "if s ~= '' then from = s; skip = after(key, s, id) end\n"
    "return redis.call('ZRANGE', key, from, '-inf', 'BYSCORE', 'REV', 'LIMIT', skip, want,\n"
    "                  'WITHSCORES')\n";

/* KEYS: common. ARGV: score id (the cursor, as in lua_page) state limit budget.
 * Reads all newest first past the cursor, at most budget jobs, for the ones
 * in state. Returns {{id, score, ...}, next_id, next_score}: at most limit of
 * them, and the position to go on from (next_id false at the end of all).
 * Writes nothing. */
static const char lua_scan[] = LUA_PRELUDE LUA_AFTER
    "local s, cid, want, limit, budget = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]),\n"
    "  tonumber(ARGV[5])\n"
    "local from, skip = '+inf', 0\n"
    "if s ~= '' then from = s; skip = after(ALL, s, cid) end\n"
    "local out, left, last_id, last_s = {}, budget, false, false\n"
    "while left > 0 do\n"
    "  local ask = math.min(SLICE, left)\n"
    "  local chunk = redis.call('ZRANGE', ALL, from, '-inf', 'BYSCORE', 'REV', 'LIMIT', skip, ask,\n"
    "                           'WITHSCORES')\n"
    "  local ids = {}\n"
    "  for i = 1, #chunk, 2 do ids[#ids + 1] = chunk[i] end\n"
    "  local st = mget('HMGET', COL.s, ids)\n"
    "  for j, id in ipairs(ids) do\n"
    "    if st[j] == want then\n"
    "      if #out == 2 * limit then return {out, out[#out - 1], out[#out]} end\n"
    "      out[#out + 1] = id; out[#out + 1] = chunk[2 * j]\n"
    "    end\n"
    "    last_id, last_s = id, chunk[2 * j]\n"
    "  end\n"
    "  if #ids < ask then return {out, false} end\n"
    "  skip = skip + #ids\n"
    "  left = left - #ids\n"
    "end\n"
    "return {out, last_id, last_s}\n";

/* clang-format on */

static const struct {
    const char *name;
    const char *src;
} rs_sources[RS_COUNT] = {
    [RS_ENQUEUE] = {"enqueue", lua_enqueue}, [RS_FETCH] = {"fetch", lua_fetch},
    [RS_FINISH] = {"finish", lua_finish},    [RS_REQUEUE] = {"requeue", lua_requeue},
    [RS_BEAT] = {"beat", lua_beat},          [RS_ORPHAN] = {"orphan", lua_orphan},
    [RS_PROMOTE] = {"promote", lua_promote}, [RS_CANCEL] = {"cancel", lua_cancel},
    [RS_DEAD] = {"dead", lua_dead},          [RS_TRIM] = {"trim", lua_trim},
    [RS_SCAN] = {"scan", lua_scan},          [RS_PAGE] = {"page", lua_page},
    [RS_BURY] = {"bury", lua_bury},
};

/* --- keys --- */

void redis_script_model_init(redis_model *m, const char *prefix, const char *queue, int default_max)
{
    memset(m, 0, sizeof *m);
    /* Keys are built from a local copy: m->base and the keys share m. */
    char base[REDIS_BASE_MAX];
    snprintf(base, sizeof base, "%s:{%s}:", prefix, queue);
    memcpy(m->base, base, sizeof base);
    snprintf(m->queue, sizeof m->queue, "%s", queue);
    snprintf(m->schema, sizeof m->schema, "%s:schema", prefix);
    struct {
        char *dst;
        const char *name;
    } keys[] = {
        {m->all, "all"},           {m->ready, "ready"},       {m->sched, "sched"},
        {m->finished, "finished"}, {m->dead, "dead"},         {m->seq, "seq"},
        {m->fence, "fence"},       {m->paused, "paused"},     {m->processed, "processed"},
        {m->failed, "failed"},     {m->trimmed, "trimmed"},   {m->procs, "procs"},
        {m->orphans, "orphans"},   {m->enqueued, "enqueued"}, {m->running, "running"},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        snprintf(keys[i].dst, REDIS_KEY_MAX, "%s%s", base, keys[i].name);
    for (int s = 0; s < JOB_STATE_COUNT; s++)
        snprintf(m->state[s], REDIS_KEY_MAX, "%sst:%s", base, job_state_name((job_state)s));
    static const char cols[RC_COUNT] = "vsamrbe";
    for (int i = 0; i < RC_COUNT; i++)
        snprintf(m->col[i], REDIS_KEY_MAX, "%sjobs:%c", base, cols[i]);
    m->default_max = default_max;
    for (int i = 0; i < RS_COUNT; i++)
        redis_conn_script_init(&m->scripts[i], rs_sources[i].name, rs_sources[i].src);
}

void redis_script_proc_key(const redis_model *m, const char *pid, char out[REDIS_KEY_MAX])
{
    snprintf(out, REDIS_KEY_MAX, "%sproc:%.64s", m->base, pid);
}

void redis_script_hb_key(const redis_model *m, const char *pid, char out[REDIS_KEY_MAX])
{
    snprintf(out, REDIS_KEY_MAX, "%shb:%.64s", m->base, pid);
}

/* Adds the keys given (NULL-terminated) to a script command. */
static void rs_keys(redis_cmd *cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    for (const char *k; (k = va_arg(ap, const char *));)
        redis_cmd_key(cmd, k);
    va_end(ap);
}

/* Starts a script command with the common keys (every script but beat
 * and orphan): the job columns, all, finished, dead. */
static void rs_script(redis_cmd *cmd, const redis_model *m, enum redis_script_id id)
{
    redis_cmd_init_script(cmd, &m->scripts[id]);
    for (int i = 0; i < RC_COUNT; i++)
        redis_cmd_key(cmd, m->col[i]);
    rs_keys(cmd, m->all, m->finished, m->dead, NULL);
}

/* --- replies --- */

static bool rs_is_str(const redisReply *r)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

static long long rs_int(const redisReply *r)
{
    if (r && r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    return rs_is_str(r) ? strtoll(r->str, NULL, 10) : 0;
}

static bool rs_is_array(const redisReply *r, size_t min)
{
    return r && r->type == REDIS_REPLY_ARRAY && r->elements >= min;
}

/* What a job whose stored view cannot be read still shows: its id, queue
 * and the fields kept apart from the view (state, attempts, times, last
 * error). New job, or NULL (out of memory). */
static job_t *rs_job_unreadable(const redis_model *m, const char *id)
{
    job_t *job = job_new();
    if (job) {
        snprintf(job->id, sizeof job->id, "%s", id);
        snprintf(job->queue, sizeof job->queue, "%s", m->queue);
    }
    return job;
}

/* A job from its stored fields (replies, NULL or nil = absent; state a
 * string) and finished_at. A view that cannot be read gives, when m and id
 * are given, what rs_job_unreadable shows, else NULL; NULL too when the view
 * or state is missing. New job. */
static job_t *rs_job(const redis_model *m, const char *id, const redisReply *v, const char *state,
                     const redisReply *a, const redisReply *r, const redisReply *b,
                     int64_t finished, const redisReply *e)
{
    if (!rs_is_str(v) || !state)
        return NULL;
    json_t *view = json_loadb(v->str, v->len, 0, NULL);
    job_t *job = view ? job_from_view(view) : NULL;
    json_decref(view);
    if (!job && m && id)
        job = rs_job_unreadable(m, id);
    int st = job_state_parse(state);
    if (!job || st < 0) {
        job_free(job);
        return NULL;
    }
    job->state = (job_state)st;
    job->attempts = (int)rs_int(a);
    job->run_at = rs_int(r);
    job->started_at = rs_int(b);
    job->finished_at = finished;
    job_set_error(job, rs_is_str(e) ? e->str : NULL);
    return job;
}

/* A record as the scripts return it: {v, s, a, r, b, f, e}. */
enum { RS_REC_FIELDS = 7 };

/* The job id of a record reply (rs_job with m and id), or NULL. */
static job_t *rs_record_reply(const redis_model *m, const char *id, const redisReply *r)
{
    if (!rs_is_array(r, RS_REC_FIELDS))
        return NULL;
    redisReply *const *f = r->element;
    return rs_job(m, id, f[0], rs_is_str(f[1]) ? f[1]->str : NULL, f[2], f[3], f[4], rs_int(f[5]),
                  f[6]);
}

/* A view of the record reply: new reference, or NULL with 404 (no such
 * job) or 500 (unreadable). */
static json_t *rs_view_reply(const redis_model *m, const redisReply *r, const char *id,
                             jobd_error *err)
{
    if (!rs_is_array(r, RS_REC_FIELDS) || !rs_is_str(r->element[0])) {
        jobd_fail(err, 404, "unknown_job", "no job \"%s\" in this queue", id);
        return NULL;
    }
    job_t *job = rs_record_reply(m, id, r);
    json_t *v = job ? job_view(job) : NULL;
    job_free(job);
    if (!v)
        jobd_fail(err, 500, "internal_error", "the stored record of job \"%s\" is unreadable", id);
    return v;
}

/* Runs cmd, frees it, and returns its reply; NULL with 503 in err when the
 * connection failed or Redis answered an error. */
static redisReply *rs_run(redisContext *c, redis_cmd *cmd, jobd_error *err)
{
    redisReply *r = redis_conn_run(c, cmd);
    redis_cmd_free(cmd);
    if (redis_conn_check_reply(c, r, err) != 0) {
        if (r)
            freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* rs_run for an integer answer: the integer, or -1. */
static long long rs_run_int(redisContext *c, redis_cmd *cmd)
{
    redisReply *r = rs_run(c, cmd, NULL);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r)
        freeReplyObject(r);
    return v;
}

/* --- server checks --- */

/* 0 when the policy is fine or allowed, -1 refused, -2 connection failed,
 * -3 Redis answered "not yet". */
static int rs_check_policy(redisContext *c, bool allow_eviction, char *err, size_t errlen)
{
    redis_cmd cmd;
    redis_cmd_init(&cmd, "CONFIG");
    redis_cmd_adds(&cmd, "GET");
    redis_cmd_adds(&cmd, "maxmemory-policy");
    redisReply *r = redis_conn_run(c, &cmd);
    redis_cmd_free(&cmd);
    if (!r)
        return -2;
    int rc = 0;
    if (redis_conn_temporary(r)) {
        snprintf(err, errlen, "Redis cannot answer yet: %s", r->str);
        rc = -3;
    } else if (!rs_is_array(r, 2) || !rs_is_str(r->element[1])) {
        /* CONFIG may be renamed away on managed Redis: say we could not look. */
        log_event(LOG_WARN, "redis.policy_unknown", NULL,
                  "cannot read maxmemory-policy (%s); make sure it is noeviction",
                  r->type == REDIS_REPLY_ERROR ? r->str : "no answer");
    } else if (strcmp(r->element[1]->str, "noeviction") != 0) {
        const char *policy = r->element[1]->str;
        if (allow_eviction) {
            log_event(LOG_WARN, "redis.eviction_allowed", NULL,
                      "Redis maxmemory-policy is \"%s\": accepted jobs may be evicted "
                      "(--allow-eviction given)",
                      policy);
        } else {
            snprintf(err, errlen,
                     "Redis maxmemory-policy is \"%s\", which may evict accepted jobs; set "
                     "maxmemory-policy noeviction on the Redis server, or start jobd with "
                     "--allow-eviction to run anyway",
                     policy);
            rc = -1;
        }
    }
    freeReplyObject(r);
    return rc;
}

/* Writes the schema version when absent and refuses one we do not know. A
 * refused write does not matter when the version is there already; while
 * Redis loads its data (or is busy, or without its replicas) it is "not
 * reachable yet" (-3), never a refusal. */
static int rs_check_schema(redisContext *c, const redis_model *m, char *err, size_t errlen)
{
    redis_cmd set, get;
    redis_cmd_init(&set, "SET");
    redis_cmd_adds(&set, m->schema);
    redis_cmd_addi(&set, REDIS_SCHEMA_VERSION);
    redis_cmd_adds(&set, "NX");
    redis_cmd_init(&get, "GET");
    redis_cmd_adds(&get, m->schema);
    redis_cmd *cmds[] = {&set, &get};
    redisReply *r[2];
    int rc = redis_conn_pipeline(c, cmds, 2, r);
    redis_cmd_free(&set);
    redis_cmd_free(&get);
    if (rc != 0)
        return -2;
    bool written = r[0]->type != REDIS_REPLY_ERROR || rs_is_str(r[1]);
    if (!written || r[1]->type == REDIS_REPLY_ERROR) {
        const redisReply *e = !written ? r[0] : r[1];
        snprintf(err, errlen, "cannot write %s: %s", m->schema, e->str);
        rc = redis_conn_temporary(e) ? -3 : -1;
    } else if (!rs_is_str(r[1]) || strtol(r[1]->str, NULL, 10) != REDIS_SCHEMA_VERSION) {
        snprintf(err, errlen,
                 "Redis key %s holds data model version \"%s\"; this jobd (%s) knows version %d "
                 "only: run the jobd that wrote it until its queues are empty, or use another "
                 "redis.prefix",
                 m->schema, rs_is_str(r[1]) ? r[1]->str : "?", JOBD_VERSION, REDIS_SCHEMA_VERSION);
        rc = -1;
    }
    freeReplyObject(r[0]);
    freeReplyObject(r[1]);
    return rc;
}

int redis_script_check_server(redisContext *c, const redis_model *m, bool allow_eviction, char *err,
                              size_t errlen)
{
    int rc = rs_check_policy(c, allow_eviction, err, errlen);
    return rc != 0 ? rc : rs_check_schema(c, m, err, errlen);
}

/* --- submission --- */

static void rs_enqueue_args(redis_cmd *cmd, const job_t *job, const char *view, size_t len)
{
    redis_cmd_adds(cmd, job->id);
    redis_cmd_add(cmd, view, len);
    redis_cmd_adds(cmd, job->state == JOB_SCHEDULED ? "scheduled" : "enqueued");
    /* A delay goes as -ms: the script adds it to Redis TIME (design.md: due
     * times come from Redis, not from the host clock). */
    redis_cmd_addi(cmd, job->delay_ms > 0 ? -job->delay_ms : job->run_at);
    redis_cmd_addi(cmd, job->created_at);
    redis_cmd_addi(cmd, job->max_attempts);
}

/* Reads the enqueue reply into replayed[]; -1 (all freed) if a record is unreadable. */
static int rs_enqueue_reply(const redis_model *m, job_t *const *jobs, const redisReply *r, size_t n,
                            job_t **replayed, jobd_error *err)
{
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = r->element[i];
        if (e->type == REDIS_REPLY_INTEGER)
            continue;
        if (!(replayed[i] = rs_record_reply(m, jobs[i]->id, e))) {
            for (size_t j = 0; j < i; j++) {
                job_free(replayed[j]);
                replayed[j] = NULL;
            }
            jobd_fail(err, 500, "internal_error",
                      "the stored record of an existing job is unreadable");
            return -1;
        }
    }
    return 0;
}

int redis_script_enqueue(redisContext *c, const redis_model *m, job_t *const *jobs, size_t n,
                         int64_t not_after, job_t **replayed, char **texts, jobd_error *err)
{
    char **views = texts ? texts : calloc(n ? n : 1, sizeof *views);
    if (!views)
        return jobd_fail(err, 503, "unavailable", "out of memory");
    redis_cmd cmd;
    rs_script(&cmd, m, RS_ENQUEUE);
    rs_keys(&cmd, m->ready, m->sched, m->state[JOB_SCHEDULED], m->enqueued, m->seq, NULL);
    redis_cmd_addi(&cmd, not_after);
    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        views[i] = job_view_text(jobs[i], &len);
        if (!views[i])
            cmd.oom = true;
        rs_enqueue_args(&cmd, jobs[i], views[i] ? views[i] : "", len);
        replayed[i] = NULL;
    }
    redisReply *r = rs_run(c, &cmd, err);
    if (!texts) {
        for (size_t i = 0; i < n; i++)
            free(views[i]);
        free(views);
    }
    if (!r)
        return -1;
    int rc = rs_is_array(r, n) ? rs_enqueue_reply(m, jobs, r, n, replayed, err)
                               : jobd_fail(err, 503, "unavailable", "unexpected answer from Redis");
    freeReplyObject(r);
    return rc;
}

int redis_script_time(redisContext *c, int64_t *redis_ms)
{
    redis_cmd cmd;
    redis_cmd_init(&cmd, "TIME");
    redisReply *r = rs_run(c, &cmd, NULL);
    int rc = -1;
    if (rs_is_array(r, 2) && rs_is_str(r->element[0]) && rs_is_str(r->element[1])) {
        *redis_ms = strtoll(r->element[0]->str, NULL, 10) * 1000 +
                    strtoll(r->element[1]->str, NULL, 10) / 1000;
        rc = 0;
    }
    if (r)
        freeReplyObject(r);
    return rc;
}

/* --- fetching --- */

/* What a job whose stored record cannot be read gets as its last error. */
#define RS_UNREADABLE "the stored record of this job is unreadable (not valid job JSON); it cannot run"

/* Makes dead at once the leased jobs ids[0..n) of plist whose record
 * cannot be read (logged; a failure is left to stop or a reap). */
static void rs_bury(redisContext *c, const redis_model *m, const char *plist,
                    const char *const *ids, size_t n)
{
    if (n == 0)
        return;
    redis_cmd cmd;
    rs_script(&cmd, m, RS_BURY);
    rs_keys(&cmd, plist, m->state[JOB_DEAD], m->failed, m->seq, m->running, NULL);
    redis_cmd_adds(&cmd, RS_UNREADABLE);
    for (size_t i = 0; i < n; i++)
        redis_cmd_adds(&cmd, ids[i]);
    long long dead = rs_run_int(c, &cmd);
    for (size_t i = 0; i < n; i++)
        log_event(LOG_ERROR, "job.unreadable", NULL, "queue key %s: job %s: %s%s", m->base, ids[i],
                  RS_UNREADABLE, dead < 0 ? " (not yet marked dead: Redis failed)" : "; now dead");
}

/* Reads the leases of a fetch reply {token, now, then per lease: id view
 * attempts} into out; returns how many. A job whose record cannot be read
 * goes dead at once (it would fail the same way on every run). */
static int rs_fetch_reply(redisContext *c, const redis_model *m, const char *plist,
                          const redisReply *r, size_t n, redis_lease *out)
{
    if (r->elements < 2)
        return 0;
    long long token = rs_int(r->element[0]);
    int64_t now = rs_int(r->element[1]);
    const char *bad[REDIS_BATCH_MAX];
    size_t nbad = 0;
    int k = 0;
    for (size_t i = 2; i + 3 <= r->elements && (size_t)k < n; i += 3) {
        redisReply *const *f = r->element + i;
        job_t *job = rs_job(NULL, NULL, f[1], "running", f[2], NULL, NULL, 0, NULL);
        if (!job) {
            if (rs_is_str(f[0]) && nbad < REDIS_BATCH_MAX)
                bad[nbad++] = f[0]->str;
            continue;
        }
        job->started_at = now;
        out[k++] = (redis_lease){.job = job, .token = token};
    }
    rs_bury(c, m, plist, bad, nbad);
    return k;
}

int redis_script_fetch(redisContext *c, const redis_model *m, const char *plist, size_t n,
                       redis_lease *out)
{
    if (n == 0)
        return 0;
    redis_cmd cmd;
    rs_script(&cmd, m, RS_FETCH);
    rs_keys(&cmd, m->ready, plist, m->paused, m->fence, m->enqueued, m->running, NULL);
    redis_cmd_addi(&cmd, (long long)(n > REDIS_BATCH_MAX ? REDIS_BATCH_MAX : n));
    redisReply *r = rs_run(c, &cmd, NULL);
    if (!r)
        return -1;
    int got = -1;
    if (r->type == REDIS_REPLY_INTEGER)
        got = -2;
    else if (r->type == REDIS_REPLY_ARRAY)
        got = rs_fetch_reply(c, m, plist, r, n, out);
    freeReplyObject(r);
    return got;
}

int redis_script_wait(redisContext *c, const redis_model *m, double block)
{
    redis_cmd cmd;
    redis_cmd_init(&cmd, "BLMOVE");
    redis_cmd_adds(&cmd, m->ready);
    redis_cmd_adds(&cmd, m->ready);
    redis_cmd_adds(&cmd, "RIGHT");
    redis_cmd_adds(&cmd, "RIGHT");
    redis_cmd_addf(&cmd, "%.3f", block);
    redisReply *r = rs_run(c, &cmd, NULL);
    if (!r)
        return -1;
    int got = r->type == REDIS_REPLY_STRING ? 1 : 0;
    freeReplyObject(r);
    return got;
}

/* --- ending runs --- */

static void rs_finish_args(redis_cmd *cmd, const redis_outcome *o)
{
    const job_t *job = o->job;
    redis_cmd_adds(cmd, job->id);
    redis_cmd_addi(cmd, o->token);
    redis_cmd_adds(cmd, job_state_name(o->next));
    redis_cmd_addi(cmd, job->attempts);
    redis_cmd_addi(cmd, (long long)(o->delay > 0 ? o->delay * 1000.0 : 0));
    redis_cmd_adds(cmd, job->last_error && o->next != JOB_SUCCEEDED ? job->last_error : "");
}

int redis_script_finish_batch(redisContext *c, const redis_model *m, const char *plist,
                              const redis_outcome *outs, size_t n, int *done, jobd_error *err)
{
    if (n == 0)
        return 0;
    redis_cmd cmd;
    rs_script(&cmd, m, RS_FINISH);
    rs_keys(&cmd, plist, m->running, m->state[JOB_RETRYING], m->state[JOB_DEAD], m->sched,
            m->processed, m->failed, m->seq, NULL);
    for (size_t i = 0; i < n; i++)
        rs_finish_args(&cmd, &outs[i]);
    redisReply *r = rs_run(c, &cmd, err);
    if (!r)
        return -1;
    int rc = rs_is_array(r, n) ? 0 : jobd_fail(err, 503, "unavailable", "unexpected answer from Redis");
    for (size_t i = 0; rc == 0 && i < n; i++)
        done[i] = rs_int(r->element[i]) == 1;
    freeReplyObject(r);
    return rc;
}

int redis_script_finish(redisContext *c, const redis_model *m, const char *plist, const job_t *job,
                        long long token, job_state next, double delay)
{
    redis_outcome o = {.job = job, .token = token, .next = next, .delay = delay};
    int done = 0;
    return redis_script_finish_batch(c, m, plist, &o, 1, &done, NULL) == 0 ? done : -1;
}

/* One requeue script call over ids[0..n) of pid's set. */
static long rs_requeue(redisContext *c, const redis_model *m, const char *pid, bool abandon,
                       const char *why, const char *const *ids, size_t n)
{
    char plist[REDIS_KEY_MAX];
    redis_script_proc_key(m, pid, plist);
    redis_cmd cmd;
    rs_script(&cmd, m, RS_REQUEUE);
    rs_keys(&cmd, plist, m->ready, m->state[JOB_DEAD], m->failed, m->seq, m->orphans,
            m->enqueued, m->running, NULL);
    redis_cmd_adds(&cmd, abandon ? "abandon" : "release");
    redis_cmd_addi(&cmd, m->default_max);
    redis_cmd_adds(&cmd, pid);
    redis_cmd_adds(&cmd, why);
    for (size_t i = 0; i < n; i++)
        redis_cmd_adds(&cmd, ids[i]);
    return (long)rs_run_int(c, &cmd);
}

/* Up to count ids of pid's lease set (HRANDFIELD): an array reply, or NULL. */
static redisReply *rs_proc_ids(redisContext *c, const redis_model *m, const char *pid, int count)
{
    char plist[REDIS_KEY_MAX];
    redis_script_proc_key(m, pid, plist);
    redis_cmd cmd;
    redis_cmd_init(&cmd, "HRANDFIELD");
    redis_cmd_adds(&cmd, plist);
    redis_cmd_addi(&cmd, count);
    redisReply *r = rs_run(c, &cmd, NULL);
    if (r && r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        r = NULL;
    }
    return r;
}

/* Requeues the ids of an id array reply for which keep (may be NULL) says no. */
static long rs_requeue_reply(redisContext *c, const redis_model *m, const char *pid, bool abandon,
                             const char *why, const redisReply *r,
                             bool (*keep)(void *arg, const char *id), void *arg)
{
    const char **ids = calloc(r->elements ? r->elements : 1, sizeof *ids);
    if (!ids)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < r->elements; i++)
        if (!keep || !keep(arg, r->element[i]->str))
            ids[n++] = r->element[i]->str;
    long moved = rs_requeue(c, m, pid, abandon, why, ids, n);
    free(ids);
    return moved;
}

long redis_script_give_back(redisContext *c, const redis_model *m, const char *pid, bool abandon,
                            const char *why)
{
    long total = 0;
    for (int round = 0; round < RS_GIVE_BACK_ROUNDS; round++) {
        redisReply *ids = rs_proc_ids(c, m, pid, RS_GIVE_BACK_BATCH);
        if (!ids)
            return -1;
        size_t got = ids->elements;
        /* Run even with no ids: the script forgets an orphan whose set is empty. */
        long moved = rs_requeue_reply(c, m, pid, abandon, why, ids, NULL, NULL);
        freeReplyObject(ids);
        if (moved < 0)
            return -1;
        total += moved;
        if (got == 0)
            break;
    }
    return total;
}

long redis_script_release_strays(redisContext *c, const redis_model *m, const char *pid,
                                 bool (*held)(void *arg, const char *id), void *arg)
{
    redisReply *ids = rs_proc_ids(c, m, pid, REDIS_BATCH_MAX);
    if (!ids)
        return -1;
    long moved = rs_requeue_reply(c, m, pid, false, "", ids, held, arg);
    freeReplyObject(ids);
    return moved;
}

int redis_script_beat(redisContext *c, const redis_model *m, const char *pid, const char *mode,
                      long long ttl_ms)
{
    char hb[REDIS_KEY_MAX];
    redis_script_hb_key(m, pid, hb);
    redis_cmd cmd;
    redis_cmd_init_script(&cmd, &m->scripts[RS_BEAT]);
    redis_cmd_key(&cmd, m->procs);
    redis_cmd_key(&cmd, hb);
    redis_cmd_adds(&cmd, mode);
    redis_cmd_adds(&cmd, pid);
    redis_cmd_addi(&cmd, ttl_ms);
    return (int)rs_run_int(c, &cmd);
}

/* SMEMBERS key: an array reply, or NULL. */
static redisReply *rs_members(redisContext *c, const char *key)
{
    redis_cmd cmd;
    redis_cmd_init(&cmd, "SMEMBERS");
    redis_cmd_adds(&cmd, key);
    redisReply *r = rs_run(c, &cmd, NULL);
    if (r && r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        r = NULL;
    }
    return r;
}

/* Declares registered processes without heartbeat dead. -1 when the connection failed. */
static int rs_find_orphans(redisContext *c, const redis_model *m, const char *self)
{
    redisReply *procs = rs_members(c, m->procs);
    if (!procs)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < procs->elements && rc == 0; i++) {
        const char *pid = procs->element[i]->str;
        if (strcmp(pid, self) == 0)
            continue;
        char hb[REDIS_KEY_MAX];
        redis_script_hb_key(m, pid, hb);
        redis_cmd cmd;
        redis_cmd_init_script(&cmd, &m->scripts[RS_ORPHAN]);
        redis_cmd_key(&cmd, m->procs);
        redis_cmd_key(&cmd, hb);
        redis_cmd_key(&cmd, m->orphans);
        redis_cmd_adds(&cmd, pid);
        long long v = rs_run_int(c, &cmd);
        if (v < 0)
            rc = -1;
        else if (v == 1)
            log_event(LOG_WARN, "redis.process_lost", NULL,
                      "process %s of queue key %s stopped heartbeating: taking its jobs back", pid,
                      m->base);
    }
    freeReplyObject(procs);
    return rc;
}

long redis_script_reap(redisContext *c, const redis_model *m, const char *self)
{
    if (rs_find_orphans(c, m, self) != 0)
        return -1;
    redisReply *orphans = rs_members(c, m->orphans);
    if (!orphans)
        return -1;
    long total = 0;
    for (size_t i = 0; i < orphans->elements && total >= 0; i++) {
        char why[128];
        snprintf(why, sizeof why, "lease lost: process %.40s stopped heartbeating",
                 orphans->element[i]->str);
        long n = redis_script_give_back(c, m, orphans->element[i]->str, true, why);
        total = n < 0 ? -1 : total + n;
    }
    freeReplyObject(orphans);
    return total;
}

/* --- due jobs and retention --- */

long redis_script_promote(redisContext *c, const redis_model *m, size_t batch)
{
    redis_cmd cmd;
    rs_script(&cmd, m, RS_PROMOTE);
    rs_keys(&cmd, m->sched, m->ready, m->state[JOB_SCHEDULED], m->state[JOB_RETRYING], m->enqueued,
            NULL);
    redis_cmd_addi(&cmd, (long long)(batch > REDIS_BATCH_MAX ? REDIS_BATCH_MAX : batch));
    return (long)rs_run_int(c, &cmd);
}

long redis_script_trim(redisContext *c, const redis_model *m, bool dead, double max_age,
                       long max_count, size_t batch)
{
    redis_cmd cmd;
    rs_script(&cmd, m, RS_TRIM);
    /* The finished set holds succeeded (no state set) and cancelled jobs. */
    rs_keys(&cmd, dead ? m->dead : m->finished,
            dead ? m->state[JOB_DEAD] : m->state[JOB_CANCELLED], m->trimmed, NULL);
    redis_cmd_addi(&cmd, (long long)(max_age * 1000.0));
    redis_cmd_adds(&cmd, dead ? "1000" : "1");
    redis_cmd_addi(&cmd, max_count);
    redis_cmd_addi(&cmd, (long long)(batch > REDIS_BATCH_MAX ? REDIS_BATCH_MAX : batch));
    return (long)rs_run_int(c, &cmd);
}

/* --- store reads and admin --- */

/* Reading records from C: an HMGET per column and a ZMSCORE of finished
 * and of dead (finished_at), the ids added to each (rs_records_add), sent
 * in one pipeline (rs_records_run). */
enum { RS_READS = 8 };
static const enum redis_column rs_read_cols[] = {RC_V, RC_S, RC_A, RC_R, RC_B, RC_E};
enum { RS_READ_FIN = 6, RS_READ_DEAD = 7 };

static void rs_records_init(redis_cmd cmds[RS_READS], const redis_model *m)
{
    for (size_t k = 0; k < RS_READS; k++) {
        redis_cmd_init(&cmds[k], k < RS_READ_FIN ? "HMGET" : "ZMSCORE");
        redis_cmd_adds(&cmds[k], k < RS_READ_FIN    ? m->col[rs_read_cols[k]]
                                 : k == RS_READ_FIN ? m->finished
                                                    : m->dead);
    }
}

static void rs_records_add(redis_cmd cmds[RS_READS], const char *id, size_t len)
{
    for (size_t k = 0; k < RS_READS; k++)
        redis_cmd_add(&cmds[k], id, len);
}

/* Sends and frees the commands (n ids, n > 0); cols gets one array reply
 * of n per command. 0, or -1 (cols all NULL) when the connection failed. */
static int rs_records_run(redisContext *c, redis_cmd cmds[RS_READS], size_t n,
                          redisReply *cols[RS_READS])
{
    redis_cmd *ptrs[RS_READS];
    for (size_t k = 0; k < RS_READS; k++)
        ptrs[k] = &cmds[k];
    int rc = redis_conn_pipeline(c, ptrs, RS_READS, cols);
    for (size_t k = 0; k < RS_READS; k++)
        redis_cmd_free(&cmds[k]);
    for (size_t k = 0; rc == 0 && k < RS_READS; k++)
        if (!rs_is_array(cols[k], n))
            rc = -1;
    if (rc != 0 && cols[0])
        for (size_t k = 0; k < RS_READS; k++) {
            freeReplyObject(cols[k]);
            cols[k] = NULL;
        }
    return rc;
}

/* Row i of columns read by rs_records_run: the view reply (NULL: no such
 * job), and the job (NULL: none or unreadable; new job). */
static job_t *rs_row(const redis_model *m, const char *id, redisReply *const cols[RS_READS],
                     size_t i)
{
    redisReply *f[RS_READS];
    for (size_t k = 0; k < RS_READS; k++)
        f[k] = cols[k]->element[i];
    int64_t finished = rs_is_str(f[RS_READ_FIN]) ? rs_int(f[RS_READ_FIN])
                                                 : rs_int(f[RS_READ_DEAD]) / 1000;
    return rs_job(m, id, f[0], rs_is_str(f[1]) ? f[1]->str : NULL, f[2], f[3], f[4], finished,
                  f[5]);
}

static void rs_free_cols(redisReply *cols[RS_READS])
{
    for (size_t k = 0; k < RS_READS; k++)
        freeReplyObject(cols[k]);
}

static void rs_unknown(jobd_error *err, const char *id)
{
    jobd_fail(err, 404, "unknown_job", "no job \"%s\" in this queue", id);
}

json_t *redis_script_get(redisContext *c, const redis_model *m, const char *id, jobd_error *err)
{
    redis_cmd cmds[RS_READS];
    redisReply *cols[RS_READS];
    rs_records_init(cmds, m);
    rs_records_add(cmds, id, strlen(id));
    if (rs_records_run(c, cmds, 1, cols) != 0) {
        redis_conn_check_reply(c, NULL, err);
        return NULL;
    }
    json_t *v = NULL;
    if (!rs_is_str(cols[0]->element[0])) {
        rs_unknown(err, id);
    } else {
        job_t *job = rs_row(m, id, cols, 0);
        v = job ? job_view(job) : NULL;
        job_free(job);
        if (!v)
            jobd_fail(err, 500, "internal_error", "the stored record of job \"%s\" is unreadable",
                      id);
    }
    rs_free_cols(cols);
    return v;
}

/* A paging position: the score and id of the last job of a page. */
typedef struct rs_cursor {
    char score[24]; /* "" = from the top */
    char id[JOB_ID_MAX + 1];
} rs_cursor;

/* Reads a cursor this server gave out, "<score>:<id>" (or a bare score, as
 * older versions gave: then every job at that score counts as shown); NULL
 * is the top. 0, or -1 when it is not one of ours. */
static int rs_cursor_parse(const char *cursor, rs_cursor *pos)
{
    memset(pos, 0, sizeof *pos);
    if (!cursor)
        return 0;
    size_t n = strspn(cursor, "0123456789");
    if (n == 0 || n >= sizeof pos->score || (cursor[n] && cursor[n] != ':') ||
        (cursor[n] == ':' && !name_id_ok(cursor + n + 1)))
        return -1;
    memcpy(pos->score, cursor, n);
    if (cursor[n] == ':')
        snprintf(pos->id, sizeof pos->id, "%s", cursor + n + 1);
    return 0;
}

/* The cursor of the page that ends with (id, score): new memory, NULL on OOM. */
static char *rs_cursor_text(const redisReply *id, const redisReply *score)
{
    char *out = NULL;
    return asprintf(&out, "%s:%s", score->str, id->str) < 0 ? NULL : out;
}

static void rs_cursor_args(redis_cmd *cmd, const rs_cursor *pos)
{
    redis_cmd_adds(cmd, pos->score);
    redis_cmd_adds(cmd, pos->id);
}

/* The views of the jobs ids (first n id/score pairs: ids[2i] the id) that are still in
 * state (-1 = any) as {"jobs","next_cursor"} (next NULL = the end); NULL
 * with 503 on failure. */
static json_t *rs_page(redisContext *c, const redis_model *m, redisReply *const *ids, size_t n,
                       int state, const char *next, jobd_error *err)
{
    json_t *jobs = json_array();
    if (n == 0)
        return json_pack("{s:o,s:o}", "jobs", jobs, "next_cursor",
                         next ? json_string(next) : json_null());
    redis_cmd cmds[RS_READS];
    redisReply *cols[RS_READS];
    rs_records_init(cmds, m);
    for (size_t i = 0; i < n; i++)
        rs_records_add(cmds, ids[2 * i]->str, ids[2 * i]->len);
    if (rs_records_run(c, cmds, n, cols) != 0) {
        json_decref(jobs);
        redis_conn_check_reply(c, NULL, err);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        job_t *job = rs_row(m, ids[2 * i]->str, cols, i);
        if (job && (state < 0 || (int)job->state == state))
            json_array_append_new(jobs, job_view(job));
        job_free(job);
    }
    rs_free_cols(cols);
    return json_pack("{s:o,s:o}", "jobs", jobs, "next_cursor",
                     next ? json_string(next) : json_null());
}

/* rs_page of the first n pairs, the next cursor made from pair n - 1 when
 * more holds (there are more jobs past it). */
static json_t *rs_page_at(redisContext *c, const redis_model *m, redisReply *const *pairs, size_t n,
                          bool more, int state, jobd_error *err)
{
    char *next = more && n ? rs_cursor_text(pairs[2 * n - 2], pairs[2 * n - 1]) : NULL;
    json_t *page = more && n && !next ? NULL : rs_page(c, m, pairs, n, state, next, err);
    if (more && n && !next)
        jobd_fail(err, 503, "unavailable", "out of memory");
    free(next);
    return page;
}

/* A page of zset (newest first), up to limit jobs past the cursor. */
static json_t *rs_list_zset(redisContext *c, const redis_model *m, const char *zset, int state,
                            size_t limit, const rs_cursor *pos, jobd_error *err)
{
    redis_cmd cmd;
    rs_script(&cmd, m, RS_PAGE);
    redis_cmd_key(&cmd, zset);
    rs_cursor_args(&cmd, pos);
    redis_cmd_addi(&cmd, (long long)limit + 1);
    redisReply *ids = rs_run(c, &cmd, err);
    if (!ids)
        return NULL;
    json_t *page = NULL;
    if (ids->type != REDIS_REPLY_ARRAY) {
        jobd_fail(err, 503, "unavailable", "unexpected answer from Redis");
    } else {
        size_t k = ids->elements / 2, n = k > limit ? limit : k;
        page = rs_page_at(c, m, ids->element, n, k > limit, state, err);
    }
    freeReplyObject(ids);
    return page;
}

/* A page of the jobs in state (one without a zset of its own), from a
 * bounded scan of all: it may hold fewer than limit jobs and still have a
 * next cursor. */
static json_t *rs_list_scan(redisContext *c, const redis_model *m, int state, size_t limit,
                            const rs_cursor *pos, jobd_error *err)
{
    redis_cmd cmd;
    rs_script(&cmd, m, RS_SCAN);
    rs_cursor_args(&cmd, pos);
    redis_cmd_adds(&cmd, job_state_name((job_state)state));
    redis_cmd_addi(&cmd, (long long)limit);
    redis_cmd_addi(&cmd, RS_SCAN_BUDGET > limit ? RS_SCAN_BUDGET : (long long)limit);
    redisReply *r = rs_run(c, &cmd, err);
    if (!r)
        return NULL;
    json_t *page = NULL;
    if (!rs_is_array(r, 2) || r->element[0]->type != REDIS_REPLY_ARRAY) {
        jobd_fail(err, 503, "unavailable", "unexpected answer from Redis");
    } else {
        const redisReply *ids = r->element[0];
        bool more = r->elements >= 3 && rs_is_str(r->element[1]) && rs_is_str(r->element[2]);
        char *next = more ? rs_cursor_text(r->element[1], r->element[2]) : NULL;
        if (more && !next)
            jobd_fail(err, 503, "unavailable", "out of memory");
        else
            page = rs_page(c, m, ids->element, ids->elements / 2, state, next, err);
        free(next);
    }
    freeReplyObject(r);
    return page;
}

/* Replies of one command per key (cmd key), pipelined; NULL (all freed)
 * unless each is an array. The caller frees each reply and the array. */
static redisReply **rs_each_key(redisContext *c, const char *cmd, const char *const *keys, size_t n)
{
    redis_cmd *cmds = calloc(n ? n : 1, sizeof *cmds);
    redis_cmd **ptrs = calloc(n ? n : 1, sizeof *ptrs);
    redisReply **r = calloc(n ? n : 1, sizeof *r);
    int rc = cmds && ptrs && r ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        redis_cmd_init(&cmds[i], cmd);
        redis_cmd_adds(&cmds[i], keys[i]);
        ptrs[i] = &cmds[i];
    }
    if (rc == 0)
        rc = redis_conn_pipeline(c, ptrs, n, r);
    for (size_t i = 0; cmds && i < n; i++)
        redis_cmd_free(&cmds[i]);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (!rs_is_array(r[i], 0))
            rc = -1;
    if (rc != 0 && r) {
        for (size_t i = 0; i < n; i++)
            if (r[i])
                freeReplyObject(r[i]);
        free(r);
        r = NULL;
    }
    free(cmds);
    free(ptrs);
    return r;
}

/* The lease sets of live processes and of dead ones not yet taken back
 * (HKEYS of each): replies for rs_each_key's caller, *n of them; NULL on failure. */
static redisReply **rs_lease_sets(redisContext *c, const redis_model *m, size_t *n)
{
    const char *const sets[] = {m->procs, m->orphans};
    redisReply **pids = rs_each_key(c, "SMEMBERS", sets, 2);
    if (!pids)
        return NULL;
    *n = pids[0]->elements + pids[1]->elements;
    char(*keys)[REDIS_KEY_MAX] = calloc(*n ? *n : 1, sizeof *keys);
    const char **ptrs = calloc(*n ? *n : 1, sizeof *ptrs);
    redisReply **r = NULL;
    if (keys && ptrs) {
        size_t k = 0;
        for (size_t s = 0; s < 2; s++)
            for (size_t i = 0; i < pids[s]->elements; i++, k++) {
                redis_script_proc_key(m, pids[s]->element[i]->str, keys[k]);
                ptrs[k] = keys[k];
            }
        r = rs_each_key(c, "HKEYS", ptrs, *n);
    }
    free(keys);
    free(ptrs);
    freeReplyObject(pids[0]);
    freeReplyObject(pids[1]);
    free(pids);
    return r;
}

/* Order of (id, score) pairs as the zsets list them newest first: higher
 * score first, then (equal scores) the higher id first. */
static int rs_pair_cmp(const char *id_a, long long score_a, const char *id_b, long long score_b)
{
    if (score_a != score_b)
        return score_a < score_b ? 1 : -1;
    return -strcmp(id_a, id_b);
}

/* qsort order of (id, score) reply pairs, newest first. */
static int rs_newest_first(const void *a, const void *b)
{
    redisReply *const *x = a, *const *y = b;
    return rs_pair_cmp(x[0]->str, rs_int(x[1]), y[0]->str, rs_int(y[1]));
}

/* A page of the running jobs: the ids in the lease sets, by index score
 * (ZMSCORE of all), sorted here. */
static json_t *rs_list_running(redisContext *c, const redis_model *m, size_t limit,
                               const rs_cursor *pos, jobd_error *err)
{
    size_t nsets = 0;
    redisReply **sets = rs_lease_sets(c, m, &nsets);
    if (!sets) {
        jobd_fail(err, 503, "unavailable", "cannot read the lease sets from Redis");
        return NULL;
    }
    redis_cmd cmd;
    redis_cmd_init(&cmd, "ZMSCORE");
    redis_cmd_adds(&cmd, m->all);
    size_t n = 0;
    for (size_t s = 0; s < nsets; s++)
        for (size_t i = 0; i < sets[s]->elements && n < RS_RUNNING_MAX; i++, n++)
            redis_cmd_add(&cmd, sets[s]->element[i]->str, sets[s]->element[i]->len);
    redisReply *scores = n ? rs_run(c, &cmd, err) : NULL;
    if (!n)
        redis_cmd_free(&cmd);
    redisReply **pairs = calloc(2 * (n ? n : 1), sizeof *pairs);
    json_t *page = NULL;
    if ((n && !rs_is_array(scores, n)) || !pairs) {
        jobd_fail(err, 503, "unavailable", "unexpected answer from Redis");
    } else {
        long long before = strtoll(pos->score, NULL, 10);
        size_t k = 0, j = 0;
        for (size_t s = 0; s < nsets; s++)
            for (size_t i = 0; i < sets[s]->elements && j < n; i++, j++)
                if (rs_is_str(scores->element[j]) &&
                    (!pos->score[0] || rs_pair_cmp(sets[s]->element[i]->str,
                                                   rs_int(scores->element[j]), pos->id,
                                                   before) > 0)) {
                    pairs[2 * k] = sets[s]->element[i];
                    pairs[2 * k++ + 1] = scores->element[j];
                }
        qsort(pairs, k, 2 * sizeof *pairs, rs_newest_first);
        size_t shown = k > limit ? limit : k;
        page = rs_page_at(c, m, pairs, shown, k > limit, JOB_RUNNING, err);
    }
    free(pairs);
    if (scores)
        freeReplyObject(scores);
    for (size_t s = 0; s < nsets; s++)
        freeReplyObject(sets[s]);
    free(sets);
    return page;
}

json_t *redis_script_list(redisContext *c, const redis_model *m, int state, bool dead_set,
                          size_t limit, const char *cursor, jobd_error *err)
{
    rs_cursor pos;
    if (rs_cursor_parse(cursor, &pos) != 0) {
        jobd_fail(err, 400, "invalid_parameter", "cursor is not one this server gave");
        if (err)
            snprintf(err->field, sizeof err->field, "cursor");
        return NULL;
    }
    if (dead_set)
        return rs_list_zset(c, m, m->dead, JOB_DEAD, limit, &pos, err);
    if (state == JOB_ENQUEUED || state == JOB_SUCCEEDED)
        return rs_list_scan(c, m, state, limit, &pos, err);
    if (state == JOB_RUNNING)
        return rs_list_running(c, m, limit, &pos, err);
    return rs_list_zset(c, m, state < 0 ? m->all : m->state[state], state, limit, &pos, err);
}

/* Reads {0} / {2, state} / {1, record?} answers of cancel and dead: the new
 * view (json_null() when there is no record), or NULL with 404/409 in err. */
static json_t *rs_outcome(const redis_model *m, const redisReply *r, const char *id,
                          const char *conflict, jobd_error *err)
{
    long long code = rs_is_array(r, 1) ? rs_int(r->element[0]) : -1;
    if (code == 0) {
        rs_unknown(err, id);
        return NULL;
    }
    if (code == 2 && r->elements >= 2 && rs_is_str(r->element[1])) {
        jobd_fail(err, 409, "conflict", "job \"%s\" is %s%s", id, r->element[1]->str, conflict);
        return NULL;
    }
    if (code != 1) {
        jobd_fail(err, 503, "unavailable", "unexpected answer from Redis");
        return NULL;
    }
    return r->elements >= 2 ? rs_view_reply(m, r->element[1], id, err) : json_null();
}

json_t *redis_script_cancel(redisContext *c, const redis_model *m, const char *id, jobd_error *err)
{
    redis_cmd cmd;
    rs_script(&cmd, m, RS_CANCEL);
    rs_keys(&cmd, m->sched, m->state[JOB_SCHEDULED], m->state[JOB_RETRYING],
            m->state[JOB_CANCELLED], m->enqueued, NULL);
    redis_cmd_adds(&cmd, id);
    redisReply *r = rs_run(c, &cmd, err);
    if (!r)
        return NULL;
    json_t *v = rs_outcome(m, r, id, " and cannot be cancelled", err);
    freeReplyObject(r);
    return v;
}

json_t *redis_script_dead_op(redisContext *c, const redis_model *m, const char *id, bool retry,
                             jobd_error *err)
{
    redis_cmd cmd;
    rs_script(&cmd, m, RS_DEAD);
    rs_keys(&cmd, m->state[JOB_DEAD], m->ready, m->enqueued, NULL);
    redis_cmd_adds(&cmd, retry ? "retry" : "delete");
    redis_cmd_adds(&cmd, id);
    redisReply *r = rs_run(c, &cmd, err);
    if (!r)
        return NULL;
    json_t *v = rs_outcome(m, r, id, ", not dead", err);
    freeReplyObject(r);
    return v;
}

int redis_script_pause(redisContext *c, const redis_model *m, bool paused, jobd_error *err)
{
    redis_cmd cmd;
    redis_cmd_init(&cmd, paused ? "SET" : "DEL");
    redis_cmd_adds(&cmd, m->paused);
    if (paused)
        redis_cmd_adds(&cmd, "1");
    redisReply *r = rs_run(c, &cmd, err);
    if (!r)
        return -1;
    freeReplyObject(r);
    return 0;
}

int redis_script_paused(redisContext *c, const redis_model *m)
{
    redis_cmd cmd;
    redis_cmd_init(&cmd, "EXISTS");
    redis_cmd_adds(&cmd, m->paused);
    long long v = rs_run_int(c, &cmd);
    return v < 0 ? -1 : v > 0;
}

json_t *redis_script_info(redisContext *c, const redis_model *m, jobd_error *err)
{
    /* How each count is kept: a state set's size, or a counter. */
    static const struct {
        job_state state;
        bool counter;
    } counted[] = {{JOB_SCHEDULED, false}, {JOB_ENQUEUED, true}, {JOB_RUNNING, true},
                   {JOB_RETRYING, false},  {JOB_DEAD, false}};
    enum { NC = sizeof counted / sizeof counted[0], N = NC + 3 };
    redis_cmd cmds[N];
    redis_cmd *ptrs[N];
    redis_cmd_init(&cmds[0], "EXISTS");
    redis_cmd_adds(&cmds[0], m->paused);
    for (size_t i = 0; i < NC; i++) {
        redis_cmd_init(&cmds[1 + i], counted[i].counter ? "GET" : "ZCARD");
        const char *key = !counted[i].counter                ? m->state[counted[i].state]
                          : counted[i].state == JOB_ENQUEUED ? m->enqueued
                                                             : m->running;
        redis_cmd_adds(&cmds[1 + i], key);
    }
    redis_cmd_init(&cmds[NC + 1], "GET");
    redis_cmd_adds(&cmds[NC + 1], m->processed);
    redis_cmd_init(&cmds[NC + 2], "GET");
    redis_cmd_adds(&cmds[NC + 2], m->failed);
    for (size_t i = 0; i < N; i++)
        ptrs[i] = &cmds[i];
    redisReply *r[N];
    int rc = redis_conn_pipeline(c, ptrs, N, r);
    for (size_t i = 0; i < N; i++)
        redis_cmd_free(&cmds[i]);
    if (rc != 0) {
        redis_conn_check_reply(c, NULL, err);
        return NULL;
    }
    json_t *counts = json_object();
    for (size_t i = 0; i < NC; i++)
        json_object_set_new(counts, job_state_name(counted[i].state),
                            json_integer(rs_int(r[1 + i])));
    json_t *info = json_pack("{s:b,s:o,s:I,s:I}", "paused", rs_int(r[0]) > 0, "counts", counts,
                             "processed_total", (json_int_t)rs_int(r[NC + 1]), "failed_total",
                             (json_int_t)rs_int(r[NC + 2]));
    for (size_t i = 0; i < N; i++)
        freeReplyObject(r[i]);
    return info;
}

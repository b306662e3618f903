/* redis_scripts.c - the Lua scripts of a Redis queue and their C callers.
 *
 * Rules every script follows (design.md): all keys it touches come in KEYS;
 * it reads and checks everything before its first write (a script that fails
 * half-way keeps its writes); it never decodes a job's JSON (the view is an
 * opaque string); it loops only over what it was given (bounded by the
 * caller's batch); numbers that go back to Redis are formatted as integers
 * (Lua's default formatting keeps 14 digits, scores need 16). */
#include "redis_scripts.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../server/log.h"
#include "job.h"

#define RS_BATCH_MAX 1000 /* ids one script call handles */
#define RS_GIVE_BACK_BATCH 100
#define RS_GIVE_BACK_ROUNDS 1000

/* --- the scripts --- */

/* The Lua reads best one line of script per line: */
/* clang-format off */
#define LUA_PRELUDE                                                                     \
    "local function now_ms()\n"                                                         \
    "  local t = redis.call('TIME')\n"                                                  \
    "  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"              \
    "end\n"                                                                             \
    "local function int(x) return string.format('%d', x) end\n"                         \
    "local function record(k)\n"                                                        \
    "  return redis.call('HMGET', k, 'v', 's', 'a', 'r', 'b', 'f', 'e')\n"              \
    "end\n"

/* KEYS: all ready sched st:scheduled st:enqueued seq, then one job key per job.
 * ARGV: not_after (Redis ms, 0 = none), then per job: id view state run_at
 * created_ms max_attempts.
 * Returns per job 0 (stored) or the existing record (replayed); an error when
 * it runs after not_after: the caller has answered 503 by then (a Redis that
 * was frozen), and a 503 must mean "not stored". */
static const char lua_enqueue[] = LUA_PRELUDE
    "local NK, W = 6, 6\n"
    "local n = #KEYS - NK\n"
    "local not_after = tonumber(ARGV[1])\n"
    "if not_after > 0 and now_ms() > not_after then\n"
    "  return redis.error_reply('LATE the submission reached Redis after its deadline')\n"
    "end\n"
    "local new, seen = {}, {}\n"
    "for i = 1, n do\n"
    "  local k = KEYS[NK + i]\n"
    "  new[i] = not seen[k] and redis.call('EXISTS', k) == 0\n"
    "  seen[k] = true\n"
    "end\n"
    "local seq = redis.call('INCRBY', KEYS[6], n) - n\n"
    "local out = {}\n"
    "for i = 1, n do\n"
    "  local k, a = KEYS[NK + i], 1 + (i - 1) * W\n"
    "  if new[i] then\n"
    "    local id, st, run_at = ARGV[a + 1], ARGV[a + 3], ARGV[a + 4]\n"
    "    seq = seq + 1\n"
    "    local score = int(tonumber(ARGV[a + 5]) * 1000 + seq % 1000)\n"
    "    redis.call('HSET', k, 'v', ARGV[a + 2], 's', st, 'a', 0, 'm', ARGV[a + 6],\n"
    "               'r', run_at, 'b', 0, 'f', 0, 'c', score)\n"
    "    redis.call('ZADD', KEYS[1], score, id)\n"
    "    if st == 'scheduled' then\n"
    "      redis.call('ZADD', KEYS[4], score, id)\n"
    "      redis.call('ZADD', KEYS[3], run_at, id)\n"
    "    else\n"
    "      redis.call('ZADD', KEYS[5], score, id)\n"
    "      redis.call('LPUSH', KEYS[2], id)\n"
    "    end\n"
    "    out[i] = 0\n"
    "  else\n"
    "    out[i] = record(k)\n"
    "  end\n"
    "end\n"
    "return out\n";

/* KEYS: plist ready st:enqueued st:running fence paused, then the job keys.
 * ARGV: the ids, as taken (ARGV[1] came off ready first).
 * Returns -1 (paused: all went back), or per id 0 (dropped) or {token, record...}. */
static const char lua_lease[] = LUA_PRELUDE
    "local NK = 6\n"
    "local n = #KEYS - NK\n"
    "if redis.call('EXISTS', KEYS[6]) == 1 then\n"
    "  for i = n, 1, -1 do\n"
    "    redis.call('LREM', KEYS[1], 1, ARGV[i])\n"
    "    redis.call('RPUSH', KEYS[2], ARGV[i])\n"
    "  end\n"
    "  return -1\n"
    "end\n"
    "local st = {}\n"
    "for i = 1, n do st[i] = redis.call('HGET', KEYS[NK + i], 's') end\n"
    "local now = now_ms()\n"
    "local out = {}\n"
    "for i = 1, n do\n"
    "  local k, id = KEYS[NK + i], ARGV[i]\n"
    "  if st[i] == 'enqueued' then\n"
    "    local tok = redis.call('INCR', KEYS[5])\n"
    "    redis.call('HSET', k, 's', 'running', 'b', int(now), 't', tok)\n"
    "    redis.call('ZREM', KEYS[3], id)\n"
    "    redis.call('ZADD', KEYS[4], redis.call('HGET', k, 'c'), id)\n"
    "    local r = record(k)\n"
    "    table.insert(r, 1, tok)\n"
    "    out[i] = r\n"
    "    st[i] = 'running'\n"
    "  else\n"
    /* cancelled, deleted, or a second entry of a job already taken */
    "    redis.call('LREM', KEYS[1], 1, id)\n"
    "    out[i] = 0\n"
    "  end\n"
    "  for j = i + 1, n do if ARGV[j] == id then st[j] = st[i] end end\n"
    "end\n"
    "return out\n";

/* KEYS: job plist st:running st:succeeded st:retrying st:dead sched finished
 *       dead processed failed seq.
 * ARGV: id token next attempts delay_ms error.
 * Returns 1, or 0 when the token is not the job's lease (stale: nothing written). */
static const char lua_finish[] = LUA_PRELUDE
    "local k, id = KEYS[1], ARGV[1]\n"
    "local rec = redis.call('HMGET', k, 't', 's', 'c')\n"
    "if rec[1] ~= ARGV[2] or rec[2] ~= 'running' then return 0 end\n"
    "local now, score, nxt = now_ms(), rec[3], ARGV[3]\n"
    "redis.call('LREM', KEYS[2], 1, id)\n"
    "redis.call('ZREM', KEYS[3], id)\n"
    "redis.call('HDEL', k, 't')\n"
    "redis.call('HSET', k, 'a', ARGV[4])\n"
    "if ARGV[6] ~= '' then redis.call('HSET', k, 'e', ARGV[6]) end\n"
    "if nxt == 'succeeded' then\n"
    "  redis.call('HSET', k, 's', 'succeeded', 'f', int(now))\n"
    "  redis.call('ZADD', KEYS[4], score, id)\n"
    "  redis.call('ZADD', KEYS[8], int(now), id)\n"
    "  redis.call('INCR', KEYS[10])\n"
    "elseif nxt == 'retrying' then\n"
    "  local due = int(now + tonumber(ARGV[5]))\n"
    "  redis.call('HSET', k, 's', 'retrying', 'r', due)\n"
    "  redis.call('ZADD', KEYS[5], score, id)\n"
    "  redis.call('ZADD', KEYS[7], due, id)\n"
    "  redis.call('INCR', KEYS[11])\n"
    "else\n"
    "  redis.call('HSET', k, 's', 'dead', 'f', int(now))\n"
    "  redis.call('ZADD', KEYS[6], score, id)\n"
    "  local seq = redis.call('INCR', KEYS[12])\n"
    "  redis.call('ZADD', KEYS[9], int(now * 1000 + seq % 1000), id)\n"
    "  redis.call('INCR', KEYS[11])\n"
    "end\n"
    "return 1\n";

/* KEYS: plist ready st:running st:enqueued st:dead dead failed seq orphans, then job keys.
 * ARGV: mode(release|abandon) default_max pid why, then the ids.
 * Returns how many jobs went back to ready or dead. */
static const char lua_requeue[] = LUA_PRELUDE
    "local NK, NA = 9, 4\n"
    "local n = #KEYS - NK\n"
    "local abandon, dmax, why = ARGV[1] == 'abandon', tonumber(ARGV[2]), ARGV[4]\n"
    "local held, st = {}, {}\n"
    "for i = 1, n do\n"
    "  held[i] = redis.call('LPOS', KEYS[1], ARGV[NA + i]) ~= false\n"
    "  st[i] = redis.call('HGET', KEYS[NK + i], 's')\n"
    "end\n"
    "local now, moved, seen = now_ms(), 0, {}\n"
    "for i = 1, n do\n"
    "  local k, id = KEYS[NK + i], ARGV[NA + i]\n"
    "  if held[i] and not seen[id] then\n"
    "    seen[id] = true\n"
    "    redis.call('LREM', KEYS[1], 1, id)\n"
    "    if st[i] == 'running' then\n"
    "      local score = redis.call('HGET', k, 'c')\n"
    "      redis.call('HDEL', k, 't')\n"
    "      redis.call('ZREM', KEYS[3], id)\n"
    "      local dead = false\n"
    "      if abandon then\n"
    "        local a = redis.call('HINCRBY', k, 'a', 1)\n"
    "        local max = tonumber(redis.call('HGET', k, 'm')) or 0\n"
    "        if max <= 0 then max = dmax end\n"
    "        redis.call('HSET', k, 'e', why)\n"
    "        redis.call('INCR', KEYS[7])\n"
    "        dead = a >= max\n"
    "      end\n"
    "      if dead then\n"
    "        redis.call('HSET', k, 's', 'dead', 'f', int(now))\n"
    "        redis.call('ZADD', KEYS[5], score, id)\n"
    "        local seq = redis.call('INCR', KEYS[8])\n"
    "        redis.call('ZADD', KEYS[6], int(now * 1000 + seq % 1000), id)\n"
    "      else\n"
    "        redis.call('HSET', k, 's', 'enqueued')\n"
    "        redis.call('ZADD', KEYS[4], score, id)\n"
    "        redis.call('RPUSH', KEYS[2], id)\n"
    "      end\n"
    "      moved = moved + 1\n"
    "    elseif st[i] == 'enqueued' then\n"
    /* taken but never leased (the taker died between the two steps) */
    "      redis.call('RPUSH', KEYS[2], id)\n"
    "      moved = moved + 1\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if redis.call('LLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[9], ARGV[3]) end\n"
    "return moved\n";

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

/* KEYS: zset. ARGV: age_ms scale limit.
 * Returns {cutoff, ids}: at most limit ids scored <= (now - age) * scale. Writes nothing. */
static const char lua_select[] = LUA_PRELUDE
    "local cutoff = int((now_ms() - tonumber(ARGV[1])) * tonumber(ARGV[2]))\n"
    "return {cutoff, redis.call('ZRANGE', KEYS[1], '-inf', cutoff, 'BYSCORE', 'LIMIT', 0,\n"
    "                           tonumber(ARGV[3]))}\n";

/* KEYS: sched ready st:scheduled st:retrying st:enqueued, then job keys. ARGV: ids.
 * Moves the ids that are due now to ready. Returns how many. */
static const char lua_promote[] = LUA_PRELUDE
    "local NK = 5\n"
    "local n = #KEYS - NK\n"
    "local now = now_ms()\n"
    "local due, st = {}, {}\n"
    "for i = 1, n do\n"
    "  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])\n"
    "  due[i] = score and tonumber(score) <= now\n"
    "  st[i] = redis.call('HGET', KEYS[NK + i], 's')\n"
    "end\n"
    "local moved = 0\n"
    "for i = 1, n do\n"
    "  if due[i] then\n"
    "    local k, id = KEYS[NK + i], ARGV[i]\n"
    "    redis.call('ZREM', KEYS[1], id)\n"
    "    if st[i] == 'scheduled' or st[i] == 'retrying' then\n"
    "      redis.call('ZREM', st[i] == 'scheduled' and KEYS[3] or KEYS[4], id)\n"
    "      redis.call('HSET', k, 's', 'enqueued')\n"
    "      redis.call('ZADD', KEYS[5], redis.call('HGET', k, 'c'), id)\n"
    "      redis.call('LPUSH', KEYS[2], id)\n"
    "      moved = moved + 1\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return moved\n";

/* KEYS: job sched st:scheduled st:enqueued st:retrying st:cancelled finished. ARGV: id.
 * Returns {0} unknown, {2, state} not cancellable, {1, record} cancelled.
 * An enqueued id stays in ready: taking it finds it cancelled and drops it. */
static const char lua_cancel[] = LUA_PRELUDE
    "local k, id = KEYS[1], ARGV[1]\n"
    "local st = redis.call('HGET', k, 's')\n"
    "if not st then return {0} end\n"
    "local from = ({scheduled = KEYS[3], enqueued = KEYS[4], retrying = KEYS[5]})[st]\n"
    "if not from then return {2, st} end\n"
    "local now = int(now_ms())\n"
    "redis.call('HSET', k, 's', 'cancelled', 'f', now)\n"
    "redis.call('ZREM', from, id)\n"
    "redis.call('ZREM', KEYS[2], id)\n"
    "redis.call('ZADD', KEYS[6], redis.call('HGET', k, 'c'), id)\n"
    "redis.call('ZADD', KEYS[7], now, id)\n"
    "return {1, record(k)}\n";

/* KEYS: job dead st:dead st:enqueued ready all. ARGV: mode(retry|delete) id.
 * Returns {0} unknown, {2, state} not dead, {1, record} retried, {1} deleted. */
static const char lua_dead[] = LUA_PRELUDE
    "local k, id = KEYS[1], ARGV[2]\n"
    "local st = redis.call('HGET', k, 's')\n"
    "if not st then return {0} end\n"
    "if st ~= 'dead' then return {2, st} end\n"
    "redis.call('ZREM', KEYS[2], id)\n"
    "redis.call('ZREM', KEYS[3], id)\n"
    "if ARGV[1] == 'delete' then\n"
    "  redis.call('DEL', k)\n"
    "  redis.call('ZREM', KEYS[6], id)\n"
    "  return {1}\n"
    "end\n"
    "redis.call('HSET', k, 's', 'enqueued', 'a', 0, 'f', 0, 'r', 0)\n"
    "redis.call('ZADD', KEYS[4], redis.call('HGET', k, 'c'), id)\n"
    "redis.call('LPUSH', KEYS[5], id)\n"
    "return {1, record(k)}\n";

/* KEYS: zset all st:succeeded st:cancelled st:dead trimmed, then job keys.
 * ARGV: cutoff, then ids. Deletes the jobs still in zset scored <= cutoff.
 * Returns how many. */
static const char lua_purge[] =
    "local NK = 6\n"
    "local n = #KEYS - NK\n"
    "local cutoff = tonumber(ARGV[1])\n"
    "local ok, st = {}, {}\n"
    "for i = 1, n do\n"
    "  local score = redis.call('ZSCORE', KEYS[1], ARGV[1 + i])\n"
    "  ok[i] = score and tonumber(score) <= cutoff\n"
    "  st[i] = redis.call('HGET', KEYS[NK + i], 's')\n"
    "end\n"
    "local from = {succeeded = KEYS[3], cancelled = KEYS[4], dead = KEYS[5]}\n"
    "local gone = 0\n"
    "for i = 1, n do\n"
    "  if ok[i] then\n"
    "    local id = ARGV[1 + i]\n"
    "    redis.call('DEL', KEYS[NK + i])\n"
    "    redis.call('ZREM', KEYS[1], id)\n"
    "    redis.call('ZREM', KEYS[2], id)\n"
    "    if st[i] and from[st[i]] then redis.call('ZREM', from[st[i]], id) end\n"
    "    gone = gone + 1\n"
    "  end\n"
    "end\n"
    "if gone > 0 then redis.call('INCRBY', KEYS[6], gone) end\n"
    "return gone\n";

/* clang-format on */

static const struct {
    const char *name;
    const char *src;
} rs_sources[RS_COUNT] = {
    [RS_ENQUEUE] = {"enqueue", lua_enqueue}, [RS_LEASE] = {"lease", lua_lease},
    [RS_FINISH] = {"finish", lua_finish},    [RS_REQUEUE] = {"requeue", lua_requeue},
    [RS_BEAT] = {"beat", lua_beat},          [RS_ORPHAN] = {"orphan", lua_orphan},
    [RS_SELECT] = {"select", lua_select},    [RS_PROMOTE] = {"promote", lua_promote},
    [RS_CANCEL] = {"cancel", lua_cancel},    [RS_DEAD] = {"dead", lua_dead},
    [RS_PURGE] = {"purge", lua_purge},
};

/* --- keys --- */

void redis_script_model_init(redis_model *m, const char *prefix, const char *queue, int default_max)
{
    memset(m, 0, sizeof *m);
    /* Keys are built from a local copy: m->base and the keys share m. */
    char base[REDIS_BASE_MAX];
    snprintf(base, sizeof base, "%s:{%s}:", prefix, queue);
    memcpy(m->base, base, sizeof base);
    snprintf(m->schema, sizeof m->schema, "%s:schema", prefix);
    struct {
        char *dst;
        const char *name;
    } keys[] = {
        {m->all, "all"},           {m->ready, "ready"},     {m->sched, "sched"},
        {m->finished, "finished"}, {m->dead, "dead"},       {m->seq, "seq"},
        {m->fence, "fence"},       {m->paused, "paused"},   {m->processed, "processed"},
        {m->failed, "failed"},     {m->trimmed, "trimmed"}, {m->procs, "procs"},
        {m->orphans, "orphans"},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        snprintf(keys[i].dst, REDIS_KEY_MAX, "%s%s", base, keys[i].name);
    for (int s = 0; s < JOB_STATE_COUNT; s++)
        snprintf(m->state[s], REDIS_KEY_MAX, "%sst:%s", base, job_state_name((job_state)s));
    m->default_max = default_max;
    for (int i = 0; i < RS_COUNT; i++)
        redis_conn_script_init(&m->scripts[i], rs_sources[i].name, rs_sources[i].src);
}

void redis_script_job_key(const redis_model *m, const char *id, char out[REDIS_KEY_MAX])
{
    snprintf(out, REDIS_KEY_MAX, "%sjob:%.128s", m->base, id);
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

static void rs_job_key(redis_cmd *cmd, const redis_model *m, const char *id)
{
    char k[REDIS_KEY_MAX];
    redis_script_job_key(m, id, k);
    redis_cmd_key(cmd, k);
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

/* A job from the 7 record fields v s a r b f e (HMGET order). NULL when the
 * record is missing or unreadable. New job. */
static job_t *rs_record(redisReply *const *f)
{
    if (!rs_is_str(f[0]) || !rs_is_str(f[1]))
        return NULL;
    json_t *v = json_loadb(f[0]->str, f[0]->len, 0, NULL);
    job_t *job = v ? job_from_view(v) : NULL;
    json_decref(v);
    int st = job_state_parse(f[1]->str);
    if (!job || st < 0) {
        job_free(job);
        return NULL;
    }
    job->state = (job_state)st;
    job->attempts = (int)rs_int(f[2]);
    job->run_at = rs_int(f[3]);
    job->started_at = rs_int(f[4]);
    job->finished_at = rs_int(f[5]);
    job_set_error(job, rs_is_str(f[6]) ? f[6]->str : NULL);
    return job;
}

/* The job of a record reply (array of 7), or NULL. */
static job_t *rs_record_reply(const redisReply *r)
{
    return rs_is_array(r, 7) ? rs_record(r->element) : NULL;
}

/* A view of the record reply: new reference, or NULL with 500 (unreadable). */
static json_t *rs_view_reply(const redisReply *r, const char *id, jobd_error *err)
{
    job_t *job = rs_record_reply(r);
    json_t *v = job ? job_view(job) : NULL;
    job_free(job);
    if (!v)
        jobd_fail(err, 500, "internal", "the stored record of job \"%s\" is unreadable", id);
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

/* 0 when the policy is fine or allowed, -1 refused, -2 connection failed. */
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
    if (!rs_is_array(r, 2) || !rs_is_str(r->element[1])) {
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

/* Writes the schema version when absent and refuses one we do not know. */
static int rs_check_schema(redisContext *c, const redis_model *m, char *err, size_t errlen)
{
    redis_cmd set, get;
    redis_cmd_init(&set, "SET");
    redis_cmd_adds(&set, m->schema);
    redis_cmd_addf(&set, "%d", REDIS_SCHEMA_VERSION);
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
    if (r[0]->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "cannot write %s: %s", m->schema, r[0]->str);
        rc = -1;
    } else if (!rs_is_str(r[1]) || strtol(r[1]->str, NULL, 10) != REDIS_SCHEMA_VERSION) {
        snprintf(err, errlen,
                 "Redis key %s holds data model version \"%s\"; this jobd (%s) knows version %d "
                 "only: upgrade jobd, or use another redis.prefix",
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

static void rs_enqueue_args(redis_cmd *cmd, const job_t *job, const char *view)
{
    redis_cmd_adds(cmd, job->id);
    redis_cmd_adds(cmd, view);
    redis_cmd_adds(cmd, job->state == JOB_SCHEDULED ? "scheduled" : "enqueued");
    redis_cmd_addf(cmd, "%lld", (long long)job->run_at);
    redis_cmd_addf(cmd, "%lld", (long long)job->created_at);
    redis_cmd_addf(cmd, "%d", job->max_attempts);
}

/* Reads the enqueue reply into replayed[]; -1 (all freed) if a record is unreadable. */
static int rs_enqueue_reply(const redisReply *r, size_t n, job_t **replayed, jobd_error *err)
{
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = r->element[i];
        if (e->type == REDIS_REPLY_INTEGER)
            continue;
        if (!(replayed[i] = rs_record_reply(e))) {
            for (size_t j = 0; j < i; j++) {
                job_free(replayed[j]);
                replayed[j] = NULL;
            }
            jobd_fail(err, 500, "internal", "the stored record of an existing job is unreadable");
            return -1;
        }
    }
    return 0;
}

int redis_script_enqueue(redisContext *c, const redis_model *m, job_t *const *jobs, size_t n,
                         int64_t not_after, job_t **replayed, jobd_error *err)
{
    char **views = calloc(n ? n : 1, sizeof *views);
    if (!views)
        return jobd_fail(err, 503, "unavailable", "out of memory");
    redis_cmd cmd;
    redis_cmd_init_script(&cmd, &m->scripts[RS_ENQUEUE]);
    rs_keys(&cmd, m->all, m->ready, m->sched, m->state[JOB_SCHEDULED], m->state[JOB_ENQUEUED],
            m->seq, NULL);
    for (size_t i = 0; i < n; i++)
        rs_job_key(&cmd, m, jobs[i]->id);
    redis_cmd_addf(&cmd, "%lld", (long long)not_after);
    for (size_t i = 0; i < n; i++) {
        json_t *v = job_view(jobs[i]);
        views[i] = v ? json_dumps(v, JSON_COMPACT) : NULL;
        json_decref(v);
        if (!views[i])
            cmd.oom = true;
        rs_enqueue_args(&cmd, jobs[i], views[i] ? views[i] : "");
        replayed[i] = NULL;
    }
    redisReply *r = rs_run(c, &cmd, err);
    for (size_t i = 0; i < n; i++)
        free(views[i]);
    free(views);
    if (!r)
        return -1;
    int rc = rs_is_array(r, n) ? rs_enqueue_reply(r, n, replayed, err)
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

/* Copies the id of a taken reply into ids[k]; true when there was one. */
static bool rs_take_id(const redisReply *r, char (*ids)[JOB_ID_MAX + 1], size_t k)
{
    if (!r || r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > JOB_ID_MAX)
        return false;
    memcpy(ids[k], r->str, r->len);
    ids[k][r->len] = '\0';
    return true;
}

/* Waits up to block seconds for one id (BLMOVE). 1, 0 or -1. */
static int rs_take_blocking(redisContext *c, const redis_model *m, const char *plist, double block,
                            char (*ids)[JOB_ID_MAX + 1])
{
    redis_cmd cmd;
    redis_cmd_init(&cmd, "BLMOVE");
    redis_cmd_adds(&cmd, m->ready);
    redis_cmd_adds(&cmd, plist);
    redis_cmd_adds(&cmd, "RIGHT");
    redis_cmd_adds(&cmd, "LEFT");
    redis_cmd_addf(&cmd, "%.3f", block);
    redisReply *r = redis_conn_run(c, &cmd);
    redis_cmd_free(&cmd);
    if (!r)
        return -1;
    int got = rs_take_id(r, ids, 0) ? 1 : 0;
    freeReplyObject(r);
    return got;
}

int redis_script_take(redisContext *c, const redis_model *m, const char *plist, size_t n,
                      double block, char (*ids)[JOB_ID_MAX + 1])
{
    if (n == 0)
        return 0;
    redis_cmd *cmds = calloc(n, sizeof *cmds);
    redis_cmd **ptrs = calloc(n, sizeof *ptrs);
    redisReply **r = calloc(n, sizeof *r);
    int got = -1;
    if (cmds && ptrs && r) {
        for (size_t i = 0; i < n; i++) {
            redis_cmd_init(&cmds[i], "LMOVE");
            redis_cmd_adds(&cmds[i], m->ready);
            redis_cmd_adds(&cmds[i], plist);
            redis_cmd_adds(&cmds[i], "RIGHT");
            redis_cmd_adds(&cmds[i], "LEFT");
            ptrs[i] = &cmds[i];
        }
        if (redis_conn_pipeline(c, ptrs, n, r) == 0) {
            got = 0;
            for (size_t i = 0; i < n; i++) {
                if (rs_take_id(r[i], ids, (size_t)got))
                    got++;
                freeReplyObject(r[i]);
            }
        }
        for (size_t i = 0; i < n; i++)
            redis_cmd_free(&cmds[i]);
    }
    free(cmds);
    free(ptrs);
    free(r);
    if (got == 0 && block > 0)
        got = rs_take_blocking(c, m, plist, block, ids);
    return got;
}

/* Fills out[i] from one element of the lease reply. */
static void rs_lease_one(const redisReply *e, redis_lease *out)
{
    *out = (redis_lease){.status = RL_SKIPPED};
    if (!rs_is_array(e, 8))
        return;
    out->job = rs_record(e->element + 1);
    if (!out->job) {
        log_event(LOG_ERROR, "redis.unreadable", NULL, "a leased job's record is unreadable");
        return;
    }
    out->status = RL_LEASED;
    out->token = rs_int(e->element[0]);
}

int redis_script_lease(redisContext *c, const redis_model *m, const char *plist,
                       char (*ids)[JOB_ID_MAX + 1], size_t n, redis_lease *out)
{
    redis_cmd cmd;
    redis_cmd_init_script(&cmd, &m->scripts[RS_LEASE]);
    rs_keys(&cmd, plist, m->ready, m->state[JOB_ENQUEUED], m->state[JOB_RUNNING], m->fence,
            m->paused, NULL);
    for (size_t i = 0; i < n; i++)
        rs_job_key(&cmd, m, ids[i]);
    for (size_t i = 0; i < n; i++)
        redis_cmd_adds(&cmd, ids[i]);
    redisReply *r = rs_run(c, &cmd, NULL);
    if (!r)
        return -1;
    int rc = 0;
    if (r->type == REDIS_REPLY_INTEGER) {
        for (size_t i = 0; i < n; i++)
            out[i] = (redis_lease){.status = RL_PAUSED};
    } else if (rs_is_array(r, n)) {
        for (size_t i = 0; i < n; i++)
            rs_lease_one(r->element[i], &out[i]);
    } else {
        rc = -1;
    }
    freeReplyObject(r);
    return rc;
}

/* --- ending runs --- */

void redis_script_finish_cmd(redis_cmd *cmd, const redis_model *m, const char *plist,
                             const job_t *job, long long token, job_state next, double delay)
{
    redis_cmd_init_script(cmd, &m->scripts[RS_FINISH]);
    rs_job_key(cmd, m, job->id);
    rs_keys(cmd, plist, m->state[JOB_RUNNING], m->state[JOB_SUCCEEDED], m->state[JOB_RETRYING],
            m->state[JOB_DEAD], m->sched, m->finished, m->dead, m->processed, m->failed, m->seq,
            NULL);
    redis_cmd_adds(cmd, job->id);
    redis_cmd_addf(cmd, "%lld", token);
    redis_cmd_adds(cmd, job_state_name(next));
    redis_cmd_addf(cmd, "%d", job->attempts);
    redis_cmd_addf(cmd, "%lld", (long long)(delay > 0 ? delay * 1000.0 : 0));
    redis_cmd_adds(cmd, job->last_error && next != JOB_SUCCEEDED ? job->last_error : "");
}

int redis_script_finish(redisContext *c, const redis_model *m, const char *plist, const job_t *job,
                        long long token, job_state next, double delay)
{
    redis_cmd cmd;
    redis_script_finish_cmd(&cmd, m, plist, job, token, next, delay);
    return (int)rs_run_int(c, &cmd);
}

/* One requeue script call over ids[0..n) of pid's list. */
static long rs_requeue(redisContext *c, const redis_model *m, const char *pid, bool abandon,
                       const char *why, const char *const *ids, size_t n)
{
    char plist[REDIS_KEY_MAX];
    redis_script_proc_key(m, pid, plist);
    redis_cmd cmd;
    redis_cmd_init_script(&cmd, &m->scripts[RS_REQUEUE]);
    rs_keys(&cmd, plist, m->ready, m->state[JOB_RUNNING], m->state[JOB_ENQUEUED],
            m->state[JOB_DEAD], m->dead, m->failed, m->seq, m->orphans, NULL);
    for (size_t i = 0; i < n; i++)
        rs_job_key(&cmd, m, ids[i]);
    redis_cmd_adds(&cmd, abandon ? "abandon" : "release");
    redis_cmd_addf(&cmd, "%d", m->default_max);
    redis_cmd_adds(&cmd, pid);
    redis_cmd_adds(&cmd, why);
    for (size_t i = 0; i < n; i++)
        redis_cmd_adds(&cmd, ids[i]);
    return (long)rs_run_int(c, &cmd);
}

/* Ids [start, stop] of pid's list (LRANGE): an array reply, or NULL. */
static redisReply *rs_proc_ids(redisContext *c, const redis_model *m, const char *pid, int start,
                               int stop)
{
    char plist[REDIS_KEY_MAX];
    redis_script_proc_key(m, pid, plist);
    redis_cmd cmd;
    redis_cmd_init(&cmd, "LRANGE");
    redis_cmd_adds(&cmd, plist);
    redis_cmd_addf(&cmd, "%d", start);
    redis_cmd_addf(&cmd, "%d", stop);
    redisReply *r = rs_run(c, &cmd, NULL);
    if (r && r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        r = NULL;
    }
    return r;
}

/* Requeues the ids of an LRANGE reply for which keep (may be NULL) says no. */
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
        redisReply *ids = rs_proc_ids(c, m, pid, -RS_GIVE_BACK_BATCH, -1);
        if (!ids)
            return -1;
        size_t got = ids->elements;
        /* Run even with no ids: the script forgets an orphan whose list is empty. */
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
    redisReply *ids = rs_proc_ids(c, m, pid, 0, RS_BATCH_MAX - 1);
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
    redis_cmd_addf(&cmd, "%lld", ttl_ms);
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

/* Ids of zset scored <= (now - age_ms) * scale, at most limit; cutoff gets
 * that bound. An array reply of ids, or NULL. */
static redisReply *rs_select(redisContext *c, const redis_model *m, const char *zset,
                             long long age_ms, int scale, size_t limit, char *cutoff, size_t cutlen)
{
    redis_cmd cmd;
    redis_cmd_init_script(&cmd, &m->scripts[RS_SELECT]);
    redis_cmd_key(&cmd, zset);
    redis_cmd_addf(&cmd, "%lld", age_ms);
    redis_cmd_addf(&cmd, "%d", scale);
    redis_cmd_addf(&cmd, "%zu", limit);
    redisReply *r = rs_run(c, &cmd, NULL);
    if (!r || !rs_is_array(r, 2) || !rs_is_str(r->element[0]) || !rs_is_array(r->element[1], 0)) {
        if (r)
            freeReplyObject(r);
        return NULL;
    }
    snprintf(cutoff, cutlen, "%s", r->element[0]->str);
    return r;
}

long redis_script_promote(redisContext *c, const redis_model *m, size_t batch)
{
    char cutoff[32];
    redisReply *sel = rs_select(c, m, m->sched, 0, 1, batch, cutoff, sizeof cutoff);
    if (!sel)
        return -1;
    const redisReply *ids = sel->element[1];
    long moved = 0;
    if (ids->elements > 0) {
        redis_cmd cmd;
        redis_cmd_init_script(&cmd, &m->scripts[RS_PROMOTE]);
        rs_keys(&cmd, m->sched, m->ready, m->state[JOB_SCHEDULED], m->state[JOB_RETRYING],
                m->state[JOB_ENQUEUED], NULL);
        for (size_t i = 0; i < ids->elements; i++)
            rs_job_key(&cmd, m, ids->element[i]->str);
        for (size_t i = 0; i < ids->elements; i++)
            redis_cmd_add(&cmd, ids->element[i]->str, ids->element[i]->len);
        moved = (long)rs_run_int(c, &cmd);
    }
    freeReplyObject(sel);
    return moved;
}

/* Deletes the jobs ids (array reply) still in zset scored <= cutoff. */
static long rs_purge(redisContext *c, const redis_model *m, const char *zset, const char *cutoff,
                     const redisReply *ids)
{
    if (ids->elements == 0)
        return 0;
    redis_cmd cmd;
    redis_cmd_init_script(&cmd, &m->scripts[RS_PURGE]);
    rs_keys(&cmd, zset, m->all, m->state[JOB_SUCCEEDED], m->state[JOB_CANCELLED],
            m->state[JOB_DEAD], m->trimmed, NULL);
    for (size_t i = 0; i < ids->elements; i++)
        rs_job_key(&cmd, m, ids->element[i]->str);
    redis_cmd_adds(&cmd, cutoff);
    for (size_t i = 0; i < ids->elements; i++)
        redis_cmd_add(&cmd, ids->element[i]->str, ids->element[i]->len);
    return (long)rs_run_int(c, &cmd);
}

/* How many members zset has beyond max_count, at most batch; -1 on failure. */
static long long rs_excess(redisContext *c, const char *zset, long max_count, size_t batch)
{
    redis_cmd cmd;
    redis_cmd_init(&cmd, "ZCARD");
    redis_cmd_adds(&cmd, zset);
    long long n = rs_run_int(c, &cmd);
    if (n < 0)
        return -1;
    long long excess = n > max_count ? n - max_count : 0;
    return excess > (long long)batch ? (long long)batch : excess;
}

/* Deletes the oldest `excess` members of zset. */
static long rs_purge_oldest(redisContext *c, const redis_model *m, const char *zset,
                            long long excess)
{
    redis_cmd cmd;
    redis_cmd_init(&cmd, "ZRANGE");
    redis_cmd_adds(&cmd, zset);
    redis_cmd_adds(&cmd, "0");
    redis_cmd_addf(&cmd, "%lld", excess - 1);
    redisReply *ids = rs_run(c, &cmd, NULL);
    long gone = -1;
    if (ids && ids->type == REDIS_REPLY_ARRAY)
        gone = rs_purge(c, m, zset, "1e300", ids);
    if (ids)
        freeReplyObject(ids);
    return gone;
}

long redis_script_trim(redisContext *c, const redis_model *m, bool dead, double max_age,
                       long max_count, size_t batch)
{
    const char *zset = dead ? m->dead : m->finished;
    char cutoff[32];
    redisReply *old = rs_select(c, m, zset, (long long)(max_age * 1000.0), dead ? 1000 : 1, batch,
                                cutoff, sizeof cutoff);
    if (!old)
        return -1;
    long by_age = rs_purge(c, m, zset, cutoff, old->element[1]);
    freeReplyObject(old);
    if (by_age < 0)
        return -1;
    long long excess = rs_excess(c, zset, max_count, batch);
    if (excess < 0)
        return -1;
    long by_count = excess > 0 ? rs_purge_oldest(c, m, zset, excess) : 0;
    return by_count < 0 ? -1 : by_age + by_count;
}

/* --- store reads and admin --- */

static void rs_record_cmd(redis_cmd *cmd, const redis_model *m, const char *id)
{
    char k[REDIS_KEY_MAX];
    redis_script_job_key(m, id, k);
    redis_cmd_init(cmd, "HMGET");
    redis_cmd_addf(cmd, "%s", k);
    static const char *const fields[] = {"v", "s", "a", "r", "b", "f", "e"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        redis_cmd_adds(cmd, fields[i]);
}

static void rs_unknown(jobd_error *err, const char *id)
{
    jobd_fail(err, 404, "unknown_job", "no job \"%s\" in this queue", id);
}

json_t *redis_script_get(redisContext *c, const redis_model *m, const char *id, jobd_error *err)
{
    redis_cmd cmd;
    rs_record_cmd(&cmd, m, id);
    redisReply *r = rs_run(c, &cmd, err);
    if (!r)
        return NULL;
    json_t *v = NULL;
    if (!rs_is_array(r, 7) || !rs_is_str(r->element[0]))
        rs_unknown(err, id);
    else
        v = rs_view_reply(r, id, err);
    freeReplyObject(r);
    return v;
}

/* Cursors are index scores this server gave out: 1..20 digits. */
static bool rs_cursor_ok(const char *cursor)
{
    size_t n = strspn(cursor, "0123456789");
    return n > 0 && n <= 20 && cursor[n] == '\0';
}

/* Appends the views of the records (replies) that still match state. */
static void rs_append_views(json_t *jobs, redisReply **recs, size_t n, int state)
{
    for (size_t i = 0; i < n; i++) {
        job_t *job = rs_record_reply(recs[i]);
        if (job && (state < 0 || (int)job->state == state))
            json_array_append_new(jobs, job_view(job));
        job_free(job);
    }
}

/* Reads the records of the ids of a ZRANGE ... WITHSCORES reply (first n of
 * them, pipelined) into {"jobs","next_cursor"}; NULL with 503 on failure. */
static json_t *rs_page(redisContext *c, const redis_model *m, const redisReply *ids, size_t n,
                       int state, bool more, jobd_error *err)
{
    redis_cmd *cmds = calloc(n ? n : 1, sizeof *cmds);
    redis_cmd **ptrs = calloc(n ? n : 1, sizeof *ptrs);
    redisReply **recs = calloc(n ? n : 1, sizeof *recs);
    json_t *page = NULL;
    if (cmds && ptrs && recs) {
        for (size_t i = 0; i < n; i++) {
            rs_record_cmd(&cmds[i], m, ids->element[2 * i]->str);
            ptrs[i] = &cmds[i];
        }
        if (redis_conn_pipeline(c, ptrs, n, recs) == 0) {
            json_t *jobs = json_array();
            rs_append_views(jobs, recs, n, state);
            json_t *next = more ? json_string(ids->element[2 * n - 1]->str) : json_null();
            page = json_pack("{s:o,s:o}", "jobs", jobs, "next_cursor", next);
            for (size_t i = 0; i < n; i++)
                freeReplyObject(recs[i]);
        }
        for (size_t i = 0; i < n; i++)
            redis_cmd_free(&cmds[i]);
    }
    if (!page)
        redis_conn_check_reply(c, NULL, err);
    free(cmds);
    free(ptrs);
    free(recs);
    return page;
}

json_t *redis_script_list(redisContext *c, const redis_model *m, int state, bool dead_set,
                          size_t limit, const char *cursor, jobd_error *err)
{
    if (cursor && !rs_cursor_ok(cursor)) {
        jobd_fail(err, 400, "invalid_parameter", "cursor is not one this server gave");
        if (err)
            snprintf(err->field, sizeof err->field, "cursor");
        return NULL;
    }
    if (dead_set)
        state = JOB_DEAD;
    const char *key = dead_set ? m->dead : state < 0 ? m->all : m->state[state];
    redis_cmd cmd;
    redis_cmd_init(&cmd, "ZRANGE");
    redis_cmd_adds(&cmd, key);
    if (cursor)
        redis_cmd_addf(&cmd, "(%s", cursor);
    else
        redis_cmd_adds(&cmd, "+inf");
    redis_cmd_adds(&cmd, "-inf");
    redis_cmd_adds(&cmd, "BYSCORE");
    redis_cmd_adds(&cmd, "REV");
    redis_cmd_adds(&cmd, "LIMIT");
    redis_cmd_adds(&cmd, "0");
    redis_cmd_addf(&cmd, "%zu", limit + 1);
    redis_cmd_adds(&cmd, "WITHSCORES");
    redisReply *ids = rs_run(c, &cmd, err);
    if (!ids)
        return NULL;
    json_t *page = NULL;
    if (ids->type != REDIS_REPLY_ARRAY) {
        jobd_fail(err, 503, "unavailable", "unexpected answer from Redis");
    } else {
        size_t k = ids->elements / 2;
        page = rs_page(c, m, ids, k > limit ? limit : k, state, k > limit, err);
    }
    freeReplyObject(ids);
    return page;
}

/* Reads {0} / {2, state} / {1, record?} answers of cancel and dead: the new
 * view (json_null() when there is no record), or NULL with 404/409 in err. */
static json_t *rs_outcome(const redisReply *r, const char *id, const char *conflict,
                          jobd_error *err)
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
    return r->elements >= 2 ? rs_view_reply(r->element[1], id, err) : json_null();
}

json_t *redis_script_cancel(redisContext *c, const redis_model *m, const char *id, jobd_error *err)
{
    redis_cmd cmd;
    redis_cmd_init_script(&cmd, &m->scripts[RS_CANCEL]);
    rs_job_key(&cmd, m, id);
    rs_keys(&cmd, m->sched, m->state[JOB_SCHEDULED], m->state[JOB_ENQUEUED], m->state[JOB_RETRYING],
            m->state[JOB_CANCELLED], m->finished, NULL);
    redis_cmd_adds(&cmd, id);
    redisReply *r = rs_run(c, &cmd, err);
    if (!r)
        return NULL;
    json_t *v = rs_outcome(r, id, " and cannot be cancelled", err);
    freeReplyObject(r);
    return v;
}

json_t *redis_script_dead_op(redisContext *c, const redis_model *m, const char *id, bool retry,
                             jobd_error *err)
{
    redis_cmd cmd;
    redis_cmd_init_script(&cmd, &m->scripts[RS_DEAD]);
    rs_job_key(&cmd, m, id);
    rs_keys(&cmd, m->dead, m->state[JOB_DEAD], m->state[JOB_ENQUEUED], m->ready, m->all, NULL);
    redis_cmd_adds(&cmd, retry ? "retry" : "delete");
    redis_cmd_adds(&cmd, id);
    redisReply *r = rs_run(c, &cmd, err);
    if (!r)
        return NULL;
    json_t *v = rs_outcome(r, id, ", not dead", err);
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
    static const job_state counted[] = {JOB_SCHEDULED, JOB_ENQUEUED, JOB_RUNNING, JOB_RETRYING,
                                        JOB_DEAD};
    enum { NC = sizeof counted / sizeof counted[0], N = NC + 3 };
    redis_cmd cmds[N];
    redis_cmd *ptrs[N];
    redis_cmd_init(&cmds[0], "EXISTS");
    redis_cmd_adds(&cmds[0], m->paused);
    for (size_t i = 0; i < NC; i++) {
        redis_cmd_init(&cmds[1 + i], "ZCARD");
        redis_cmd_adds(&cmds[1 + i], m->state[counted[i]]);
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
        json_object_set_new(counts, job_state_name(counted[i]), json_integer(rs_int(r[1 + i])));
    json_t *info = json_pack("{s:b,s:o,s:I,s:I}", "paused", rs_int(r[0]) > 0, "counts", counts,
                             "processed_total", (json_int_t)rs_int(r[NC + 1]), "failed_total",
                             (json_int_t)rs_int(r[NC + 2]));
    for (size_t i = 0; i < N; i++)
        freeReplyObject(r[i]);
    return info;
}

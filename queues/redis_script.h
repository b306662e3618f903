/* redis_script.h - the registry of the Lua scripts of the Redis data model
 * (redis_model.h) and their loading.
 *
 * Each script is the file queues/lua/<name>.lua, embedded by the build
 * (queues/lua/embed.sh writes the strings redis_lua_<name>). Commands name a
 * script by its SHA1 (EVALSHA, redis_cmd_init_script); a Redis that answers
 * NOSCRIPT (restarted, or after SCRIPT FLUSH) gets it loaded by
 * redis_script_load, and the command is sent again (redis_conn_pipeline). */
#ifndef JOBD_REDIS_SCRIPT_H
#define JOBD_REDIS_SCRIPT_H

#include <hiredis/hiredis.h>

/* A Lua script: its source and the SHA1 that EVALSHA names it by. */
typedef struct redis_script {
    const char *name; /* for logs */
    const char *src;  /* borrowed (static) */
    char sha[41];
} redis_script;

/* The scripts, one per file queues/lua/<name>.lua. */
enum redis_script_id {
    REDIS_SCRIPT_ENQUEUE,
    REDIS_SCRIPT_FETCH,
    REDIS_SCRIPT_FINISH,
    REDIS_SCRIPT_REQUEUE,
    REDIS_SCRIPT_BEAT,
    REDIS_SCRIPT_ORPHAN,
    REDIS_SCRIPT_PROMOTE,
    REDIS_SCRIPT_CANCEL,
    REDIS_SCRIPT_DEAD,
    REDIS_SCRIPT_TRIM,
    REDIS_SCRIPT_SCAN,
    REDIS_SCRIPT_PAGE,
    REDIS_SCRIPT_BURY,
    REDIS_SCRIPT_COUNT
};

/* Fills s for the source src (borrowed, outlives s) named name: its SHA1 (hex). */
void redis_script_init(redis_script *s, const char *name, const char *src);

/* Fills scripts[id] for every script of the registry. */
void redis_script_init_all(redis_script scripts[REDIS_SCRIPT_COUNT]);

/* SCRIPT LOAD of s on c. 0 when Redis answered (an error reply included:
 * the EVALSHA sent next reports it), -1 when the connection failed. */
int redis_script_load(redisContext *c, const redis_script *s);

#endif

/* redis_cmd.h - one Redis command as an argv array: a plain command, or the
 * EVALSHA of a script (redis_script.h) that counts its keys. Sent by
 * redis_conn_pipeline. */
#ifndef JOBD_REDIS_CMD_H
#define JOBD_REDIS_CMD_H

#include <stdbool.h>
#include <stddef.h>

#include "redis_script.h"

/* One command as an argv. Arguments are borrowed (redis_cmd_add, _adds,
 * _key) or owned copies (redis_cmd_addf, _addi); a script command counts its
 * keys as they are added. */
typedef struct redis_cmd {
    const char **argv;
    size_t *lens;
    bool *owned;
    size_t argc, cap;
    const redis_script *script; /* non-NULL for EVALSHA */
    size_t nkeys;
    char nkeys_buf[24];
    bool oom; /* an allocation failed: the command must not be sent */
} redis_cmd;

/* Starts a plain command: name is its first word (borrowed, static). */
void redis_cmd_init(redis_cmd *cmd, const char *name);
/* Starts EVALSHA of script; add keys first (redis_cmd_key), then arguments. */
void redis_cmd_init_script(redis_cmd *cmd, const redis_script *script);
/* Adds a borrowed argument of len bytes (valid until the command is sent). */
void redis_cmd_add(redis_cmd *cmd, const char *s, size_t len);
/* Adds a borrowed NUL-terminated argument. */
void redis_cmd_adds(redis_cmd *cmd, const char *s);
/* Adds an owned, printf-formatted argument. */
void redis_cmd_addf(redis_cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Adds an owned decimal integer argument (cheaper than redis_cmd_addf). */
void redis_cmd_addi(redis_cmd *cmd, long long v);
/* Adds a borrowed key of a script command (valid until the command is
 * sent); keys must precede arguments. */
void redis_cmd_key(redis_cmd *cmd, const char *key);
/* Frees what the command owns. */
void redis_cmd_free(redis_cmd *cmd);

/* Fills in a script command's key count; redis_conn_pipeline does it
 * before sending. */
void redis_cmd_finish(redis_cmd *cmd);

#endif

/* redis_cmd.c - commands as argv arrays, plain or EVALSHA of a script. */
#include "redis_cmd.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void redis_cmd_init(redis_cmd *cmd, const char *name)
{
    memset(cmd, 0, sizeof *cmd);
    redis_cmd_adds(cmd, name);
}

void redis_cmd_init_script(redis_cmd *cmd, const redis_script *script)
{
    redis_cmd_init(cmd, "EVALSHA");
    cmd->script = script;
    redis_cmd_adds(cmd, script->sha);
    redis_cmd_adds(cmd, "0"); /* the key count, filled in when sent */
}

static int redis_cmd_grow(redis_cmd *cmd)
{
    if (cmd->argc < cmd->cap)
        return 0;
    size_t cap = cmd->cap ? cmd->cap * 2 : 16;
    const char **argv = realloc(cmd->argv, cap * sizeof *argv);
    if (argv)
        cmd->argv = argv;
    size_t *lens = argv ? realloc(cmd->lens, cap * sizeof *lens) : NULL;
    if (lens)
        cmd->lens = lens;
    bool *owned = lens ? realloc(cmd->owned, cap * sizeof *owned) : NULL;
    if (!owned) {
        cmd->oom = true;
        return -1;
    }
    cmd->owned = owned;
    cmd->cap = cap;
    return 0;
}

static void redis_cmd_push(redis_cmd *cmd, const char *s, size_t len, bool owned)
{
    if (!s || redis_cmd_grow(cmd) != 0) {
        cmd->oom = true;
        if (owned)
            free((char *)s);
        return;
    }
    cmd->argv[cmd->argc] = s;
    cmd->lens[cmd->argc] = len;
    cmd->owned[cmd->argc] = owned;
    cmd->argc++;
}

void redis_cmd_add(redis_cmd *cmd, const char *s, size_t len)
{
    redis_cmd_push(cmd, s, len, false);
}

void redis_cmd_adds(redis_cmd *cmd, const char *s)
{
    redis_cmd_push(cmd, s, s ? strlen(s) : 0, false);
}

void redis_cmd_addf(redis_cmd *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    redis_cmd_push(cmd, n < 0 ? NULL : s, n < 0 ? 0 : (size_t)n, true);
}

void redis_cmd_addi(redis_cmd *cmd, long long v)
{
    char digits[24];
    size_t n = 0;
    /* Digits from the last, on the unsigned magnitude (LLONG_MIN has no positive). */
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        digits[n++] = '-';
    char *s = malloc(n + 1);
    for (size_t i = 0; s && i < n; i++)
        s[i] = digits[n - 1 - i];
    if (s)
        s[n] = '\0';
    redis_cmd_push(cmd, s, n, true);
}

void redis_cmd_key(redis_cmd *cmd, const char *key)
{
    redis_cmd_push(cmd, key, key ? strlen(key) : 0, false);
    cmd->nkeys++;
}

void redis_cmd_free(redis_cmd *cmd)
{
    for (size_t i = 0; i < cmd->argc; i++)
        if (cmd->owned[i])
            free((char *)cmd->argv[i]);
    free(cmd->argv);
    free(cmd->lens);
    free(cmd->owned);
    memset(cmd, 0, sizeof *cmd);
}

void redis_cmd_finish(redis_cmd *cmd)
{
    if (!cmd->script || cmd->argc < 3)
        return;
    int n = snprintf(cmd->nkeys_buf, sizeof cmd->nkeys_buf, "%zu", cmd->nkeys);
    cmd->argv[2] = cmd->nkeys_buf;
    cmd->lens[2] = (size_t)n;
}

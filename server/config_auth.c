/* config_auth.c - auth.tokens: each entry is a plain string (every scope) or
 * {"token_env" | "token_file": ..., "scopes": [...]}. Secrets are checked
 * here, so that a token the HTTP layer could never match (blank inside) is a
 * config error rather than a silent 401; messages name the entry's path and
 * the variable or file, never the secret. */
#include "config_auth.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/file.h"

#define AUTH_PATH_LEN 512
#define AUTH_FILE_MAX 4096 /* a token file holds one token */

static const struct {
    const char *name;
    unsigned bit;
} auth_scopes[] = {
    {"submit", SCOPE_SUBMIT},
    {"read", SCOPE_READ},
    {"admin", SCOPE_ADMIN},
    {"metrics", SCOPE_METRICS},
};
#define AUTH_N_SCOPES (sizeof auth_scopes / sizeof auth_scopes[0])

/* Where the entries are read: the error buffer, and the environment of token_env. */
typedef struct auth_ctx {
    char *err;
    size_t errlen;
    char *(*getenv_fn)(const char *);
} auth_ctx;

__attribute__((format(printf, 3, 4))) static int auth_fail(auth_ctx *a, const char *path,
                                                           const char *fmt, ...)
{
    char why[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    snprintf(a->err, a->errlen, "%s: %s", path, why);
    return -1;
}

const char *config_scope_name(unsigned scope)
{
    for (size_t i = 0; i < AUTH_N_SCOPES; i++)
        if (auth_scopes[i].bit == scope)
            return auth_scopes[i].name;
    return NULL;
}

void config_auth_free(config_t *cfg)
{
    for (size_t i = 0; i < cfg->n_tokens; i++)
        file_secret_free(cfg->tokens[i].secret);
    free(cfg->tokens);
    cfg->tokens = NULL;
    cfg->n_tokens = 0;
}

/* Takes secret (new memory) into the token at path, or frees it and fails:
 * empty, or holding a character a bearer header cannot carry. */
static int auth_take_secret(auth_ctx *a, auth_token *t, char *secret, const char *path,
                            const char *source)
{
    bool bad = false;
    for (const unsigned char *p = (const unsigned char *)secret; *p; p++)
        bad |= *p <= ' ' || *p == 0x7f;
    if (!secret[0] || bad) {
        file_secret_free(secret);
        return auth_fail(a, path, "%s %s", source,
                         bad ? "holds a blank or control character: a bearer token cannot"
                             : "is empty");
    }
    t->secret = secret;
    return 0;
}

/* The secret of {"token_env": NAME}. */
static int auth_from_env(auth_ctx *a, auth_token *t, const json_t *name, const char *path)
{
    const char *var = json_string_value(name);
    if (!var || !var[0])
        return auth_fail(a, path, "must be the name of an environment variable");
    const char *value = a->getenv_fn ? a->getenv_fn(var) : NULL;
    if (!value || !value[0])
        return auth_fail(a, path, "the environment variable %.128s is not set or empty", var);
    char *secret = strdup(value);
    if (!secret)
        return auth_fail(a, path, "out of memory");
    char source[160];
    snprintf(source, sizeof source, "the environment variable %.128s", var);
    return auth_take_secret(a, t, secret, path, source);
}

/* The secret of {"token_file": PATH}: the file's text without one trailing
 * newline (CRLF too), as `echo token > file` writes it. */
static int auth_from_file(auth_ctx *a, auth_token *t, const json_t *file, const char *path)
{
    const char *name = json_string_value(file);
    if (!name || !name[0])
        return auth_fail(a, path, "must be a file path");
    size_t len;
    const char *why = "";
    char *secret = file_read_all(name, AUTH_FILE_MAX, &len, &why);
    if (!secret)
        return auth_fail(a, path, "cannot read \"%.256s\": %s", name, why);
    if (strlen(secret) != len) {
        file_secret_free(secret);
        return auth_fail(a, path, "\"%.256s\" holds a NUL byte", name);
    }
    if (len > 0 && secret[len - 1] == '\n')
        secret[--len] = '\0';
    if (len > 0 && secret[len - 1] == '\r')
        secret[--len] = '\0';
    char source[300];
    snprintf(source, sizeof source, "the file \"%.256s\"", name);
    return auth_take_secret(a, t, secret, path, source);
}

static int auth_scopes_read(auth_ctx *a, auth_token *t, const json_t *v, const char *path)
{
    size_t i;
    json_t *s;
    if (!json_is_array(v) || json_array_size(v) == 0)
        return auth_fail(a, path, "must be a non-empty array of scopes: submit, read, admin, "
                                  "metrics");
    json_array_foreach(v, i, s) {
        const char *name = json_string_value(s);
        unsigned bit = 0;
        for (size_t k = 0; name && k < AUTH_N_SCOPES; k++)
            if (strcmp(name, auth_scopes[k].name) == 0)
                bit = auth_scopes[k].bit;
        if (!bit) {
            char sub[AUTH_PATH_LEN];
            snprintf(sub, sizeof sub, "%.400s[%zu]", path, i);
            return auth_fail(a, sub, "unknown scope \"%.32s\" (submit, read, admin, metrics)",
                             name ? name : "(not a string)");
        }
        t->scopes |= bit;
    }
    return 0;
}

/* An object entry: exactly one of token_env and token_file, and scopes. */
static int auth_object_read(auth_ctx *a, auth_token *t, const json_t *e, const char *path)
{
    static const char *const keys[] = {"token_env", "token_file", "scopes"};
    char sub[AUTH_PATH_LEN];
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)e, key, v) {
        bool known = false;
        for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
            known |= strcmp(key, keys[k]) == 0;
        if (!known) {
            snprintf(sub, sizeof sub, "%.400s.%.64s", path, key);
            return auth_fail(a, sub, "unknown key");
        }
    }
    const json_t *env = json_object_get(e, "token_env");
    const json_t *file = json_object_get(e, "token_file");
    const json_t *scopes = json_object_get(e, "scopes");
    if (!env == !file)
        return auth_fail(a, path, "needs exactly one of \"token_env\" and \"token_file\"");
    if (!scopes)
        return auth_fail(a, path, "needs \"scopes\": submit, read, admin, metrics");
    snprintf(sub, sizeof sub, "%.400s.scopes", path);
    if (auth_scopes_read(a, t, scopes, sub) < 0)
        return -1;
    snprintf(sub, sizeof sub, "%.400s.%s", path, env ? "token_env" : "token_file");
    return env ? auth_from_env(a, t, env, sub) : auth_from_file(a, t, file, sub);
}

static int auth_entry_read(auth_ctx *a, auth_token *t, const json_t *e, const char *path)
{
    if (json_is_object(e))
        return auth_object_read(a, t, e, path);
    if (!json_is_string(e))
        return auth_fail(a, path, "must be a token string or an object with \"token_env\" or "
                                  "\"token_file\" and \"scopes\"");
    if (json_string_length(e) == 0)
        return auth_fail(a, path, "must be a non-empty string");
    char *secret = strdup(json_string_value(e));
    if (!secret)
        return auth_fail(a, path, "out of memory");
    t->scopes = SCOPE_ALL;
    return auth_take_secret(a, t, secret, path, "the token");
}

int config_auth_tokens(config_t *cfg, const json_t *v, const char *path,
                       char *(*getenv_fn)(const char *), char *err, size_t errlen)
{
    auth_ctx a = {err, errlen, getenv_fn};
    size_t i;
    json_t *e;
    if (!json_is_array(v))
        return auth_fail(&a, path, "must be an array of tokens: strings, or objects with scopes");
    config_auth_free(cfg);
    cfg->tokens = calloc(json_array_size(v) + 1, sizeof *cfg->tokens);
    if (!cfg->tokens)
        return auth_fail(&a, path, "out of memory");
    json_array_foreach(v, i, e) {
        char sub[AUTH_PATH_LEN];
        snprintf(sub, sizeof sub, "%.400s[%zu]", path, i);
        /* counted before filling, so config_auth_free releases a half-read entry */
        cfg->n_tokens = i + 1;
        if (auth_entry_read(&a, &cfg->tokens[i], e, sub) < 0)
            return -1;
    }
    return 0;
}

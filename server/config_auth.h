/* config_auth.h - the auth.tokens entries of the config (private to
 * server/config*.c): plain strings, or objects with scopes whose secret comes
 * from an environment variable or a file. */
#ifndef JOBD_CONFIG_AUTH_H
#define JOBD_CONFIG_AUTH_H

#include "config.h"

/* Reads v, the value of auth.tokens (or of JOBD_API_TOKENS as an array of
 * strings) at path, into cfg->tokens, replacing what was there; token_env
 * names are looked up through getenv_fn (NULL: no variable is set). 0, or -1
 * with err "path: why"; no message ever holds a token. */
int config_auth_tokens(config_t *cfg, const json_t *v, const char *path,
                       char *(*getenv_fn)(const char *), char *err, size_t errlen);

/* Frees cfg->tokens (wiping the secrets) and empties the list. */
void config_auth_free(config_t *cfg);

#endif

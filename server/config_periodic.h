/* config_periodic.h - the "periodic" section of the config, for config.c
 * only (config.h holds periodic_cfg and config_periodic). */
#ifndef JOBD_CONFIG_PERIODIC_H
#define JOBD_CONFIG_PERIODIC_H

#include "config.h"

/* Reads the "periodic" object v (at path) into cfg->periodic: names, cron
 * or every, timezone, and each key's type. 0, or -1 with `path: why` in err. */
int config_periodic_read(config_t *cfg, json_t *v, const char *path, char *err, size_t errlen);

/* Checks what needs the rest of the config: each schedule's queue exists
 * and its type has a handler. 0, or -1 with `periodic.NAME.KEY: why` in err. */
int config_periodic_check(const config_t *cfg, char *err, size_t errlen);

/* Frees cfg->periodic and what its schedules own. */
void config_periodic_free(config_t *cfg);

#endif

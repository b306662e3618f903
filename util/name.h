/* name.h - what a queue name, a job id and a job type may be: the limits and
 * checks shared by the config, the router and the job model. */
#ifndef JOBD_NAME_H
#define JOBD_NAME_H

#include <stdbool.h>
#include <stddef.h>

#define NAME_QUEUE_MAX 64  /* [A-Za-z0-9_-] */
#define NAME_ID_MAX 128    /* [A-Za-z0-9._:-] */
#define NAME_TYPE_MAX 128  /* bytes, any but NUL */

/* True when s is 1..max characters of [A-Za-z0-9] and those in extra. NULL is false. */
bool name_chars_ok(const char *s, const char *extra, size_t max);

/* True when s is a queue name: 1..NAME_QUEUE_MAX chars of [A-Za-z0-9_-]. */
bool name_queue_ok(const char *s);

/* True when s is a job id: 1..NAME_ID_MAX chars of [A-Za-z0-9._:-]. */
bool name_id_ok(const char *s);

/* True when s is a job type: 1..NAME_TYPE_MAX bytes. */
bool name_type_ok(const char *s);

#endif

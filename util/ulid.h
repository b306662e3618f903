/* ulid.h - time-ordered unique ids (ULID: 26 chars of Crockford base32). */
#ifndef JOBD_ULID_H
#define JOBD_ULID_H

#include <pthread.h>
#include <stdint.h>

#define ULID_LEN 26

/* A generator, monotonic within a process: ids generated later compare
 * greater (strcmp), even within one millisecond or when the clock steps back. */
typedef struct ulid_gen {
    pthread_mutex_t mu;
    int64_t last_ms;
    unsigned char last_rand[10];
} ulid_gen;

/* Initialises g (mutex and state); ulid_destroy releases it. */
void ulid_init(ulid_gen *g);

/* Writes the next ULID (ULID_LEN chars + NUL) for time now_ms into out.
 * Thread-safe; later calls return greater ids even within one millisecond. */
void ulid_next(ulid_gen *g, int64_t now_ms, char out[ULID_LEN + 1]);

/* Releases what ulid_init set up. */
void ulid_destroy(ulid_gen *g);

#endif

/* ulid.c - ULIDs: 48 bits of unix ms, then 80 random bits, in base32. */
#include "ulid.h"

#include <stdlib.h>
#include <string.h>

#define ULID_MS_MAX ((INT64_C(1) << 48) - 1)

/* Crockford's base32: ASCII-ordered, so strcmp orders ULIDs by value. */
static const char ulid_alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

void ulid_init(ulid_gen *g)
{
    pthread_mutex_init(&g->mu, NULL);
    g->last_ms = -1;
    memset(g->last_rand, 0, sizeof g->last_rand);
}

void ulid_destroy(ulid_gen *g)
{
    pthread_mutex_destroy(&g->mu);
}

/* Adds one to the big-endian random part; -1 when it wrapped to zero. */
static int ulid_increment(unsigned char rnd[10])
{
    for (int i = 9; i >= 0; i--)
        if (++rnd[i] != 0)
            return 0;
    return -1;
}

/* 26 base32 chars hold 130 bits: two zero bits, then the 48-bit time and 80
 * random bits. Char i is bits 5i-2 .. 5i+2 of the 128 (MSB first), read
 * through a 16-bit window; ids are made for every submission. */
static void ulid_encode(int64_t ms, const unsigned char rnd[10], char out[ULID_LEN + 1])
{
    unsigned char b[17]; /* b[16] pads the window of the last char */
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    memcpy(b + 6, rnd, 10);
    b[16] = 0;
    out[0] = ulid_alphabet[b[0] >> 5];
    for (int i = 1; i < ULID_LEN; i++) {
        int k = 5 * i - 2;
        unsigned window = (unsigned)b[k / 8] << 8 | b[k / 8 + 1];
        out[i] = ulid_alphabet[window >> (11 - k % 8) & 31u];
    }
    out[ULID_LEN] = '\0';
}

void ulid_next(ulid_gen *g, int64_t now_ms, char out[ULID_LEN + 1])
{
    int64_t ms = now_ms < 0 ? 0 : now_ms > ULID_MS_MAX ? ULID_MS_MAX : now_ms;
    pthread_mutex_lock(&g->mu);
    /* A clock that stands still or steps back must not reorder ids: stay on
     * the last millisecond and count up from its random part. */
    if (ms <= g->last_ms) {
        ms = g->last_ms;
        if (ulid_increment(g->last_rand) < 0)
            ms++; /* 2^80 ids in one ms: borrow the next one */
    }
    if (ms != g->last_ms)
        arc4random_buf(g->last_rand, sizeof g->last_rand);
    g->last_ms = ms;
    ulid_encode(ms, g->last_rand, out);
    pthread_mutex_unlock(&g->mu);
}

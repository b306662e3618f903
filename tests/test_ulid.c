/* test_ulid.c - ULID ids (util/ulid.c): shape, the time they encode, order
 * within a millisecond, a clock that steps back, threads. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../server/jobd.h"
#include "../util/ulid.h"
#include "support.h"

#define TU_NOW 1795860000000LL /* 2026-11-28T10:00:00.000Z */
#define TU_TIME_END 253402300800000LL /* 10000-01-01T00:00:00Z */

TestSuite(ids);

Test(ids, shape_and_alphabet)
{
    ulid_gen g;
    char id[27];
    ulid_init(&g);
    for (int i = 0; i < 1000; i++) {
        ulid_next(&g, TU_NOW + i / 10, id);
        cr_assert(ts_ulid_shape(id), "bad ULID %s", id);
    }
    ulid_destroy(&g);
}

Test(ids, timestamp_decodes_to_the_given_ms)
{
    const int64_t times[] = {0, 1, 1000, TU_NOW, TU_TIME_END, (INT64_C(1) << 48) - 1};
    for (size_t i = 0; i < sizeof times / sizeof *times; i++) {
        ulid_gen g;
        char id[27];
        ulid_init(&g);
        ulid_next(&g, times[i], id);
        cr_expect_eq(ts_ulid_ms(id), times[i], "%s for %lld", id, (long long)times[i]);
        ulid_destroy(&g);
    }
}

Test(ids, random_part_changes_with_the_ms)
{
    ulid_gen g;
    char a[27], b[27];
    ulid_init(&g);
    ulid_next(&g, TU_NOW, a);
    ulid_next(&g, TU_NOW + 1, b);
    /* 80 random bits: equal tails would mean they are not random */
    cr_expect(strcmp(a + 10, b + 10) != 0, "%s and %s share the random part", a, b);
    ulid_destroy(&g);
}

Test(ids, same_ms_strictly_increasing)
{
    ulid_gen g;
    char prev[27], id[27];
    ulid_init(&g);
    ulid_next(&g, TU_NOW, prev);
    for (int i = 0; i < 10000; i++) {
        ulid_next(&g, TU_NOW, id);
        cr_assert(strcmp(prev, id) < 0, "%s !< %s", prev, id);
        cr_assert_eq(ts_ulid_ms(id), TU_NOW);
        memcpy(prev, id, sizeof id);
    }
    ulid_destroy(&g);
}

Test(ids, clock_going_back_never_reorders)
{
    ulid_gen g;
    char a[27], b[27];
    ulid_init(&g);
    ulid_next(&g, TU_NOW, a);
    ulid_next(&g, TU_NOW - 5000, b);
    cr_expect(strcmp(a, b) < 0, "%s !< %s", a, b);
    cr_expect_eq(ts_ulid_ms(b), TU_NOW, "the time part went back");
    ulid_destroy(&g);
}

Test(ids, random_overflow_moves_to_next_ms)
{
    ulid_gen g;
    char last[27], id[27];
    ulid_init(&g);
    ulid_next(&g, TU_NOW, last);
    memset(g.last_rand, 0xff, sizeof g.last_rand); /* the largest id of that ms */
    memset(last + 10, 'Z', 16);
    ulid_next(&g, TU_NOW, id);
    cr_expect(strcmp(last, id) < 0, "%s !< %s", last, id);
    cr_expect_eq(ts_ulid_ms(id), TU_NOW + 1);
    ulid_destroy(&g);
}

#define TU_THREADS 8
#define TU_PER_THREAD 10000

typedef struct tu_idrun {
    ulid_gen *g;
    int64_t now_ms; /* 0 = the real clock */
    char (*ids)[27];
    int count;
    bool increasing;
} tu_idrun;

static void *tu_id_thread(void *arg)
{
    tu_idrun *run = arg;
    run->increasing = true;
    for (int i = 0; i < run->count; i++) {
        ulid_next(run->g, run->now_ms ? run->now_ms : jobd_now_ms(), run->ids[i]);
        if (i > 0 && strcmp(run->ids[i - 1], run->ids[i]) >= 0)
            run->increasing = false;
    }
    return NULL;
}

static int tu_cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

Test(ids, threads_unique_and_each_increasing, .timeout = 60)
{
    ulid_gen g;
    ulid_init(&g);
    char(*ids)[27] = calloc(TU_THREADS * TU_PER_THREAD, sizeof *ids);
    pthread_t th[TU_THREADS];
    tu_idrun runs[TU_THREADS];
    for (int t = 0; t < TU_THREADS; t++) {
        runs[t] = (tu_idrun){&g, 0, ids + t * TU_PER_THREAD, TU_PER_THREAD, false};
        cr_assert_eq(pthread_create(&th[t], NULL, tu_id_thread, &runs[t]), 0);
    }
    for (int t = 0; t < TU_THREADS; t++) {
        pthread_join(th[t], NULL);
        cr_expect(runs[t].increasing, "thread %d saw ids out of order", t);
    }
    qsort(ids, TU_THREADS * TU_PER_THREAD, sizeof *ids, tu_cmp_id);
    for (int i = 1; i < TU_THREADS * TU_PER_THREAD; i++)
        cr_assert(strcmp(ids[i - 1], ids[i]) != 0, "duplicate id %s", ids[i]);
    free(ids);
    ulid_destroy(&g);
}

/* One id from a new thread with clock now_ms (0 = real), joined before returning. */
static void tu_id_from_thread(ulid_gen *g, int64_t now_ms, char out[27])
{
    char ids[1][27];
    tu_idrun run = {g, now_ms, ids, 1, false};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, tu_id_thread, &run), 0);
    pthread_join(th, NULL);
    memcpy(out, ids[0], 27);
}

Test(ids, later_id_from_any_thread_is_greater)
{
    ulid_gen g;
    char a[27], b[27];
    ulid_init(&g);
    for (int i = 0; i < 50; i++) {
        tu_id_from_thread(&g, 0, a);
        tu_id_from_thread(&g, 0, b);
        cr_expect(strcmp(a, b) < 0, "%s !< %s", a, b);
        /* a thread whose clock lags still follows the ids made before it */
        tu_id_from_thread(&g, jobd_now_ms() - 60000, a);
        cr_expect(strcmp(b, a) < 0, "%s !< %s (lagging clock)", b, a);
    }
    ulid_destroy(&g);
}

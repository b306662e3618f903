/* test_util.c - the leaf layer util/ where the job, ids and time suites do
 * not reach it already: UTF-8 cutting and cleaning, names, the containers
 * (hash, list, heap, time index) and the JSON writer's edges. */
#include <criterion/criterion.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/hash.h"
#include "../util/heap.h"
#include "../util/jsonw.h"
#include "../util/list.h"
#include "../util/name.h"
#include "../util/timeindex.h"
#include "../util/utf8.h"

TestSuite(utf8);
TestSuite(name);
TestSuite(containers);
TestSuite(jsonw);

/* ---- utf8 ------------------------------------------------------------ */

Test(utf8, seq_lengths_and_refusals)
{
    static const struct {
        const char *s;
        size_t want;
    } cases[] = {
        {"a", 1},           {"\xc3\xa9", 2},     {"\xe2\x82\xac", 3}, {"\xf0\x9f\x98\x80", 4},
        {"\xc0\xaf", 0},    {"\xe0\x80\xaf", 0}, {"\xed\xa0\x80", 0}, {"\xf4\x90\x80\x80", 0},
        {"\xff", 0},        {"\x80", 0},         {"\xe2\x28\xa1", 0}, {"\xf0\x9f\x98", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        cr_expect_eq(utf8_seq(cases[i].s, strlen(cases[i].s)), cases[i].want, "case %zu", i);
    cr_expect_eq(utf8_seq("\xe2\x82\xac", 2), 0, "a sequence cut off by len");
}

Test(utf8, cut_drops_only_a_split_sequence)
{
    const char *s = "ab\xe2\x82\xac";
    cr_expect_eq(utf8_cut(s, 5), 5, "whole euro sign");
    cr_expect_eq(utf8_cut(s, 4), 2, "two of its three bytes");
    cr_expect_eq(utf8_cut(s, 3), 2, "its lead byte only");
    cr_expect_eq(utf8_cut(s, 2), 2);
    cr_expect_eq(utf8_cut("\x80\x80", 2), 2, "no lead byte: nothing to cut");
    cr_expect_eq(utf8_cut("", 0), 0);
}

Test(utf8, resync_skips_at_most_three_continuations)
{
    cr_expect_eq(utf8_resync("\x82\xac" "ab", 4), 2);
    cr_expect_eq(utf8_resync("abc", 3), 0);
    cr_expect_eq(utf8_resync("\x80\x80\x80\x80", 4), 3);
    cr_expect_eq(utf8_resync("\x80\x80", 1), 1, "stays within len");
}

Test(utf8, clean_replaces_bad_bytes_and_stops_before_a_split)
{
    char out[64];
    const char *in = "ok\x01\t\n\x7f \xff caf\xc3\xa9";
    size_t n = utf8_clean(out, sizeof out, in, strlen(in), 0);
    cr_expect_str_eq(out, "ok\x01\t\n\x7f ? caf\xc3\xa9");
    cr_expect_eq(n, strlen(out));
    utf8_clean(out, sizeof out, in, strlen(in), UTF8_PRINTABLE);
    cr_expect_str_eq(out, "ok?\t\n? ? caf\xc3\xa9");
    /* room for "caf" and the NUL, not for the two bytes of é */
    cr_expect_eq(utf8_clean(out, 5, "caf\xc3\xa9", 5, 0), 3);
    cr_expect_str_eq(out, "caf");
    cr_expect_eq(utf8_clean(out, 1, "abc", 3, 0), 0);
    cr_expect_str_eq(out, "");
    /* a NUL inside the length is a control character */
    utf8_clean(out, sizeof out, "a\0b", 3, UTF8_PRINTABLE);
    cr_expect_str_eq(out, "a?b");
}

Test(utf8, json_string_keeps_valid_text)
{
    json_t *v = utf8_json_string("caf\xc3\xa9 \xff!");
    cr_assert_not_null(v);
    cr_expect_str_eq(json_string_value(v), "caf\xc3\xa9 ?!");
    json_decref(v);
    v = utf8_json_string("plain");
    cr_expect_str_eq(json_string_value(v), "plain");
    json_decref(v);
    cr_expect_null(utf8_json_string(NULL));
}

/* ---- names ----------------------------------------------------------- */

Test(name, chars_and_lengths)
{
    cr_expect(name_chars_ok("a_b:c.d-9", "_:.-", 64));
    cr_expect_not(name_chars_ok("a/b", "_:.-", 64));
    cr_expect_not(name_chars_ok("abc", "", 2));
    cr_expect(name_chars_ok("ab", "", 2));
    cr_expect_not(name_chars_ok("", "", 2));
    cr_expect_not(name_chars_ok(NULL, "", 2));
    cr_expect_not(name_queue_ok("a.b"), "a dot is an id's, not a queue's");
    cr_expect(name_id_ok("a.b"));
}

Test(name, type_is_any_bytes_up_to_the_limit)
{
    char t[NAME_TYPE_MAX + 2];
    memset(t, 'x', sizeof t);
    t[NAME_TYPE_MAX] = '\0';
    cr_expect(name_type_ok(t));
    t[NAME_TYPE_MAX] = 'x';
    t[NAME_TYPE_MAX + 1] = '\0';
    cr_expect_not(name_type_ok(t));
    cr_expect(name_type_ok("send email \xc3\xa9"));
    cr_expect_not(name_type_ok(""));
    cr_expect_not(name_type_ok(NULL));
}

/* ---- containers ------------------------------------------------------ */

#define TU_N 5000

typedef struct tu_item {
    char key[16];
    hash_node h;
    list_node l;
    heap_node due;
} tu_item;

#define TU_ITEM(node, member) ((tu_item *)(void *)((char *)(node) - offsetof(tu_item, member)))

static int tu_freed;

static void tu_count_free(hash_node *node)
{
    (void)node;
    tu_freed++;
}

Test(containers, hash_grows_finds_and_removes)
{
    hash_t h;
    tu_item *items = calloc(TU_N, sizeof *items);
    cr_assert_eq(hash_init(&h, 4), 0);
    for (int i = 0; i < TU_N; i++) {
        snprintf(items[i].key, sizeof items[i].key, "k%d", i);
        items[i].h.key = items[i].key;
        cr_assert_eq(hash_insert(&h, &items[i].h), 0);
    }
    cr_expect_eq(h.n, TU_N);
    cr_expect_geq(h.n_buckets, TU_N, "the table grew with its nodes");
    for (int i = 0; i < TU_N; i += 2)
        hash_remove(&h, &items[i].h);
    cr_expect_eq(h.n, TU_N / 2);
    for (int i = 0; i < TU_N; i++) {
        hash_node *n = hash_find(&h, items[i].key);
        if (i % 2)
            cr_expect_eq(n ? TU_ITEM(n, h) : NULL, &items[i], "%s", items[i].key);
        else
            cr_expect_null(n, "%s was removed", items[i].key);
    }
    cr_expect_null(hash_find(&h, "nope"));
    tu_freed = 0;
    hash_destroy(&h, tu_count_free);
    cr_expect_eq(tu_freed, TU_N / 2, "each node in the table once");
    cr_expect_null(h.buckets);
    free(items);
}

Test(containers, list_is_a_fifo_with_removal_anywhere)
{
    list_t l = {0};
    tu_item it[4];
    for (int i = 0; i < 4; i++)
        list_push(&l, &it[i].l);
    list_remove(&l, &it[0].l); /* head */
    list_remove(&l, &it[2].l); /* middle */
    list_remove(&l, &it[3].l); /* tail */
    cr_expect_eq(l.n, 1);
    cr_expect_eq(l.head, &it[1].l);
    cr_expect_eq(l.tail, &it[1].l);
    list_push(&l, &it[0].l);
    cr_expect_eq(l.head->next, &it[0].l);
    cr_expect_eq(l.tail->prev, &it[1].l);
    list_remove(&l, &it[1].l);
    list_remove(&l, &it[0].l);
    cr_expect(l.n == 0 && !l.head && !l.tail);
}

Test(containers, heap_pops_in_key_order_after_any_removals)
{
    heap_t h = {0};
    tu_item *items = calloc(TU_N, sizeof *items);
    uint64_t x = 88172645463325252ULL; /* xorshift: a fixed, spread sample */
    for (int i = 0; i < TU_N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        cr_assert_eq(heap_push(&h, &items[i].due, (int64_t)(x % 100000)), 0);
    }
    for (int i = 0; i < TU_N; i += 3)
        heap_remove(&h, &items[i].due);
    heap_remove(&h, &items[0].due); /* no longer in: left alone */
    int64_t last = INT64_MIN;
    size_t popped = 0;
    for (heap_node *n; (n = heap_top(&h)); popped++) {
        cr_assert_geq(n->key, last);
        last = n->key;
        heap_remove(&h, n);
        cr_assert_not(n->in);
    }
    cr_expect_eq(popped, TU_N - (TU_N + 2) / 3);
    heap_destroy(&h);
    free(items);
}

Test(containers, timeindex_keeps_order_and_the_keys_of_holes)
{
    timeindex_t x = {0};
    static int items[3 * TU_N];
    /* three passes of interleaved times: each lands between earlier slots */
    for (int i = 0; i < 3 * TU_N; i++) {
        cr_assert_eq(timeindex_reserve(&x), 0);
        timeindex_add(&x, (i % TU_N) * 10 + i / TU_N, (uint64_t)i, &items[i]);
    }
    for (size_t i = 1; i < x.n; i++)
        cr_assert_lt(x.v[i - 1].time, x.v[i].time);
    /* a hole keeps its key: the lower bound of a removed item is its old place */
    timeindex_remove(&x, 20, 2, &items[2]);
    size_t at = timeindex_lower_bound(&x, 20, 2);
    cr_expect_eq(x.v[at].time, 20);
    cr_expect_null(x.v[at].item);
    cr_expect_eq(x.v[at + 1].item, &items[TU_N + 2]);
    cr_expect_eq(timeindex_lower_bound(&x, INT64_MAX, 0), x.n);
    cr_expect_eq(timeindex_lower_bound(&x, -1, 0), 0);
    /* removing most items squeezes the holes out */
    for (int i = 0; i < 3 * TU_N; i++)
        if (i % 10 && i != 2)
            timeindex_remove(&x, (i % TU_N) * 10 + i / TU_N, (uint64_t)i, &items[i]);
    cr_expect_lt(x.n, 3 * TU_N / 2, "%zu slots left", x.n);
    size_t live = 0;
    for (size_t i = 0; i < x.n; i++) {
        live += x.v[i].item != NULL;
        if (i)
            cr_assert_lt(x.v[i - 1].time, x.v[i].time);
    }
    cr_expect_eq(live, 3 * TU_N / 10);
    timeindex_destroy(&x);
}

/* ---- jsonw ----------------------------------------------------------- */

Test(jsonw, grows_past_its_first_block_and_matches_jansson)
{
    jsonw w = {0};
    json_t *arr = json_array();
    JSONW_LIT(&w, "[");
    for (int i = 0; i < 300; i++) {
        if (i)
            JSONW_LIT(&w, ",");
        jsonw_cstr(&w, "a\"b\\c\n\x01");
        json_array_append_new(arr, json_string("a\"b\\c\n\x01"));
    }
    JSONW_LIT(&w, "]");
    size_t len = 0;
    char *got = jsonw_finish(&w, &len);
    char *want = json_dumps(arr, JSON_COMPACT);
    cr_assert_not_null(got);
    cr_expect_str_eq(got, want);
    cr_expect_eq(len, strlen(want));
    free(got);
    free(want);
    json_decref(arr);
}

Test(jsonw, time_int_and_real)
{
    jsonw w = {0};
    jsonw_time(&w, 0);
    JSONW_LIT(&w, ",");
    jsonw_time(&w, 1795860000123LL);
    JSONW_LIT(&w, ",");
    jsonw_int(&w, -9223372036854775807LL - 1);
    JSONW_LIT(&w, ",");
    jsonw_real(&w, 2.5);
    char *got = jsonw_finish(&w, NULL);
    cr_expect_str_eq(got, "null,\"2026-11-28T10:00:00.123Z\",-9223372036854775808,2.5");
    free(got);
}

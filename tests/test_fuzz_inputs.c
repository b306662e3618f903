/* test_fuzz_inputs.c - every seed and every kept crasher of the fuzz targets
 * (tests/fuzz/corpus/<target>/, tests/fuzz/regressions/<target>/) through the
 * same target functions `make fuzz` runs under libFuzzer, here built with the
 * project's compiler: a broken property aborts the test (a crash). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz.h"

typedef int (*fuzz_fn)(const uint8_t *data, size_t size);

/* Feeds every file of dir to fn; returns how many there were. */
static size_t fi_feed_dir(const char *dir, fuzz_fn fn)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        cr_assert_not_null(f, "%s", path);
        uint8_t *buf = malloc(1 << 20);
        cr_assert_not_null(buf);
        size_t len = fread(buf, 1, 1 << 20, f);
        cr_assert(feof(f), "%s: inputs are at most 1 MiB", path);
        fclose(f);
        fn(buf, len);
        free(buf);
        n++;
    }
    closedir(d);
    return n;
}

static void fi_feed(const char *target, fuzz_fn fn)
{
    char dir[256];
    snprintf(dir, sizeof dir, "tests/fuzz/corpus/%s", target);
    size_t seeds = fi_feed_dir(dir, fn);
    cr_assert_gt(seeds, 0, "%s: no seed inputs", dir);
    snprintf(dir, sizeof dir, "tests/fuzz/regressions/%s", target);
    fi_feed_dir(dir, fn);
}

TestSuite(fuzz_inputs, .timeout = 60);

Test(fuzz_inputs, job) { fi_feed("job", fuzz_job); }
Test(fuzz_inputs, batch) { fi_feed("batch", fuzz_batch); }
Test(fuzz_inputs, router) { fi_feed("router", fuzz_router); }
Test(fuzz_inputs, config) { fi_feed("config", fuzz_config); }
Test(fuzz_inputs, time) { fi_feed("time", fuzz_time); }
Test(fuzz_inputs, record) { fi_feed("record", fuzz_record); }

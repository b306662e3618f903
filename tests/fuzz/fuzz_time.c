/* fuzz_time.c - RFC 3339 parsing (job_time_parse): any text either is
 * refused or gives a time that formats and parses back to the same ms; and
 * any ms in the documented years formats to text that parses back. */
#include <string.h>

#include "fuzz.h"

/* 9999-12-31T23:59:59.999Z: the last instant of the documented years. */
#define FUZZ_TIME_MAX 253402300799999LL

static void fuzz_time_round_trip(int64_t ms)
{
    char buf[64];
    job_time_format(ms, buf);
    FUZZ_CHECK(strlen(buf) == 24 && buf[23] == 'Z', "format of %lld: \"%s\"", (long long)ms, buf);
    int64_t back = -1;
    FUZZ_CHECK(job_time_parse(buf, &back) == 0, "own format refused: \"%s\"", buf);
    FUZZ_CHECK(back == ms, "\"%s\" parsed back as %lld, not %lld", buf, (long long)back,
               (long long)ms);
}

int fuzz_time(const uint8_t *data, size_t size)
{
    char *s = fuzz_text(data, size);
    int64_t ms = 0;
    if (job_time_parse(s, &ms) == 0 && ms >= 0 && ms <= FUZZ_TIME_MAX)
        fuzz_time_round_trip(ms);
    free(s);
    if (size >= 8) {
        uint64_t raw;
        memcpy(&raw, data, sizeof raw);
        fuzz_time_round_trip((int64_t)(raw % (uint64_t)(FUZZ_TIME_MAX + 1)));
    }
    return 0;
}

FUZZ_ENTRY(fuzz_time)

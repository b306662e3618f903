/* fuzz_job.c - job validation (job_from_request), the check every submitted
 * job goes through. Input: one flag byte, then, when bit 0 is set, an
 * Idempotency-Key up to the first newline, then the JSON of the job. Any input
 * is a 422 invalid_job with a message, or a job that holds every job property
 * and the documented ranges. */
#include <string.h>

#include "fuzz.h"

/* 2026-11-28T10:00:00.000Z: a fixed now, so a crasher replays alike. */
#define FUZZ_NOW 1795860000000LL

int fuzz_job(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t flags = data[0];
    const uint8_t *p = data + 1, *end = data + size;
    char *idem = NULL;
    if (flags & 1) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        const uint8_t *stop = nl ? nl : end;
        idem = fuzz_text(p, (size_t)(stop - p));
        p = nl ? nl + 1 : end;
    }
    int64_t now = FUZZ_NOW + (int64_t)(flags >> 1) * 997;
    fuzz_world *w = fuzz_world_get();
    json_t *obj = json_loadb((const char *)p, (size_t)(end - p), JSON_REJECT_DUPLICATES, NULL);
    if (obj) {
        jobd_error err = {0};
        job_t *job = job_from_request(obj, "local", idem, &w->ctx.ids, now, &err);
        if (!job) {
            FUZZ_CHECK(err.status == 422 && err.code && strcmp(err.code, "invalid_job") == 0,
                       "refusal %d %s", err.status, err.code ? err.code : "(null)");
            FUZZ_CHECK(memchr(err.message, '\0', sizeof err.message) && err.message[0],
                       "refusal without a message");
        } else {
            fuzz_check_job(job);
            FUZZ_CHECK(strcmp(job->queue, "local") == 0, "queue %s", job->queue);
            FUZZ_CHECK(job->created_at == now, "created_at %lld", (long long)job->created_at);
            FUZZ_CHECK(job->max_attempts >= 0 && job->max_attempts <= 1000, "max_attempts %d",
                       job->max_attempts);
            FUZZ_CHECK(job->timeout >= 0, "timeout %g", job->timeout);
            FUZZ_CHECK((job->state == JOB_SCHEDULED) == (job->run_at > now),
                       "state %s with run_at %lld", job_state_name(job->state),
                       (long long)job->run_at);
            FUZZ_CHECK(!idem || strcmp(job->id, idem) == 0, "id %s while the key is %s",
                       job->id, idem);
            job_free(job);
        }
    }
    json_decref(obj);
    free(idem);
    return 0;
}

FUZZ_ENTRY(fuzz_job)

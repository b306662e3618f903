/* fuzz_record.c - the stored-record reader: a Redis queue keeps each job's
 * view as text in <prefix>:{q}:jobs:v and reads it back with json_loadb and
 * job_from_view (queues/redis_scripts.c). Any stored text is refused or
 * gives a job that holds every job property (fuzz_check_job). */
#include "fuzz.h"

int fuzz_record(const uint8_t *data, size_t size)
{
    json_t *view = json_loadb((const char *)data, size, 0, NULL);
    job_t *job = view ? job_from_view(view) : NULL;
    if (job)
        fuzz_check_job(job);
    job_free(job);
    json_decref(view);
    return 0;
}

FUZZ_ENTRY(fuzz_record)

/* fuzz.h - the fuzz targets of `make fuzz` (libFuzzer, ASan+UBSan) and the
 * helpers they share. Each target is a plain function of one input so that
 * the same code runs under libFuzzer (built with -DJOBD_LIBFUZZER, which adds
 * LLVMFuzzerTestOneInput) and in `make test`, where tests/test_fuzz_inputs.c
 * feeds it every seed and every kept crasher (tests/fuzz/corpus/<target>/,
 * tests/fuzz/regressions/<target>/). A broken property aborts, as a crash. */
#ifndef JOBD_FUZZ_H
#define JOBD_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "../../queues/job.h"
#include "../../queues/pipeline.h"
#include "../../server/config.h"
#include "../../util/name.h"
#include "../../util/rfc3339.h"

/* The targets: each takes any bytes and returns 0; a broken property aborts. */
int fuzz_job(const uint8_t *data, size_t size);    /* JSON -> job_from_request */
int fuzz_batch(const uint8_t *data, size_t size);  /* a POST body -> jobs stored in an inline store */
int fuzz_router(const uint8_t *data, size_t size); /* "METHOD url?query" -> route, then the store's list/get */
int fuzz_config(const uint8_t *data, size_t size); /* env lines + config text -> config_parse, config_load_file */
int fuzz_time(const uint8_t *data, size_t size);   /* RFC 3339 text -> ms -> text */
int fuzz_record(const uint8_t *data, size_t size); /* a stored jobs:v record -> job_from_view */

/* Prints what broke and aborts (a crash for libFuzzer and for criterion). */
#define FUZZ_CHECK(cond, ...)                                                  \
    do {                                                                       \
        if (!(cond))                                                           \
            fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                 \
    } while (0)

void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5), noreturn));

/* A new NUL-terminated copy of data (embedded NULs kept, the C string ends
 * at the first). Caller frees with free(). Aborts on OOM. */
char *fuzz_text(const uint8_t *data, size_t size);

/* Checks what every job jobd builds must satisfy: valid id, queue and type,
 * job_view_text equal to jansson's compact dump of job_view, and the view
 * read back by job_from_view giving the same text. */
void fuzz_check_job(const job_t *job);

/* The world the targets share (one per process, built on first use and kept
 * for the process's life): a config with one inline queue "local" and the
 * builtin handlers, its exec table, and the queue built but not started (no
 * workers, so stored jobs stay put). Borrowed; never NULL (aborts). */
typedef struct fuzz_world {
    config_t *cfg;
    jobd_t ctx;
    queue_t *local;
} fuzz_world;
fuzz_world *fuzz_world_get(void);

#ifdef JOBD_LIBFUZZER
#define FUZZ_ENTRY(fn)                                                         \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);              \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)               \
    {                                                                          \
        return fn(data, size);                                                 \
    }
#else
#define FUZZ_ENTRY(fn)
#endif

#endif

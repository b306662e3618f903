/* exec_test.h - what the webhook and command tests share: jobs and handler
 * states built in the test process, one run of a kind, the data-driven
 * handler-object cases of tests/data/exec/<kind>/{valid,invalid}. */
#ifndef JOBD_EXEC_TEST_H
#define JOBD_EXEC_TEST_H

#include <jansson.h>

#include "../queues/exec.h"

/* A new job (job_free it) of queue "q", type "t", with id, attempts done so
 * far and args parsed from args_json (NULL = null). Fails the test on error. */
job_t *et_job(const char *id, int attempts, const char *args_json);

/* A handler state of kind k from the handler object in opts_json (its check
 * must pass). Fails the test when create fails. */
void *et_create(const exec_kind *k, const char *opts_json);

/* Like et_create, but returns NULL and the message in err when create fails. */
void *et_try_create(const exec_kind *k, const char *opts_json, char *err, size_t errlen);

/* Runs job once through state of kind k with a deadline timeout seconds from
 * now, as exec_table_run would. Fills res; returns the seconds it took. */
double et_run(const exec_kind *k, void *state, const job_t *job, double timeout, exec_result *res);

/* Checks every tests/data/exec/<kind>/invalid/NAME.json handler object against
 * the exact message in NAME.err (via exec_check_handler), and that every
 * valid/NAME.json passes check and create. Returns the number of cases run. */
int et_check_data_cases(const char *kind);

/* Absolute path of tests/data/bin/name into buf (>= 4096 bytes). */
const char *et_bin(const char *name, char *buf);

/* Number of open fds of process pid (0 = this process), or -1. */
int et_fd_count(int pid);

/* Under AddressSanitizer: runs LeakSanitizer now, since criterion's workers
 * exit without its usual report. Leaks are printed (tests/run.sh fails the run
 * on them) and asserted. A no-op in other builds. */
void et_leak_check(void);

#endif
